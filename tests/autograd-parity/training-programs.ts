/**
 * Programs of Llama training plans (forward and backward kernels) with seeded inputs, for the
 * suites that compare a simulator compile option with its default on every program.
 */
import { valueAndGrad } from 'ane-autograd';
import type { SimExecutable } from 'ane-bridge';
import { mul, partition, reduceSum } from 'ane-ir';
import { encodeFp16, type Program } from 'ane-ir/mil';
import { type LlamaConfig, llamaGraph } from '../../packages/ane-ir/src/testing/models.test-helper';

export type { LlamaConfig };

export function trainingPrograms(config: LlamaConfig): Program[] {
  const { graph, output } = llamaGraph(config);
  const [channels, positions] = output.shape as [number, number];
  const loss = mul(reduceSum(mul(output, output), [0, 1], { keepDims: true }), 1 / (channels * positions));
  valueAndGrad(graph, { loss });
  return partition(graph).programs.map((entry) => entry.program);
}

/** Seeded fp16 values in [-1, 1) for each input (fp32 inputs get the same values). */
export function inputsFor(program: Program, seed: number): Uint8Array[] {
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

export function run(executable: SimExecutable, program: Program, inputs: Uint8Array[]): Uint8Array[] {
  const outputs = program.outputs.map(
    (spec) => new Uint8Array(spec.shape.reduce((a, b) => a * b, 1) * (spec.dtype === 'fp16' ? 2 : 4)),
  );
  executable.run(inputs, outputs);
  return outputs;
}
