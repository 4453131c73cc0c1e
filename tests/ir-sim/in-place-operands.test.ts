/**
 * The simulator reads slices and transposes that feed matmul in place (compile option
 * inPlaceOperands, default on): on every program of Llama blocks' plans (MHA and GQA, several
 * widths) the outputs are the same bytes as with every copy planned, and fewer steps run.
 */

import { loadNativeAddon } from 'ane-bridge';
import { partition } from 'ane-ir';
import { encodeFp16, type Program } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { compileSimProgram } from '../../packages/ane-bridge/src/sim/executable';
import { BASE, build, type Config } from './llama-model';
import { normals } from './support';

function inputsFor(program: Program, seed: number): Uint8Array[] {
  return program.inputs.map((spec, i) => {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const values = normals(count, 0.5, seed + i);
    if (spec.dtype === 'fp16') {
      const bits = encodeFp16(values);
      return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    }
    return new Uint8Array(values.buffer);
  });
}

function run(program: Program, inPlaceOperands: boolean, inputs: Uint8Array[]) {
  const executable = compileSimProgram(program, { inPlaceOperands });
  const outputs = program.outputs.map(
    (spec) => new Uint8Array(spec.shape.reduce((a, b) => a * b, 1) * (spec.dtype === 'fp16' ? 2 : 4)),
  );
  executable.run(inputs, outputs);
  return { outputs, steps: executable.stepCount };
}

const CONFIGS: Config[] = [
  BASE,
  { ...BASE, kvHeads: Math.max(1, BASE.heads / 2) },
  { ...BASE, dim: BASE.dim * 2, hidden: BASE.hidden * 2 },
];

// Apple's Accelerate GEMM (macOS arm64) may sum in a layout-dependent order: the simulator does not
// read operands in place there, and this comparison does not apply.
const accelerate = loadNativeAddon().addon?.capabilities().gemm === 'accelerate';

describe.skipIf(accelerate)('matmul operands read in place (skipped with the Accelerate GEMM)', () => {
  CONFIGS.forEach((config, c) => {
    it(`give the same bytes as planned copies, with fewer steps (config ${c}: dim ${config.dim}, ${config.heads}/${config.kvHeads} heads)`, () => {
      const { graph } = build(config);
      const plan = partition(graph);
      let saved = 0;
      plan.programs.forEach((entry, p) => {
        const program = (entry as { program?: Program }).program ?? (entry as unknown as Program);
        const inputs = inputsFor(program, 100 * c + p);
        const copied = run(program, false, inputs);
        const inPlace = run(program, true, inputs);
        expect(inPlace.outputs).toEqual(copied.outputs);
        expect(inPlace.steps).toBeLessThanOrEqual(copied.steps);
        saved += copied.steps - inPlace.steps;
      });
      expect(saved).toBeGreaterThan(0);
    });
  });
});
