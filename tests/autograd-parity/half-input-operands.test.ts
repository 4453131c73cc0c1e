/**
 * Matmul operands read as fp16 input bits (SimCompileOptions.halfInputOperands) on every program of
 * Llama training plans: the same bytes out as decoding every input first, and inputs left undecoded
 * (the classifier's kernels: their packed inputs feed nothing but the GEMM).
 */
import { valueAndGrad } from 'ane-autograd';
import { compileSimProgram, loadNativeAddon, type SimExecutable } from 'ane-bridge';
import { mul, partition, reduceSum } from 'ane-ir';
import { encodeFp16, type Program } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { type LlamaConfig, llamaGraph } from '../../packages/ane-ir/src/testing/models.test-helper';

function trainingPrograms(config: LlamaConfig): Program[] {
  const { graph, output } = llamaGraph(config);
  const [channels, positions] = output.shape as [number, number];
  const loss = mul(reduceSum(mul(output, output), [0, 1], { keepDims: true }), 1 / (channels * positions));
  valueAndGrad(graph, { loss });
  return partition(graph).programs.map((entry) => entry.program);
}

/** Seeded fp16 values in [-1, 1) for each input (fp32 inputs get the same values). */
function inputsFor(program: Program, seed: number): Uint8Array[] {
  return program.inputs.map((spec, i) => {
    let state = (seed * 7919 + i) >>> 0;
    const values = new Float32Array(spec.shape.reduce((a, b) => a * b, 1)).map(() => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 31 - 1;
    });
    if (spec.dtype === 'fp32') return new Uint8Array(values.buffer);
    const bits = encodeFp16(values);
    return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
  });
}

function run(executable: SimExecutable, program: Program, inputs: Uint8Array[]): Uint8Array[] {
  const outputs = program.outputs.map(
    (spec) => new Uint8Array(spec.shape.reduce((a, b) => a * b, 1) * (spec.dtype === 'fp16' ? 2 : 4)),
  );
  executable.run(inputs, outputs);
  return outputs;
}

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
