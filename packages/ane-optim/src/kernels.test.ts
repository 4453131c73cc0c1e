/**
 * The element-wise helpers that run on ane-bridge's kernels (scaleInPlace: sgemm with K = 0;
 * addInPlace: the SGD update at lr −1) against the plain loops they replaced, bit for bit:
 * subnormal results, signed zeros, infinities and the largest values included, with every kernel
 * choice this machine has, on a view inside a larger buffer and on shared memory.
 */
import { hostKernels } from 'ane-bridge';
import { describe, expect, it } from 'vitest';
import { GradientAccumulator } from './accumulate';
import { addInPlace, type KernelChoice, scaleInPlace } from './kernels';

const f = Math.fround;
const choices: KernelChoice[] = hostKernels.native === null ? ['auto', 'ts'] : ['auto', 'ts', 'native'];

/** Every value's bit pattern (NaN payloads aside, which no caller produces on purpose). */
function bits(x: Float32Array): number[] {
  return [...new Uint32Array(x.buffer, x.byteOffset, x.length)];
}

/** Awkward values: subnormals and the smallest normals, ±0, ±inf, the largest finite, rounding ties. */
function awkward(): Float32Array {
  const special = [
    0,
    -0,
    1,
    -1,
    1e-45, // the smallest subnormal
    -3e-45,
    1.1754942e-38, // the largest subnormal
    1.17549435e-38, // the smallest normal
    -2.3509887e-38,
    3.4028235e38, // the largest finite
    -3.4028235e38,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    f(1 + 2 ** -23),
    f(1 + 3 * 2 ** -23),
    f(0.1),
    f(-1 / 3),
  ];
  // And a seeded spread over many binades.
  let state = 12345;
  const random = Array.from({ length: 1000 }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const mantissa = state / 2 ** 32 - 0.5;
    return f(mantissa * 2 ** ((state % 200) - 140));
  });
  return Float32Array.from([...special, ...random]);
}

function loopScale(x: Float32Array, factor: number): Float32Array {
  const out = x.slice();
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) * factor;
  return out;
}

function loopAdd(x: Float32Array, y: Float32Array): Float32Array {
  const out = x.slice();
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (y[i] as number);
  return out;
}

describe('scaleInPlace', () => {
  // fp32 factors as the callers make them: 1/scale of a loss scaler (powers of two and not), a
  // clipping coefficient, 1/count of an accumulator, and factors that overflow or underflow.
  const factors = [f(1 / 1024), f(1 / 1000), f(0.3183), 0.5, 0.25, f(1 / 3), 2, f(1e30), f(1e-30), 1];
  for (const choice of choices) {
    it(`is the loop x[i] = x[i] * factor, bit for bit (kernels '${choice}')`, () => {
      for (const factor of factors) {
        const x = awkward();
        const expected = loopScale(x, factor);
        scaleInPlace(x, factor, choice);
        expect(bits(x), `factor ${factor}`).toEqual(bits(expected));
      }
    });
  }

  it('is the loop for a long array too (2^23 elements and a ragged tail: natively, split over the threads)', () => {
    const pattern = awkward();
    const long = new Float32Array(2 ** 23 + 77);
    for (let i = 0; i < long.length; i++) {
      const v = pattern[i % pattern.length] as number;
      long[i] = i % 3 === 0 ? v : f(v * (1 + (i % 7) * 2 ** -20)); // not the same 1017 values over and over
    }
    for (const choice of choices) {
      for (const factor of [f(1 / 1024), f(0.3183), f(1e-30), f(1e30), -2, 1]) {
        const x = long.slice();
        scaleInPlace(x, factor, choice);
        const actual = new Uint32Array(x.buffer);
        const expected = new Uint32Array(loopScale(long, factor).buffer);
        let first = -1;
        for (let i = 0; i < actual.length && first < 0; i++) if (actual[i] !== expected[i]) first = i;
        expect(first, `kernels '${choice}', factor ${factor}: first differing element`).toBe(-1);
      }
    }
  });

  it('scales a view inside a larger buffer only, and arrays over shared memory', () => {
    const whole = new Float32Array(64).fill(3);
    const view = whole.subarray(8, 40);
    scaleInPlace(view, 0.5);
    expect([...whole.subarray(0, 8)]).toEqual(new Array(8).fill(3));
    expect([...view]).toEqual(new Array(32).fill(1.5));
    expect([...whole.subarray(40)]).toEqual(new Array(24).fill(3));
    const shared = new Float32Array(new SharedArrayBuffer(4 * 4));
    shared.set([1, -2, 4, 1e-45]);
    scaleInPlace(shared, 0.25);
    expect(bits(shared)).toEqual(bits(loopScale(Float32Array.from([1, -2, 4, 1e-45]), 0.25)));
    scaleInPlace(new Float32Array(0), 2); // nothing to do
  });
});

describe('addInPlace', () => {
  for (const choice of choices) {
    it(`is the loop t[i] = t[i] + a[i], bit for bit, signed zeros included (kernels '${choice}')`, () => {
      const x = awkward();
      // Pair every value with others, including itself negated (exact zeros) and its own sign's zero.
      const partners = [
        x.slice().reverse(),
        x.map((v) => -v),
        x.map((v) => (Object.is(v, -0) ? -0 : v * 0.75)),
      ];
      for (const [k, y] of partners.entries()) {
        const target = x.slice();
        const expected = loopAdd(target, y);
        addInPlace(target, y, choice);
        expect(bits(target), `partner ${k}`).toEqual(bits(expected));
      }
      const zeros = Float32Array.from([-0, -0, 0, 0]);
      addInPlace(zeros, Float32Array.from([-0, 0, -0, 0]), choice);
      expect(bits(zeros)).toEqual(bits(Float32Array.from([-0, 0, 0, 0])));
    });
  }
});

describe('GradientAccumulator on the kernels', () => {
  it('gives the bits of the plain loops: sums, and means by 2, 3 and 4 micro-batches', () => {
    const micro = [
      awkward(),
      awkward().reverse(),
      awkward().map((v) => v * 0.5),
      awkward().map((v) => -v / 3),
    ];
    for (const count of [2, 3, 4]) {
      const expected = micro[0]!.slice();
      for (let m = 1; m < count; m++) {
        for (let i = 0; i < expected.length; i++)
          expected[i] = (expected[i] as number) + (micro[m]![i] as number);
      }
      for (let i = 0; i < expected.length; i++) expected[i] = (expected[i] as number) / count;
      for (const choice of choices) {
        const accumulator = new GradientAccumulator(new Float32Array(expected.length), {
          steps: count,
          kernels: choice,
        });
        for (let m = 0; m < count; m++) accumulator.accumulate(micro[m]!);
        expect(bits(accumulator.finish()), `${count} micro-batches, kernels '${choice}'`).toEqual(
          bits(expected),
        );
      }
    }
  });

  it('refuses an unknown kernels choice', () => {
    expect(() => new GradientAccumulator(new Float32Array(1), { steps: 2, kernels: 'gpu' as never })).toThrow(
      /GradientAccumulator: kernels must be 'auto', 'native' or 'ts', got/,
    );
  });
});
