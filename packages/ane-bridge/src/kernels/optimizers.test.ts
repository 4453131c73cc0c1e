import { describe, expect, it } from 'vitest';
import { fp32ToFp16Bits } from './fp16';
import {
  expectClose,
  nativeVariants,
  randomArray,
  rng,
  TAIL_SIZES,
  ulpDistance,
  variants,
  within,
  withSpecials,
} from './kernels.test-helper';
import type { AdamwOptions, LionOptions, SgdOptions } from './optimizers';
import { tsKernels } from './ts';
import type { HostKernelSet } from './types';

// ---- float64 references: torch.optim's formulas, no float32 rounding -------------------------

interface State {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

function adamReference(s: State, g: Float32Array, o: AdamwOptions, decoupled: boolean): void {
  const bc1 = o.biasCorrection ? 1 - o.beta1 ** o.step : 1;
  const bc2 = o.biasCorrection ? 1 - o.beta2 ** o.step : 1;
  for (let i = 0; i < s.p.length; i++) {
    let p = s.p[i] as number;
    let grad = g[i] as number;
    if (decoupled) p *= 1 - o.lr * o.weightDecay;
    else grad += o.weightDecay * p;
    const m = (s.m[i] as number) * o.beta1 + (1 - o.beta1) * grad;
    const v = (s.v[i] as number) * o.beta2 + (1 - o.beta2) * grad * grad;
    s.m[i] = m;
    s.v[i] = v;
    s.p[i] = p - ((o.lr / bc1) * m) / (Math.sqrt(v) / Math.sqrt(bc2) + o.eps);
  }
}

function sgdReference(p: Float64Array, buf: Float64Array, g: Float32Array, o: SgdOptions): void {
  for (let i = 0; i < p.length; i++) {
    let d = (g[i] as number) + o.weightDecay * (p[i] as number);
    if (o.momentum !== 0) {
      buf[i] = o.firstStep ? d : o.momentum * (buf[i] as number) + (1 - o.dampening) * d;
      d = o.nesterov ? d + o.momentum * (buf[i] as number) : (buf[i] as number);
    }
    p[i] = (p[i] as number) - o.lr * d;
  }
}

function lionReference(p: Float64Array, m: Float64Array, g: Float32Array, o: LionOptions): void {
  for (let i = 0; i < p.length; i++) {
    const c = o.beta1 * (m[i] as number) + (1 - o.beta1) * (g[i] as number);
    p[i] = (p[i] as number) * (1 - o.lr * o.weightDecay) - o.lr * Math.sign(c);
    m[i] = o.beta2 * (m[i] as number) + (1 - o.beta2) * (g[i] as number);
  }
}

const adamw: AdamwOptions = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  step: 1,
  biasCorrection: true,
};

function expectUlps(actual: Float32Array, expected: Float32Array, maxUlps: number, label: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const d = ulpDistance(actual[i] as number, expected[i] as number);
    if (d > maxUlps) throw new Error(`${label}[${i}]: ${actual[i]} vs ${expected[i]} (${d} ulps)`);
  }
}

describe('optimizer twins against torch.optim formulas in float64', () => {
  it('AdamW moves each weight by lr*sign(g) on the first step (hand-checked)', () => {
    const p = new Float32Array([1, -2]);
    const g = new Float32Array([0.1, -0.5]);
    const m = new Float32Array(2);
    const v = new Float32Array(2);
    for (const variant of variants()) {
      const pp = p.slice();
      within(variant, (k) => k.adamwUpdate(pp, g, m.slice(), v.slice(), adamw));
      // p*(1 - lr*wd) - lr * g/|g| (up to eps)
      expectClose(pp, [1 * (1 - 1e-5) - 1e-3, -2 * (1 - 1e-5) + 1e-3], 1e-6, 0, variant.name);
    }
  });

  it.each([
    ['Adam (L2)', false, 0.1],
    ['Adam', false, 0],
    ['AdamW', true, 0.1],
    ['AdamW, no bias correction', true, 0.05],
  ] as const)('%s agrees with float64 over 4 steps', (_label, decoupled, weightDecay) => {
    const random = rng(11);
    const n = 1000;
    const p0 = randomArray(n, random);
    const biasCorrection = !_label.includes('no bias');
    for (const variant of variants()) {
      const p = p0.slice();
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      const ref: State = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
      for (let step = 1; step <= 4; step++) {
        const g = randomArray(n, random, 0.5);
        const o = { ...adamw, weightDecay, step, biasCorrection };
        within(variant, (k) => (decoupled ? k.adamwUpdate(p, g, m, v, o) : k.adamUpdate(p, g, m, v, o)));
        adamReference(ref, g, o, decoupled);
      }
      expectClose(p, ref.p, 1e-6, 1e-7, `${variant.name} params`);
      expectClose(m, ref.m, 1e-5, 1e-7, `${variant.name} m`);
      expectClose(v, ref.v, 1e-5, 1e-9, `${variant.name} v`);
    }
  });

  it.each([
    ['plain', { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 }],
    ['weight decay', { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.1 }],
    ['momentum + dampening', { momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 0.01 }],
    ['Nesterov', { momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0.01 }],
  ] as const)('SGD (%s) agrees with float64 over 4 steps', (_label, settings) => {
    const random = rng(12);
    const n = 777;
    const p0 = randomArray(n, random);
    for (const variant of variants()) {
      const p = p0.slice();
      const buf = new Float32Array(n);
      const refP = Float64Array.from(p0);
      const refBuf = new Float64Array(n);
      for (let step = 1; step <= 4; step++) {
        const g = randomArray(n, random);
        const o: SgdOptions = { lr: 0.01, ...settings, firstStep: step === 1 };
        within(variant, (k) => k.sgdUpdate(p, g, settings.momentum === 0 ? null : buf, o));
        sgdReference(refP, refBuf, g, o);
      }
      expectClose(p, refP, 1e-6, 1e-7, `${variant.name} params`);
      if (settings.momentum !== 0) expectClose(buf, refBuf, 1e-5, 1e-6, `${variant.name} buffer`);
    }
  });

  it('Lion agrees with float64 over 4 steps', () => {
    const random = rng(13);
    const n = 515;
    const p0 = randomArray(n, random);
    const o: LionOptions = { lr: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0.1 };
    for (const variant of variants()) {
      const p = p0.slice();
      const m = new Float32Array(n);
      const refP = Float64Array.from(p0);
      const refM = new Float64Array(n);
      for (let step = 1; step <= 4; step++) {
        const g = randomArray(n, random);
        within(variant, (k) => k.lionUpdate(p, g, m, o));
        lionReference(refP, refM, g, o);
      }
      expectClose(p, refP, 1e-6, 1e-8, `${variant.name} params`);
      expectClose(m, refM, 1e-5, 1e-8, `${variant.name} m`);
    }
  });

  it('sumOfSquares accumulates in float64', () => {
    const random = rng(14);
    for (const n of [0, 1, 17, 100_003, 300_001]) {
      const x = randomArray(n, random, 100);
      let exact = 0;
      for (let i = 0; i < n; i++) exact += (x[i] as number) ** 2;
      for (const variant of variants()) {
        const got = within(variant, (k) => k.sumOfSquares(x));
        expect(Math.abs(got - exact), `${variant.name} n=${n}`).toBeLessThanOrEqual(1e-12 * exact);
      }
    }
    const big = new Float32Array([3e38, 3e38]); // overflows float32, not float64
    for (const variant of variants()) {
      expect(within(variant, (k) => k.sumOfSquares(big))).toBeCloseTo(1.8e77, -70);
      expect(within(variant, (k) => k.sumOfSquares(new Float32Array([1, Number.NaN])))).toBeNaN();
      expect(within(variant, (k) => k.sumOfSquares(new Float32Array([1, Number.NEGATIVE_INFINITY])))).toBe(
        Number.POSITIVE_INFINITY,
      );
    }
  });
});

// ---- native against the TS twin: every path, every tail, NaN/inf/subnormals, fp16 copy -----

type Runner = (
  k: HostKernelSet,
  p: Float32Array,
  g: Float32Array,
  s1: Float32Array,
  s2: Float32Array,
  h?: Uint16Array,
) => void;

const RUNNERS: [string, Runner][] = [
  ['adamw', (k, p, g, m, v, h) => k.adamwUpdate(p, g, m, v, { ...adamw, step: 3 }, h)],
  ['adam L2', (k, p, g, m, v, h) => k.adamUpdate(p, g, m, v, { ...adamw, weightDecay: 0.02, step: 2 }, h)],
  [
    'adam',
    (k, p, g, m, v, h) =>
      k.adamUpdate(p, g, m, v, { ...adamw, weightDecay: 0, step: 7, biasCorrection: false }, h),
  ],
  [
    'sgd momentum',
    (k, p, g, b, _v, h) =>
      k.sgdUpdate(
        p,
        g,
        b,
        { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 1e-4, firstStep: false },
        h,
      ),
  ],
  [
    'sgd nesterov first',
    (k, p, g, b, _v, h) =>
      k.sgdUpdate(
        p,
        g,
        b,
        { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0, firstStep: true },
        h,
      ),
  ],
  [
    'sgd plain',
    (k, p, g, _b, _v, h) =>
      k.sgdUpdate(
        p,
        g,
        null,
        { lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.5, firstStep: false },
        h,
      ),
  ],
  [
    'lion',
    (k, p, g, m, _v, h) => k.lionUpdate(p, g, m, { lr: 3e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0.1 }, h),
  ],
];

describe.each(nativeVariants().map((v) => [v.name, v] as const))(
  'native optimizers: %s',
  (_name, variant) => {
    it.each(RUNNERS)(
      '%s matches the TS twin (<= 1 ulp) at every size, with specials and the fp16 copy',
      (_k, run) => {
        const random = rng(21);
        for (const n of [...TAIL_SIZES, 70_001]) {
          const p0 = withSpecials(randomArray(n, random), random);
          const g = withSpecials(randomArray(n, random, 0.1), random);
          const s1 = withSpecials(randomArray(n, random, 0.01), random, 2);
          const s2 = randomArray(n, random, 1e-4).map(Math.abs);
          const tsState = [p0.slice(), s1.slice(), s2.slice()] as const;
          const nativeState = [p0.slice(), s1.slice(), s2.slice()] as const;
          const tsHalf = new Uint16Array(n);
          const nativeHalf = new Uint16Array(n);
          const withHalf = n % 2 === 0;
          run(tsKernels, tsState[0], g, tsState[1], tsState[2], withHalf ? tsHalf : undefined);
          within(variant, (k) =>
            run(k, nativeState[0], g, nativeState[1], nativeState[2], withHalf ? nativeHalf : undefined),
          );
          expectUlps(nativeState[0], tsState[0], 1, `n=${n} params`);
          expectUlps(nativeState[1], tsState[1], 1, `n=${n} state 1`);
          expectUlps(nativeState[2], tsState[2], 1, `n=${n} state 2`);
          if (withHalf) {
            for (let i = 0; i < n; i++) {
              const expected = fp32ToFp16Bits(nativeState[0][i] as number);
              const got = nativeHalf[i] as number;
              if (
                got !== expected &&
                !(Number.isNaN(nativeState[0][i] as number) && (got & 0x7e00) === 0x7e00)
              ) {
                expect(got, `fp16Out[${i}] of ${n}`).toBe(expected);
              }
            }
          }
        }
      },
    );
  },
);

describe.each(variants().map((v) => [v.name, v] as const))(
  'optimizer argument checks: %s',
  (_name, variant) => {
    it('names the argument whose length is wrong', () => {
      within(variant, (k) => {
        const a = new Float32Array(4);
        const b = new Float32Array(3);
        expect(() => k.adamwUpdate(a, b, a.slice(), a.slice(), adamw)).toThrow(
          /adamwUpdate: grads has 3 elements, expected 4/,
        );
        expect(() => k.adamUpdate(a, a.slice(), b, a.slice(), adamw)).toThrow(/adamUpdate: m has 3/);
        expect(() => k.adamwUpdate(a, a.slice(), a.slice(), b, adamw)).toThrow(/: v has 3/);
        expect(() =>
          k.lionUpdate(
            a,
            a.slice(),
            a.slice(),
            { lr: 1, beta1: 0.9, beta2: 0.99, weightDecay: 0 },
            new Uint16Array(5),
          ),
        ).toThrow(/lionUpdate: fp16Out has 5/);
        const sgd: SgdOptions = {
          lr: 1,
          momentum: 0.9,
          dampening: 0,
          nesterov: false,
          weightDecay: 0,
          firstStep: true,
        };
        expect(() => k.sgdUpdate(a, a.slice(), null, sgd)).toThrow(/momentumBuffer is null/);
        expect(() => k.sgdUpdate(a, a.slice(), b, sgd)).toThrow(/momentumBuffer has 3/);
        expect(() =>
          k.sgdUpdate(a, a.slice(), a.slice(), { ...sgd, nesterov: true, dampening: 0.1 }),
        ).toThrow(/Nesterov/);
        expect(() => k.adamwUpdate(a, a.slice(), a.slice(), a.slice(), { ...adamw, step: 0 })).toThrow(
          /step is 1-based/,
        );
      });
    });

    it('refuses a gradScale that is not a number, not finite, or past fp32 (nothing written)', () => {
      within(variant, (k) => {
        const p = Float32Array.of(1, 2);
        const lion = { lr: 1, beta1: 0.9, beta2: 0.99, weightDecay: 0 };
        for (const [gradScale, error] of [
          ['2', /options.gradScale must be a number/],
          [Number.NaN, /options.gradScale must be a finite number/],
          [1e39, /options.gradScale must be within fp32's range/],
        ] as const) {
          expect(() =>
            k.adamwUpdate(p, p.slice(), new Float32Array(2), new Float32Array(2), {
              ...adamw,
              gradScale: gradScale as number,
            }),
          ).toThrow(error);
          expect(() =>
            k.lionUpdate(p, p.slice(), new Float32Array(2), { ...lion, gradScale: gradScale as number }),
          ).toThrow(error);
        }
        expect([...p]).toEqual([1, 2]);
      });
    });

    it('async versions settle with the same result, and reject on bad arguments', async () => {
      const random = rng(3);
      const p = randomArray(5000, random);
      const g = randomArray(5000, random);
      const reference = p.slice();
      hostTsAdamw(reference, g);
      const restore = variant.enter();
      try {
        await variant.kernels.adamwUpdateAsync(p, g, new Float32Array(5000), new Float32Array(5000), adamw);
        expectUlps(p, reference, 1, 'async params');
        await expect(variant.kernels.sumOfSquaresAsync(new Float32Array([3, 4]))).resolves.toBe(25);
        await expect(variant.kernels.adamwUpdateAsync(p, g.subarray(1), p, p, adamw)).rejects.toThrow(
          RangeError,
        );
      } finally {
        restore();
      }
    });
  },
);

function hostTsAdamw(p: Float32Array, g: Float32Array): void {
  tsKernels.adamwUpdate(p, g, new Float32Array(p.length), new Float32Array(p.length), adamw);
}
