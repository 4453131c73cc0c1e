/**
 * Device sessions in a worker process (forked; its entry bundled from the current source by the
 * test helper, as dist/worker-main.js would be): the same loss and gradients as the in-process
 * session bit for bit, the worker's errors re-thrown here as the same class, and a worker killed
 * mid-step is a TrainError naming the signal, not a hang.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, DataError, TrainError } from '../errors';
import { buildWorkerEntryForTests, TINY, tinyTokens, tinyWeights } from './runtime.test-helper';
import { openSession } from './session';
import { openWorkerSession, WorkerProcess } from './worker-session';

const SCALE = 1024;
let entry: string;
beforeAll(async () => {
  entry = await buildWorkerEntryForTests();
});

describe('a session in a worker process', () => {
  it('gives bit-identical loss and gradients to the in-process session, step after step', async () => {
    const spec = { config: TINY, seq: 8, batch: 2, backend: 'sim' as const };
    const weights = tinyWeights();
    const here = await openSession(spec);
    const there = await openWorkerSession(spec, { entry });
    try {
      expect(there.where).toBe('worker');
      expect(there.programs).toBe(here.programs);
      await here.writeWeights(weights);
      await there.writeWeights(weights);
      const steps: { here: Map<string, Float32Array>; there: Map<string, Float32Array> }[] = [];
      for (const seed of [1, 2, 3]) {
        const tokens = tinyTokens(2, 8, seed);
        const a = await here.step(tokens, SCALE);
        // The worker answers with its session's views (serialized as they are sent); asked for
        // views or not, they arrive here as fresh arrays.
        const b = await there.step(tokens, SCALE, seed === 2 ? { grads: 'view' } : undefined);
        expect(b.loss).toBe(a.loss);
        expect([...b.grads.keys()]).toEqual([...a.grads.keys()]);
        for (const [name, grad] of a.grads) expect(b.grads.get(name), name).toEqual(grad);
        expect(b.profile.totalMs).toBeGreaterThan(0);
        steps.push({ here: a.grads, there: b.grads });
      }
      // Every step's arrays still hold that step's gradients (later steps did not overwrite them).
      for (const [i, { here: a, there: b }] of steps.entries()) {
        for (const [name, grad] of a) expect(b.get(name), `step ${i} ${name}`).toEqual(grad);
      }
      expect(steps[1]!.there.get('lm_head.weight')).not.toEqual(steps[2]!.there.get('lm_head.weight'));
    } finally {
      await here.dispose();
      await there.dispose();
    }
  });

  it("re-throws the worker's errors as the same class with the same message, and keeps working", async () => {
    const session = await openWorkerSession({ config: TINY, seq: 8, batch: 1, backend: 'sim' }, { entry });
    try {
      const early = await session.step(tinyTokens(1, 8), SCALE).catch((e: unknown) => e);
      expect(early).toBeInstanceOf(CheckpointError);
      expect((early as CheckpointError).name).toBe('CheckpointError');
      expect((early as CheckpointError).details.tensor).toBe('model.embed_tokens.weight');
      await session.writeWeights(tinyWeights());
      const tokens = tinyTokens(1, 8);
      tokens[3] = 999;
      const bad = await session.step(tokens, SCALE).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(DataError);
      expect((bad as Error).message).toMatch(/token 999 at sequence 0, position 3/);
      expect((bad as Error).stack).toMatch(/--- in worker \d+ \(pid \d+\), step ---/);
      const good = await session.step(tinyTokens(1, 8), SCALE);
      expect(Number.isFinite(good.loss)).toBe(true);
    } finally {
      await session.dispose();
    }
  });

  it('a worker killed mid-step is a TrainError naming the signal, and later calls fail the same way', async () => {
    const worker = await WorkerProcess.start({ entry });
    const session = await worker.openSession({ config: TINY, seq: 16, batch: 4, backend: 'sim' });
    await session.writeWeights(tinyWeights());
    const step = session.step(tinyTokens(4, 16), SCALE);
    process.kill(worker.pid!, 'SIGKILL');
    const error = await step.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainError);
    expect((error as Error).message).toMatch(/worker \d+ \(pid \d+\) was killed by signal SIGKILL/);
    await expect(session.step(tinyTokens(4, 16), SCALE)).rejects.toThrow(/was killed by signal SIGKILL/);
    expect(worker.dead).toBe(true);
    await session.dispose(); // nothing left to end: resolves
  });

  it('a worker entry that does not exist is a TrainError that says to build the package', async () => {
    await expect(WorkerProcess.start({ entry: '/nonexistent/worker-main.js' })).rejects.toThrow(
      /does not exist: build ane-train \(pnpm --filter ane-train build\)/,
    );
  });

  it('a worker that exits before it listens is a TrainError with the exit code and its stderr', async () => {
    const { writeFileSync } = await import('node:fs');
    const broken = entry.replace(/\.mjs$/, '-broken.mjs');
    writeFileSync(broken, "console.error('cannot load the addon'); process.exit(3);\n");
    const error = await WorkerProcess.start({ entry: broken }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainError);
    expect((error as Error).message).toMatch(/exited with code 3.*cannot load the addon/s);
  });
});

describe('a parent that never disposes its worker', () => {
  it('still exits when its work is done (the idle worker holds no handle open), and the worker exits with it', async () => {
    // A parent script bundled from the current source (a child Node cannot run TypeScript).
    const { build } = await import('esbuild');
    const { spawn } = await import('node:child_process');
    const { writeFileSync } = await import('node:fs');
    const { dirname, join } = await import('node:path');
    const source = join(dirname(entry), `forgetful-parent-${process.pid}.ts`);
    const outfile = source.replace(/\.ts$/, '.mjs');
    const here = dirname(new URL(import.meta.url).pathname);
    writeFileSync(
      source,
      `import { openWorkerSession } from ${JSON.stringify(join(here, 'worker-session.ts'))};\n` +
        `import { TINY, tinyTokens, tinyWeights } from ${JSON.stringify(join(here, 'runtime.test-helper.ts'))};\n` +
        `const s = await openWorkerSession({ config: TINY, seq: 8, batch: 1, backend: 'sim' }, { entry: ${JSON.stringify(entry)} });\n` +
        `await s.writeWeights(tinyWeights());\n` +
        `const { loss } = await s.step(tinyTokens(1, 8), 1024);\n` +
        "console.log('loss', loss.toFixed(3), 'worker', s.worker.pid);\n",
    );
    await build({
      entryPoints: [source],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      external: ['esbuild'],
      outfile,
      logLevel: 'error',
    });
    const child = spawn(process.execPath, [outfile], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('hung');
      }, 20_000);
      child.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode ?? -1);
      });
    });
    expect(code).toBe(0);
    const match = /loss (\d+\.\d+) worker (\d+)/.exec(output);
    expect(match, output).not.toBeNull();
    // The worker saw its channel close and ended too.
    const workerPid = Number(match![2]);
    const { existsSync, readFileSync } = await import('node:fs');
    const alive = () => {
      if (!existsSync('/proc')) {
        try {
          process.kill(workerPid, 0);
          return true;
        } catch {
          return false;
        }
      }
      try {
        // Field 3 of /proc/PID/stat is the state; a zombie (Z) has exited, waiting for a reaper.
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${workerPid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 50 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(alive()).toBe(false);
  }, 40_000);
});
