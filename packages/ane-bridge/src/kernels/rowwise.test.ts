import { describe, expect, it } from 'vitest';
import { expectClose, randomArray, rng, variants, within } from './kernels.test-helper';

// ---- float64 references ---------------------------------------------------------------------

/** RMSNorm of one [C, S] input in float64: out and rstd. */
function rmsnormRef(x: ArrayLike<number>, w: ArrayLike<number>, C: number, S: number, eps: number) {
  const out = new Float64Array(C * S);
  const rstd = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += (x[c * S + s] as number) ** 2;
    rstd[s] = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++)
      out[c * S + s] = (x[c * S + s] as number) * (rstd[s] as number) * (w[c] as number);
  }
  return { out, rstd };
}

/** Loss L = sum(out * g) for a fixed g: its gradients by central differences in float64. */
function numericGradient(f: (v: Float64Array) => number, at: Float64Array, h = 1e-6): Float64Array {
  const grad = new Float64Array(at.length);
  for (let i = 0; i < at.length; i++) {
    const saved = at[i] as number;
    at[i] = saved + h;
    const up = f(at);
    at[i] = saved - h;
    const down = f(at);
    at[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

function softmaxColumnsRef(logits: ArrayLike<number>, V: number, S: number) {
  const probs = new Float64Array(V * S);
  const lse = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[v * S + s] as number);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp((logits[v * S + s] as number) - max);
    lse[s] = Math.log(sum) + max;
    for (let v = 0; v < V; v++)
      probs[v * S + s] = Math.exp((logits[v * S + s] as number) - (lse[s] as number));
  }
  return { probs, lse };
}

/** The mean cross-entropy over counted positions (negative targets ignored) of logits [V, S], in float64. */
function meanLossRef(targets: Int32Array, V: number, S: number): (logits: Float64Array) => number {
  return (logits) => {
    const { lse } = softmaxColumnsRef(logits, V, S);
    let total = 0;
    for (let s = 0; s < S; s++) {
      const t = targets[s] as number;
      if (t >= 0) total += ((lse[s] as number) - (logits[t * S + s] as number)) / S;
    }
    return total;
  };
}

function causalRef(
  scores: ArrayLike<number>,
  H: number,
  Tq: number,
  Tk: number,
  scale: number,
): Float64Array {
  const out = new Float64Array(H * Tq * Tk);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < Tq; i++) {
      const base = (h * Tq + i) * Tk;
      const visible = i + (Tk - Tq) + 1;
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < visible; j++) max = Math.max(max, scale * (scores[base + j] as number));
      let sum = 0;
      for (let j = 0; j < visible; j++) sum += Math.exp(scale * (scores[base + j] as number) - max);
      for (let j = 0; j < visible; j++)
        out[base + j] = Math.exp(scale * (scores[base + j] as number) - max) / sum;
    }
  }
  return out;
}

const SHAPES: [number, number][] = [
  [1, 1],
  [3, 1],
  [1, 17],
  ...Array.from({ length: 67 }, (_, i) => [5, i + 1] as [number, number]),
  ...Array.from({ length: 20 }, (_, i) => [i + 1, 33] as [number, number]),
  [64, 130],
];

describe.each(variants().map((v) => [v.name, v] as const))('norms and losses: %s', (_name, variant) => {
  it('rmsnormForward agrees with float64 (all tail widths)', () => {
    const random = rng(31);
    within(variant, (k) => {
      for (const [C, S] of [[0, 3] as [number, number], [4, 0] as [number, number], ...SHAPES]) {
        const x = randomArray(C * S, random, 3);
        const w = randomArray(C, random);
        const out = new Float32Array(C * S);
        const rstd = new Float32Array(S);
        k.rmsnormForward(out, rstd, x, w, C, S, 1e-5);
        const ref = rmsnormRef(x, w, C, S, 1e-5);
        expectClose(out, ref.out, 2e-6, 1e-7, `out ${C}x${S}`);
        if (C === 0) expect(Array.from(rstd).every(Number.isNaN)).toBe(true);
        else expectClose(rstd, ref.rstd, 2e-6, 0, `rstd ${C}x${S}`);
      }
    });
  });

  it('rmsnormBackward matches the finite-difference gradient and accumulates', () => {
    const random = rng(32);
    within(variant, (k) => {
      for (const [C, S] of [
        [1, 1],
        [7, 5],
        [16, 19],
        [33, 67],
      ] as const) {
        const x = randomArray(C * S, random, 2);
        const w = randomArray(C, random);
        const g = randomArray(C * S, random);
        const out = new Float32Array(C * S);
        const rstd = new Float32Array(S);
        k.rmsnormForward(out, rstd, x, w, C, S, 1e-5);
        const dx = new Float32Array(C * S).fill(0.5); // accumulates onto what is there
        const dw = new Float32Array(C).fill(-0.25);
        k.rmsnormBackward(dx, dw, g, x, w, rstd, C, S);
        const xs = Float64Array.from(x);
        const ws = Float64Array.from(w);
        const gx = numericGradient((v) => dot(rmsnormRef(v, ws, C, S, 1e-5).out, g), xs);
        const gw = numericGradient((v) => dot(rmsnormRef(xs, v, C, S, 1e-5).out, g), ws);
        expectClose(
          dx,
          gx.map((v) => v + 0.5),
          1e-4,
          1e-4,
          `dx ${C}x${S}`,
        );
        expectClose(
          dw,
          gw.map((v) => v - 0.25),
          1e-4,
          1e-4,
          `dweight ${C}x${S}`,
        );
      }
    });
  });

  it('rmsnorm propagates NaN and inf per position only', () => {
    within(variant, (k) => {
      const C = 4;
      const S = 20;
      const x = randomArray(C * S, rng(33));
      x[2 * S + 5] = Number.NaN;
      x[1 * S + 9] = Number.POSITIVE_INFINITY;
      x[0 * S + 3] = 1e-40; // subnormal input is fine
      const out = new Float32Array(C * S);
      const rstd = new Float32Array(S);
      k.rmsnormForward(out, rstd, x, new Float32Array(C).fill(1), C, S, 1e-6);
      for (let s = 0; s < S; s++) {
        for (let c = 0; c < C; c++) {
          const value = out[c * S + s] as number;
          if (s === 5)
            expect(value).toBeNaN(); // NaN in the column: all NaN
          else if (s === 9)
            expect(Number.isNaN(value) || value === 0).toBe(true); // inf: rstd 0, inf*0 NaN
          else expect(Number.isFinite(value)).toBe(true);
        }
      }
    });
  });

  it('softmax + cross-entropy forward agrees with float64, in place too, with ignored targets', () => {
    const random = rng(34);
    within(variant, (k) => {
      for (const [V, S] of [
        [1, 1] as [number, number],
        [2, 3] as [number, number],
        ...SHAPES,
        [1000, 9] as [number, number],
        // Split between threads (2048 positions each at least), the case the others are too small for.
        [16, 4101] as [number, number],
      ]) {
        const logits = randomArray(V * S, random, 8);
        const targets = Int32Array.from({ length: S }, (_, s) =>
          s % 7 === 3 ? -100 : Math.floor(random() * V),
        );
        const losses = new Float32Array(S);
        const probs = new Float32Array(V * S);
        k.softmaxCrossEntropyForward(losses, probs, logits, targets, V, S);
        const ref = softmaxColumnsRef(logits, V, S);
        expectClose(probs, ref.probs, 5e-6, 1e-9, `probs ${V}x${S}`);
        const expectedLoss = Array.from({ length: S }, (_, s) =>
          (targets[s] as number) < 0
            ? 0
            : (ref.lse[s] as number) - (logits[(targets[s] as number) * S + s] as number),
        );
        expectClose(losses, expectedLoss, 1e-5, 1e-5, `losses ${V}x${S}`);
        const inPlace = logits.slice();
        const losses2 = new Float32Array(S);
        k.softmaxCrossEntropyForward(losses2, inPlace, inPlace, targets, V, S);
        expectClose(inPlace, probs, 0, 0, 'in place probs');
        expectClose(losses2, losses, 0, 0, 'in place losses');
      }
    });
  });

  it('cross-entropy backward is the gradient of the mean loss (finite differences), in place too', () => {
    const random = rng(35);
    within(variant, (k) => {
      for (const [V, S] of [
        [1, 1],
        [5, 3],
        [11, 17],
        [40, 67],
      ] as const) {
        const logits = randomArray(V * S, random, 3);
        const targets = Int32Array.from({ length: S }, (_, s) => (s === 1 ? -1 : Math.floor(random() * V)));
        const losses = new Float32Array(S);
        const probs = new Float32Array(V * S);
        k.softmaxCrossEntropyForward(losses, probs, logits, targets, V, S);
        const dlosses = new Float32Array(S).fill(1 / S);
        const dlogits = new Float32Array(V * S).fill(Number.NaN); // written, not accumulated
        k.softmaxCrossEntropyBackward(dlogits, probs, targets, dlosses, V, S);
        const numeric = numericGradient(meanLossRef(targets, V, S), Float64Array.from(logits));
        expectClose(dlogits, numeric, 1e-4, 1e-6, `dlogits ${V}x${S}`);
        k.softmaxCrossEntropyBackward(probs, probs, targets, dlosses, V, S);
        expectClose(probs, dlogits, 0, 0, 'in place dlogits');
      }
    });
  });

  it('cross-entropy from statistics: the losses and gradient of forward + backward, from fp32 logits and from fp16 bits', () => {
    const random = rng(38);
    within(variant, (k) => {
      // V 2500: three vocabulary blocks of the native kernels, combined in order.
      for (const [V, S] of [
        [1, 1],
        [7, 17],
        [2500, 5],
      ] as const) {
        // fp16 values, so both calls read the same numbers.
        const bits = new Uint16Array(V * S);
        k.fp32ToFp16(randomArray(V * S, random, 8), bits);
        if (V * S > 3) bits[3] = 0xfc00; // -inf
        const logits = new Float32Array(V * S);
        k.fp16ToFp32(bits, logits);
        const targets = Int32Array.from({ length: S }, (_, s) => (s === 2 ? -1 : Math.floor(random() * V)));
        const dlosses = randomArray(S, random);
        const losses = new Float32Array(S);
        const probs = new Float32Array(V * S);
        const dlogits = new Float32Array(V * S);
        k.softmaxCrossEntropyForward(losses, probs, logits, targets, V, S);
        k.softmaxCrossEntropyBackward(dlogits, probs, targets, dlosses, V, S);
        for (const input of [logits, bits]) {
          const [losses2, maxv, inverse] = [0, 1, 2].map(() => new Float32Array(S));
          const dlogits2 = new Float32Array(V * S).fill(Number.NaN); // written, not accumulated
          k.softmaxCrossEntropyStats(losses2 as Float32Array, maxv!, inverse!, input, targets, V, S);
          k.softmaxCrossEntropyGrad(dlogits2, input, maxv!, inverse!, targets, dlosses, V, S);
          // The native kernels share their expressions: the same bits. The float64 twins round
          // 1/sum to fp32 first here, so they agree to a few ulps.
          const [rel, abs] = variant.name.startsWith('native') ? [0, 0] : [1e-6, 1e-9];
          expectClose(
            losses2 as Float32Array,
            losses,
            rel,
            abs,
            `losses ${V}x${S} ${input.constructor.name}`,
          );
          expectClose(dlogits2, dlogits, rel, abs, `dlogits ${V}x${S} ${input.constructor.name}`);
          for (let s = 0; s < S; s++) {
            let max = Number.NEGATIVE_INFINITY;
            for (let v = 0; v < V; v++) max = Math.max(max, logits[v * S + s] as number);
            expect(maxv![s]).toBe(max);
          }
        }
        const inPlace = logits.slice();
        const [losses3, maxv, inverse] = [0, 1, 2].map(() => new Float32Array(S));
        k.softmaxCrossEntropyStats(losses3 as Float32Array, maxv!, inverse!, inPlace, targets, V, S);
        const expected = new Float32Array(V * S);
        k.softmaxCrossEntropyGrad(expected, inPlace, maxv!, inverse!, targets, dlosses, V, S);
        k.softmaxCrossEntropyGrad(inPlace, inPlace, maxv!, inverse!, targets, dlosses, V, S);
        expectClose(inPlace, expected, 0, 0, 'in place dlogits');
      }
      const [losses, maxv, inverse] = [0, 1, 2].map(() => new Float32Array(2).fill(7));
      k.softmaxCrossEntropyStats(
        losses!,
        maxv!,
        inverse!,
        new Uint16Array(0),
        new Int32Array(2).fill(-1),
        0,
        2,
      );
      expect([...losses!, ...maxv!, ...inverse!]).toEqual([0, 0, -Infinity, -Infinity, Infinity, Infinity]);
      const wrong = new Float64Array(4) as unknown as Float32Array; // from JavaScript
      expect(() =>
        k.softmaxCrossEntropyStats(losses!, maxv!, inverse!, wrong, new Int32Array(2), 2, 2),
      ).toThrow(/logits must be a Float32Array, or a Uint16Array of fp16 bits, got a Float64Array/);
      expect(() => k.sgemm(false, false, 1, 1, 1, 1, wrong, 1, wrong, 1, 0, new Float32Array(1), 1)).toThrow(
        /A must be a Float32Array, or a Uint16Array of fp16 bits/,
      );
    });
  });

  it('cross-entropy grad from statistics is the gradient of the mean loss (finite differences)', () => {
    const random = rng(39);
    within(variant, (k) => {
      const [V, S] = [11, 17];
      const logits = randomArray(V * S, random, 3);
      const targets = Int32Array.from({ length: S }, (_, s) => (s === 1 ? -1 : Math.floor(random() * V)));
      const [losses, maxv, inverse] = [0, 1, 2].map(() => new Float32Array(S));
      k.softmaxCrossEntropyStats(losses!, maxv!, inverse!, logits, targets, V, S);
      const dlogits = new Float32Array(V * S);
      k.softmaxCrossEntropyGrad(
        dlogits,
        logits,
        maxv!,
        inverse!,
        targets,
        new Float32Array(S).fill(1 / S),
        V,
        S,
      );
      const numeric = numericGradient(meanLossRef(targets, V, S), Float64Array.from(logits));
      expectClose(dlogits, numeric, 1e-4, 1e-6, 'dlogits');
      const { lse } = softmaxColumnsRef(logits, V, S);
      for (let s = 0; s < S; s++) {
        const t = targets[s] as number;
        const expected = t < 0 ? 0 : (lse[s] as number) - (logits[t * S + s] as number);
        expectClose(losses!.subarray(s, s + 1), [expected], 1e-5, 1e-5, `loss ${s}`);
      }
    });
  });

  it('cross-entropy: a NaN logit poisons only its column; -inf logits get probability 0', () => {
    within(variant, (k) => {
      const V = 6;
      const S = 19;
      const logits = randomArray(V * S, rng(36));
      logits[2 * S + 4] = Number.NaN;
      logits[3 * S + 7] = Number.NEGATIVE_INFINITY;
      logits[0 * S + 8] = 1e-42;
      const targets = Int32Array.from({ length: S }, () => 1);
      const losses = new Float32Array(S);
      const probs = new Float32Array(V * S);
      k.softmaxCrossEntropyForward(losses, probs, logits, targets, V, S);
      for (let s = 0; s < S; s++) {
        expect(Number.isNaN(losses[s] as number)).toBe(s === 4);
        if (s !== 4) expect(Number.isFinite(losses[s] as number)).toBe(true);
      }
      expect(probs[3 * S + 7]).toBe(0);
    });
  });

  it('embedding gather and scatter-add agree with float64 (repeated tokens accumulate)', () => {
    const random = rng(37);
    within(variant, (k) => {
      for (const [V, C, S] of [
        [1, 1, 1],
        [3, 0, 4],
        [3, 5, 0],
        [10, 17, 33],
        [50, 67, 9],
        [7, 130, 64],
      ] as const) {
        const table = randomArray(V * C, random);
        const tokens = Int32Array.from({ length: S }, () => Math.floor(random() * Math.min(V, 4)));
        const out = new Float32Array(C * S);
        k.embeddingForward(out, table, tokens, V, C, S);
        for (let s = 0; s < S; s++) {
          for (let c = 0; c < C; c++) expect(out[c * S + s]).toBe(table[(tokens[s] as number) * C + c]);
        }
        const dout = randomArray(C * S, random);
        const dtable = new Float32Array(V * C).fill(1);
        k.embeddingBackward(dtable, dout, tokens, V, C, S);
        const expected = new Float64Array(V * C).fill(1);
        for (let s = 0; s < S; s++) {
          for (let c = 0; c < C; c++) {
            const at = (tokens[s] as number) * C + c;
            expected[at] = (expected[at] as number) + (dout[c * S + s] as number);
          }
        }
        expectClose(dtable, expected, 1e-6, 1e-6, `dtable ${V}x${C}x${S}`);
      }
      expect(() =>
        k.embeddingForward(new Float32Array(2), new Float32Array(4), new Int32Array([0, 2]), 2, 2, 1),
      ).toThrow(RangeError);
      expect(() =>
        k.embeddingForward(new Float32Array(4), new Float32Array(4), new Int32Array([0, 2]), 2, 2, 2),
      ).toThrow(/tokens\[1\] = 2 is outside the vocabulary \[0, 2\)/);
      expect(() =>
        k.embeddingBackward(new Float32Array(4), new Float32Array(2), new Int32Array([-1]), 2, 2, 1),
      ).toThrow(/tokens\[0\] = -1/);
      expect(() =>
        k.softmaxCrossEntropyForward(
          new Float32Array(1),
          new Float32Array(2),
          new Float32Array(2),
          new Int32Array([2]),
          2,
          1,
        ),
      ).toThrow(/targets\[0\] = 2/);
    });
  });

  it('causal softmax forward agrees with float64 (Tq = Tk and Tq < Tk), in place too', () => {
    const random = rng(38);
    within(variant, (k) => {
      for (const [H, Tq, Tk] of [
        [1, 1, 1],
        [2, 3, 3],
        [1, 1, 67],
        [2, 17, 17],
        [3, 5, 40],
        [1, 67, 67],
        [2, 64, 130],
      ] as const) {
        const scores = randomArray(H * Tq * Tk, random, 10);
        const out = new Float32Array(H * Tq * Tk).fill(Number.NaN);
        k.causalSoftmaxForward(out, scores, H, Tq, Tk, 0.125);
        expectClose(out, causalRef(scores, H, Tq, Tk, 0.125), 5e-6, 1e-9, `causal ${H}x${Tq}x${Tk}`);
        const inPlace = scores.slice();
        k.causalSoftmaxForward(inPlace, inPlace, H, Tq, Tk, 0.125);
        expectClose(inPlace, out, 0, 0, 'in place');
      }
      expect(() => k.causalSoftmaxForward(new Float32Array(6), new Float32Array(6), 1, 3, 2, 1)).toThrow(
        /Tk \(2\) must be >= Tq/,
      );
    });
  });

  it('causal softmax backward matches finite differences; masked entries get 0', () => {
    const random = rng(39);
    within(variant, (k) => {
      for (const [H, Tq, Tk] of [
        [1, 1, 1],
        [1, 4, 4],
        [2, 5, 9],
        [1, 19, 19],
      ] as const) {
        const scores = randomArray(H * Tq * Tk, random, 2);
        const g = randomArray(H * Tq * Tk, random);
        const probs = new Float32Array(H * Tq * Tk);
        k.causalSoftmaxForward(probs, scores, H, Tq, Tk, 0.5);
        const dscores = new Float32Array(H * Tq * Tk).fill(Number.NaN);
        k.causalSoftmaxBackward(dscores, probs, g, H, Tq, Tk, 0.5);
        const numeric = numericGradient(
          (v) => dot(causalRef(v, H, Tq, Tk, 0.5), g),
          Float64Array.from(scores),
        );
        expectClose(dscores, numeric, 1e-4, 1e-5, `dscores ${H}x${Tq}x${Tk}`);
        const inPlace = g.slice();
        k.causalSoftmaxBackward(inPlace, probs, inPlace, H, Tq, Tk, 0.5);
        expectClose(inPlace, dscores, 0, 0, 'in place');
      }
    });
  });

  it('async versions settle with the results of the sync ones', async () => {
    const restore = variant.enter();
    try {
      const k = variant.kernels;
      const V = 50;
      const S = 33;
      const logits = randomArray(V * S, rng(40), 4);
      const targets = Int32Array.from({ length: S }, (_, s) => s % V);
      const losses = new Float32Array(S);
      const probs = new Float32Array(V * S);
      await k.softmaxCrossEntropyForwardAsync(losses, probs, logits, targets, V, S);
      const losses2 = new Float32Array(S);
      const probs2 = new Float32Array(V * S);
      k.softmaxCrossEntropyForward(losses2, probs2, logits, targets, V, S);
      expectClose(losses, losses2, 0, 0, 'async losses');
      await expect(
        k.embeddingForwardAsync(new Float32Array(1), new Float32Array(1), new Int32Array([5]), 1, 1, 1),
      ).rejects.toThrow(RangeError);
    } finally {
      restore();
    }
  });
});
