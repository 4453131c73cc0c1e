/**
 * Vocabularies beyond a chip's limits: a tied-embedding Llama training graph (real
 * softmaxCrossEntropy loss, derived backward) whose classifier cannot fit an ANE kernel. With
 * `hostFallback: 'allow'` the partitioner puts the classifier forward, its input gradient (dx, a
 * matmul contracting over the vocabulary) and its weight gradient on the host, each with its rule
 * in the report, and ane-bridge binds every one of them to a native kernel: `exe.slowHostOps` stays
 * empty. Stories110M's 32000 on M1 (spatial cap 16384) and Qwen3's 151936 on M4 (65536).
 */
import { valueAndGrad } from 'ane-autograd';
import { openDevice } from 'ane-bridge';
import {
  embedding,
  evaluate,
  Graph,
  linear,
  llamaBlock,
  type PartitionOptions,
  partition,
  rmsNorm,
  ropeTables,
  softmaxCrossEntropy,
} from 'ane-ir';
import { describe, expect, it } from 'vitest';

type ChipFamily = NonNullable<PartitionOptions['chip']>;

interface Shape {
  dim: number;
  heads: number;
  kvHeads: number;
  hidden: number;
  layers: number;
  vocab: number;
  seq: number;
}

/** A tied Llama (HF rotate-half RoPE), its loss and backward, partitioned for `chip` with the host fallback allowed. */
function tiedLlamaPlan(shape: Shape, chip: ChipFamily) {
  const { dim, heads, kvHeads, hidden, layers, vocab, seq } = shape;
  const headDim = dim / heads;
  const g = new Graph();
  const tokens = g.input('tokens', [seq], { dtype: 'int32' });
  const targets = g.input('targets', [seq], { dtype: 'int32' });
  const table = g.param('embed', [vocab, dim]);
  const rope = ropeTables(g, seq, headDim, { convention: 'rotate-half' });
  let h = embedding(tokens, table, { name: 'embed' });
  for (let l = 0; l < layers; l++) {
    const p = (name: string, dims: number[]) => g.param(`layers.${l}.${name}`, dims);
    const weights = {
      attnNorm: p('attn_norm', [dim]),
      ffnNorm: p('ffn_norm', [dim]),
      wq: p('wq', [dim, dim]),
      wk: p('wk', [kvHeads * headDim, dim]),
      wv: p('wv', [kvHeads * headDim, dim]),
      wo: p('wo', [dim, dim]),
      w1: p('w1', [hidden, dim]),
      w3: p('w3', [hidden, dim]),
      w2: p('w2', [dim, hidden]),
    };
    const input = h;
    h = g.scope(`layers.${l}`, () => llamaBlock(input, weights, { heads, kvHeads, rope, name: 'block' }));
  }
  const logits = linear(rmsNorm(h, g.param('norm', [dim]), { name: 'norm' }), table, { name: 'output' });
  const loss = softmaxCrossEntropy(logits, targets, { name: 'xent' });
  const derived = valueAndGrad(g, { loss, lossScale: true });
  const plan = partition(g, { placement: derived.placement, chip, hostFallback: 'allow' });
  return { graph: g, plan };
}

/** The classifier's host ops, by name: [kind, rule]. */
function classifierHostOps(plan: ReturnType<typeof tiedLlamaPlan>['plan']) {
  return Object.fromEntries(
    plan.hostOps
      .filter((op) => op.name === 'output' || op.name.startsWith('output.y.grad'))
      .map((op) => [op.name, [op.kind, op.ruleId]]),
  );
}

/** Loads the plan on the simulator for its chip: every host op must bind to a native kernel. */
function expectNativeHostOps(plan: ReturnType<typeof tiedLlamaPlan>['plan']) {
  const device = openDevice({ backend: 'sim', chip: plan.chip });
  try {
    const exe = device.load(plan);
    expect(exe.slowHostOps).toEqual([]);
    const report = exe.report();
    expect(report).toContain("host linear 'output': host kernel sgemm (native)");
    expect(report).toContain("host matmul 'output.y.grad.db': host kernel sgemm (native)");
    expect(report).toContain("host weight_grad 'output.y.grad.weight_grad': host kernel sgemm (native)");
  } finally {
    device.dispose();
  }
}

describe('a vocabulary beyond the chip: the classifier, forward and backward, on native host kernels', () => {
  it('Stories110M-shaped (vocab 32000) on M1: forward, dx and dW on the host, with the rules', () => {
    // Two layers of Stories110M's shapes (the layers add nothing here).
    const stories = { dim: 768, heads: 12, kvHeads: 12, hidden: 2048, layers: 2, vocab: 32000, seq: 256 };
    const { plan } = tiedLlamaPlan(stories, 'M1');
    expect(classifierHostOps(plan)).toEqual({
      output: ['linear', 'dim-spatial'],
      'output.y.grad.db': ['matmul', 'dim-spatial'],
      'output.y.grad.weight_grad': ['weight_grad', 'ir-weight-grad-host'],
    });
    for (const kernel of plan.kernels)
      expect(kernel.nodes.filter((n) => n.name.startsWith('output.')).map((n) => n.name)).toEqual([]);
    const report = plan.report();
    expect(report).toContain(
      "host linear 'output' (1 ops, 12.58 GFLOP): no ANE kernel can hold it: its packed input [1, 768, 1, 32256] is wider than the M1 spatial cap 16384 [dim-spatial]",
    );
    expect(report).toMatch(/host matmul 'output\.y\.grad\.db' .*over the M1 cap of 16384 \[dim-spatial\]/);
    expectNativeHostOps(plan);
  });

  it("Qwen3's vocab 151936 on M4: the same, over the spatial cap forward and the channel cap in dx", () => {
    const small = { dim: 64, heads: 4, kvHeads: 2, hidden: 128, layers: 1, vocab: 151936, seq: 32 };
    const { plan } = tiedLlamaPlan(small, 'M4');
    expect(classifierHostOps(plan)).toEqual({
      output: ['linear', 'dim-spatial'],
      'output.y.grad.db': ['matmul', 'dim-channel'],
      'output.y.grad.weight_grad': ['weight_grad', 'ir-weight-grad-host'],
    });
    expect(plan.report()).toContain('its packed input [1, 151936, 1, 96] has more than 65536 channels');
    expectNativeHostOps(plan);
  });

  it('a tied model over the M1 cap trains the same as evaluate: loss and every gradient within the fp16 bound', async () => {
    const shape = { dim: 64, heads: 4, kvHeads: 2, hidden: 96, layers: 1, vocab: 16448, seq: 32 };
    const { graph, plan } = tiedLlamaPlan(shape, 'M1');
    expect(classifierHostOps(plan).output).toEqual(['linear', 'dim-spatial']);
    let state = 7;
    const next = () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 4294967296;
    };
    const feeds: Record<string, Float32Array | Int32Array> = {
      tokens: Int32Array.from({ length: shape.seq }, () => Math.floor(next() * shape.vocab)),
      targets: Int32Array.from({ length: shape.seq }, () => Math.floor(next() * shape.vocab)),
      // Loss scaling keeps the fp16 gradients of the ANE kernels away from the subnormals.
      loss_scale: Float32Array.of(1024),
    };
    for (const node of graph.nodes) {
      if (node.op.kind !== 'param') continue;
      // Gains near 1, the rest uniform in ±1/√fan-in.
      feeds[node.name] =
        node.rank === 1
          ? Float32Array.from({ length: node.size }, () => 1 + (next() - 0.5) * 0.2)
          : Float32Array.from({ length: node.size }, () => (next() * 2 - 1) / Math.sqrt(node.shape[1]!));
    }
    const reference = evaluate(
      graph.outputs.map((o) => o.tensor),
      Object.fromEntries(
        Object.entries(feeds).map(([k, v]) => [k, v instanceof Int32Array ? v : Float64Array.from(v)]),
      ),
    );
    const device = openDevice({ backend: 'sim', chip: 'M1' });
    try {
      const exe = device.load(plan);
      expect(exe.slowHostOps).toEqual([]);
      const outputs = await exe.run(feeds, { copy: true });
      graph.outputs.forEach(({ name }, i) => {
        const expected = reference[i]!;
        const actual = outputs[name] as Float32Array;
        let maxAbs = 0;
        let maxError = 0;
        for (let j = 0; j < expected.length; j++) {
          maxAbs = Math.max(maxAbs, Math.abs(expected[j]!));
          maxError = Math.max(maxError, Math.abs(actual[j]! - expected[j]!));
        }
        expect(maxAbs, `${name} is not all zeros`).toBeGreaterThan(0);
        // As in plan.test.ts: fp16 storage between kernel ops, measured well under 1%.
        expect(maxError / maxAbs, name).toBeLessThan(0.01);
      });
    } finally {
      device.dispose();
    }
  });
});
