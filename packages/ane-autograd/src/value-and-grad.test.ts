import {
  add,
  embedding,
  evaluate,
  Graph,
  linear,
  llamaBlock,
  matmul,
  mul,
  partition,
  reduceSum,
  ropeTables,
  sigmoid,
  softmaxCrossEntropy,
  type Tensor,
  tanh,
} from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { stopGradient } from './backward';
import { AutogradError } from './errors';
import { gradcheck } from './gradcheck';
import { feedsFor, weightedSum } from './testing/check';
import { referenceGradients } from './testing/reference';
import { gradOutputName, valueAndGrad } from './value-and-grad';

/** A two-layer tanh MLP on x [IN, S] with a weighted-sum loss `[1, 1]`. */
function mlp(dtype: 'fp16' | 'fp32' = 'fp32', dims = { input: 6, hidden: 8, output: 4, seq: 5 }) {
  const graph = new Graph();
  const x = graph.input('x', [dims.input, dims.seq], { dtype, maxAbs: 1 });
  const w1 = graph.param('w1', [dims.hidden, dims.input], { dtype });
  const b1 = graph.param('b1', [dims.hidden], { dtype });
  const w2 = graph.param('w2', [dims.output, dims.hidden], { dtype });
  const h = graph.scope('layer1', () => tanh(linear(x, w1, { bias: b1, name: 'fc' }), { name: 'act' }));
  const y = graph.scope('layer2', () => linear(h, w2, { name: 'fc' }));
  const target = graph.input('target', [dims.output, dims.seq], { dtype, maxAbs: 1 });
  const diff = add(y, mul(target, -1), { name: 'diff' });
  const loss = mul(reduceSum(mul(diff, diff), [0, 1], { keepDims: true, name: 'sse' }), 1 / dims.seq, {
    name: 'mse',
  });
  return { graph, x, w1, b1, w2, target, loss };
}

describe('valueAndGrad', () => {
  it('declares the loss and grad.<name> of every trainable param, matching finite differences', () => {
    const { graph, x, w1, b1, w2, target, loss } = mlp();
    const feeds = feedsFor([x, w1, b1, w2, target], 11);
    const reference = referenceGradients(loss, [w1, b1, w2], feeds);
    const result = valueAndGrad(graph, { loss });
    expect(graph.outputs.map((o) => o.name)).toEqual(['loss', 'grad.w1', 'grad.b1', 'grad.w2']);
    expect([...result.grads.keys()]).toEqual(['w1', 'b1', 'w2']);
    expect(result.gradOutputs.get('w1')).toBe(gradOutputName(w1));
    const values = evaluate(
      graph.outputs.map((o) => o.tensor),
      feeds,
    );
    expect(values[0]![0]).toBeCloseTo(reference.loss, 12);
    reference.grads.forEach((expected, i) => {
      const derived = values[i + 1]!;
      expected.forEach((v, e) => {
        expect(derived[e]!).toBeCloseTo(v, 10);
      });
    });
    // And independently of the reference: central differences.
    for (const check of gradcheck({ loss, wrt: [w1, b1, w2], feeds })) {
      expect(check.maxRelError, check.name).toBeLessThan(1e-6);
    }
  });

  it('scales the gradients (not the loss) by the loss-scale input', () => {
    const { graph, x, w1, b1, w2, target, loss } = mlp();
    const feeds = feedsFor([x, w1, b1, w2, target], 12);
    const reference = referenceGradients(loss, [w1, b1, w2], feeds);
    const result = valueAndGrad(graph, { loss, lossScale: { maxAbs: 1024 } });
    expect(result.lossScale!.name).toBe('loss_scale');
    expect(result.lossScale!.shape).toEqual([1, 1]);
    feeds.set(result.lossScale!, Float64Array.of(512));
    const values = evaluate(
      graph.outputs.map((o) => o.tensor),
      feeds,
    );
    expect(values[0]![0]).toBeCloseTo(reference.loss, 12);
    reference.grads.forEach((expected, i) => {
      expected.forEach((v, e) => {
        expect(values[i + 1]![e]! / 512).toBeCloseTo(v, 10);
      });
    });
  });

  it('accumulates fan-out: a weight used by two layers gets both contributions', () => {
    const graph = new Graph();
    const x = graph.input('x', [3, 4], { dtype: 'fp32' });
    const w = graph.param('w', [3, 3], { dtype: 'fp32' });
    const h = sigmoid(matmul(w, x));
    const loss = weightedSum(matmul(w, h));
    const feeds = feedsFor([x, w], 4);
    const reference = referenceGradients(loss, [w], feeds);
    const { grads } = valueAndGrad(graph, { loss: reshapeToOne(loss) });
    const [derived] = evaluate([grads.get('w')!], feeds);
    reference.grads[0]!.forEach((v, e) => {
      expect(derived![e]!).toBeCloseTo(v, 10);
    });
  });

  it('stopGradient: the stopped branch contributes nothing; its forward value is unchanged', () => {
    const graph = new Graph();
    const x = graph.input('x', [2, 3], { dtype: 'fp32' });
    const w = graph.param('w', [2, 3], { dtype: 'fp32' });
    const stopped = stopGradient(mul(w, w));
    // loss = sum(w * x) + sum(stop(w²) * x): d/dw = x (the stopped w² contributes 0).
    const loss = reduceSum(add(mul(w, x), mul(stopped, x)), [0, 1], { keepDims: true });
    const xs = [1, 2, 3, 4, 5, 6];
    const ws = [0.5, -1, 2, 0.25, 1, -0.5];
    const [forward] = evaluate([loss], { x: xs, w: ws });
    const expectedLoss = xs.reduce((s, xv, i) => s + ws[i]! * xv + ws[i]! * ws[i]! * xv, 0);
    expect(forward![0]).toBeCloseTo(expectedLoss, 12);
    const { grads } = valueAndGrad(graph, { loss });
    const [dw] = evaluate([grads.get('w')!], { x: xs, w: ws });
    expect(Array.from(dw!)).toEqual(xs);
  });

  it('gives zeros for a source the loss does not read, and one output per name', () => {
    const graph = new Graph();
    const a = graph.param('a', [2], { dtype: 'fp32' });
    const b = graph.param('b', [2], { dtype: 'fp32' });
    const unused = graph.param('unused', [3], { dtype: 'fp32' });
    const loss = reduceSum(add(a, b), 0, { keepDims: true });
    // d/da = d/db = the same dy tensor: each output still gets a tensor of its own.
    const { grads } = valueAndGrad(graph, { loss, wrt: [a, b, unused] });
    expect(new Set(graph.outputs.map((o) => o.tensor)).size).toBe(graph.outputs.length);
    const values = evaluate([grads.get('a')!, grads.get('b')!, grads.get('unused')!], {
      a: [1, 2],
      b: [3, 4],
    });
    expect(values.map((v) => Array.from(v))).toEqual([
      [1, 1],
      [1, 1],
      [0, 0, 0],
    ]);
  });

  it('refuses what it cannot differentiate, with typed errors', () => {
    const { graph, loss, x } = mlp();
    const tokens = graph.input('tokens', [3], { dtype: 'int32' });
    expect(() => valueAndGrad(graph, { loss: x })).toThrow(/must be one floating-point value.*\[6, 5\]/);
    expect(() => valueAndGrad(graph, { loss, wrt: [tokens] })).toThrow(/only floating-point sources/);
    expect(() => valueAndGrad(new Graph(), { loss })).toThrow(AutogradError);
    valueAndGrad(graph, { loss });
    expect(() => valueAndGrad(graph, { loss })).toThrow(/already has an output 'grad.w1'/);
  });
});

/** `sum(t)` kept as `[1, ..., 1]`. */
function reshapeToOne(t: Tensor): Tensor {
  return t.rank === 0
    ? t
    : reduceSum(
        t,
        t.shape.map((_, axis) => axis),
        { keepDims: true },
      );
}

/** One GQA llamaBlock with RoPE at tiny dims, fp16 like its RoPE tables and mask. */
function tinyBlock() {
  const dim = 8;
  const seq = 4;
  const heads = 2;
  const headDim = dim / heads;
  const hidden = 12;
  const graph = new Graph();
  const x = graph.input('x', [dim, seq], { maxAbs: 4 });
  const p = (name: string, shape: number[]) => graph.param(name, shape, { maxAbs: 1 });
  const weights = {
    attnNorm: p('attn_norm', [dim]),
    ffnNorm: p('ffn_norm', [dim]),
    wq: p('wq', [heads * headDim, dim]),
    wk: p('wk', [headDim, dim]),
    wv: p('wv', [headDim, dim]),
    wo: p('wo', [dim, heads * headDim]),
    w1: p('w1', [hidden, dim]),
    w3: p('w3', [hidden, dim]),
    w2: p('w2', [dim, hidden]),
  };
  const rope = ropeTables(graph, seq, headDim, { convention: 'rotate-half' });
  const out = llamaBlock(x, weights, { heads, kvHeads: 1, rope, name: 'block' });
  const loss = reshapeToOne(weightedSum(out));
  return { graph, x, weights, loss, sources: [x, ...Object.values(weights)] };
}

describe('the derived graph partitions', () => {
  it('an fp16 MLP: forward and dx kernels on the ANE, weight gradients on the host', () => {
    const { graph, loss } = mlp('fp16');
    const { placement } = valueAndGrad(graph, { loss, lossScale: { maxAbs: 65504 } });
    // dW of both layers and the bias gradient (a sum of dy over positions).
    expect(Object.keys(placement).sort()).toEqual([
      'layer1.fc.y.grad.weight_grad',
      'layer1.fc.y_bias.grad.weight_grad',
      'layer2.fc.y.grad.weight_grad',
    ]);
    const plan = partition(graph, { placement });
    const weightGrads = plan.hostOps.filter((op) => op.kind === 'weight_grad');
    expect(weightGrads.map((op) => op.name).sort()).toEqual(Object.keys(placement).sort());
    expect(weightGrads.map((op) => op.composite!.args!.weight!.toString())).toContain(
      "reshape 'layer1.fc.bias' fp16[8, 1]",
    );
    expect(plan.kernels.length).toBeGreaterThan(0);
    expect(plan.outputs.map((o) => o.name)).toEqual(['loss', 'grad.w1', 'grad.b1', 'grad.w2']);
    const backward = plan.placements.filter((p) => p.node.includes('.grad.'));
    expect(backward.length).toBeGreaterThan(0);
    for (const placement of plan.placements) expect(placement.reason.length).toBeGreaterThan(0);
  });

  it('a tied embedding table: its two contributions are summed on the host (no ANE kernel), gradients exact', () => {
    const graph = new Graph();
    const [vocab, dim, seq] = [12, 8, 8]; // seq a power of two: the fp16 constant 1/seq is exact
    const tokens = graph.input('tokens', [seq], { dtype: 'int32' });
    const targets = graph.input('targets', [seq], { dtype: 'int32' });
    const table = graph.param('embed', [vocab, dim]);
    const hidden = embedding(tokens, table, { name: 'embed' });
    const logits = linear(hidden, table, { name: 'output' });
    const loss = softmaxCrossEntropy(logits, targets, { name: 'xent' });
    const { grads, placement } = valueAndGrad(graph, { loss });
    expect(placement['embed.grad.weight_grad_sum']).toBe('host');
    const plan = partition(graph, { placement });
    const sum = plan.hostOps.find((op) => op.kind === 'weight_grad_sum')!;
    expect(sum.ruleId).toBe('ir-weight-grad-host');
    expect(sum.inputs.map((t) => t.composites[0]?.kind)).toEqual(['weight_grad', 'scatter_add']);
    expect(plan.outputs.find((o) => o.name === 'grad.embed')!.tensor).toBe(sum.composite!.result);
    for (const kernel of plan.kernels) expect(kernel.nodes).not.toContain(sum.composite!.result);
    // The table's gradient by hand (float64): for the logits z = T·h, h = T[tokens]ᵀ,
    // dT = dzᵀ·... : the classifier's part Σ_s dz[:, s] h[:, s]ᵀ plus each looked-up row's Tᵀ dz.
    const feeds = {
      tokens: Int32Array.from([1, 4, 4, 0, 11, 7, 4, 2]),
      targets: Int32Array.from([3, 3, 9, 0, 2, 11, 5, 5]),
      // Multiples of 1/256 in [-0.5, 0.5]: exact in the fp16 param.
      embed: Float64Array.from({ length: vocab * dim }, (_, i) => Math.round(Math.sin(i * 0.37) * 128) / 256),
    };
    const [got] = evaluate([grads.get('embed')!], feeds);
    const T = feeds.embed;
    const expected = new Float64Array(vocab * dim);
    for (let s = 0; s < seq; s++) {
      const row = feeds.tokens[s]!;
      const z = Array.from({ length: vocab }, (_, v) => {
        let dot = 0;
        for (let d = 0; d < dim; d++) dot += T[v * dim + d]! * T[row * dim + d]!;
        return dot;
      });
      const max = Math.max(...z);
      const total = z.reduce((n, x) => n + Math.exp(x - max), 0);
      const dz = z.map((x, v) => (Math.exp(x - max) / total - (v === feeds.targets[s] ? 1 : 0)) / seq);
      for (let v = 0; v < vocab; v++)
        for (let d = 0; d < dim; d++) {
          expected[v * dim + d]! += dz[v]! * T[row * dim + d]!; // classifier: dz · hᵀ
          expected[row * dim + d]! += dz[v]! * T[v * dim + d]!; // lookup: (Tᵀ dz) into the row
        }
    }
    expected.forEach((want, i) => {
      expect(got![i]!, `dT[${i}]`).toBeCloseTo(want, 12);
    });
  });

  it('one llamaBlock (GQA, RoPE): partitions, and its gradients match finite differences', () => {
    // fp16 graph; evaluate still computes in float64.
    const { graph, weights, loss, sources } = tinyBlock();
    const feeds = feedsFor(sources, 21, -0.8, 0.8);
    const { grads, placement } = valueAndGrad(graph, { loss, wrt: sources });
    // Gradients of the derived graph (float64) against central differences of the loss.
    const derived = evaluate(
      sources.map((s) => grads.get(s.name)!),
      feeds,
    );
    const reference = referenceGradients(loss, sources, feeds);
    sources.forEach((source, i) => {
      const expected = reference.grads[i]!;
      expect(
        expected.some((v) => v !== 0),
        source.name,
      ).toBe(true);
      expected.forEach((v, e) => {
        expect(derived[i]![e]!, `${source.name}[${e}]`).toBeCloseTo(v, 9);
      });
    });
    for (const check of gradcheck({ loss, wrt: sources, feeds })) {
      expect(check.maxRelError, check.name).toBeLessThan(1e-5);
    }
    // One parameter per kernel value: ane-ir's packed single-input mode cannot yet hold a block's
    // forward and backward values together (rank-3 attention values, dW shapes), see the README.
    const plan = partition(graph, { placement, io: 'separate' });
    expect(plan.outputs.map((o) => o.name)).toContain('grad.wq');
    expect(plan.placements.every((p) => p.reason.length > 0)).toBe(true);
    const weightGrads = plan.hostOps.filter((op) => op.kind === 'weight_grad');
    // Every weight gradient (7 matmul weights, 2 RMSNorm gains) is one host op, a weight_grad call.
    expect(new Set(weightGrads.map((op) => op.composite!.args!.weight))).toEqual(
      new Set(Object.values(weights)),
    );
    expect(weightGrads.length).toBe(9);
    expect(plan.kernels.length).toBeGreaterThan(0);
  });
});

describe('high-rank forward values are recomputed, not saved', () => {
  it('the backward reads only values of rank 2 or less from the forward; the report says which', () => {
    const { graph, loss, sources } = tinyBlock();
    const firstBackward = graph.nodes.length;
    const { activations, grads } = valueAndGrad(graph, { loss, wrt: sources });
    for (const value of activations.filter((a) => a.policy === 'saved')) {
      expect(value.shape.length, value.name).toBeLessThanOrEqual(2);
    }
    const recomputed = activations.filter((a) => a.policy === 'recomputed').map((a) => a.name);
    expect(recomputed).toEqual(expect.arrayContaining(['block.attn.probs', 'block.attn.q_rope.out']));
    for (const node of graph.nodes.slice(firstBackward)) {
      for (const input of node.inputs) {
        if (input.id < firstBackward && input.op.kind !== 'constant') {
          expect(input.rank, `${node.name} reads ${input.name}`).toBeLessThanOrEqual(2);
        }
      }
    }
    // The same gradients as reading the saved values.
    const saved = tinyBlock();
    const savedResult = valueAndGrad(saved.graph, { loss: saved.loss, wrt: saved.sources, highRank: 'save' });
    expect(savedResult.activations.some((a) => a.policy === 'saved' && a.shape.length === 3)).toBe(true);
    expect(savedResult.activations.some((a) => a.policy === 'recomputed')).toBe(false);
    const feeds = (sources: readonly Tensor[]) => feedsFor(sources, 22, -0.8, 0.8);
    const a = evaluate([...grads.values()], feeds(sources));
    const b = evaluate([...savedResult.grads.values()], feeds(saved.sources));
    a.forEach((values, i) => {
      values.forEach((v, e) => {
        expect(v).toBeCloseTo(b[i]![e]!, 12);
      });
    });
  });
});

describe('every layer gets the same backward', () => {
  it('backward ops of layers 1 and 2 match one for one: op, local name, shape (what kernels print)', () => {
    const dim = 8;
    const seq = 4;
    const graph = new Graph();
    let x = graph.input('x', [dim, seq], { maxAbs: 4 });
    const rope = ropeTables(graph, seq, 4, { convention: 'rotate-half' });
    for (let layer = 0; layer < 4; layer++) {
      const p = (name: string, shape: number[]) => graph.param(`layers.${layer}.${name}`, shape);
      x = llamaBlock(
        x,
        {
          attnNorm: p('attn_norm', [dim]),
          ffnNorm: p('ffn_norm', [dim]),
          wq: p('wq', [8, dim]),
          wk: p('wk', [4, dim]),
          wv: p('wv', [4, dim]),
          wo: p('wo', [dim, 8]),
          w1: p('w1', [12, dim]),
          w3: p('w3', [12, dim]),
          w2: p('w2', [dim, 12]),
        },
        { heads: 2, kvHeads: 1, rope, name: `layers.${layer}` },
      );
    }
    const firstBackward = graph.nodes.length;
    valueAndGrad(graph, { loss: weightedSum(x) });
    const backwardOf = (layer: number) =>
      graph.nodes
        .slice(firstBackward)
        .filter((n) => n.name.startsWith(`layers.${layer}.`))
        .map(
          (n) => `${n.op.kind} ${n.name.slice(`layers.${layer}.`.length)} ${n.label} [${n.shape.join(',')}]`,
        );
    expect(backwardOf(1).length).toBeGreaterThan(50);
    expect(backwardOf(2)).toEqual(backwardOf(1));
    // The filled constants the rules emit (zeros padding a slice's gradient, ones broadcasting a
    // reduction back) are one node per shape and value, shared by every layer: the layers' kernels
    // then read the same constants (the partitioner lowers one per program, not one per layer).
    const constantsOf = (layer: number) => {
      const read = new Set<Tensor>();
      for (const node of graph.nodes.slice(firstBackward)) {
        if (!node.name.startsWith(`layers.${layer}.`)) continue;
        for (const input of node.inputs) if (input.op.kind === 'constant' && input.size > 1) read.add(input);
      }
      return read;
    };
    const [one, two] = [constantsOf(1), constantsOf(2)];
    expect(one.size).toBeGreaterThan(0);
    expect([...two]).toEqual([...one]);
  });
});

describe('the backward of a constant seed', () => {
  it('folds one-element constant arithmetic (seed · 1/N) so the plan lowers without a loss scale', () => {
    const graph = new Graph();
    const x = graph.input('x', [4, 8], { maxAbs: 1 });
    const w = graph.param('w', [4, 4], { maxAbs: 1 });
    const loss = mul(reduceSum(matmul(w, x), [0, 1], { keepDims: true }), 0.5, { name: 'mean' });
    const firstBackward = graph.nodes.length;
    const { grads, placement } = valueAndGrad(graph, { loss });
    // No live backward op reads only constants and yields one element: those became constants.
    const live = new Set<Tensor>();
    const stack = graph.outputs.map((o) => o.tensor);
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (!live.has(node)) stack.push(...node.inputs);
      live.add(node);
    }
    for (const node of graph.nodes.slice(firstBackward).filter((n) => live.has(n))) {
      const constantOnly = node.inputs.length > 0 && node.inputs.every((i) => i.op.kind === 'constant');
      expect(constantOnly && node.size === 1, node.name).toBe(false);
    }
    const plan = partition(graph, { placement });
    expect(plan.outputs.map((o) => o.name)).toEqual(['loss', 'grad.w']);
    // d/dw sum(0.5 · w x) = 0.5 · (row sums of x) for every row of w.
    const xs = Float64Array.from({ length: 32 }, (_, i) => (i % 5) - 2);
    const [dw] = evaluate([grads.get('w')!], { x: xs, w: new Float64Array(16) });
    const rowSums = [0, 1, 2, 3].map((k) => 0.5 * xs.slice(k * 8, k * 8 + 8).reduce((a, b) => a + b, 0));
    expect(Array.from(dw!)).toEqual([0, 1, 2, 3].flatMap(() => rowSums));
  });
});
