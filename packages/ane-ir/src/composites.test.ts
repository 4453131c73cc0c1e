import { describe, expect, it } from 'vitest';
import {
  avgPool,
  causalMask,
  causalSelfAttentionParts,
  convTranspose2d,
  embedding,
  fullLike,
  gelu,
  headRmsNorm,
  layerNorm,
  llamaBlock,
  MASK_VALUE,
  maxPool,
  mean,
  rmsNorm,
  rope,
  ropeSwap,
  ropeTables,
  silu,
  softmaxCrossEntropy,
  swappedRopeTable,
  swigluParts,
  zerosLike,
} from './composites';
import { constantNumbers } from './graph/data';
import { evaluate } from './graph/evaluate';
import { Graph } from './graph/graph';
import { type OpKind, SOURCE_KINDS } from './graph/tensor';
import { roundToFp16 } from './mil/fp16';
import { partition } from './partition/partition';

/** Deterministic values in [-1, 1) (not random: a fixed irrational walk). */
function walk(count: number, seed = 1): number[] {
  return Array.from({ length: count }, (_, i) => ((((i + seed) * 0.6180339887) % 1) * 2 - 1) * 0.999);
}

const PRIMITIVES: readonly OpKind[] = [
  'unary',
  'binary',
  'reduce',
  'reshape',
  'transpose',
  'slice',
  'concat',
  'matmul',
  'conv',
  'softmax',
  'cast',
  'gather',
];

describe('composites', () => {
  it('are built only from the closed primitive set, and tag their nodes', () => {
    const g = new Graph();
    const x = g.input('x', [64, 16]);
    const p = (name: string, shape: number[]) => g.param(name, shape);
    llamaBlock(
      x,
      {
        attnNorm: p('an', [64]),
        ffnNorm: p('fn', [64]),
        wq: p('wq', [64, 64]),
        wk: p('wk', [32, 64]),
        wv: p('wv', [32, 64]),
        wo: p('wo', [64, 64]),
        w1: p('w1', [96, 64]),
        w3: p('w3', [96, 64]),
        w2: p('w2', [64, 96]),
      },
      { heads: 4, kvHeads: 2, rope: ropeTables(g, 16, 16) },
    );
    gelu(x);
    layerNorm(x, p('lg', [64]), p('lb', [64]));
    embedding(g.input('tokens', [16], { dtype: 'int32' }), p('table', [10, 64]));
    for (const node of g.nodes) {
      expect([...SOURCE_KINDS, ...PRIMITIVES]).toContain(node.op.kind);
      if (!SOURCE_KINDS.includes(node.op.kind)) expect(node.composites.length, node.name).toBeGreaterThan(0);
    }
    const kinds = new Set(g.nodes.flatMap((n) => n.composites.map((t) => t.kind)));
    for (const kind of [
      'llama_block',
      'rmsnorm',
      'attention',
      'linear',
      'rope',
      'swiglu',
      'silu',
      'gelu',
      'layernorm',
      'embedding',
    ]) {
      expect(kinds).toContain(kind);
    }
  });

  it('RMSNorm and LayerNorm normalize over channels', () => {
    const g = new Graph();
    const [D, S] = [8, 3];
    const x = g.input('x', [D, S]);
    const gain = g.constant(
      walk(D, 3).map((v) => 1 + v / 4),
      [D],
    );
    const bias = g.constant(walk(D, 5), [D]);
    const xs = walk(D * S).map((v) => v * 3);
    const [rms, ln] = evaluate([rmsNorm(x, gain), layerNorm(x, gain, bias)], { x: xs });
    const gs = constantNumbers(gain.op.kind === 'constant' ? gain.op.data : (undefined as never));
    const bs = constantNumbers(bias.op.kind === 'constant' ? bias.op.data : (undefined as never));
    const eps = roundToFp16(1e-5);
    for (let s = 0; s < S; s++) {
      const column = Array.from({ length: D }, (_, c) => xs[c * S + s]!);
      const ms = column.reduce((a, v) => a + v * v, 0) * roundToFp16(1 / D);
      const mu = column.reduce((a, v) => a + v, 0) * roundToFp16(1 / D);
      const variance = column.reduce((a, v) => a + (v - mu) ** 2, 0) * roundToFp16(1 / D);
      for (let c = 0; c < D; c++) {
        expect(rms![c * S + s]).toBeCloseTo((column[c]! / Math.sqrt(ms + eps)) * gs[c]!, 9);
        expect(ln![c * S + s]).toBeCloseTo(
          ((column[c]! - mu) / Math.sqrt(variance + eps)) * gs[c]! + bs[c]!,
          9,
        );
      }
    }
  });

  it('headRmsNorm (Qwen3 q/k norm) normalizes each head over its HD features, with one gain [HD]', () => {
    const g = new Graph();
    const [H, HD, S] = [3, 4, 5];
    const x = g.input('x', [H * HD, S], { dtype: 'fp32' });
    const gains = [0.5, 1.25, -2, 0.75];
    const gain = g.constant(gains, [HD], { dtype: 'fp32' });
    const eps = 2 ** -10; // exact in fp16, like 1/HD
    const y = headRmsNorm(x, gain, H, { eps, name: 'q_norm' });
    expect(y.composites[0]).toMatchObject({ kind: 'head_rmsnorm', name: 'q_norm', args: { heads: H, eps } });
    const xs = walk(H * HD * S).map((v) => v * 7);
    const [got] = evaluate([y], { x: xs });
    // float64 by hand: channel c = h·HD + d; each (h, s) column of HD values has its own RMS.
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++) {
        let ss = 0;
        for (let d = 0; d < HD; d++) ss += xs[(h * HD + d) * S + s]! ** 2;
        const r = 1 / Math.sqrt(ss / HD + eps);
        for (let d = 0; d < HD; d++) {
          const c = h * HD + d;
          expect(got![c * S + s], `y[${c}, ${s}]`).toBeCloseTo(xs[c * S + s]! * r * gains[d]!, 12);
        }
      }
    // An RMSNorm over all 12 channels differs (a norm over heads, not over the whole vector).
    const [whole] = evaluate(
      [rmsNorm(x, g.constant([...gains, ...gains, ...gains], [H * HD], { dtype: 'fp32' }), { eps })],
      { x: xs },
    );
    expect(Math.max(...got!.map((v, i) => Math.abs(v - whole![i]!)))).toBeGreaterThan(0.1);
    // Its sum of squares is the fp16 hazard: the partitioner runs the call on the host, as a whole.
    g.output('y', y);
    const plan = partition(g);
    expect(plan.hostOps.map((op) => [op.kind, op.ruleId])).toEqual([
      ['head_rmsnorm', 'ir-fp16-sum-of-squares'],
    ]);
  });

  it('attention with qkNorm normalizes every query and key head before RoPE', () => {
    const g = new Graph();
    const [D, H, KV, HD, S] = [8, 2, 1, 4, 3];
    const x = g.input('x', [D, S]); // fp16 graph; evaluate computes in float64 from the feeds
    const w = (name: string, rows: number) => g.param(name, [rows, D]);
    const qGain = [1, 0.5, 2, -1];
    const kGain = [0.25, 1, 1.5, 3];
    const eps = 2 ** -10;
    const parts = causalSelfAttentionParts(
      x,
      { wq: w('wq', H * HD), wk: w('wk', KV * HD), wv: w('wv', KV * HD), wo: w('wo', D) },
      {
        heads: H,
        kvHeads: KV,
        qkNorm: {
          q: g.param('q_gain', [HD]),
          k: g.param('k_gain', [HD]),
          eps,
        },
      },
    );
    const xs = walk(D * S, 9);
    const [q, k] = evaluate([parts.q, parts.k], {
      x: xs,
      wq: walk(H * HD * D, 1),
      wk: walk(KV * HD * D, 2),
      wv: walk(KV * HD * D, 3),
      wo: walk(D * H * HD, 4),
      q_gain: qGain,
      k_gain: kGain,
    });
    const project = (seed: number, rows: number) => {
      const weights = walk(rows * D, seed);
      return Array.from({ length: rows * S }, (_, i) => {
        const [r, s] = [Math.floor(i / S), i % S];
        let dot = 0;
        for (let c = 0; c < D; c++) dot += weights[r * D + c]! * xs[c * S + s]!;
        return dot;
      });
    };
    // heads [H, S, HD] of the per-head-normalized projection (keys expanded to H heads).
    const check = (got: Float64Array, projected: number[], gain: number[], heads: number) => {
      for (let h = 0; h < H; h++)
        for (let s = 0; s < S; s++) {
          const source = Math.floor(h / (H / heads));
          let ss = 0;
          for (let d = 0; d < HD; d++) ss += projected[(source * HD + d) * S + s]! ** 2;
          const r = 1 / Math.sqrt(ss / HD + eps);
          for (let d = 0; d < HD; d++)
            expect(got[(h * S + s) * HD + d]).toBeCloseTo(
              projected[(source * HD + d) * S + s]! * r * gain[d]!,
              12,
            );
        }
    };
    check(q!, project(1, H * HD), qGain, H);
    check(k!, project(2, KV * HD), kGain, KV);
  });

  it('SiLU, GELU (tanh and sigmoid forms), SwiGLU', () => {
    const g = new Graph();
    const x = g.input('x', [4]);
    const xs = [-2, -0.5, 0.5, 3];
    const [s, gt, gs] = evaluate([silu(x), gelu(x), gelu(x, { approximation: 'sigmoid' })], { x: xs });
    xs.forEach((v, i) => {
      expect(s![i]).toBeCloseTo(v / (1 + Math.exp(-v)), 12);
      const c = roundToFp16(Math.sqrt(2 / Math.PI));
      const k = roundToFp16(0.044715);
      expect(gt![i]).toBeCloseTo(0.5 * v * (1 + Math.tanh(c * (v + k * v ** 3))), 9);
      expect(gs![i]).toBeCloseTo(v / (1 + Math.exp(-roundToFp16(1.702) * v)), 9);
    });
    const h = new Graph();
    const input = h.input('x', [2, 1]);
    const parts = swigluParts(
      input,
      h.constant([1, 0, 0, 1], [2, 2]),
      h.constant([2, 0, 0, 2], [2, 2]),
      h.constant([1, 1], [1, 2]),
    );
    const [y, h1, h3] = evaluate([parts.y, parts.h1, parts.h3], { x: [1, -1] });
    expect(Array.from(h1!)).toEqual([1, -1]);
    expect(Array.from(h3!)).toEqual([2, -2]);
    const siluOf = (v: number) => v / (1 + Math.exp(-v));
    expect(y![0]).toBeCloseTo(siluOf(1) * 2 + siluOf(-1) * -2, 12);
  });

  it('RoPE rotates pairs: interleaved (2i, 2i+1) and rotate-half (i, i + HD/2)', () => {
    const [H, S, HD] = [2, 3, 4];
    const xs = walk(H * S * HD);
    for (const convention of ['interleaved', 'rotate-half'] as const) {
      const g = new Graph();
      const x = g.input('x', [H, S, HD]);
      const tables = ropeTables(g, S, HD, { convention, base: 100 });
      const [out] = evaluate([rope(x, tables)], { x: xs });
      for (let h = 0; h < H; h++)
        for (let p = 0; p < S; p++)
          for (let i = 0; i < HD / 2; i++) {
            const angle = p / 100 ** ((2 * i) / HD);
            const [a, b] = convention === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + HD / 2];
            const at = (j: number) => xs[(h * S + p) * HD + j]!;
            const cos = roundToFp16(Math.cos(angle));
            const sin = roundToFp16(Math.sin(angle));
            expect(out![(h * S + p) * HD + a]).toBeCloseTo(at(a) * cos - at(b) * sin, 12);
            expect(out![(h * S + p) * HD + b]).toBeCloseTo(at(b) * cos + at(a) * sin, 12);
          }
    }
  });

  it('RoPE negates the table, not the values: one signed table per sin table, a computed table too', () => {
    const [H, S, HD] = [2, 3, 4];
    const xs = walk(H * S * HD);
    for (const convention of ['interleaved', 'rotate-half'] as const) {
      const g = new Graph();
      const x = g.input('x', [H, S, HD]);
      const k = g.input('k', [H, S, HD]);
      const constant = ropeTables(g, S, HD, { convention, base: 100 });
      // The same tables as a graph input: the signed table is then sin · (±1), computed.
      const sinInput = g.input('sin', [S, HD]);
      const computed = { ...constant, sin: sinInput };
      const outs = [rope(x, constant), rope(k, constant), rope(x, computed), rope(k, computed)];
      const signed = g.nodes.filter((n) => n.localName.endsWith('_signed'));
      expect(signed.map((n) => n.op.kind).sort()).toEqual(['binary', 'constant']);
      const sinValues = evaluate([constant.sin], {})[0]!;
      const [a, b, c, d] = evaluate(outs, { x: xs, k: xs, sin: sinValues });
      expect(Array.from(c!)).toEqual(Array.from(a!));
      expect(Array.from(d!)).toEqual(Array.from(b!));
      expect(Array.from(b!)).toEqual(Array.from(a!));
      // Element 0 pairs with 1 (interleaved) or HD/2 (rotate-half): x0 cos0 − x_pair sin0.
      const pair = convention === 'interleaved' ? 1 : HD / 2;
      const [cos0] = evaluate([constant.cos], {})[0]!;
      expect(a![0]).toBeCloseTo(xs[0]! * cos0! - xs[pair]! * sinValues[0]!, 12);
    }
  });

  it('ropeSwap exchanges each pair and is its own inverse', () => {
    const g = new Graph();
    const x = g.input('x', [2, 4]);
    const xs = Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const [half, pairs, twice] = evaluate(
      [
        ropeSwap(x, 'rotate-half'),
        ropeSwap(x, 'interleaved'),
        ropeSwap(ropeSwap(x, 'interleaved'), 'interleaved'),
      ],
      { x: xs },
    );
    expect(Array.from(half!)).toEqual([2, 3, 0, 1, 6, 7, 4, 5]);
    expect(Array.from(pairs!)).toEqual([1, 0, 3, 2, 5, 4, 7, 6]);
    expect(Array.from(twice!)).toEqual(Array.from(xs));
    expect(() => ropeSwap(g.input('three', [2, 3]), 'rotate-half')).toThrow(/even size/);
    // A misspelt convention (from JavaScript) is refused, never taken for the other one.
    expect(() => ropeSwap(x, 'rotate_half' as never)).toThrow(
      /convention must be 'interleaved' or 'rotate-half', got 'rotate_half'/,
    );
    expect(() => ropeTables(g, 2, 4, { convention: 'half' as never })).toThrow(
      /ropeTables: convention must be/,
    );
  });

  it('swappedRopeTable: a constant table swapped at build time, once; any other through the ops', () => {
    const g = new Graph();
    const table = g.constant([0.5, -1, 2, 0.25, 3, -0.125, 4, 8], [2, 4], { name: 't' });
    const input = g.input('u', [2, 4]);
    for (const convention of ['rotate-half', 'interleaved'] as const) {
      const swapped = swappedRopeTable(table, convention);
      expect(swapped.op.kind).toBe('constant');
      expect(swappedRopeTable(table, convention)).toBe(swapped);
      const [values] = evaluate([swapped], {});
      expect(Array.from(values!)).toEqual(
        convention === 'rotate-half'
          ? [2, 0.25, 0.5, -1, 4, 8, 3, -0.125]
          : [-1, 0.5, 0.25, 2, -0.125, 3, 8, 4],
      );
      const computed = swappedRopeTable(input, convention);
      expect(computed.op.kind).not.toBe('constant');
      const [fromInput] = evaluate([computed], { u: evaluate([table], {})[0]! });
      expect(Array.from(fromInput!)).toEqual(Array.from(values!));
    }
  });

  it('causal attention: MHA and GQA (query head h reads kv head floor(h / ratio)) against a direct evaluation', () => {
    for (const kvHeads of [4, 2, 1]) {
      const [D, H, S] = [16, 4, 5];
      const HD = D / H;
      const g = new Graph();
      const x = g.input('x', [D, S]);
      const wq = g.param('wq', [D, D]);
      const wk = g.param('wk', [kvHeads * HD, D]);
      const wv = g.param('wv', [kvHeads * HD, D]);
      const wo = g.param('wo', [D, D]);
      const parts = causalSelfAttentionParts(x, { wq, wk, wv, wo }, { heads: H, kvHeads });
      const feeds = {
        x: walk(D * S, 1),
        wq: walk(D * D, 2),
        wk: walk(kvHeads * HD * D, 3),
        wv: walk(kvHeads * HD * D, 4),
        wo: walk(D * D, 5),
      };
      const [probs, attn] = evaluate([parts.probs, parts.attn], feeds);
      const project = (w: number[], rows: number) =>
        Array.from({ length: rows * S }, (_, i) => {
          const [r, s] = [Math.floor(i / S), i % S];
          let sum = 0;
          for (let c = 0; c < D; c++) sum += w[r * D + c]! * feeds.x[c * S + s]!;
          return sum;
        });
      const q = project(feeds.wq, D);
      const k = project(feeds.wk, kvHeads * HD);
      const v = project(feeds.wv, kvHeads * HD);
      const scale = roundToFp16(1 / Math.sqrt(HD));
      for (let h = 0; h < H; h++) {
        const kv = Math.floor(h / (H / kvHeads));
        for (let t = 0; t < S; t++) {
          const scores = Array.from({ length: S }, (_, u) => {
            if (u > t) return Number.NEGATIVE_INFINITY;
            let dot = 0;
            for (let j = 0; j < HD; j++) dot += q[(h * HD + j) * S + t]! * k[(kv * HD + j) * S + u]!;
            return dot * scale;
          });
          const max = Math.max(...scores);
          const exps = scores.map((s) => Math.exp(s - max));
          const total = exps.reduce((a, b) => a + b, 0);
          for (let u = 0; u < S; u++) expect(probs![(h * S + t) * S + u]).toBeCloseTo(exps[u]! / total, 9);
          for (let j = 0; j < HD; j++) {
            let expected = 0;
            for (let u = 0; u <= t; u++) expected += (exps[u]! / total) * v[(kv * HD + j) * S + u]!;
            expect(attn![(h * HD + j) * S + t]).toBeCloseTo(expected, 9);
          }
        }
      }
    }
  });

  it('attention over sequences back to back (sequences): each attends within itself, as it would alone', () => {
    for (const kvHeads of [4, 2]) {
      const [D, H, S, K] = [16, 4, 5, 3];
      const HD = D / H;
      const build = (positions: number, sequences: number) => {
        const g = new Graph();
        const x = g.input('x', [D, positions]);
        const weights = {
          wq: g.param('wq', [D, D]),
          wk: g.param('wk', [kvHeads * HD, D]),
          wv: g.param('wv', [kvHeads * HD, D]),
          wo: g.param('wo', [D, D]),
        };
        const rope = ropeTables(g, S, HD, { convention: 'rotate-half', sequences });
        return causalSelfAttentionParts(x, weights, { heads: H, kvHeads, rope, sequences });
      };
      const weights = {
        wq: walk(D * D, 2),
        wk: walk(kvHeads * HD * D, 3),
        wv: walk(kvHeads * HD * D, 4),
        wo: walk(D * D, 5),
      };
      const xs = walk(D * K * S, 1);
      const together = build(K * S, K);
      expect(together.probs.shape).toEqual([H * K, S, S]);
      const [out, probs] = evaluate([together.out, together.probs], { x: xs, ...weights });
      const alone = build(S, 1);
      for (let b = 0; b < K; b++) {
        // Sequence b: columns b·S..(b+1)·S of every channel.
        const columns = (values: ArrayLike<number>, rows: number) =>
          Array.from({ length: rows * S }, (_, i) => values[Math.floor(i / S) * K * S + b * S + (i % S)]!);
        const [outB, probsB] = evaluate([alone.out, alone.probs], { x: columns(xs, D), ...weights });
        expect(columns(out!, D), `kvHeads ${kvHeads}, sequence ${b}`).toEqual(Array.from(outB!));
        // probs [H · K, S, S] is head-major: head h's sequence b is block h·K + b.
        for (let h = 0; h < H; h++) {
          const block = Array.from(probs!.subarray((h * K + b) * S * S, (h * K + b + 1) * S * S));
          expect(block).toEqual(Array.from(probsB!.subarray(h * S * S, (h + 1) * S * S)));
        }
      }
    }
    const g = new Graph();
    const x = g.input('x', [8, 10]);
    const w = (name: string) => g.param(name, [8, 8]);
    const weights = { wq: w('wq'), wk: w('wk'), wv: w('wv'), wo: w('wo') };
    expect(() => causalSelfAttentionParts(x, weights, { heads: 2, sequences: 3 })).toThrow(
      /10 positions do not divide into 3 sequences/,
    );
    expect(() =>
      causalSelfAttentionParts(x, weights, { heads: 2, sequences: 2, mask: causalMask(g, 10) }),
    ).toThrow(/with 2 sequences the mask is one sequence's \[5, 5\]/);
    expect(() => causalSelfAttentionParts(x, weights, { heads: 2, sequences: 0 })).toThrow(
      /sequences must be a whole number ≥ 1, got 0/,
    );
    expect(() =>
      causalSelfAttentionParts(x, weights, { heads: 2, sequences: '2' as unknown as number }),
    ).toThrow(/sequences must be a whole number ≥ 1, got string "2"/);
  });

  it('builds the causal mask once per graph, with -65504 (never -inf)', () => {
    const g = new Graph();
    const mask = causalMask(g, 4);
    expect(causalMask(g, 4)).toBe(mask);
    const values = Array.from(
      constantNumbers(mask.op.kind === 'constant' ? mask.op.data : (undefined as never)),
    );
    expect(values.slice(0, 4)).toEqual([0, MASK_VALUE, MASK_VALUE, MASK_VALUE]);
    expect(values.slice(12, 16)).toEqual([0, 0, 0, 0]);
    expect(MASK_VALUE).toBe(-65504);
  });

  it('a mask for sequences back to back is block diagonal, each block causal; RoPE tables restart per sequence', () => {
    const g = new Graph();
    const [seq, sequences] = [3, 2];
    const mask = causalMask(g, seq, { sequences });
    expect(mask.shape).toEqual([6, 6]);
    expect(causalMask(g, seq, { sequences })).toBe(mask);
    expect(causalMask(g, seq)).not.toBe(mask);
    const values = Array.from(
      constantNumbers(mask.op.kind === 'constant' ? mask.op.data : (undefined as never)),
    );
    const M = MASK_VALUE;
    // Query row t sees keys u with u <= t in its own sequence only.
    expect(values).toEqual(
      [
        [0, M, M, M, M, M],
        [0, 0, M, M, M, M],
        [0, 0, 0, M, M, M],
        [M, M, M, 0, M, M],
        [M, M, M, 0, 0, M],
        [M, M, M, 0, 0, 0],
      ].flat(),
    );
    const one = ropeTables(g, seq, 4, { base: 100, name: 'one' });
    const two = ropeTables(g, seq, 4, { base: 100, sequences, name: 'two' });
    expect(two.cos.shape).toEqual([6, 4]);
    const data = (t: typeof one.cos) =>
      Array.from(constantNumbers(t.op.kind === 'constant' ? t.op.data : (undefined as never)));
    expect(data(two.cos)).toEqual([...data(one.cos), ...data(one.cos)]);
    expect(data(two.sin)).toEqual([...data(one.sin), ...data(one.sin)]);
    expect(() => causalMask(g, seq, { sequences: 0 })).toThrow(/sequences must be a whole number ≥ 1/);
    expect(() => ropeTables(g, seq, 4, { sequences: 2.5 })).toThrow(/sequences must be a whole number ≥ 1/);
  });

  it('embedding gathers rows into channels-first [D, S] (a host op)', () => {
    const g = new Graph();
    const table = g.constant([0, 1, 10, 11, 20, 21], [3, 2]);
    const tokens = g.input('tokens', [2], { dtype: 'int32' });
    const out = embedding(tokens, table);
    expect(out.shape).toEqual([2, 2]);
    expect(Array.from(evaluate([out], { tokens: [2, 1] })[0]!)).toEqual([20, 10, 21, 11]);
  });

  it('zeros and constant fills without mul(x, 0); means as sum times 1/n', () => {
    const g = new Graph();
    const x = g.input('x', [2, 2]);
    const zeros = zerosLike(x);
    const full = fullLike(x, 3);
    expect(zeros.op).toEqual({ kind: 'binary', fn: 'sub' });
    const [z, f, m] = evaluate([zeros, full, mean(x, 1)], { x: [1, 2, 3, 4] });
    expect(Array.from(z!)).toEqual([0, 0, 0, 0]);
    expect(Array.from(f!)).toEqual([3, 3, 3, 3]);
    expect(Array.from(m!)).toEqual([1.5, 3.5]);
  });

  it('pools over non-overlapping windows, and lowers stride-1 transposed convs to convs', () => {
    const g = new Graph();
    const x = g.input('x', [1, 6]);
    const [avg, max] = evaluate([avgPool(x, { kernel: 2 }), maxPool(x, { kernel: 3 })], {
      x: [1, 3, 5, 7, 2, 0],
    });
    expect(Array.from(avg!)).toEqual([2, 6, 1]);
    expect(Array.from(max!)).toEqual([5, 7]);
    const image = g.input('image', [1, 1, 2, 2]);
    const w = g.param('w', [1, 1, 2, 2], { trainable: false, data: [1, 2, 3, 4] });
    const [up] = evaluate([convTranspose2d(image, w)], { image: [1, 0, 0, 0] });
    // A single 1 at (0, 0) scatters the kernel: the output's top-left 2x2 is the weight itself.
    expect(Array.from(up!)).toEqual([1, 2, 0, 3, 4, 0, 0, 0, 0]);
  });
});

describe('softmaxCrossEntropy', () => {
  // Logits [V = 3, S = 3], channels-first: column s holds position s's three scores.
  //   s = 0: [1, 2, 3], s = 1: [0, 0, 0], s = 2: [2, -1, 0.5]
  const LOGITS = [1, 0, 2, 2, 0, -1, 3, 0, 0.5];
  // Per position, by hand: logsumexp(column) − column[target].
  const lse0 = Math.log(Math.E ** 1 + Math.E ** 2 + Math.E ** 3);
  const lse2 = Math.log(Math.E ** 2 + Math.E ** -1 + Math.E ** 0.5);
  const lossAt = { s0t2: lse0 - 3, s1t0: Math.log(3), s2t1: lse2 + 1, s2t0: lse2 - 2 };

  function head(options: { ignoreIndex?: number } = {}) {
    const g = new Graph();
    const logits = g.input('logits', [3, 3], { dtype: 'fp32' });
    const targets = g.input('targets', [3], { dtype: 'int32' });
    const loss = softmaxCrossEntropy(logits, targets, { ...options, name: 'xent' });
    return { g, logits, targets, loss };
  }

  it('is the mean over positions of logsumexp minus the target logit, one [1, 1] call', () => {
    const { loss } = head();
    expect(loss.shape).toEqual([1, 1]);
    expect(loss.composites.map((t) => t.kind)).toEqual(['softmax_cross_entropy']);
    const [value] = evaluate([loss], { logits: LOGITS, targets: Int32Array.from([2, 0, 1]) });
    // 1/S is an fp32 constant here (the logits' dtype): agreement to fp32's precision.
    expect(value![0]).toBeCloseTo((lossAt.s0t2 + lossAt.s1t0 + lossAt.s2t1) / 3, 6);
    // Shifting a column by a constant changes nothing (the max-shifted form), even by 1000.
    const shifted = LOGITS.map((v, i) => (i % 3 === 0 ? v + 1000 : v));
    const [same] = evaluate([loss], { logits: shifted, targets: Int32Array.from([2, 0, 1]) });
    expect(same![0]).toBeCloseTo(value![0]!, 9);
  });

  it('leaves out ignored positions and divides by the others only', () => {
    // A negative ignore index (PyTorch's -100).
    const negative = head({ ignoreIndex: -100 });
    const [a] = evaluate([negative.loss], { logits: LOGITS, targets: Int32Array.from([2, -100, 0]) });
    expect(a![0]).toBeCloseTo((lossAt.s0t2 + lossAt.s2t0) / 2, 12);
    // An ignore index that is a class: positions with that target are left out, others count.
    const classIndex = head({ ignoreIndex: 0 });
    const [b] = evaluate([classIndex.loss], { logits: LOGITS, targets: Int32Array.from([2, 0, 1]) });
    expect(b![0]).toBeCloseTo((lossAt.s0t2 + lossAt.s2t1) / 2, 12);
    expect(classIndex.loss.composites[0]!.args).toMatchObject({ ignoreIndex: 0 });
  });

  it('records its operands for a host kernel and runs on the host (int32 targets)', () => {
    const { g, logits, targets, loss } = head({ ignoreIndex: -1 });
    const call = loss.composites[0]!;
    expect(call.result).toBe(loss);
    expect(call.args).toEqual({ logits, targets, ignoreIndex: -1 });
    g.output('loss', loss);
    const plan = partition(g);
    expect(plan.kernels).toHaveLength(0);
    expect(plan.hostOps.map((op) => op.kind)).toEqual(['softmax_cross_entropy']);
  });

  it('refuses logits that are not [V, S] or targets that are not int32 [S]', () => {
    const g = new Graph();
    const logits = g.input('logits', [3, 4], { dtype: 'fp32' });
    expect(() => softmaxCrossEntropy(logits, g.input('t', [3], { dtype: 'int32' }))).toThrow(
      /int32 targets \[S\]/,
    );
    expect(() => softmaxCrossEntropy(logits, g.input('f', [4], { dtype: 'fp32' }))).toThrow(/int32 targets/);
  });
});
