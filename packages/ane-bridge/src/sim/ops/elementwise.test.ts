import { roundToFp16 } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { planBroadcast } from '../layout';
import type { FloatTensor, SimTensor } from '../tensor';
import { broadcastShapes } from '../tensor';
import { fp16Result, indices, product, randomFp16 } from '../test-support.test-helper';
import type { BinaryArithmeticOp, ComparisonOp, UnaryOp } from './elementwise';
import { binaryArithmetic, cast, comparison, select, unary } from './elementwise';

function fp16Tensor(shape: readonly number[], data = new Float32Array(product(shape))): FloatTensor {
  return { dtype: 'fp16', shape, data };
}

/** Reads x at an output index under NumPy broadcasting, independently of the layout planner. */
function broadcastRead(x: ArrayLike<number>, shape: readonly number[], outIndex: readonly number[]): number {
  const offset = outIndex.length - shape.length;
  let flat = 0;
  for (let axis = 0; axis < shape.length; axis++) {
    const i = shape[axis] === 1 ? 0 : outIndex[axis + offset]!;
    flat = flat * shape[axis]! + i;
  }
  return x[flat]!;
}

const EXACT_BINARY: Record<BinaryArithmeticOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  real_div: (a, b) => a / b,
  pow: (a, b) => a ** b,
  maximum: (a, b) => Math.max(a, b),
  minimum: (a, b) => Math.min(a, b),
};

describe('binary arithmetic', () => {
  const shapePairs: [number[], number[]][] = [
    [
      [2, 3, 4],
      [2, 3, 4],
    ],
    [[2, 3, 4], [4]],
    [
      [2, 3, 4],
      [3, 1],
    ],
    [
      [1, 3, 1, 5],
      [2, 1, 4, 1],
    ],
    [
      [1, 8, 1, 6],
      [1, 8, 1, 1],
    ],
    [
      [1, 4, 6, 6],
      [1, 1, 6, 6],
    ],
    [[2, 3], []],
    [[], []],
  ];
  for (const op of Object.keys(EXACT_BINARY) as BinaryArithmeticOp[]) {
    it(`${op} broadcasts like NumPy and rounds the exact result once`, () => {
      let seed = 10;
      for (const [xShape, yShape] of shapePairs) {
        const outShape = broadcastShapes(xShape, yShape);
        const x = randomFp16(product(xShape), seed++, 4);
        // pow needs a positive base to stay real.
        if (op === 'pow') for (let i = 0; i < x.length; i++) x[i] = Math.abs(x[i]!) + 0.25;
        const y = randomFp16(product(yShape), seed++, op === 'real_div' ? 1 : 3);
        if (op === 'real_div') for (let i = 0; i < y.length; i++) y[i] = y[i]! + (y[i]! >= 0 ? 0.5 : -0.5);
        const out = fp16Tensor(outShape);
        binaryArithmetic(op, out, x, y, planBroadcast(outShape, [xShape, yShape]));
        let n = 0;
        for (const index of indices(outShape)) {
          const expected = fp16Result(
            EXACT_BINARY[op](broadcastRead(x, xShape, index), broadcastRead(y, yShape, index)),
          );
          expect(out.data[n++], `${op} [${xShape}] [${yShape}] at ${index}`).toBe(expected);
        }
      }
    });
  }

  it('rounds ties to even', () => {
    const out = fp16Tensor([4]);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: the even neighbour is 1.
    // 1 + 3*2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: the even neighbour is 1 + 2^-9.
    const x = Float32Array.of(1, 1, 2048, -1);
    const y = Float32Array.of(2 ** -11, 3 * 2 ** -11, 1, -(2 ** -11));
    binaryArithmetic('add', out, x, y, planBroadcast([4], [[4], [4]]));
    expect([...out.data]).toEqual([1, 1 + 2 ** -9, 2048, -1]);
  });

  it('overflows to ±infinity beyond the fp16 range', () => {
    const out = fp16Tensor([4]);
    // 65504 + 15.99 rounds back to 65504; 65504 + 16 = 65520 is the tie that rounds to infinity.
    const x = Float32Array.of(60000, -60000, 65504, 65504);
    const y = Float32Array.of(60000, 60000, 15.5, 16);
    binaryArithmetic('add', out, x, y, planBroadcast([4], [[4], [4]]));
    expect([...out.data]).toEqual([Number.POSITIVE_INFINITY, 0, 65504, Number.POSITIVE_INFINITY]);
  });

  it('keeps an fp32 result in fp32', () => {
    const out: FloatTensor = { dtype: 'fp32', shape: [1], data: new Float32Array(1) };
    binaryArithmetic(
      'add',
      out,
      Float32Array.of(1),
      Float32Array.of(2 ** -20),
      planBroadcast([1], [[1], [1]]),
    );
    expect(out.data[0]).toBe(1 + 2 ** -20);
  });
});

describe('comparisons and select', () => {
  const CMP: Record<ComparisonOp, (a: number, b: number) => boolean> = {
    equal: (a, b) => a === b,
    not_equal: (a, b) => a !== b,
    less: (a, b) => a < b,
    less_equal: (a, b) => a <= b,
    greater: (a, b) => a > b,
    greater_equal: (a, b) => a >= b,
  };
  for (const op of Object.keys(CMP) as ComparisonOp[]) {
    it(`${op} gives 0/1 with broadcasting`, () => {
      const x = Float32Array.of(-1, 0, 1, 2, 0, 3);
      const y = Float32Array.of(0, 1, 2);
      const out = new Uint8Array(6);
      comparison(op, out, x, y, planBroadcast([2, 3], [[2, 3], [3]]));
      expect([...out]).toEqual([...x].map((v, i) => (CMP[op](v, y[i % 3]!) ? 1 : 0)));
    });
  }

  it('select picks a where cond is true, b elsewhere, all three broadcast', () => {
    const cond = Uint8Array.of(1, 0, 1);
    const a = Float32Array.of(10, 20);
    const b = Float32Array.of(-1);
    const out: SimTensor = { dtype: 'fp16', shape: [2, 3], data: new Float32Array(6) };
    select(out, cond, a, b, planBroadcast([2, 3], [[3], [2, 1], [1]]));
    expect([...out.data]).toEqual([10, -1, 10, 20, -1, 20]);
  });
});

// erf by composite Simpson's rule on 2/sqrt(pi) exp(-t^2): an independent reference for GELU.
function erfBySimpson(x: number): number {
  const steps = 4000;
  const h = x / steps;
  let sum = 1 + Math.exp(-x * x);
  for (let i = 1; i < steps; i++) sum += (i % 2 === 1 ? 4 : 2) * Math.exp(-((i * h) ** 2));
  return ((2 / Math.sqrt(Math.PI)) * sum * h) / 3;
}

describe('unary ops', () => {
  const grid = Float32Array.from({ length: 161 }, (_, i) => roundToFp16(-8 + i * 0.1));
  const REFERENCE: Record<UnaryOp, (v: number) => number> = {
    exp: Math.exp,
    log: (v) => Math.log(v + 2 ** -10),
    sqrt: Math.sqrt,
    rsqrt: (v) => 1 / Math.sqrt(v + 2 ** -10),
    inverse: (v) => 1 / (v + 2 ** -10),
    tanh: Math.tanh,
    sigmoid: (v) => 1 / (1 + Math.exp(-v)),
    silu: (v) => v / (1 + Math.exp(-v)),
    relu: (v) => Math.max(v, 0),
    gelu_exact: (v) => 0.5 * v * (1 + erfBySimpson(v / Math.SQRT2)),
    gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    gelu_sigmoid: (v) => v / (1 + Math.exp(-1.702 * v)),
  };
  for (const op of Object.keys(REFERENCE) as UnaryOp[]) {
    it(`${op} matches its formula, rounded once to fp16`, () => {
      const out = fp16Tensor([grid.length]);
      unary(op, out, grid, { epsilon: 2 ** -10 });
      grid.forEach((v, i) => {
        const exact = REFERENCE[op](v);
        const expected = fp16Result(exact);
        const got = out.data[i]!;
        if (Number.isNaN(expected)) expect(got).toBeNaN();
        // Transcendental functions may differ from the reference in the last float64 bits, which can
        // move the result across an fp16 rounding boundary: allow one fp16 ulp there.
        else if (got !== expected)
          expect(Math.abs(got - exact), `${op}(${v})`).toBeLessThanOrEqual(Math.abs(expected) * 2 ** -10);
      });
    });
  }

  it('gelu at hand-checked points', () => {
    const out = fp16Tensor([3]);
    unary('gelu_exact', out, Float32Array.of(1, -1, 0));
    // gelu(1) = 0.841344746..., nearest fp16 0.84130859375; gelu(-1) = -0.158655253..., fp16 -0.15869140625.
    expect([...out.data]).toEqual([0.84130859375, -0.15869140625, 0]);
  });

  it('relu maps -0 to +0 and keeps NaN', () => {
    const out = fp16Tensor([2]);
    unary('relu', out, Float32Array.of(-0, Number.NaN));
    expect(Object.is(out.data[0], 0)).toBe(true);
    expect(out.data[1]).toBeNaN();
  });

  it('exp overflows to infinity in fp16 (exp(11.1) > 65504)', () => {
    const out = fp16Tensor([2]);
    unary('exp', out, Float32Array.of(11.1, 11));
    expect(out.data[0]).toBe(Number.POSITIVE_INFINITY);
    expect(out.data[1]).toBe(roundToFp16(Math.exp(11)));
  });
});

describe('cast', () => {
  it('fp32 -> fp16 rounds to nearest even and overflows to infinity', () => {
    const x: SimTensor = {
      dtype: 'fp32',
      shape: [5],
      data: Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 0.1),
    };
    const out: SimTensor = { dtype: 'fp16', shape: [5], data: new Float32Array(5) };
    cast(out, x);
    expect([...out.data]).toEqual([1, 1 + 2 ** -9, 65504, Number.POSITIVE_INFINITY, 0.0999755859375]);
  });

  it('fp16 -> int32 truncates toward zero and saturates; -> bool is x != 0', () => {
    const x: SimTensor = {
      dtype: 'fp16',
      shape: [5],
      data: Float32Array.of(2.75, -2.75, 65504, Number.NaN, -0),
    };
    const ints: SimTensor = { dtype: 'int32', shape: [5], data: new Int32Array(5) };
    cast(ints, x);
    expect([...ints.data]).toEqual([2, -2, 65504, 0, 0]);
    const int8: SimTensor = { dtype: 'int8', shape: [5], data: new Int8Array(5) };
    cast(int8, x);
    expect([...int8.data]).toEqual([2, -2, 127, 0, 0]);
    const bools: SimTensor = { dtype: 'bool', shape: [5], data: new Uint8Array(5) };
    cast(bools, x);
    expect([...bools.data]).toEqual([1, 1, 1, 1, 0]);
  });
});
