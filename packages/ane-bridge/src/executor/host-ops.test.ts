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
import { describe, expect, it } from 'vitest';
import { openDevice } from '../device/device';

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
  it('softmax_cross_entropy runs on softmaxCrossEntropyForward, with an ignore index that is a class', async () => {
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
        { kinds: { softmax_cross_entropy: 'softmaxCrossEntropyForward' } },
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

  it('softmax_cross_entropy_grad runs on softmaxCrossEntropyForward + Backward (fed and constant dloss)', async () => {
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
        kinds: { softmax_cross_entropy_grad: 'softmaxCrossEntropyBackward' },
      });
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
    for (const i of [0, 5, 319]) {
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
