/**
 * Parity with PyTorch through `device.load`: the fixtures' models (a Llama block, MHA and GQA, with
 * Hugging Face's rotate-half RoPE, a final RMSNorm, a classifier and ane-ir's softmax
 * cross-entropy; and a two-layer ReLU MLP) are built with ane-ir, differentiated by ane-autograd's
 * `valueAndGrad`, partitioned, loaded on the simulator (the ANE's fp16 numerics), fed the fixture's
 * weights, input and targets, and every parameter's gradient and the input's gradient is compared
 * with PyTorch's (float64, rounded to float32).
 *
 * The bound (fp16): for each tensor, max |ours − PyTorch| ≤ BOUND · max |PyTorch| (the error
 * relative to the tensor's largest gradient). The ANE stores every intermediate in fp16 (a relative
 * rounding of 2^-11 ≈ 4.9e-4 per value) and the backward of a block chains some tens of such
 * roundings (the forward's activations, then dy through the classifier, the FFN, attention's
 * softmax and both RMSNorms), with fp16 sums of up to 128 terms; small entries of a tensor carry
 * the absolute error of its large ones, so an elementwise relative error is reported but not
 * bounded. Measured on these fixtures the worst tensor sits near 0.15% of its largest gradient
 * (elementwise relative errors up to ~6% on small entries); the bound is 1%. A loss scale of 1024 keeps the gradients (≈1e-3 to 1e-1 at scale 1) clear of fp16's
 * subnormals; the gradients are divided by it on the host. A model with query heads mapped to the
 * wrong KV heads (h mod KV instead of HF's h / (H / KV)) misses the bound, and so does a
 * deliberately wrong VJP rule (a linear layer's dx computed as W·dy, missing its transpose).
 */

import { VJP_RULES, type VjpRule, valueAndGrad } from 'ane-autograd';
import { openDevice } from 'ane-bridge';
import {
  add,
  causalMask,
  concat,
  embedding,
  evaluate,
  Graph,
  linear,
  llamaBlock,
  matmul,
  mergeHeads,
  mul,
  partition,
  relu,
  rmsNorm,
  rope,
  ropeTables,
  slice,
  softmax,
  softmaxCrossEntropy,
  splitHeads,
  swiglu,
  type Tensor,
  transpose,
} from 'ane-ir';
import { describe, expect, it } from 'vitest';
import {
  type Fixture,
  type LlamaFixtureConfig,
  type LlamaFixtureName,
  loadLlamaFixture,
  loadMlpFixture,
} from './fixtures';

/** Max |ours − PyTorch| over max |PyTorch|, per tensor (see the header). */
const BOUND = 0.01;
const LOSS_SCALE = 1024;

interface Row {
  tensor: string;
  maxAbs: number;
  /** max |ours − PyTorch| / max |PyTorch|: what BOUND bounds. */
  normalized: number;
  /** max over entries of |ours − PyTorch| / |PyTorch| (entries with |PyTorch| > 1% of the max). */
  maxRel: number;
}

function compare(name: string, ours: ArrayLike<number>, reference: Float32Array): Row {
  let largest = 0;
  for (const v of reference) largest = Math.max(largest, Math.abs(v));
  let maxAbs = 0;
  let maxRel = 0;
  for (let i = 0; i < reference.length; i++) {
    const error = Math.abs(ours[i]! - reference[i]!);
    if (!(error <= maxAbs)) maxAbs = error; // NaN sticks
    if (Math.abs(reference[i]!) > 0.01 * largest) maxRel = Math.max(maxRel, error / Math.abs(reference[i]!));
  }
  return { tensor: name, maxAbs, normalized: maxAbs / largest, maxRel };
}

/** Query head h reads KV head `kvHeadOf(h)`; undefined: ane-ir's llamaBlock (HF's repeat_kv). */
type KvMapping = (head: number, heads: number, kvHeads: number) => number;

/**
 * A Llama block written out from ane-ir's composites with a chosen KV head mapping (the same
 * formulas as `llamaBlock`, whose own mapping is HF's): how a wrong mapping is built.
 */
function blockWithMapping(
  x: Tensor,
  w: Record<string, Tensor>,
  config: LlamaFixtureConfig,
  tables: ReturnType<typeof ropeTables>,
  kvHeadOf: KvMapping,
): Tensor {
  const { heads, kvHeads, headDim, seq, eps } = config;
  const graph = x.graph;
  return graph.scope('layers.0', () => {
    const n = rmsNorm(x, w.attention_norm!, { eps, name: 'attn_norm' });
    const q = rope(splitHeads(linear(n, w.wq!, { name: 'q' }), heads, { name: 'qh' }), tables, {
      name: 'q_rope',
    });
    const k = rope(splitHeads(linear(n, w.wk!, { name: 'k' }), kvHeads, { name: 'kh' }), tables, {
      name: 'k_rope',
    });
    const v = splitHeads(linear(n, w.wv!, { name: 'v' }), kvHeads, { name: 'vh' });
    const expand = (t: Tensor, name: string) =>
      concat(
        Array.from({ length: heads }, (_, h) =>
          slice(t, [kvHeadOf(h, heads, kvHeads), 0, 0], [1, seq, headDim], { name: `${name}_h${h}` }),
        ),
        0,
        { name },
      );
    const scores = matmul(q, transpose(expand(k, 'k_exp'), [0, 2, 1]), { name: 'scores' });
    const masked = add(mul(scores, 1 / Math.sqrt(headDim), { name: 'scaled' }), causalMask(graph, seq), {
      name: 'masked',
    });
    const probs = softmax(masked, -1, { name: 'probs' });
    const attn = mergeHeads(matmul(probs, expand(v, 'v_exp'), { name: 'ctx' }), { name: 'att' });
    const h = add(x, linear(attn, w.wo!, { name: 'o' }), { name: 'h' });
    const m = rmsNorm(h, w.ffn_norm!, { eps, name: 'ffn_norm' });
    return add(h, swiglu(m, w.w1!, w.w3!, w.w2!, { name: 'ffn' }), { name: 'out' });
  });
}

function llamaModel(fixture: Fixture<LlamaFixtureConfig>, kvHeadOf?: KvMapping) {
  const config = fixture.config;
  const { dim, heads, kvHeads, seq, headDim, eps, ropeTheta } = config;
  const g = new Graph();
  const x = g.input('x', [dim, seq]);
  const targets = g.input('targets', [seq], { dtype: 'int32' });
  const param = (name: string) => g.param(name, fixture.tensor(name).shape);
  const w: Record<string, Tensor> = {};
  for (const name of ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w3', 'w2'])
    w[name] = param(`layers.0.${name}`);
  const tables = ropeTables(g, seq, headDim, { base: ropeTheta, convention: 'rotate-half' });
  const out =
    kvHeadOf === undefined
      ? llamaBlock(
          x,
          {
            attnNorm: w.attention_norm!,
            ffnNorm: w.ffn_norm!,
            wq: w.wq!,
            wk: w.wk!,
            wv: w.wv!,
            wo: w.wo!,
            w1: w.w1!,
            w3: w.w3!,
            w2: w.w2!,
          },
          { heads, kvHeads, rope: tables, eps, name: 'layers.0' },
        )
      : blockWithMapping(x, w, config, tables, kvHeadOf);
  const normed = rmsNorm(out, param('norm'), { eps, name: 'final_norm' });
  const logits = linear(normed, param('output'), { name: 'classifier' });
  const loss = softmaxCrossEntropy(logits, targets, { name: 'xent' });
  return { g, x, loss };
}

function mlpModel(fixture: Fixture<unknown>) {
  const g = new Graph();
  const x = g.input('x', fixture.tensor('x').shape);
  const targets = g.input('targets', [fixture.targets.length], { dtype: 'int32' });
  const [w1, b1, w2, b2] = ['w1', 'b1', 'w2', 'b2'].map((name) =>
    g.param(name, fixture.tensor(name).shape),
  ) as [Tensor, Tensor, Tensor, Tensor];
  const hidden = g.scope('layer1', () => relu(linear(x, w1, { bias: b1, name: 'fc' })));
  const logits = g.scope('layer2', () => linear(hidden, w2, { bias: b2, name: 'fc' }));
  const loss = softmaxCrossEntropy(logits, targets, { name: 'xent' });
  return { g, x, loss };
}

/**
 * valueAndGrad (with the input's gradient and a loss-scale input), partition, device.load on the
 * simulator, one run on the fixture's values; every gradient compared with PyTorch's.
 */
async function runParity(fixture: Fixture<unknown>, model: { g: Graph; x: Tensor; loss: Tensor }) {
  const { g, x, loss } = model;
  const params = fixture.params.map((p) => g.node(p.name));
  const derived = valueAndGrad(g, { loss, wrt: [x, ...params], lossScale: { maxAbs: LOSS_SCALE } });
  // ane-ir's default packed I/O: one input and one output per kernel.
  const plan = partition(g, { placement: derived.placement });
  const device = openDevice({ backend: 'sim' });
  try {
    const exe = device.load(plan);
    const feeds: Record<string, Float32Array | Int32Array> = {
      x: fixture.tensor('x').data,
      targets: fixture.targets,
      [derived.lossScale!.name]: Float32Array.of(LOSS_SCALE),
    };
    for (const p of fixture.params) feeds[p.name] = p.data;
    const outputs = await exe.run(feeds, { copy: true });
    const rows = [fixture.tensor('x'), ...fixture.params].map((t) => {
      const ours = (outputs[derived.gradOutputs.get(t.name)!] as Float32Array).map((v) => v / LOSS_SCALE);
      return compare(t.name, ours, fixture.grad(t.name));
    });
    const lossValue = (outputs.loss as Float32Array)[0]!;
    // The backward ran on the ANE, and every host op on a native kernel (none on the generic path).
    expect(plan.kernels.length).toBeGreaterThan(0);
    expect(plan.hostOps.map((op) => op.kind)).toEqual(
      expect.arrayContaining(['softmax_cross_entropy', 'softmax_cross_entropy_grad', 'weight_grad']),
    );
    expect(exe.slowHostOps).toEqual([]);
    return { rows, lossValue, exe, plan };
  } finally {
    device.dispose();
  }
}

function report(label: string, fixture: Fixture<unknown>, result: Awaited<ReturnType<typeof runParity>>) {
  console.log(`${label}: loss ${result.lossValue} (PyTorch ${fixture.loss})`);
  console.log(
    `host ops: ${result.plan.hostOps.map((op) => op.kind).join(', ')}; on the generic evaluator: ${
      result.exe.slowHostOps.map((op) => `${op.name} (${op.reason})`).join('; ') || 'none'
    }`,
  );
  console.table(
    result.rows.map((r) => ({
      tensor: r.tensor,
      'max abs': r.maxAbs.toExponential(2),
      'max abs / max |grad|': r.normalized.toExponential(2),
      'max rel': r.maxRel.toExponential(2),
    })),
  );
}

describe('derived gradients through device.load match PyTorch within the fp16 bound', () => {
  for (const name of ['llama-block-mha', 'llama-block-gqa'] as LlamaFixtureName[]) {
    it(`${name}: every parameter and the input`, async () => {
      const fixture = loadLlamaFixture(name);
      const result = await runParity(fixture, llamaModel(fixture));
      report(name, fixture, result);
      expect(Math.abs(result.lossValue - fixture.loss)).toBeLessThan(BOUND * fixture.loss);
      expect(result.rows).toHaveLength(fixture.params.length + 1);
      for (const row of result.rows) expect(row.normalized, row.tensor).toBeLessThanOrEqual(BOUND);
    });
  }

  it('mlp-relu: every parameter and the input', async () => {
    const fixture = loadMlpFixture();
    const result = await runParity(fixture, mlpModel(fixture));
    report('mlp-relu', fixture, result);
    expect(Math.abs(result.lossValue - fixture.loss)).toBeLessThan(BOUND * fixture.loss);
    for (const row of result.rows) expect(row.normalized, row.tensor).toBeLessThanOrEqual(BOUND);
  });

  it('a GQA model with the wrong KV head mapping misses the bound', async () => {
    const fixture = loadLlamaFixture('llama-block-gqa');
    // HF's mapping written out the same way passes (the helper itself is right)...
    const right = await runParity(
      fixture,
      llamaModel(fixture, (h, heads, kv) => Math.floor(h / (heads / kv))),
    );
    for (const row of right.rows) expect(row.normalized, row.tensor).toBeLessThanOrEqual(BOUND);
    // ...query head h reading KV head h mod KV does not.
    const wrong = await runParity(
      fixture,
      llamaModel(fixture, (h, _heads, kv) => h % kv),
    );
    report('llama-block-gqa, wrong KV mapping', fixture, wrong);
    expect(Math.max(...wrong.rows.map((r) => r.normalized))).toBeGreaterThan(BOUND);
  });

  it('an embedding model with an ignore index: the table gradient (scatter_add) and the loss head run native and match evaluate', async () => {
    // No PyTorch fixture here: the float64 interpreter on the derived graph is the reference.
    const [vocab, dim, classes, seq] = [11, 16, 6, 12];
    const g = new Graph();
    const tokens = g.input('tokens', [seq], { dtype: 'int32' });
    const targets = g.input('targets', [seq], { dtype: 'int32' });
    const table = g.param('table', [vocab, dim]);
    const head = g.param('head', [classes, dim]);
    const hidden = embedding(tokens, table, { name: 'embed' });
    const logits = g.scope('head', () => linear(hidden, head, { name: 'fc' }));
    const loss = softmaxCrossEntropy(logits, targets, { ignoreIndex: 0, name: 'xent' });
    const derived = valueAndGrad(g, { loss, lossScale: { maxAbs: LOSS_SCALE } });
    const plan = partition(g, { placement: derived.placement });
    const wave = (n: number, k: number, scale: number) =>
      Float32Array.from({ length: n }, (_, i) => Math.round(Math.sin(i * 7.31 + k) * scale * 1024) / 1024);
    const feeds = {
      tokens: Int32Array.from({ length: seq }, (_, i) => (i * 7) % vocab),
      // Class 0 is ignored: three positions drop out of the mean.
      targets: Int32Array.from({ length: seq }, (_, i) => (i % 4 === 0 ? 0 : (i * 5) % classes)),
      table: wave(vocab * dim, 1, 1),
      head: wave(classes * dim, 2, 0.5),
      [derived.lossScale!.name]: Float32Array.of(LOSS_SCALE),
    };
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      expect(plan.hostOps.map((op) => op.kind)).toEqual(
        expect.arrayContaining([
          'embedding',
          'scatter_add',
          'softmax_cross_entropy',
          'softmax_cross_entropy_grad',
        ]),
      );
      expect(exe.slowHostOps).toEqual([]);
      const outputs = await exe.run(feeds, { copy: true });
      const names = ['loss', ...[...derived.gradOutputs.values()]];
      const expected = evaluate(
        names.map((n) => g.outputs.find((o) => o.name === n)!.tensor),
        Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, Float64Array.from(v)])),
      );
      names.forEach((name, k) => {
        const row = compare(name, outputs[name] as Float32Array, Float32Array.from(expected[k]!));
        expect(row.normalized, name).toBeLessThanOrEqual(BOUND);
      });
    } finally {
      device.dispose();
    }
  });

  it("a deliberately wrong rule (a linear layer's dx missing its transpose) misses the bound", async () => {
    const fixture = loadLlamaFixture('llama-block-mha');
    const rules = VJP_RULES as Record<string, VjpRule>;
    const right = rules.matmul!;
    // dx of y = W·x with a square W computed as W·dy instead of Wᵀ·dy (shapes still agree).
    rules.matmul = (args) => {
      const grads = [...right(args)];
      const [a, b] = args.node.inputs as [Tensor, Tensor];
      const op = args.node.op as { transposeX?: boolean; transposeY?: boolean };
      if (
        grads[1] !== undefined &&
        a.rank === 2 &&
        b.rank === 2 &&
        a.shape[0] === a.shape[1] &&
        !op.transposeX
      )
        grads[1] = matmul(a, args.dy, { transposeY: op.transposeY ?? false, name: 'db_wrong' });
      return grads;
    };
    let wrong: Awaited<ReturnType<typeof runParity>>;
    try {
      wrong = await runParity(fixture, llamaModel(fixture));
    } finally {
      rules.matmul = right;
    }
    report('llama-block-mha, dx missing a transpose', fixture, wrong);
    expect(wrong.rows.find((r) => r.tensor === 'x')!.normalized).toBeGreaterThan(BOUND);
  });
});
