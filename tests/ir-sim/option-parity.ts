/**
 * For a compile option that must not change a bit (it only saves work): on every program of Llama
 * blocks' plans (MHA and GQA, several widths) the outputs with the option on are the same bytes as
 * with it off, and fewer steps run.
 */
import { partition } from 'ane-ir';
import { encodeFp16, type Program } from 'ane-ir/mil';
import { expect, it } from 'vitest';
import { compileSimProgram, type SimCompileOptions } from '../../packages/ane-bridge/src/sim/executable';
import { BASE, build, type Config } from './llama-model';
import { normals } from './support';

type SavingOption = 'inPlaceOperands' | 'fuseElementwise';

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

function run(program: Program, options: SimCompileOptions, inputs: Uint8Array[]) {
  const executable = compileSimProgram(program, options);
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

/** One test per Llama config: `option` on gives the bytes of `option` off, in fewer steps. */
export function itSavesStepsWithoutChangingABit(option: SavingOption, what: string): void {
  CONFIGS.forEach((config, c) => {
    it(`${what}, with fewer steps (config ${c}: dim ${config.dim}, ${config.heads}/${config.kvHeads} heads)`, () => {
      const { graph } = build(config);
      const plan = partition(graph);
      let saved = 0;
      plan.programs.forEach((entry, p) => {
        const program = (entry as { program?: Program }).program ?? (entry as unknown as Program);
        const inputs = inputsFor(program, 100 * c + p);
        const off = run(program, { [option]: false }, inputs);
        const on = run(program, { [option]: true }, inputs);
        expect(on.outputs).toEqual(off.outputs);
        expect(on.steps).toBeLessThanOrEqual(off.steps);
        saved += off.steps - on.steps;
      });
      expect(saved).toBeGreaterThan(0);
    });
  });
}
