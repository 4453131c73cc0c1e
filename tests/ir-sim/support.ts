/**
 * Test helpers: running a program or a plan in the simulator, comparing with a float64 reference,
 * and deterministic pseudo-random data.
 */
import { decodeDeviceBytes, type LoadOptions, openDevice } from 'ane-bridge';
import type { Plan } from 'ane-ir';
import { encodeFp16, type Program } from 'ane-ir/mil';

export const device = openDevice({ backend: 'sim' });

/** Runs `program` on the simulator with inputs given as device bytes or numbers; returns the outputs as numbers. */
export function runOnSim(program: Program, inputs: readonly (Uint8Array | Float32Array)[]): Float32Array[] {
  const kernel = device.compile(program);
  try {
    return kernel.runSync(inputs).map((buffer) => buffer.read());
  } finally {
    kernel.dispose();
  }
}

export function decode(bytes: Uint8Array, dtype: 'fp16' | 'fp32'): Float32Array {
  return decodeDeviceBytes(bytes, dtype);
}

/** A seeded generator of numbers in [0, 1) (mulberry32). */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` values ~ N(0, scale^2), rounded to fp16 (so the host and device see the same numbers). */
export function normals(count: number, scale: number, seed: number): Float32Array {
  const next = random(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(next(), 1e-12);
    const v = next();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  const bits = encodeFp16(out);
  return Float32Array.from(decode(new Uint8Array(bits.buffer), 'fp16'));
}

/** Largest |got - expected| / (atol + rtol |expected|). */
export function worstRatio(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const g = got[i]!;
    const e = expected[i]!;
    const ratio = Number.isFinite(g)
      ? Math.abs(g - e) / (atol + rtol * Math.abs(e))
      : Number.POSITIVE_INFINITY;
    if (!(ratio <= worst)) worst = ratio;
  }
  return worst;
}

/** The graph's outputs by name. */
export type Values = Map<string, Float32Array>;

/** Runs a plan on the simulator through `device.load` (the one way to execute a plan) and returns copies of its outputs. */
export function executePlan(
  plan: Plan,
  feeds: Readonly<Record<string, Float32Array | Int32Array>>,
  options: LoadOptions = {},
): Values {
  const executable = device.load(plan, options);
  try {
    const outputs = executable.runSync(feeds, { copy: true });
    return new Map(Object.entries(outputs).map(([name, values]) => [name, Float32Array.from(values)]));
  } finally {
    executable.dispose();
  }
}
