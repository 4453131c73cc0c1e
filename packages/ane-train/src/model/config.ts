/**
 * Llama-family model configs under Hugging Face's `config.json` names, and the presets. A config is
 * validated once, here (zod), and is plain JSON afterwards: it crosses into worker processes as is.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';

export interface LlamaConfig {
  /** `qwen3` adds Qwen3's per-head RMSNorm of queries and keys (`q_norm`, `k_norm`) before RoPE. */
  model_type: 'llama' | 'qwen3';
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Default `hidden_size / num_attention_heads`; Qwen3 sets it explicitly (128). */
  head_dim: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** The classifier reuses the embedding table (no `lm_head.weight`). */
  tie_word_embeddings: boolean;
  max_position_embeddings: number;
}

export type PresetName = 'tiny' | 'stories15M' | 'stories42M' | 'stories110M' | 'qwen3-0.6b';

/** llama2.c's TinyStories models as Hugging Face converts them: MHA, tied, rotate-half RoPE. */
function stories(
  hidden_size: number,
  intermediate_size: number,
  layers: number,
  heads: number,
  max_position_embeddings: number,
): LlamaConfig {
  return {
    model_type: 'llama',
    hidden_size,
    intermediate_size,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    head_dim: hidden_size / heads,
    vocab_size: 32000,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    max_position_embeddings,
  };
}

export const PRESETS: Readonly<Record<PresetName, LlamaConfig>> = Object.freeze({
  /** The demo: a byte-level model (vocab 256) with GQA, small enough to train in the simulator. */
  tiny: {
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 176,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    vocab_size: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    max_position_embeddings: 256,
  },
  stories15M: stories(288, 768, 6, 6, 256),
  stories42M: stories(512, 1376, 8, 8, 1024),
  stories110M: stories(768, 2048, 12, 12, 1024),
  'qwen3-0.6b': {
    model_type: 'qwen3',
    hidden_size: 1024,
    intermediate_size: 3072,
    num_hidden_layers: 28,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 151936,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    max_position_embeddings: 40960,
  },
});

export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

const positiveInt = z.number().int().positive();

/** What a Hugging Face `config.json` of a Llama or Qwen3 model holds (other keys are ignored). */
const HF_CONFIG = z.object({
  model_type: z.enum(['llama', 'qwen3']).optional(),
  architectures: z.array(z.string()).optional(),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.optional(),
  head_dim: positiveInt.optional(),
  vocab_size: positiveInt,
  rms_norm_eps: z.number().positive().max(1).optional(),
  rope_theta: z.number().positive().optional(),
  tie_word_embeddings: z.boolean().optional(),
  max_position_embeddings: positiveInt.optional(),
  hidden_act: z.literal('silu').optional(),
  attention_bias: z.literal(false).optional(),
  mlp_bias: z.literal(false).optional(),
  rope_scaling: z.null().optional(),
});

/**
 * Validates a Hugging Face Llama/Qwen3 `config.json` (parsed JSON) and fills HF's defaults
 * (`num_key_value_heads` = heads, `head_dim` = hidden / heads, eps 1e-6, theta 10000, tied false,
 * as `LlamaConfig` in transformers). Throws ConfigError naming the field and the file.
 */
export function parseLlamaConfig(value: unknown, options: { file?: string } = {}): LlamaConfig {
  const where = options.file !== undefined ? ` in ${options.file}` : '';
  const parsed = HF_CONFIG.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    throw new ConfigError(
      `model config${where}: '${field}': ${issue.message}. A Hugging Face Llama config.json has hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size (and optionally num_key_value_heads, head_dim, rms_norm_eps, rope_theta, tie_word_embeddings, max_position_embeddings)`,
      field,
      options.file,
    );
  }
  const raw = parsed.data;
  const modelType =
    raw.model_type ?? (raw.architectures?.some((a) => a.startsWith('Qwen3')) ? 'qwen3' : 'llama');
  const heads = raw.num_attention_heads;
  const config: LlamaConfig = {
    model_type: modelType,
    hidden_size: raw.hidden_size,
    intermediate_size: raw.intermediate_size,
    num_hidden_layers: raw.num_hidden_layers,
    num_attention_heads: heads,
    num_key_value_heads: raw.num_key_value_heads ?? heads,
    head_dim: raw.head_dim ?? raw.hidden_size / heads,
    vocab_size: raw.vocab_size,
    rms_norm_eps: raw.rms_norm_eps ?? 1e-6,
    rope_theta: raw.rope_theta ?? 10000,
    tie_word_embeddings: raw.tie_word_embeddings ?? false,
    max_position_embeddings: raw.max_position_embeddings ?? 2048,
  };
  checkConsistent(config, options.file);
  return config;
}

function checkConsistent(config: LlamaConfig, file: string | undefined): void {
  const where = file !== undefined ? ` in ${file}` : '';
  const fail = (field: keyof LlamaConfig, why: string): never => {
    throw new ConfigError(`model config${where}: '${field}' ${why}`, field, file);
  };
  if (!Number.isInteger(config.head_dim) || config.head_dim < 1) {
    fail(
      'head_dim',
      `is missing and hidden_size ${config.hidden_size} does not divide into ${config.num_attention_heads} heads: set head_dim`,
    );
  }
  if (config.head_dim % 2 !== 0) fail('head_dim', `must be even for RoPE, got ${config.head_dim}`);
  if (config.num_attention_heads % config.num_key_value_heads !== 0) {
    fail(
      'num_key_value_heads',
      `(${config.num_key_value_heads}) must divide num_attention_heads (${config.num_attention_heads})`,
    );
  }
}

/**
 * The config of `model`: a preset name or a config object (HF names; validated like a config.json;
 * `model_type` may be given). Throws ConfigError for an unknown preset, naming the presets.
 */
export function resolveModel(model: PresetName | LlamaConfig | Record<string, unknown>): LlamaConfig {
  if (typeof model === 'string') {
    const preset = (PRESETS as Record<string, LlamaConfig>)[model];
    if (preset === undefined) {
      throw new ConfigError(
        `unknown model preset '${model}': the presets are ${PRESET_NAMES.join(', ')} (or pass a Hugging Face config object)`,
        'model',
      );
    }
    return { ...preset };
  }
  if (model === null || typeof model !== 'object' || Array.isArray(model)) {
    throw new ConfigError(
      `model must be a preset name (${PRESET_NAMES.join(', ')}) or a Hugging Face config object, got ${model === null ? 'null' : typeof model}`,
      'model',
    );
  }
  return parseLlamaConfig(model);
}
