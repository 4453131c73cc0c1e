/**
 * The host-op registry's training kernels, each through `device.load` on the simulator: a tiny
 * graph with the call (built the way ane-ir or ane-autograd builds it), partitioned, loaded, run
 * (async and sync) and compared with ane-ir's float64 `evaluate`; and the executable must say the
 * native kernel ran it, not the generic evaluator.
 */
import {
  add,
  div,
  equal,
  evaluate,
  Graph,
  headRmsNorm,
  matmul,
  mul,
  type PartitionOptions,
  partition,
  reduceSum,
  reshape,
  rmsNorm,
  select,
  softmax,
  softmaxCrossEntropy,
  sub,
  type Tensor,
  transpose,
} from 'ane-ir';
import { describe, expect, it, vi } from 'vitest';
import { openDevice } from '../device/device';
import * as kernels from '../kernels';

// The cross-entropy statistics kernel, counted: the loss head's softmax statistics are computed
// once per sequence when the gradient op reuses the loss op's. The spies call the real kernels.
vi.mock('../kernels', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../kernels')>();
  return {
    ...actual,
    softmaxCrossEntropyStats: vi.fn(actual.softmaxCrossEntropyStats),
    softmaxCrossEntropyStatsAsync: vi.fn(actual.softmaxCrossEntropyStatsAsync),
    sgemm: vi.fn(actual.sgemm),
  };
});

/** The statistics kernel's calls (sync and async) made by `action`. */
function statsKernelCalls() {
  return [
    ...vi.mocked(kernels.softmaxCrossEntropyStats).mock.calls,
    ...vi.mocked(kernels.softmaxCrossEntropyStatsAsync).mock.calls,
  ];
}

/** Calls of the cross-entropy statistics kernel (sync and async) made by `action`. */
async function statisticsKernelCalls(action: () => unknown): Promise<number> {
  const before = statsKernelCalls().length;
  await action();
  return statsKernelCalls().length - before;
}

/** Deterministic values in [-scale, scale). */
function values(count: number, seed: number, scale = 1): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * scale);
}

/** Loads `graph` on the simulator, runs it async then sync, and checks every output against evaluate. */
async function runAndCompare(
  graph: Graph,
  feeds: Record<string, Float32Array | Int32Array>,
  options: { partition?: PartitionOptions; kinds: Record<string, string> },
) {
  const plan = partition(graph, options.partition);
  const device = openDevice({ backend: 'sim' });
  try {
    const exe = device.load(plan);
    // Every host op of the kinds under test runs on its native kernel.
    for (const [kind, kernel] of Object.entries(options.kinds)) {
      expect(
        plan.hostOps.some((op) => op.kind === kind),
        `a ${kind} host op`,
      ).toBe(true);
      expect(exe.slowHostOps.filter((op) => op.kind === kind)).toEqual([]);
      expect(exe.report()).toMatch(new RegExp(`host kernel [a-zA-Z, ]*${kernel}`));
    }
    const expected = evaluate(
      graph.outputs.map((o) => o.tensor),
      Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, Float64Array.from(v)])),
    );
    const asyncRun = await exe.run(feeds, { copy: true });
    const syncRun = exe.runSync(feeds, { copy: true });
    for (const outputs of [asyncRun, syncRun]) {
      graph.outputs.forEach(({ name }, k) => {
        const got = outputs[name] as Float32Array;
        const want = expected[k]!;
        expect(got.length, name).toBe(want.length);
        want.forEach((w, i) => {
          expect(Math.abs(got[i]! - w), `${name}[${i}]: ${got[i]} vs ${w}`).toBeLessThanOrEqual(
            1e-5 + 1e-5 * Math.abs(w),
          );
        });
      });
    }
    return { exe, plan, device, outputs: syncRun };
  } finally {
    device.dispose();
  }
}

/** ane-autograd's `softmax_cross_entropy_grad` call (src/composite-rules.ts), rebuilt here. */
function crossEntropyGrad(logits: Tensor, targets: Tensor, dloss: Tensor, ignoreIndex?: number): Tensor {
  const graph = logits.graph;
  const [vocab, seq] = logits.shape as [number, number];
  return graph.composite(
    'softmax_cross_entropy_grad',
    'softmax_cross_entropy_grad',
    () => {
      const probs = softmax(logits, 0, { name: 'probs' });
      const row = reshape(targets, [1, seq], { name: 'targets_row' });
      const ids = graph.constant(
        Array.from({ length: vocab }, (_, v) => v),
        [vocab, 1],
        { dtype: 'int32', name: 'vocab_ids' },
      );
      const onehot = select(equal(ids, row), graph.scalar(1, logits.dtype), 0, { name: 'onehot' });
      const diff = sub(probs, onehot, { name: 'diff' });
      if (ignoreIndex === undefined) return mul(diff, mul(dloss, 1 / seq), { name: 'dlogits' });
      const kept = select(equal(row, ignoreIndex), graph.scalar(0, logits.dtype), 1, { name: 'kept' });
      const count = reduceSum(kept, [0, 1], { keepDims: true, name: 'count' });
      return mul(diff, mul(kept, div(dloss, count)), { name: 'dlogits' });
    },
    { logits, targets, dloss, ...(ignoreIndex !== undefined ? { ignoreIndex } : {}) },
  );
}

describe('host kernels for training through device.load', () => {
  it('softmax_cross_entropy runs on softmaxCrossEntropyStats, with an ignore index that is a class', async () => {
    for (const ignoreIndex of [undefined, 2, -100]) {
      const g = new Graph();
      const logits = g.input('logits', [7, 5], { dtype: 'fp32' });
      const targets = g.input('targets', [5], { dtype: 'int32' });
      g.output(
        'loss',
        softmaxCrossEntropy(logits, targets, ignoreIndex === undefined ? {} : { ignoreIndex }),
      );
      const ids = ignoreIndex === undefined ? [3, 0, 6, 2, 2] : [3, ignoreIndex, 6, 2, ignoreIndex];
      const { outputs } = await runAndCompare(
        g,
        { logits: values(35, 1, 3), targets: Int32Array.from(ids) },
        { kinds: { softmax_cross_entropy: 'softmaxCrossEntropyStats' } },
      );
      // runAndCompare checked it against evaluate; and two ignored positions did not make it NaN.
      expect(Number.isFinite((outputs.loss as Float32Array)[0])).toBe(true);
    }
  });

  it('softmax_cross_entropy refuses a counted target outside the vocabulary, saying how to ignore it', () => {
    const g = new Graph();
    const logits = g.input('logits', [4, 2], { dtype: 'fp32' });
    const targets = g.input('targets', [2], { dtype: 'int32' });
    g.output('loss', softmaxCrossEntropy(logits, targets));
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(partition(g));
      expect(() => exe.runSync({ logits: values(8, 2), targets: Int32Array.from([1, 4]) })).toThrow(
        /softmax_cross_entropy 'cross_entropy': targets\[1\] = 4 is not a class in \[0, 4\).*ignoreIndex/,
      );
    } finally {
      device.dispose();
    }
  });

  it('softmax_cross_entropy_grad runs on softmaxCrossEntropyStats + Grad (fed and constant dloss)', async () => {
    for (const [ignoreIndex, fedScale] of [
      [undefined, true],
      [1, true],
      [-1, false],
    ] as const) {
      const g = new Graph();
      const logits = g.input('logits', [6, 4], { dtype: 'fp32' });
      const targets = g.input('targets', [4], { dtype: 'int32' });
      const dloss = fedScale
        ? g.input('scale', [1, 1], { dtype: 'fp32' })
        : g.constant([1], [1, 1], { dtype: 'fp32', name: 'seed' });
      g.output('dlogits', crossEntropyGrad(logits, targets, dloss, ignoreIndex));
      const ids = ignoreIndex === undefined ? [0, 5, 3, 3] : [ignoreIndex, 5, 3, ignoreIndex];
      const feeds: Record<string, Float32Array | Int32Array> = {
        logits: values(24, 3, 2),
        targets: Int32Array.from(ids),
      };
      if (fedScale) feeds.scale = Float32Array.of(1024);
      await runAndCompare(g, feeds, {
        kinds: { softmax_cross_entropy_grad: 'softmaxCrossEntropyGrad' },
      });
    }
  });

  it('weight_grad: operands computed on the device are read as the fp16 bits the kernel left, with the bits of the decoded values', async () => {
    const g = new Graph();
    const w1 = g.param('w1', [5, 4]);
    const w2 = g.param('w2', [3, 5]);
    const x = g.input('x', [4, 6]);
    const dy = g.input('dy', [3, 6]);
    const h = matmul(w1, x, { name: 'h' }); // on the device: an fp16 kernel output
    g.output('h', h);
    g.output(
      'dw2',
      g.composite('weight_grad', 'dw_w2', () => matmul(dy, h, { transposeY: true, name: 'da' }), {
        weight: w2,
        dy,
        x: h,
      }),
    );
    const plan = partition(g, { placement: { dw_w2: 'host' } });
    expect(plan.kernels.length, 'h comes from a device kernel').toBe(1);
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan, { batch: 2 });
      const feeds = { w1: values(20, 11), x: values(48, 12, 2), dy: values(36, 13) };
      const sgemmCalls = vi.mocked(kernels.sgemm).mock.calls;
      const before = sgemmCalls.length;
      const outputs = exe.runSync(feeds, { copy: true });
      const calls = sgemmCalls.slice(before);
      expect(calls.map((args) => [args[6].constructor.name, args[8].constructor.name])).toEqual([
        ['Float32Array', 'Uint16Array'],
        ['Float32Array', 'Uint16Array'],
      ]);
      // The same product of the values decoded for the output (the last sequence's h), on fp32 operands.
      const hLast = (outputs.h as Float32Array).subarray(30);
      const want = new Float32Array(15);
      kernels.hostKernels.active.sgemm(
        false,
        true,
        3,
        5,
        6,
        1,
        feeds.dy.subarray(18),
        6,
        hLast,
        6,
        0,
        want,
        5,
      );
      expectSameBits((outputs.dw2 as Float32Array).subarray(15), want, 'dw2 of the last sequence');
      const async = await exe.run(feeds, { copy: true });
      expectSameBits(async.dw2 as Float32Array, outputs.dw2 as Float32Array, 'async (background) dw2');
    } finally {
      device.dispose();
    }
  });

  it('weight_grad: a matmul and a bias sum run on sgemm, a gain sum on rmsnormBackward, another form generic', async () => {
    const g = new Graph();
    const w = g.param('w', [3, 4], { dtype: 'fp32' });
    const b = g.param('b', [3], { dtype: 'fp32' });
    const gain = g.param('gain', [3], { dtype: 'fp32' });
    const wt = g.param('wt', [4, 3], { dtype: 'fp32' });
    const x = g.input('x', [4, 6], { dtype: 'fp32' });
    const dy = g.input('dy', [3, 6], { dtype: 'fp32' });
    const xhat = g.input('xhat', [3, 6], { dtype: 'fp32' });
    const call = (weight: Tensor, other: Tensor, build: () => Tensor) =>
      g.composite('weight_grad', `dw_${weight.name}`, build, { weight, dy, x: other });
    // ane-autograd's forms: dW = dy·xᵀ; a bias's Σ_s dy (unbroadcast, reshaped); a gain's Σ_s dy ⊙ x̂.
    g.output(
      'dw',
      call(w, x, () => matmul(dy, x, { transposeY: true, name: 'da' })),
    );
    g.output(
      'db',
      call(b, dy, () => reshape(reduceSum(dy, 1, { keepDims: true, name: 'sum' }), [3])),
    );
    g.output(
      'dgain',
      call(gain, xhat, () => reduceSum(mul(dy, xhat), 1, { name: 'dg' })),
    );
    // A transposed weight's gradient as a matmul then a transpose: no registered form.
    g.output(
      'dwt',
      call(wt, x, () => transpose(matmul(dy, x, { transposeY: true }), [1, 0], { name: 't' })),
    );
    const { exe } = await runAndCompare(
      g,
      { x: values(24, 4), dy: values(18, 5), xhat: values(18, 6, 2) },
      { partition: { placement: { dw_w: 'host', dw_b: 'host', dw_gain: 'host', dw_wt: 'host' } }, kinds: {} },
    );
    const report = exe.report();
    expect(report).toMatch(/'dw_w': host kernel sgemm/);
    expect(report).toMatch(/'dw_b': host kernel sgemm/);
    expect(report).toMatch(/'dw_gain': host kernel rmsnormBackward/);
    expect(exe.slowHostOps).toEqual([
      {
        name: 'dw_wt',
        kind: 'weight_grad',
        reason: expect.stringMatching(/is matmul \+ transpose, neither one matmul/),
      },
    ]);
  });

  it('rmsnorm_grad runs on rmsnormBackward, and the forward RMSNorm stays native when the backward reads its r and x̂', async () => {
    const g = new Graph();
    const x = g.input('x', [8, 5], { dtype: 'fp32' });
    const gain = g.param('gain', [8], { dtype: 'fp32' });
    const dy = g.input('dy', [8, 5], { dtype: 'fp32' });
    const y = rmsNorm(x, gain, { eps: 1e-5, name: 'norm' });
    const normalized = g.node('norm.xr');
    const rrms = g.node('norm.rrms');
    // ane-autograd's rmsnorm rule: dx = r ⊙ (u − x̂ ⊙ Σ_c(u ⊙ x̂)/C), u = dy ⊙ g.
    const dx = g.composite(
      'rmsnorm_grad',
      'rmsnorm_grad',
      () => {
        const u = mul(dy, reshape(gain, [8, 1]), { name: 'u' });
        const dot = reduceSum(mul(u, normalized), 0, { keepDims: true, name: 'dot' });
        const centered = sub(u, mul(normalized, mul(dot, 1 / 8)), { name: 'centered' });
        return mul(centered, rrms, { name: 'dx' });
      },
      { x, gain, dy, rrms },
    );
    g.output('y', y);
    g.output('dx', dx);
    const { plan } = await runAndCompare(
      g,
      { x: values(40, 8, 2), gain: values(8, 9).map((v) => 1 + v / 4), dy: values(40, 10) },
      {
        partition: { placement: { rmsnorm_grad: 'host' } },
        kinds: { rmsnorm: 'rmsnormForward', rmsnorm_grad: 'rmsnormBackward' },
      },
    );
    // The forward hands its inner r and x̂ to the backward.
    const forward = plan.hostOps.find((op) => op.kind === 'rmsnorm')!;
    expect(forward.outputs).toEqual(expect.arrayContaining([normalized, rrms, y]));
  });

  it('scatter_add runs on embeddingBackward, repeated tokens accumulating', async () => {
    const g = new Graph();
    const indices = g.input('tokens', [6], { dtype: 'int32' });
    const dy = g.input('dy', [6, 4], { dtype: 'fp32' });
    const rows = 5;
    // ane-autograd's gather rule: dTable = onehotᵀ · dy, tagged { indices, dy, rows }.
    const dtable = g.composite(
      'scatter_add',
      'scatter_add',
      () => {
        const ids = reshape(indices, [6, 1], { name: 'ids' });
        const iota = g.constant([0, 1, 2, 3, 4], [1, rows], { dtype: 'int32', name: 'row_ids' });
        const onehot = select(equal(ids, iota), g.scalar(1, 'fp32'), 0, { name: 'onehot' });
        const summed = matmul(onehot, reshape(dy, [6, 4]), { transposeX: true, name: 'sum' });
        return reshape(summed, [rows, 4], { name: 'out' });
      },
      { indices, dy, rows },
    );
    g.output('dtable', dtable);
    const { outputs } = await runAndCompare(
      g,
      { tokens: Int32Array.from([4, 0, 4, 2, 4, 0]), dy: values(24, 11) },
      { kinds: { scatter_add: 'embeddingBackward' } },
    );
    // Row 1 and row 3 were never looked up: exactly zero.
    const out = outputs.dtable as Float32Array;
    expect(Array.from(out.subarray(4, 8))).toEqual([0, 0, 0, 0]);
    expect(Array.from(out.subarray(12, 16))).toEqual([0, 0, 0, 0]);
  });
  it("weight_grad_sum (a weight's gradient contributions) runs on the host on sgdUpdate as p += g, in fp32", async () => {
    const g = new Graph();
    const weight = g.param('table', [40, 8], { dtype: 'fp32' });
    const parts = [0, 1, 2].map((k) => g.input(`part${k}`, [40, 8], { dtype: 'fp32' }));
    // ane-autograd's accumulation of a weight's contributions: a chain of adds, tagged { weight }.
    const sum = g.composite(
      'weight_grad_sum',
      'weight_grad_sum',
      () => add(add(parts[0]!, parts[1]!, { name: 'acc' }), parts[2]!, { name: 'acc' }),
      { weight },
    );
    g.output('grad.table', sum);
    const feeds = {
      part0: values(320, 21, 3000),
      part1: values(320, 22, 1e-3),
      part2: values(320, 23, 70000),
    };
    const { plan, outputs } = await runAndCompare(g, feeds, { kinds: { weight_grad_sum: 'sgdUpdate' } });
    // Placed on the host by rule (no ANE kernel), and summed in fp32: a value past fp16's range
    // and one far below fp16's resolution of its neighbours both survive.
    expect(plan.kernels).toEqual([]);
    expect(plan.hostOps[0]!.ruleId).toBe('ir-weight-grad-host');
    const out = outputs['grad.table'] as Float32Array;
    for (let i = 0; i < 320; i++) {
      expect(out[i]).toBe(Math.fround(Math.fround(feeds.part0[i]! + feeds.part1[i]!) + feeds.part2[i]!));
    }
  });
  it('head_rmsnorm (Qwen3 q/k norm) runs per head on rmsnormForward, sync and async, like evaluate', async () => {
    const g = new Graph();
    const [H, HD, S] = [3, 8, 6];
    const x = g.input('x', [H * HD, S], { dtype: 'fp32' });
    const gain = g.param('gain', [HD], { dtype: 'fp32' });
    g.output('y', headRmsNorm(x, gain, H, { eps: 1e-6, name: 'q_norm' }));
    // Heads of very different scales: a norm over all H·HD channels would not give these values.
    const xs = values(H * HD * S, 31, 1).map((v, i) => v * 10 ** Math.floor(i / (HD * S)));
    await runAndCompare(g, { x: xs, gain: values(HD, 32, 2) }, { kinds: { head_rmsnorm: 'rmsnormForward' } });
  });
});

/**
 * The loss head computed per sequence on the kernels directly, each op on its own: the loss op's
 * softmaxCrossEntropyStats and mean, and the grad op's own softmaxCrossEntropyStats then
 * softmaxCrossEntropyGrad with dloss / N, on fp32 logits. Reuse must give these bits.
 */
function lossHeadByKernels(
  logits: Float32Array,
  targets: Int32Array,
  dloss: number,
  V: number,
  S: number,
  ignoreIndex?: number,
): { loss: Float32Array; dlogits: Float32Array } {
  const { softmaxCrossEntropyStats, softmaxCrossEntropyGrad } = kernels.hostKernels.active;
  const batch = targets.length / S;
  const loss = new Float32Array(batch);
  const dlogits = new Float32Array(batch * V * S);
  for (let b = 0; b < batch; b++) {
    const picked = Int32Array.from(targets.subarray(b * S, (b + 1) * S), (t) => (t === ignoreIndex ? -1 : t));
    const count = picked.filter((t) => t >= 0).length;
    const z = logits.slice(b * V * S, (b + 1) * V * S);
    const [losses, maxv, inverse] = [0, 1, 2].map(() => new Float32Array(S)) as [
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    softmaxCrossEntropyStats(losses, maxv, inverse, z, picked, V, S);
    let total = 0;
    for (let s = 0; s < S; s++) total += losses[s]!;
    loss[b] = total / count;
    const [again, maxAgain, inverseAgain] = [0, 1, 2].map(() => new Float32Array(S)) as [
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    softmaxCrossEntropyStats(again, maxAgain, inverseAgain, z, picked, V, S);
    const out = new Float32Array(V * S);
    softmaxCrossEntropyGrad(
      out,
      z,
      maxAgain,
      inverseAgain,
      picked,
      new Float32Array(S).fill(dloss / count),
      V,
      S,
    );
    dlogits.set(out, b * V * S);
  }
  return { loss, dlogits };
}

/** A loss head over fed logits [V, S]: the loss and its gradient, in the order given. */
function lossHead(order: 'loss first' | 'grad first', V: number, S: number, ignoreIndex?: number): Graph {
  const g = new Graph();
  const logits = g.input('logits', [V, S], { dtype: 'fp32' });
  const targets = g.input('targets', [S], { dtype: 'int32' });
  const scale = g.input('scale', [1, 1], { dtype: 'fp32' });
  const loss = () =>
    g.output('loss', softmaxCrossEntropy(logits, targets, ignoreIndex === undefined ? {} : { ignoreIndex }));
  const grad = () => g.output('dlogits', crossEntropyGrad(logits, targets, scale, ignoreIndex));
  if (order === 'loss first') {
    loss();
    grad();
  } else {
    grad();
    loss();
  }
  return g;
}

/** The host-op kinds of a plan's steps, in order. */
function hostKindsInOrder(plan: ReturnType<typeof partition>): string[] {
  return plan.steps.flatMap((step) => (step.kind === 'host' ? [plan.hostOps[step.index]!.kind] : []));
}

function expectSameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  const differing = got.findIndex((v, i) => !Object.is(v, want[i]));
  expect(differing, `${what}[${differing}]: ${got[differing]} vs ${want[differing]}`).toBe(-1);
}

describe("the loss head's softmax, once per sequence", () => {
  const V = 11;
  const S = 6;

  it('softmax_cross_entropy_grad reuses the loss op’s statistics: same bits, one statistics kernel per sequence', async () => {
    for (const batch of [1, 3]) {
      for (const ignoreIndex of [undefined, 2]) {
        const plan = partition(lossHead('loss first', V, S, ignoreIndex));
        expect(hostKindsInOrder(plan)).toEqual(['softmax_cross_entropy', 'softmax_cross_entropy_grad']);
        const device = openDevice({ backend: 'sim' });
        try {
          const exe = device.load(plan, { batch });
          const logits = values(batch * V * S, 7 + batch, 4);
          const ids = Array.from({ length: batch * S }, (_, i) => (i * 5 + 3) % V);
          if (ignoreIndex !== undefined) {
            ids[1] = ignoreIndex;
            ids[ids.length - 2] = ignoreIndex;
          }
          const targets = Int32Array.from(ids);
          const feeds = { logits, targets, scale: new Float32Array(batch).fill(512) };
          const want = lossHeadByKernels(logits, targets, 512, V, S, ignoreIndex);
          for (const mode of ['async', 'sync'] as const) {
            let outputs: Record<string, Float32Array | Int32Array> = {};
            const calls = await statisticsKernelCalls(async () => {
              outputs =
                mode === 'async' ? await exe.run(feeds, { copy: true }) : exe.runSync(feeds, { copy: true });
            });
            const what = `batch ${batch}, ignoreIndex ${ignoreIndex}, ${mode}`;
            expect(calls, `${what}: statistics kernel calls`).toBe(batch);
            expectSameBits(outputs.loss as Float32Array, want.loss, `${what}: loss`);
            expectSameBits(outputs.dlogits as Float32Array, want.dlogits, `${what}: dlogits`);
          }
        } finally {
          device.dispose();
        }
      }
    }
  });

  it('a grad op that runs before the loss op recomputes, and reuses only values unchanged since (sequence, feed)', async () => {
    for (const batch of [1, 3]) {
      const plan = partition(lossHead('grad first', V, S));
      expect(hostKindsInOrder(plan)).toEqual(['softmax_cross_entropy_grad', 'softmax_cross_entropy']);
      const device = openDevice({ backend: 'sim' });
      try {
        const exe = device.load(plan, { batch });
        const targets = Int32Array.from({ length: batch * S }, (_, i) => (i * 3 + 1) % V);
        const first = {
          logits: values(batch * V * S, 21, 3),
          targets,
          scale: new Float32Array(batch).fill(1),
        };
        const second = { ...first, logits: values(batch * V * S, 22, 3) };
        for (const [feeds, run] of [
          [first, 'fed'],
          [undefined, 'not fed again'],
          [second, 'fed new logits'],
        ] as const) {
          const logits = (feeds ?? first).logits;
          const want = lossHeadByKernels(logits, targets, 1, V, S);
          for (const mode of ['async', 'sync'] as const) {
            let outputs: Record<string, Float32Array | Int32Array> = {};
            const calls = await statisticsKernelCalls(async () => {
              outputs =
                mode === 'async' ? await exe.run(feeds, { copy: true }) : exe.runSync(feeds, { copy: true });
            });
            const what = `batch ${batch}, ${run}, ${mode}`;
            // The grad op finds the loss op's record of the previous sequence (or run), which is of
            // these logits only in a batch of 1 with nothing fed since.
            expect(calls, `${what}: statistics kernel calls`).toBe(
              batch === 1 && feeds === undefined ? batch : 2 * batch,
            );
            expectSameBits(outputs.loss as Float32Array, want.loss, `${what}: loss`);
            expectSameBits(outputs.dlogits as Float32Array, want.dlogits, `${what}: dlogits`);
          }
        }
      } finally {
        device.dispose();
      }
    }
  });

  it('two executables of one plan keep their own records', async () => {
    const plan = partition(lossHead('grad first', V, S));
    const device = openDevice({ backend: 'sim' });
    try {
      const a = device.load(plan);
      const b = device.load(plan);
      const targets = Int32Array.from({ length: S }, (_, i) => (i * 2) % V);
      const scale = Float32Array.of(1);
      const logitsA = values(V * S, 31, 3);
      const logitsB = values(V * S, 32, 3);
      a.runSync({ logits: logitsA, targets, scale });
      b.runSync({ logits: logitsB, targets, scale });
      // Both at the same versions; without feeds, each grad op may reuse its own executable's record only.
      const outA = a.runSync(undefined, { copy: true });
      const outB = await b.run(undefined, { copy: true });
      expectSameBits(outA.dlogits as Float32Array, lossHeadByKernels(logitsA, targets, 1, V, S).dlogits, 'a');
      expectSameBits(outB.dlogits as Float32Array, lossHeadByKernels(logitsB, targets, 1, V, S).dlogits, 'b');
    } finally {
      device.dispose();
    }
  });

  it('logits computed on the device: the same bits as plans with only the loss or only the grad op', async () => {
    const D = 8;
    const build = (parts: 'both' | 'loss' | 'grad') => {
      const g = new Graph();
      const w = g.param('w', [V, D]);
      const h = g.input('h', [D, S]);
      const targets = g.input('targets', [S], { dtype: 'int32' });
      const logits = matmul(w, h, { name: 'logits' });
      if (parts !== 'grad') g.output('loss', softmaxCrossEntropy(logits, targets));
      if (parts !== 'loss') g.output('dlogits', crossEntropyGrad(logits, targets, g.constant([1], [1, 1])));
      return g;
    };
    const batch = 3;
    const feeds = {
      w: values(V * D, 41, 0.5),
      h: values(batch * D * S, 42, 1),
      targets: Int32Array.from({ length: batch * S }, (_, i) => (i * 7) % V),
    };
    const device = openDevice({ backend: 'sim' });
    try {
      const load = (parts: 'both' | 'loss' | 'grad') => {
        const plan = partition(build(parts));
        expect(plan.kernels.length, 'the logits come from a device kernel').toBeGreaterThan(0);
        return device.load(plan, { batch });
      };
      const both = load('both');
      const lossOnly = load('loss');
      const gradOnly = load('grad');
      expect(both.slowHostOps).toEqual([]);
      expect(gradOnly.slowHostOps).toEqual([]);
      const want = { loss: lossOnly.runSync(feeds).loss!, dlogits: gradOnly.runSync(feeds).dlogits! };
      expect(await statisticsKernelCalls(() => gradOnly.run(feeds)), 'grad only').toBe(batch);
      for (const mode of ['async', 'sync'] as const) {
        let outputs: Record<string, Float32Array | Int32Array> = {};
        const calls = await statisticsKernelCalls(async () => {
          outputs =
            mode === 'async' ? await both.run(feeds, { copy: true }) : both.runSync(feeds, { copy: true });
        });
        expect(calls, mode).toBe(batch);
        expectSameBits(outputs.loss as Float32Array, want.loss as Float32Array, `${mode}: loss`);
        expectSameBits(outputs.dlogits as Float32Array, want.dlogits as Float32Array, `${mode}: dlogits`);
      }
      // The ops read the logits as the fp16 bits the kernel left, never decoded for them; the last
      // sequence's results are those of the kernels on the logits decoded afterwards.
      const before = statsKernelCalls().length;
      const outputs = both.runSync(feeds, { copy: true });
      const calls = statsKernelCalls().slice(before);
      expect(calls.map((args) => args[3]?.constructor.name)).toEqual(Array(batch).fill('Uint16Array'));
      const targets = feeds.targets.subarray((batch - 1) * S);
      const last = lossHeadByKernels(both.read('logits') as Float32Array, targets, 1, V, S);
      expectSameBits(outputs.loss!.subarray(batch - 1) as Float32Array, last.loss, 'last sequence: loss');
      expectSameBits(
        outputs.dlogits!.subarray((batch - 1) * V * S) as Float32Array,
        last.dlogits,
        'last sequence: dlogits',
      );
    } finally {
      device.dispose();
    }
  });
});
