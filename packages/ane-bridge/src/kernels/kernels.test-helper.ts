/**
 * Shared by the kernel tests: a seeded generator, arrays with the awkward values mixed in, float
 * comparisons, and the list of implementations to hold against each other (the TS twins, and the
 * native kernels on every SIMD path this CPU runs, single- and multi-threaded).
 */
import { type HostKernelSet, hostKernels, hostSimdLevel, setHostSimdLevel, setHostThreads } from './index';

/** Mulberry32: small, seeded, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n: number, random: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}

export const SPECIALS = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  0,
  -0,
  1e-40, // fp32 subnormal
  -3e-42,
  1.1754942e-38, // largest fp32 subnormal
  65504,
  65520,
  -1e6,
  3.4e38,
];

/** Sizes that hit every vector tail: 0, 1 .. 67, and a few past the SIMD/chunk boundaries. */
export const TAIL_SIZES = [...Array.from({ length: 68 }, (_, i) => i), 127, 128, 129, 1023, 1025, 4097];

/** Puts SPECIALS at random places of a copy of `values`. */
export function withSpecials(values: Float32Array, random: () => number, count = 6): Float32Array {
  const out = values.slice();
  if (out.length === 0) return out;
  for (let k = 0; k < count; k++) {
    out[Math.floor(random() * out.length)] = SPECIALS[Math.floor(random() * SPECIALS.length)] as number;
  }
  return out;
}

/** Distance in units in the last place of float32 (0 when both are the same NaN-ness or equal). */
export function ulpDistance(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b))
    return Number.isNaN(a) && Number.isNaN(b) ? 0 : Number.POSITIVE_INFINITY;
  if (a === b) return 0;
  const ordered = (x: number) => {
    const bits = new Int32Array(new Float32Array([x]).buffer)[0] as number;
    return bits < 0 ? -2147483648 - bits : bits;
  };
  return Math.abs(ordered(a) - ordered(b));
}

/** First index where |actual - expected| > atol + rtol*|expected| (NaN must match NaN), or -1. */
export function firstMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol = 0,
): number {
  if (actual.length !== expected.length) return 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (Number.isNaN(e) !== Number.isNaN(a)) return i;
      continue;
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e) return i;
      continue;
    }
    if (Math.abs(a - e) > atol + rtol * Math.abs(e)) return i;
  }
  return -1;
}

/** Asserts closeness with a message that shows the first mismatch. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol = 0,
  label = '',
): void {
  const i = firstMismatch(actual, expected, rtol, atol);
  if (i >= 0) {
    throw new Error(
      `${label}: mismatch at ${i}: got ${actual[i]}, expected ${expected[i]} (rtol ${rtol}, atol ${atol}, lengths ${actual.length}/${expected.length})`,
    );
  }
}

export interface Variant {
  name: string;
  kernels: HostKernelSet;
  /** Selects this variant's SIMD path and thread count; returns the restore function. */
  enter(): () => void;
}

/**
 * The TS twins, then the native kernels on each SIMD path this CPU supports at 1 and 2 threads
 * (empty native list when the addon is not built: the tests then say so by their names).
 */
export function variants(): Variant[] {
  const list: Variant[] = [{ name: 'ts', kernels: hostKernels.ts, enter: () => () => {} }];
  const native = hostKernels.native;
  if (native === null) return list;
  const original = hostSimdLevel();
  for (const level of ['scalar', 'avx2-fma', 'avx512', 'neon'] as const) {
    if (!setHostSimdLevel(level)) continue;
    for (const threads of [1, 2]) {
      list.push({
        name: `native ${level} ${threads}t`,
        kernels: native,
        enter: () => {
          setHostSimdLevel(level);
          setHostThreads(threads);
          return () => {
            setHostThreads(0);
            if (original !== null) setHostSimdLevel(original);
          };
        },
      });
    }
  }
  if (original !== null) setHostSimdLevel(original);
  return list;
}

export function nativeVariants(): Variant[] {
  return variants().filter((v) => v.name !== 'ts');
}

/** Runs `body` with the variant selected. */
export function within<T>(variant: Variant, body: (kernels: HostKernelSet) => T): T {
  const restore = variant.enter();
  try {
    return body(variant.kernels);
  } finally {
    restore();
  }
}
