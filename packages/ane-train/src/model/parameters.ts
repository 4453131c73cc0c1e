/**
 * A model's parameters: their Hugging Face names (the names in safetensors files, gradients and
 * checkpoints), the short names the graph uses, shapes, and a seeded initialization.
 */
import { totalmem } from 'node:os';
import { ConfigError } from '../errors';
import { normalSource } from '../random';
import { type LlamaConfig, type PresetName, resolveModel } from './config';

/** A preset name resolved; anything but a config object refused (a TypeError or NaN otherwise). */
function configOf(config: LlamaConfig | PresetName, call: string): LlamaConfig {
  if (typeof config === 'string') return resolveModel(config);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError(
      `${call}: config must be a model config (PRESETS.tiny, parseLlamaConfig(json)) or a preset name, got ${config === null ? 'null' : typeof config}`,
      'config',
    );
  }
  return config;
}

/**
 * Refuses a model whose parameters, at `bytesPerParameter`, would not fit this machine's memory
 * (a config with a typo in a size would otherwise allocate for minutes and then crash the process).
 */
export function checkParametersFitMemory(
  specs: readonly ParameterSpec[],
  bytesPerParameter: number,
  call: string,
): void {
  const count = specs.reduce((n, spec) => n + spec.shape.reduce((a, b) => a * b, 1), 0);
  const bytes = count * bytesPerParameter;
  if (bytes > totalmem()) {
    const gib = (value: number) => `${(value / 2 ** 30).toFixed(1)} GiB`;
    throw new ConfigError(
      `${call}: the model has ${count} parameters; ${bytesPerParameter} bytes each is ${gib(bytes)}, more than this machine's ${gib(totalmem())} of memory: check the config's sizes (hidden_size, intermediate_size, num_hidden_layers, vocab_size) or use a smaller model`,
      'model',
    );
  }
}

export interface ParameterSpec {
  /** Hugging Face name, e.g. 'model.layers.0.self_attn.q_proj.weight'. */
  readonly name: string;
  /** The graph's name for it, e.g. 'layers.0.wq'. */
  readonly source: string;
  /** `[out, in]` for linear layers, `[V, D]` for the embedding, `[D]` for norm gains. */
  readonly shape: readonly number[];
  /** Norm gains are not decayed. */
  readonly weightDecay: boolean;
  readonly kind: 'embedding' | 'matrix' | 'norm' | 'classifier';
}

/** Every parameter of the model, in Hugging Face's order. */
export function parameterSpecs(model: LlamaConfig | PresetName): ParameterSpec[] {
  const config = configOf(model, 'parameterSpecs');
  const d = config.hidden_size;
  const hd = config.head_dim;
  const qDim = config.num_attention_heads * hd;
  const kvDim = config.num_key_value_heads * hd;
  const ffn = config.intermediate_size;
  const specs: ParameterSpec[] = [
    {
      name: 'model.embed_tokens.weight',
      source: 'embed',
      shape: [config.vocab_size, d],
      weightDecay: true,
      kind: 'embedding',
    },
  ];
  const matrix = (name: string, source: string, shape: number[]) =>
    specs.push({ name, source, shape, weightDecay: true, kind: 'matrix' });
  const norm = (name: string, source: string, size: number) =>
    specs.push({ name, source, shape: [size], weightDecay: false, kind: 'norm' });
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const hf = `model.layers.${l}`;
    const ours = `layers.${l}`;
    norm(`${hf}.input_layernorm.weight`, `${ours}.attn_norm`, d);
    matrix(`${hf}.self_attn.q_proj.weight`, `${ours}.wq`, [qDim, d]);
    matrix(`${hf}.self_attn.k_proj.weight`, `${ours}.wk`, [kvDim, d]);
    matrix(`${hf}.self_attn.v_proj.weight`, `${ours}.wv`, [kvDim, d]);
    matrix(`${hf}.self_attn.o_proj.weight`, `${ours}.wo`, [d, qDim]);
    if (config.model_type === 'qwen3') {
      norm(`${hf}.self_attn.q_norm.weight`, `${ours}.q_norm`, hd);
      norm(`${hf}.self_attn.k_norm.weight`, `${ours}.k_norm`, hd);
    }
    norm(`${hf}.post_attention_layernorm.weight`, `${ours}.ffn_norm`, d);
    matrix(`${hf}.mlp.gate_proj.weight`, `${ours}.w1`, [ffn, d]);
    matrix(`${hf}.mlp.up_proj.weight`, `${ours}.w3`, [ffn, d]);
    matrix(`${hf}.mlp.down_proj.weight`, `${ours}.w2`, [d, ffn]);
  }
  norm('model.norm.weight', 'norm', d);
  if (!config.tie_word_embeddings) {
    specs.push({
      name: 'lm_head.weight',
      source: 'lm_head',
      shape: [config.vocab_size, d],
      weightDecay: true,
      kind: 'classifier',
    });
  }
  return specs;
}

/** Number of elements of every parameter together. */
export function parameterCount(config: LlamaConfig | PresetName): number {
  return parameterSpecs(configOf(config, 'parameterCount')).reduce(
    (n, spec) => n + spec.shape.reduce((a, b) => a * b, 1),
    0,
  );
}

/**
 * A fresh model, as Hugging Face's Llama initializes one: every matrix and the embedding drawn from
 * N(0, 0.02²), the residual projections (o_proj, down_proj) scaled by 1/sqrt(2·layers) as GPT-2 and
 * llama2.c do, norm gains 1. Seeded: the same seed gives the same weights on every machine.
 */
export function initParameters(
  model: LlamaConfig | PresetName,
  options: { seed?: number; std?: number } = {},
): Map<string, Float32Array> {
  const config = configOf(model, 'initParameters');
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(
      `initParameters: options must be an object { seed?, std? }, got ${options === null ? 'null' : typeof options}`,
      'options',
    );
  }
  const unknown = Object.keys(options).find((key) => key !== 'seed' && key !== 'std');
  if (unknown !== undefined) {
    throw new ConfigError(`initParameters has no option '${unknown}': the options are seed and std`, unknown);
  }
  const std = options.std ?? 0.02;
  if (!(typeof std === 'number' && Number.isFinite(std) && std >= 0)) {
    throw new ConfigError(
      `initParameters: std must be a finite number ≥ 0 (default 0.02), got ${String(std)}`,
      'std',
    );
  }
  const seed = options.seed ?? 42;
  if (!Number.isSafeInteger(seed)) {
    throw new ConfigError(`initParameters: seed must be a whole number, got ${String(seed)}`, 'seed');
  }
  const specs = parameterSpecs(config);
  checkParametersFitMemory(specs, 4, 'initParameters');
  const random = normalSource(seed);
  const residualScale = 1 / Math.sqrt(2 * config.num_hidden_layers);
  const weights = new Map<string, Float32Array>();
  for (const spec of specs) {
    const values = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
    if (spec.kind === 'norm') values.fill(1);
    else {
      const scale = /\.(o_proj|down_proj)\.weight$/.test(spec.name) ? std * residualScale : std;
      for (let i = 0; i < values.length; i++) values[i] = random() * scale;
    }
    weights.set(spec.name, values);
  }
  return weights;
}
