/**
 * The simulator's device thread (src/sim/device-thread.ts): `Kernel.run` executes off the JS
 * thread, gives the bytes `runSync` gives, and the process still exits when it is done.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openDevice, STORIES15M_LAYER, storiesLayerProgram } from '../src/index';

// Opt-in (read at the first compile of this test file's module graph).
process.env.ANE_BRIDGE_SIM_THREAD = '1';
const workerBuilt = existsSync(fileURLToPath(new URL('../dist/sim-worker.js', import.meta.url)));
const distEntry = fileURLToPath(new URL('../dist/index.js', import.meta.url));

describe.skipIf(!workerBuilt)(
  'the simulator device thread (skipped before a build: dist/sim-worker.js)',
  () => {
    it('runs a kernel while the JS thread is busy, and writes what runSync writes', async () => {
      const { program, input } = storiesLayerProgram({ ...STORIES15M_LAYER, seq: 64 });
      using device = openDevice({ backend: 'sim' });
      using kernel = device.compile(program);
      kernel.inputs[0]!.write(input);
      const expected = kernel.runSync().map((output) => output.bytes.slice());
      for (const output of kernel.outputs) output.bytes.fill(0);

      const run = kernel.run();
      // The JS thread never yields here: the output can only fill in if another thread runs the kernel.
      const started = Date.now();
      const out = kernel.outputs[0]!.bytes;
      let written = false;
      while (!written && Date.now() - started < 20_000) written = out.some((byte) => byte !== 0);
      expect(written).toBe(true);
      await run;
      expect(kernel.outputs.map((output) => output.bytes.slice())).toEqual(expected);
    });

    it('lets the process exit when the runs are done, also from `node --input-type=module -e`', () => {
      const script = `
      import { openDevice, storiesLayerProgram, STORIES15M_LAYER } from ${JSON.stringify(distEntry)};
      const { program, input } = storiesLayerProgram({ ...STORIES15M_LAYER, seq: 32 });
      const device = openDevice({ backend: 'sim' });
      const kernel = device.compile(program);
      kernel.inputs[0].write(input);
      const [out] = await kernel.run();
      console.log('ran', out.bytes.some((b) => b !== 0));
    `;
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(
        { status: child.status, signal: child.signal, stdout: child.stdout.trim() },
        child.stderr,
      ).toEqual({
        status: 0,
        signal: null,
        stdout: 'ran true',
      });
    });
  },
);
