import type { LlamaConfig } from '../model/config';

/** A small GQA Llama (hidden 32, 4 query heads over 2 KV heads, vocab 32, tied) the simulator runs in milliseconds per step. */
export const SMALL: LlamaConfig = Object.freeze({
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  vocab_size: 32,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  max_position_embeddings: 64,
});
