/**
 * The one-call fast path over leaves that lie back to back in one buffer (a FlatArena's
 * gradsTree()): the finite check, the unscale, the clip scaling and the accumulation mean run as one
 * kernel call over the span instead of one per leaf. Checked bit for bit against the leaf-by-leaf
 * path (the same trees as separate arrays) and against plain loops: weights, optimizer state, the
 * gradients left behind, the returned norm, the skip decision and the loss scale, for SGD, Adam,
 * AdamW and Lion, with and without loss scaling and clipping, with accumulation 1 and 2, with every
 * kernel choice this machine has.
 */
import { hostKernels } from 'ane-bridge';
import { describe, expect, it } from 'vitest';
import { GradientAccumulator } from './accumulate';
import { FlatArena } from './arena';
import { clipGradNorm } from './clip';
import { type KernelChoice, sumOfSquares } from './kernels';
import { DynamicLossScaler } from './loss-scaler';
import { Adam, AdamW } from './optimizers/adam';
import { Lion } from './optimizers/lion';
import { SGD } from './optimizers/sgd';
import { contiguousSpan, flattenTree } from './tree';

const f = Math.fround;
const choices: KernelChoice[] = hostKernels.native === null ? ['ts'] : ['native', 'ts'];

// Sizes that cross the native sum's 65536-element blocks, and small ones (norm weights).
const LAYOUT: Array<[string, number[]]> = [
  ['tok_embeddings', [300, 288]], // 86400: two blocks
  ['layers.0.attention_norm', [288]],
  ['layers.0.wq', [70001]],
  ['layers.0.ffn_norm', [7]],
  ['norm', [288]],
  ['output', [131077]], // three blocks, a ragged tail
];
const SIZES = LAYOUT.map(([, shape]) => shape.reduce((a, b) => a * b, 1));
const TOTAL = SIZES.reduce((a, b) => a + b, 0);

function bits(x: Float32Array): number[] {
  return [...new Uint32Array(x.buffer, x.byteOffset, x.length)];
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Seeded gradients at a loss scale: mostly ~1e-3·scale, some tiny (subnormal once unscaled), signed zeros. */
function gradients(seed: number, scale: number, poison?: 'inf' | 'nan'): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const g = new Float32Array(TOTAL);
  for (let i = 0; i < TOTAL; i++) {
    const r = next();
    if (r < 0.002) g[i] = r < 0.001 ? 0 : -0;
    else if (r < 0.004)
      g[i] = f((next() - 0.5) * 1e-40 * scale); // unscaled: subnormal, rounded
    else g[i] = f((next() - 0.5) * 2e-3 * scale * (r < 0.5 ? 1 : 40));
  }
  if (poison !== undefined) g[TOTAL - 5] = poison === 'inf' ? Number.NEGATIVE_INFINITY : Number.NaN;
  return g;
}

function weights(): Float32Array {
  const w = new Float32Array(TOTAL);
  for (let i = 0; i < TOTAL; i++) w[i] = f(Math.sin(i * 0.37) * 0.05);
  return w;
}

/** The same tensors as separate arrays (the leaf-by-leaf path), filled from `flat`. */
function separate(flat: Float32Array): Record<string, Float32Array> {
  const tree: Record<string, Float32Array> = {};
  let offset = 0;
  LAYOUT.forEach(([name], i) => {
    tree[name] = new Float32Array(flat.subarray(offset, offset + (SIZES[i] as number)));
    offset += SIZES[i] as number;
  });
  return tree;
}

function concat(tree: Record<string, Float32Array>): Float32Array {
  const out = new Float32Array(TOTAL);
  let offset = 0;
  for (const [name] of LAYOUT) {
    out.set(tree[name] as Float32Array, offset);
    offset += (tree[name] as Float32Array).length;
  }
  return out;
}

type AnyOptimizer = SGD | Adam | AdamW | Lion;
const OPTIMIZERS: Array<[string, (kernels: KernelChoice) => AnyOptimizer]> = [
  ['SGD', (kernels) => new SGD({ learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4, kernels })],
  ['Adam', (kernels) => new Adam({ learningRate: 1e-3, weightDecay: 0.01, kernels })],
  [
    'AdamW',
    (kernels) =>
      new AdamW({
        learningRate: 3e-4,
        betas: [0.9, 0.95],
        weightDecay: 0.1,
        kernels,
        groups: [{ params: /norm$/, weightDecay: 0 }],
      }),
  ],
  ['Lion', (kernels) => new Lion({ learningRate: 1e-4, weightDecay: 0.1, kernels })],
];

interface StepRecord {
  skip: boolean;
  norm: number;
  scale: number;
  grads: Float32Array;
}

interface Setup {
  lossScale: boolean;
  clip: number | false;
  accumulate: number;
}

/**
 * Runs the Trainer's optimizer phase for a few steps, on a FlatArena (contiguous: the fast path)
 * or on separate arrays (the leaf-by-leaf path); micro-batch `m` of step `s` has seed 7·s + m.
 */
function run(
  contiguous: boolean,
  makeOptimizer: (kernels: KernelChoice) => AnyOptimizer,
  kernels: KernelChoice,
  setup: Setup,
  poisoned: (step: number) => 'inf' | 'nan' | undefined,
) {
  const optimizer = makeOptimizer(kernels);
  const scaler = setup.lossScale
    ? new DynamicLossScaler({ initScale: 1024, growthInterval: 2, kernels })
    : null;
  const arena = new FlatArena(LAYOUT);
  arena.params.set(weights());
  const params = contiguous ? arena.paramsTree() : separate(weights());
  const target = contiguous ? arena.gradsTree() : separate(new Float32Array(TOTAL));
  const accumulator = new GradientAccumulator(target, { steps: setup.accumulate, kernels });
  const records: StepRecord[] = [];
  for (let step = 0; step < 5; step++) {
    const scale = scaler?.scale ?? 1;
    for (let micro = 0; micro < setup.accumulate; micro++) {
      const poison = micro === setup.accumulate - 1 ? poisoned(step) : undefined;
      accumulator.accumulate(separate(gradients(7 * step + micro, scale, poison)));
    }
    const grads = accumulator.finish();
    let norm = Number.NaN;
    const apply = () => {
      if (setup.clip !== false) norm = clipGradNorm(grads, setup.clip, { kernels });
      if (contiguous) optimizer.stepArena(arena);
      else optimizer.update(params, grads);
    };
    let skip = false;
    if (scaler === null) apply();
    else skip = scaler.step(grads, apply).skip;
    records.push({ skip, norm, scale: scaler?.scale ?? 1, grads: concat(grads) });
  }
  return { params: concat(params), state: optimizer.saveState().data, step: optimizer.step, records };
}

describe('contiguousSpan', () => {
  it("spans a FlatArena's gradsTree and nothing that is not back to back in one buffer", () => {
    const arena = new FlatArena(LAYOUT);
    const leaves = flattenTree(arena.gradsTree());
    const span = contiguousSpan(leaves) as Float32Array;
    expect(span.buffer).toBe(arena.grads.buffer);
    expect([span.byteOffset, span.length]).toEqual([arena.grads.byteOffset, arena.size]);
    expect(contiguousSpan(leaves.slice(1, 3))?.length).toBe((SIZES[1] as number) + (SIZES[2] as number));
    expect(contiguousSpan([leaves[0]!])).toBe(leaves[0]![1]); // one leaf: itself
    expect(contiguousSpan([])).toBeNull();
    expect(contiguousSpan([leaves[1]!, leaves[0]!])).toBeNull(); // another order
    expect(contiguousSpan([leaves[0]!, leaves[2]!])).toBeNull(); // a gap
    expect(contiguousSpan([leaves[0]!, leaves[0]!])).toBeNull(); // an overlap
    expect(contiguousSpan(flattenTree(separate(new Float32Array(TOTAL))))).toBeNull(); // separate arrays
    const other = new FlatArena(LAYOUT);
    expect(contiguousSpan([leaves[0]!, flattenTree(other.gradsTree())[1]!])).toBeNull(); // two buffers
  });
});

describe.each(choices)(
  'the one-call path over a flat arena equals the leaf-by-leaf path (%s kernels)',
  (kernels) => {
    const setups: Setup[] = [
      { lossScale: true, clip: 1, accumulate: 1 }, // the Trainer's default: coefficient < 1
      { lossScale: true, clip: 1e6, accumulate: 1 }, // coefficient >= 1: no clip scaling
      { lossScale: true, clip: 0.5, accumulate: 2 },
      { lossScale: false, clip: 1, accumulate: 2 },
      { lossScale: true, clip: false, accumulate: 1 },
    ];
    // Steps 1 (inf) and 3 (NaN) overflow: skipped and the scale backed off, when scaling.
    const poisoned = (step: number) => (step === 1 ? 'inf' : step === 3 ? 'nan' : undefined);
    for (const [name, makeOptimizer] of OPTIMIZERS) {
      for (const setup of setups) {
        const label = `${name}, lossScale ${setup.lossScale}, clip ${setup.clip}, accumulate ${setup.accumulate}`;
        it(label, () => {
          const poison = setup.lossScale ? poisoned : () => undefined;
          const fast = run(true, makeOptimizer, kernels, setup, poison);
          const slow = run(false, makeOptimizer, kernels, setup, poison);
          expect(fast.step).toBe(slow.step);
          expect(sameBits(fast.params, slow.params)).toBe(true);
          expect(sameBits(fast.state, slow.state)).toBe(true);
          fast.records.forEach((record, i) => {
            const other = slow.records[i] as StepRecord;
            expect([record.skip, record.scale]).toEqual([other.skip, other.scale]);
            expect(Object.is(record.norm, other.norm)).toBe(true);
            expect(sameBits(record.grads, other.grads)).toBe(true);
          });
          if (setup.lossScale) {
            expect(fast.records.map((r) => r.skip)).toEqual([false, true, false, true, false]);
            expect(fast.step).toBe(3);
          }
        });
      }
    }
  },
);

describe.each(choices)('the one-call path against plain loops (%s kernels)', (kernels) => {
  it('unscale then clip: g ← fround(fround(g·(1/scale))·coefficient), the norm from the unscaled values', () => {
    for (const maxNorm of [1, 1e6]) {
      const arena = new FlatArena(LAYOUT);
      const scaled = gradients(99, 1024);
      arena.grads.set(scaled);
      const grads = arena.gradsTree();
      const scaler = new DynamicLossScaler({ initScale: 1024, kernels });
      let norm = Number.NaN;
      const { skip } = scaler.step(grads, () => {
        norm = clipGradNorm(grads, maxNorm, { kernels });
      });
      expect(skip).toBe(false);
      const inverse = f(1 / 1024);
      const unscaled = scaled.map((g) => f(g * inverse));
      // The norm: per-leaf float64 sums of the unscaled values, as globalNorm documents.
      let sum = 0;
      for (const [, leaf] of flattenTree(separate(unscaled))) sum += sumOfSquares(leaf, kernels);
      expect(norm).toBe(Math.sqrt(sum));
      let plain = 0;
      for (const g of unscaled) plain += g * g;
      expect(norm).toBeCloseTo(Math.sqrt(plain), 9);
      const coefficient = f(f(1 / f(f(norm) + f(1e-6))) * f(maxNorm));
      expect(coefficient < 1).toBe(maxNorm === 1);
      const expected = coefficient < 1 ? unscaled.map((g) => f(g * coefficient)) : unscaled;
      expect(bits(arena.grads)).toEqual(bits(expected));
    }
  });

  it('a skipped step leaves every gradient as it was, bit for bit', () => {
    const arena = new FlatArena(LAYOUT);
    for (const poison of ['inf', 'nan'] as const) {
      const scaled = gradients(5, 1024, poison);
      arena.grads.set(scaled);
      const scaler = new DynamicLossScaler({ initScale: 1024, kernels });
      let applied = false;
      expect(scaler.step(arena.gradsTree(), () => (applied = true))).toEqual({ skip: true });
      expect(applied).toBe(false);
      expect(scaler.scale).toBe(512);
      expect(bits(arena.grads)).toEqual(bits(scaled));
      expect(scaler.check(arena.gradsTree())).toEqual({ skip: true });
    }
    arena.grads.set(gradients(5, 1024));
    arena.grads[0] = 3.4028235e38; // huge but finite: its square still fits a float64 sum
    expect(new DynamicLossScaler({ kernels }).check(arena.gradsTree())).toEqual({ skip: false });
  });

  it('the accumulation mean over two micro-batches: fround(fround(a + b) · 0.5)', () => {
    const arena = new FlatArena(LAYOUT);
    const accumulator = new GradientAccumulator(arena.gradsTree(), { steps: 2, kernels });
    const a = gradients(1, 1);
    const b = gradients(2, 1);
    accumulator.accumulate(separate(a));
    accumulator.accumulate(separate(b));
    accumulator.finish();
    expect(bits(arena.grads)).toEqual(bits(a.map((x, i) => f(f(x + (b[i] as number)) * 0.5))));
  });
});

describe.runIf(hostKernels.native !== null)('a model of 2^23 parameters and more (native kernels)', () => {
  it('the one-call path (scaling split over the native threads) equals the leaf-by-leaf path (each leaf below 2^23)', () => {
    const sizes = [6_000_000, 7, 2_400_001];
    const total = sizes.reduce((a, b) => a + b, 0);
    const layout = sizes.map((n, i) => [`t${i}`, [n]] as [string, number[]]);
    const split = (flat: Float32Array) => {
      const tree: Record<string, Float32Array> = {};
      let offset = 0;
      sizes.forEach((n, i) => {
        tree[`t${i}`] = flat.slice(offset, offset + n);
        offset += n;
      });
      return tree;
    };
    const micro = (step: number) => {
      const g = new Float32Array(total);
      let s = 17 + step;
      for (let i = 0; i < total; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        g[i] = s % 97 === 0 ? (s & 1 ? -0 : 0) : f((s / 2 ** 32 - 0.5) * 2 ** ((s % 40) - 30) * 1024);
      }
      if (step === 1) g[total - 1] = Number.POSITIVE_INFINITY;
      return g;
    };
    const arena = new FlatArena(layout);
    const params = split(new Float32Array(total).fill(0.01));
    arena.params.fill(0.01);
    const grads = split(new Float32Array(total));
    const fast = {
      optimizer: new AdamW({ learningRate: 1e-3 }),
      scaler: new DynamicLossScaler({ initScale: 1024 }),
    };
    const slow = {
      optimizer: new AdamW({ learningRate: 1e-3 }),
      scaler: new DynamicLossScaler({ initScale: 1024 }),
    };
    for (let step = 0; step < 3; step++) {
      const g = micro(step);
      arena.grads.set(g);
      for (const [name, leaf] of Object.entries(split(g))) grads[name]!.set(leaf);
      const tree = arena.gradsTree();
      let fastNorm = Number.NaN;
      let slowNorm = Number.NaN;
      const a = fast.scaler.step(tree, () => {
        fastNorm = clipGradNorm(tree, 1);
        fast.optimizer.stepArena(arena);
      });
      const b = slow.scaler.step(grads, () => {
        slowNorm = clipGradNorm(grads, 1);
        slow.optimizer.update(params, grads);
      });
      expect([a.skip, fast.scaler.scale]).toEqual([b.skip, slow.scaler.scale]);
      expect(Object.is(fastNorm, slowNorm)).toBe(true);
      expect(sameBits(arena.grads, concatSized(grads, sizes))).toBe(true);
    }
    expect(fast.optimizer.step).toBe(2);
    expect(sameBits(arena.params, concatSized(params, sizes))).toBe(true);
    expect(sameBits(fast.optimizer.saveState().data, slow.optimizer.saveState().data)).toBe(true);
  });
});

function concatSized(tree: Record<string, Float32Array>, sizes: number[]): Float32Array {
  const out = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let offset = 0;
  sizes.forEach((n, i) => {
    out.set(tree[`t${i}`] as Float32Array, offset);
    offset += n;
  });
  return out;
}
