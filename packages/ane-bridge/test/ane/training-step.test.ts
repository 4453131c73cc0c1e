/**
 * The hardware test's training step (test/hardware/training-step.ts) on Linux: the ANE backend over
 * the fake platform, whose evaluations call the simulator, against the simulator itself. Equal to
 * the bit, since both compute with the simulator; what this checks is that the step's data path
 * through the bridge (packing, surfaces, async runs, two kernels) loses nothing.
 */
import type { Program } from 'ane-ir/mil';
import { afterAll, describe, expect, it } from 'vitest';
import { createAneBackend } from '../../src/device/ane-backend';
import { Device, openDevice } from '../../src/device/device';
import { compileSimProgram } from '../../src/sim';
import { packedMatmulProgram, STEP_SIZES, trainingStep } from '../hardware/training-step';
import { type FakeAddon, loadFakeAddon } from './fake-addon';

const loaded = await loadFakeAddon();
const skipReason =
  'reason' in loaded ? ` (skipped: the fake-platform addon could not be built: ${loaded.reason})` : '';

describe.skipIf(!('addon' in loaded))(
  `the hardware training step over the fake platform${skipReason}`,
  () => {
    const { ane, fake } = (loaded as { addon: FakeAddon }).addon;
    afterAll(() => (loaded as { removeTemporaryDirectory(): void }).removeTemporaryDirectory());

    it("equals the simulator's step, and the loss goes down", async () => {
      const { ic, oc, seq } = STEP_SIZES;
      const programs = new Map<string, Program>(
        [packedMatmulProgram(ic, oc, seq, 'y'), packedMatmulProgram(oc, ic, seq, 'dx')].map((p) => [
          p.mil,
          p,
        ]),
      );
      fake.setEvaluator((mil, weights, inputs, outputs) =>
        compileSimProgram({ ...programs.get(mil)!, weights }).run(inputs, outputs),
      );
      try {
        using device = new Device('ane', 'the fake platform', 'M4', createAneBackend(ane), 10);
        using simulator = openDevice({ backend: 'sim' });
        const bridged = await trainingStep(device);
        const reference = await trainingStep(simulator);
        expect(bridged).toEqual(reference);
        expect(bridged.lossAfter).toBeLessThan(bridged.loss);
      } finally {
        fake.setEvaluator(null);
      }
      expect(fake.violations()).toEqual([]);
      expect(fake.liveObjects()).toEqual([]);
    });
  },
);
