/**
 * The simulator's in-place concats (SimCompileOptions.inPlaceConcat) on every program of Llama
 * training plans (forward and backward kernels, whose outputs pack several values with concat):
 * the same bytes out as with every concat copying its inputs, and concats dropped.
 */
import { valueAndGrad } from 'ane-autograd';
import { compileSimProgram, type SimExecutable } from 'ane-bridge';
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
