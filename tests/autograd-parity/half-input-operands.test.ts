/**
 * Matmul operands read as fp16 input bits (SimCompileOptions.halfInputOperands) on every program of
 * Llama training plans: the same bytes out as decoding every input first, and inputs left undecoded
 * (the classifier's kernels: their packed inputs feed nothing but the GEMM).
 */
import { compileSimProgram, loadNativeAddon } from 'ane-bridge';
import { describe, expect, it } from 'vitest';
import { inputsFor, type LlamaConfig, run, trainingPrograms } from './training-programs';

const CONFIGS: LlamaConfig[] = [
  { dim: 64, heads: 4, hidden: 160, seq: 32, layers: 1, vocab: 128 },
  { dim: 96, heads: 6, kvHeads: 2, hidden: 256, seq: 48, layers: 1, vocab: 200 },
];

// Apple's Accelerate GEMM (macOS arm64): operands are not read in place there, so neither as fp16.
const accelerate = loadNativeAddon().addon?.capabilities().gemm === 'accelerate';

describe.skipIf(accelerate)('matmul operands read as fp16 input bits on training plans', () => {
  CONFIGS.forEach((config, c) => {
    it(`give the bytes of decoding every input, and leave inputs undecoded (config ${c}: dim ${config.dim}, ${config.heads}/${config.kvHeads ?? config.heads} heads)`, () => {
      let undecoded = 0;
      trainingPrograms(config).forEach((program, p) => {
        const inputs = inputsFor(program, 100 * c + p);
        const on = compileSimProgram(program);
        const off = compileSimProgram(program, { halfInputOperands: false });
        expect(run(on, program, inputs), `program ${p}`).toEqual(run(off, program, inputs));
        expect(off.inputsReadAsFp16.some(Boolean)).toBe(false);
        undecoded += on.inputsReadAsFp16.filter(Boolean).length;
      });
      expect(undecoded).toBeGreaterThan(0);
    });
  });
});
