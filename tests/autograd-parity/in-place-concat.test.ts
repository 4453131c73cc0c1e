/**
 * The simulator's in-place concats (SimCompileOptions.inPlaceConcat) on every program of Llama
 * training plans (forward and backward kernels, whose outputs pack several values with concat):
 * the same bytes out as with every concat copying its inputs, and concats dropped.
 */
import { compileSimProgram } from 'ane-bridge';
import { describe, expect, it } from 'vitest';
import { inputsFor, type LlamaConfig, run, trainingPrograms } from './training-programs';

const CONFIGS: LlamaConfig[] = [
  { dim: 64, heads: 4, hidden: 160, seq: 32, layers: 1 },
  { dim: 96, heads: 6, kvHeads: 2, hidden: 256, seq: 48, layers: 1, vocab: 200 },
];

describe('in-place concats on training plans', () => {
  CONFIGS.forEach((config, c) => {
    it(`give the bytes of copying concats, with fewer steps (config ${c}: dim ${config.dim}, ${config.heads}/${config.kvHeads ?? config.heads} heads)`, () => {
      let dropped = 0;
      trainingPrograms(config).forEach((program, p) => {
        const inputs = inputsFor(program, 100 * c + p);
        const on = compileSimProgram(program);
        const off = compileSimProgram(program, { inPlaceConcat: false });
        expect(run(on, program, inputs), `program ${p}`).toEqual(run(off, program, inputs));
        expect(on.stepCount).toBeLessThanOrEqual(off.stepCount);
        dropped += off.stepCount - on.stepCount;
      });
      expect(dropped).toBeGreaterThan(0);
    });
  });
});
