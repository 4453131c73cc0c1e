/**
 * A Qwen3-shaped training graph for tests: token embedding (tied classifier table), Llama blocks with
 * GQA, Hugging Face rotate-half RoPE (base 1e6) and per-head q/k RMSNorm, final norm, cross-entropy,
 * and its backward from valueAndGrad. Callers partition it as their test needs.
 */
import { embedding, Graph, linear, llamaBlock, rmsNorm, ropeTables, softmaxCrossEntropy } from 'ane-ir';
import { valueAndGrad } from '../src/value-and-grad';

export interface Qwen3Dims {
  dim: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  vocab: number;
  seq: number;
}

export function qwen3TrainingGraph(dims: Qwen3Dims, layers: number) {
  const { dim, heads, kvHeads, headDim, hidden, vocab, seq } = dims;
  const graph = new Graph();
  const tokens = graph.input('tokens', [seq], { dtype: 'int32' });
  const targets = graph.input('targets', [seq], { dtype: 'int32' });
  const table = graph.param('embed', [vocab, dim]);
  const rope = ropeTables(graph, seq, headDim, { convention: 'rotate-half', base: 1e6 });
  let h = embedding(tokens, table, { name: 'embed' });
  for (let layer = 0; layer < layers; layer++) {
    const p = (name: string, shape: number[]) => graph.param(`layers.${layer}.${name}`, shape);
    const weights = {
      attnNorm: p('attn_norm', [dim]),
      ffnNorm: p('ffn_norm', [dim]),
      wq: p('wq', [heads * headDim, dim]),
      wk: p('wk', [kvHeads * headDim, dim]),
      wv: p('wv', [kvHeads * headDim, dim]),
      wo: p('wo', [dim, heads * headDim]),
      w1: p('w1', [hidden, dim]),
      w3: p('w3', [hidden, dim]),
      w2: p('w2', [dim, hidden]),
    };
    const qkNorm = { q: p('q_norm', [headDim]), k: p('k_norm', [headDim]) };
    const input = h;
    h = graph.scope(`layers.${layer}`, () =>
      llamaBlock(input, weights, { heads, kvHeads, rope, qkNorm, eps: 1e-6, name: 'block' }),
    );
  }
  const logits = linear(rmsNorm(h, graph.param('norm', [dim]), { eps: 1e-6, name: 'norm' }), table, {
    name: 'output',
  });
  const loss = softmaxCrossEntropy(logits, targets, { name: 'xent' });
  return { graph, result: valueAndGrad(graph, { loss, lossScale: true }) };
}
