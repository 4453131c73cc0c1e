/**
 * Tests that need the Neural Engine: they run on an Apple-silicon Mac (macOS 15+) where `ane doctor`
 * says the Neural Engine is available, and are skipped everywhere else with the reason in the name.
 * What they settle is what no Linux test can: that the real framework accepts the calls the bridge
 * makes, and computes what the simulator computes.
 */
import { existsSync } from 'node:fs';
import type { Program } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { PROBE_PROGRAM, probeInput } from '../../src/ane/probe-program';
import { capabilities } from '../../src/capabilities';
import { conformanceCaseDirs } from '../../src/cli/conformance';
import { compareOutput } from '../../src/conformance/compare';
import { runConformance } from '../../src/conformance/run';
import { openDevice } from '../../src/device/device';
import { CompileError } from '../../src/errors';
import { nativeAddon } from '../../src/native/loader';
import { STEP_SIZES, trainingStep } from './training-step';

const ane = capabilities().ane;
const onAne = ane.status === 'available';
const skipped = onAne
  ? ''
  : ` (skipped: needs the Neural Engine on Apple-silicon macOS 15+; here: ${ane.reason})`;

/** fp16 tolerance for results that went through fp16 on both devices (as conformance case B). */
const FP16 = { atol: 2e-3, rtol: 1e-2 };

describe('on the Neural Engine', () => {
  it.skipIf(!onAne)(`passes every conformance case the simulator passes for this chip${skipped}`, () => {
    const dirs = conformanceCaseDirs([]);
    using device = openDevice({ backend: 'ane' });
    using simulator = openDevice({ backend: 'sim', chip: device.chip });
    const onHardware = runConformance(dirs, device);
    const simulated = runConformance(dirs, simulator);
    const disagreements = onHardware
      .map((result, i) => ({ result, sim: simulated[i]! }))
      .filter(({ result, sim }) => result.pass !== sim.pass)
      .map(
        ({ result, sim }) =>
          `${result.id}: ane ${result.pass ? 'pass' : `FAIL ${result.error ?? JSON.stringify(result.worst)}`}, sim ${sim.pass ? 'pass' : `FAIL ${sim.error ?? ''}`}`,
      );
    expect(disagreements).toEqual([]);
  });

  it.skipIf(!onAne)(
    `computes a training step equal to the simulator's within fp16 tolerance${skipped}`,
    async () => {
      using device = openDevice({ backend: 'ane' });
      using simulator = openDevice({ backend: 'sim', chip: device.chip });
      const hardware = await trainingStep(device);
      const reference = await trainingStep(simulator);
      const { ic, oc, seq } = STEP_SIZES;
      const checks: [string, Float32Array, Float32Array, number[]][] = [
        ['y', hardware.y, reference.y, [oc, seq]],
        ['dx', hardware.dx, reference.dx, [ic, seq]],
        ['W after the update', hardware.weights, reference.weights, [ic, oc]],
        ['y after the update', hardware.yAfter, reference.yAfter, [oc, seq]],
      ];
      for (const [name, got, expected, shape] of checks) {
        const comparison = compareOutput(got, expected, shape, FP16);
        expect(comparison.pass, `${name}: ${JSON.stringify(comparison.worst)}`).toBe(true);
      }
      expect(hardware.lossAfter).toBeLessThan(hardware.loss);
    },
  );

  it.skipIf(!onAne)(
    `stages, runs and frees through the real framework, leaving nothing behind${skipped}`,
    async () => {
      const native = nativeAddon().addon!.ane!;
      const before = native.compileCount();
      const model = native.compile(
        PROBE_PROGRAM.mil,
        PROBE_PROGRAM.weights,
        PROBE_PROGRAM.inputs,
        PROBE_PROGRAM.outputs,
      );
      expect(native.compileCount()).toBe(before + 1);
      const staging = model.stagingDirectory;
      expect(existsSync(staging)).toBe(true);
      expect(model.hexIdentifier.length).toBeGreaterThan(0);
      const input = probeInput();
      const output = new Uint8Array(input.length);
      await model.runAsync([input], [output]);
      expect(output.some((b) => b !== 0)).toBe(true);
      model.free();
      expect(model.isFreed).toBe(true);
      expect(existsSync(staging)).toBe(false);
      expect(native.liveModels()).toBe(0);
    },
  );

  it.skipIf(!onAne)(`reports the framework's own text when it refuses a program${skipped}`, () => {
    using device = openDevice({ backend: 'ane' });
    const broken: Program = {
      ...PROBE_PROGRAM,
      mil: PROBE_PROGRAM.mil.replace('add(x=x,y=x)', 'no_such_op(x=x,y=x)'),
    };
    let error: unknown;
    try {
      device.compile(broken);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompileError);
    // Either the descriptor was refused (nil) or the compiler said why, in its own words.
    expect((error as Error).message).toMatch(/returned nil|compileWithQoS:options:error:\): \S/);
  });
});
