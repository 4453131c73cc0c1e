/**
 * Model graphs for tests: Llama-style decoder stacks built with the public composites, shapes only
 * (trainable weights have no data; they travel as kernel inputs).
 */
import { embedding, linear, llamaBlock, type RopeConvention, rmsNorm, ropeTables } from '../composites';
import { Graph } from '../graph/graph';
import type { Tensor } from '../graph/tensor';

export interface LlamaConfig {
  dim: number;
  heads: number;
  kvHeads?: number;
  /** Default dim / heads. */
  headDim?: number;
  hidden: number;
  seq: number;
  layers: number;
  /** With a vocabulary: token ids in, embedding and tied classifier on either end. */
  vocab?: number;
  convention?: RopeConvention;
}

/** Stories110M (llama2.c): 12 layers, dim 768, 12 heads, FFN 2048, seq 256, vocab 32000. */
export const STORIES_110M: LlamaConfig = {
  dim: 768,
  heads: 12,
  hidden: 2048,
  seq: 256,
  layers: 12,
  vocab: 32000,
};

export function llamaGraph(config: LlamaConfig): { graph: Graph; output: Tensor } {
  const g = new Graph();
  const { dim, heads, hidden, seq } = config;
  const kvHeads = config.kvHeads ?? heads;
  const headDim = config.headDim ?? dim / heads;
  const tables = ropeTables(g, seq, headDim, { convention: config.convention ?? 'interleaved' });
  let table: Tensor | undefined;
  let h: Tensor;
  if (config.vocab !== undefined) {
    const tokens = g.input('tokens', [seq], { dtype: 'int32' });
    table = g.param('tok_embeddings', [config.vocab, dim]);
    h = embedding(tokens, table, { name: 'embed' });
  } else {
    h = g.input('x', [dim, seq]);
  }
  for (let l = 0; l < config.layers; l++) {
    const p = (name: string, shape: number[]) => g.param(`layers.${l}.${name}`, shape);
    h = llamaBlock(
      h,
      {
        attnNorm: p('attention_norm', [dim]),
        ffnNorm: p('ffn_norm', [dim]),
        wq: p('wq', [heads * headDim, dim]),
        wk: p('wk', [kvHeads * headDim, dim]),
        wv: p('wv', [kvHeads * headDim, dim]),
        wo: p('wo', [dim, heads * headDim]),
        w1: p('w1', [hidden, dim]),
        w3: p('w3', [hidden, dim]),
        w2: p('w2', [dim, hidden]),
      },
      { heads, kvHeads, rope: tables, name: `layers.${l}` },
    );
  }
  if (table !== undefined) {
    const normed = rmsNorm(h, g.param('norm', [dim]), { name: 'norm' });
    h = linear(normed, table, { name: 'output' });
  }
  g.output(config.vocab === undefined ? 'out' : 'logits', h);
  return { graph: g, output: h };
}
