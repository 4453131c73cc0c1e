/**
 * Test helpers: deterministic fp16 data, the reference rounding "compute exactly, store fp32, round
 * to fp16", and a builder that wraps statements into a runnable MIL program.
 */
import type { ChipFamily, Program, TensorSpec } from 'ane-ir/mil';
import { DEFAULT_BUILD_INFO_LINE, roundToFp16, roundToFp16InPlace } from 'ane-ir/mil';
import type { SimCompileOptions } from './executable';
import { compileSimProgram } from './executable';
import { decodeFp16Buffer, encodeFp16Buffer } from './io';

/** Deterministic numbers in [-1, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

/** Deterministic values: fp16-exact numbers over the whole range plus the special values. */
export function fp16Values(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const specials = [
    0,
    -0,
    1,
    -1,
    65504,
    -65504,
    2 ** -24,
    -(2 ** -24),
    2 ** -14,
    Infinity,
    -Infinity,
    Number.NaN,
    0.5,
    2048,
    65519,
  ];
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    if (i < specials.length) out[i] = specials[i]!;
    else {
      const magnitude = 2 ** (next() * 40 - 24) * (1 + next());
      out[i] = next() < 0.5 ? -magnitude : magnitude;
    }
  }
  roundToFp16InPlace(out);
  return out;
}

/** `count` fp16-exact values in [-scale, scale). */
export function randomFp16(count: number, seed: number, scale = 1): Float32Array {
  const random = seededRandom(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = roundToFp16(random() * scale);
  return out;
}

/** The simulator's result model for an exact value v: fp16(fp32(v)). */
export function fp16Result(v: number): number {
  return roundToFp16(Math.fround(v));
}

/**
 * Whether `got` is an fp16 value adjacent to `exact` (one of the two fp16 values around it): what
 * an fp32 accumulation rounded once to fp16 guarantees, whatever its summation order.
 */
export function isFaithfulFp16(got: number, exact: number): boolean {
  return roundToFp16(got) === got && Math.abs(got - exact) < fp16Ulp(exact);
}

/** The spacing of fp16 values at the magnitude of `value` (2^-24 below the normal range). */
export function fp16Ulp(value: number): number {
  return 2 ** (Math.floor(Math.log2(Math.max(Math.abs(value), 2 ** -14))) - 10);
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row-major index of `index` in `shape`. */
export function flatIndex(index: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  for (let axis = 0; axis < shape.length; axis++) flat = flat * shape[axis]! + index[axis]!;
  return flat;
}

/** Every index of `shape`, row-major. */
export function* indices(shape: readonly number[]): Generator<number[]> {
  const count = product(shape);
  const index = new Array<number>(shape.length).fill(0);
  for (let n = 0; n < count; n++) {
    yield [...index];
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      index[axis]!++;
      if (index[axis]! < shape[axis]!) break;
      index[axis] = 0;
    }
  }
}

export function typeText(spec: TensorSpec): string {
  return `tensor<${spec.dtype}, [${spec.shape.join(', ')}]>`;
}

/** A program(1.3) with `func main<ios18>` over `inputs`, the given statements, returning `outputs`. */
export function milProgram(
  inputs: readonly TensorSpec[],
  statements: readonly string[],
  outputs: readonly TensorSpec[],
  weights: ReadonlyMap<string, Uint8Array> = new Map(),
): Program {
  const params = inputs.map((spec) => `${typeText(spec)} ${spec.name}`).join(', ');
  const mil = [
    'program(1.3)',
    DEFAULT_BUILD_INFO_LINE,
    '{',
    `    func main<ios18>(${params}) {`,
    ...statements.map((statement) => `        ${statement}`),
    `    } -> (${outputs.map((spec) => spec.name).join(', ')});`,
    '}',
    '',
  ].join('\n');
  return { mil, weights: new Map(weights), inputs: [...inputs], outputs: [...outputs] };
}

export function fp16Spec(name: string, shape: readonly number[]): TensorSpec {
  return { name, dtype: 'fp16', shape: [...shape] };
}

/** Compiles and runs `program` on fp16 inputs given as numbers; returns the fp16 outputs as numbers. */
export function runFp16(
  program: Program,
  inputs: readonly ArrayLike<number>[],
  options: SimCompileOptions & { chip?: ChipFamily } = {},
): Float32Array[] {
  const executable = compileSimProgram(program, options);
  const outputs = program.outputs.map(
    (spec) => new Uint8Array(product(spec.shape) * (spec.dtype === 'fp16' ? 2 : 4)),
  );
  executable.run(
    inputs.map((values) => encodeFp16Buffer(values)),
    outputs,
  );
  return outputs.map((bytes) => decodeFp16Buffer(bytes));
}
