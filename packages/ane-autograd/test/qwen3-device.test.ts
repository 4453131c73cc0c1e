/**
 * A Qwen3-shaped model (GQA, Hugging Face rotate-half RoPE, per-head q/k RMSNorm, tied embedding
 * table) derived with valueAndGrad, partitioned, and run through device.load on the simulator:
 * every host op on a native kernel, the gradients equal to ane-ir's float64 evaluation of the same
 * graph within the fp16 bound, and the number of distinct programs independent of depth.
 */
import { openDevice } from 'ane-bridge';
import { evaluate, partition } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { qwen3TrainingGraph } from './qwen3-graph';

const TINY_QWEN3 = { dim: 64, heads: 4, kvHeads: 2, headDim: 16, hidden: 128, vocab: 256, seq: 32 };

function qwen3Graph(layers: number) {
  const { graph, result } = qwen3TrainingGraph(TINY_QWEN3, layers);
  return { graph, plan: partition(graph, { placement: result.placement }) };
}

function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
}

function normals(count: number, scale: number, seed: number): Float32Array {
  const next = random(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/** As the PyTorch parity tests: fp16 storage between ops, tens of chained ops (measured ~0.2%). */
const FP16_BOUND = 0.01;

describe('a Qwen3-shaped model (q/k norm, GQA, tied table) through device.load (simulator)', () => {
  it('places the q/k norms and the tied table sum on native host kernels; programs do not grow with depth', () => {
    const { plan } = qwen3Graph(2);
    const kinds = plan.hostOps.map((op) => op.kind);
    expect(kinds.filter((k) => k === 'head_rmsnorm')).toHaveLength(4); // q and k of 2 layers
    expect(kinds.filter((k) => k === 'head_rmsnorm_grad')).toHaveLength(4);
    const norm = plan.hostOps.find((op) => op.kind === 'head_rmsnorm')!;
    expect(norm.ruleId).toBe('ir-fp16-sum-of-squares');
    // The tied table's two contributions are summed on the host: no ANE kernel holds the sum.
    const sum = plan.hostOps.find((op) => op.kind === 'weight_grad_sum')!;
    expect(sum.ruleId).toBe('ir-weight-grad-host');
    for (const kernel of plan.kernels) expect(kernel.nodes).not.toContain(sum.composite!.result);
    expect(qwen3Graph(4).plan.programs.length).toBe(plan.programs.length);
  });

  it('matches the float64 evaluation of the same graph for the loss and every gradient', () => {
    const { graph, plan } = qwen3Graph(2);
    const feeds: Record<string, Float32Array | Int32Array> = {};
    const next = random(99);
    const { vocab, seq } = TINY_QWEN3;
    feeds.tokens = Int32Array.from({ length: seq }, () => Math.floor(next() * vocab));
    feeds.targets = Int32Array.from({ length: seq }, () => Math.floor(next() * vocab));
    let seed = 1;
    for (const node of graph.nodes) {
      if (node.op.kind !== 'param' || !node.op.trainable) continue;
      // Gains near 1, projections ~ N(0, 1/fan-in), the table ~ N(0, 0.5).
      feeds[node.name] =
        node.rank === 1
          ? normals(node.size, 0.1, seed++).map((v) => 1 + v)
          : normals(node.size, node.name === 'embed' ? 0.5 : 1 / Math.sqrt(node.shape[1]!), seed++);
    }
    feeds.loss_scale = new Float32Array([1024]);
    const reference = evaluate(
      graph.outputs.map((o) => o.tensor),
      feeds,
    );
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      expect(exe.slowHostOps).toEqual([]);
      const outputs = exe.runSync(feeds);
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
        expect(maxError / maxAbs, name).toBeLessThan(FP16_BOUND);
      });
    } finally {
      device.dispose();
    }
  });
});
