/**
 * The forward graph of a Llama-family model for one window of S positions (embedding, blocks,
 * final norm, classifier; no loss, no backward), partitioned into a plan with the training graph's
 * rules. It is what sampling runs. The model itself is built by `modelLogits`, the one function
 * `buildTrainingGraph` builds its forward with, so the two cannot drift apart.
 */
import {
  embedding,
  Graph,
  linear,
  llamaBlock,
  type Plan,
  partition,
  rmsNorm,
  ropeTables,
  type Tensor,
} from 'ane-ir';
import { CHIP_FAMILIES, type ChipFamily, DEFAULT_CHIP, getRule, ruleLimit } from 'ane-ir/mil';
import { ConfigError } from '../errors';
import { type LlamaConfig, type PresetName, resolveModel } from './config';
import { type ParameterSpec, parameterSpecs } from './parameters';

export type ChipName = ChipFamily;

/** Names of the forward graph's input and output. */
export const FORWARD_IO = Object.freeze({
  tokens: 'tokens',
  /** `[V, S]` fp32, channel-first: the logit of vocabulary entry v at position s is at `v * S + s`. */
  logits: 'logits',
});

export interface ForwardGraphOptions {
  /** Positions in the window (the model reads S tokens and gives S rows of logits). */
  seq: number;
  /** The chip to plan for (a device's `chip`); default ane-ir's default (M4). */
  chip?: ChipName;
}

export interface ForwardGraph {
  readonly config: LlamaConfig;
  readonly seq: number;
  readonly chip: ChipName;
  readonly graph: Graph;
  readonly plan: Plan;
  readonly parameters: readonly ParameterSpec[];
  /** What the model planner put on the host beyond the partitioner's own choices, and why. */
  readonly hostPlacements: readonly { op: string; reason: string }[];
}

/** Refuses a window length the model cannot run (shared by the training and forward graphs). */
/**
 * The arguments of buildForwardGraph / buildTrainingGraph checked: a preset name resolved, a config
 * that is not an object, options that are not { seq, chip? } or an unknown chip refused (a
 * TypeError, or a plain Error from the rule table, deep inside otherwise).
 */
export function checkGraphArguments(
  call: string,
  model: LlamaConfig | PresetName,
  options: { seq: number; chip?: ChipFamily },
): { config: LlamaConfig; seq: number; chip: ChipFamily } {
  const config = typeof model === 'string' ? resolveModel(model) : (model as LlamaConfig | null | undefined);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError(
      `${call}: config must be a model config (PRESETS.tiny, parseLlamaConfig(json)) or a preset name, got ${config === null ? 'null' : typeof config}`,
      'config',
    );
  }
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(`${call} takes options { seq, chip? }, got ${String(options)}`, 'seq');
  }
  checkSeq(config, options.seq);
  const chip = options.chip ?? DEFAULT_CHIP;
  if (!(CHIP_FAMILIES as readonly unknown[]).includes(chip)) {
    throw new ConfigError(
      `${call}: chip must be one of ${CHIP_FAMILIES.join(', ')}, got ${String(chip)}`,
      'chip',
    );
  }
  return { config, seq: options.seq, chip };
}

export function checkSeq(config: LlamaConfig, seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new ConfigError(`seq must be a whole number ≥ 1, got ${String(seq)}`, 'seq');
  }
  if (seq > config.max_position_embeddings) {
    throw new ConfigError(
      `seq ${seq} is longer than the model's max_position_embeddings (${config.max_position_embeddings}): use a shorter sequence`,
      'seq',
    );
  }
}

/** Declares every parameter of the model on `g` (in Hugging Face order), by graph name. */
export function declareParameters(
  g: Graph,
  parameters: readonly ParameterSpec[],
): (source: string) => Tensor {
  const params = new Map<string, Tensor>();
  for (const spec of parameters) params.set(spec.source, g.param(spec.source, [...spec.shape]));
  return (source: string) => params.get(source)!;
}

/**
 * The model on `tokens` ([S] int32): embedding → blocks → final RMSNorm → classifier. Returns the
 * logits `[V, S]` (channel-first). The classifier composite is named 'output'. With `sequences`,
 * tokens holds that many sequences of S back to back ([S · sequences]), each attending within
 * itself (ane-ir attention's `sequences`: one `[S, S]` score block per head and sequence) with
 * positions from 0: every other op is per position, so one pass computes what that many passes
 * over one sequence would.
 */
export function modelLogits(
  g: Graph,
  config: LlamaConfig,
  seq: number,
  tokens: Tensor,
  param: (source: string) => Tensor,
  sequences = 1,
): Tensor {
  const rope = ropeTables(g, seq, config.head_dim, {
    base: config.rope_theta,
    convention: 'rotate-half',
    sequences,
  });
  const windows = sequences > 1 ? { sequences } : {};
  let h = embedding(tokens, param('embed'), { name: 'embed' });
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = (name: string) => param(`layers.${l}.${name}`);
    const weights = {
      attnNorm: p('attn_norm'),
      ffnNorm: p('ffn_norm'),
      wq: p('wq'),
      wk: p('wk'),
      wv: p('wv'),
      wo: p('wo'),
      w1: p('w1'),
      w3: p('w3'),
      w2: p('w2'),
    };
    const qkNorm =
      config.model_type === 'qwen3'
        ? { qkNorm: { q: p('q_norm'), k: p('k_norm'), eps: config.rms_norm_eps } }
        : {};
    const input = h;
    h = g.scope(`layers.${l}`, () =>
      llamaBlock(input, weights, {
        heads: config.num_attention_heads,
        kvHeads: config.num_key_value_heads,
        rope,
        ...windows,
        eps: config.rms_norm_eps,
        name: 'block',
        ...qkNorm,
      }),
    );
  }
  const normed = rmsNorm(h, param('norm'), { eps: config.rms_norm_eps, name: 'norm' });
  const classifier = config.tie_word_embeddings ? param('embed') : param('lm_head');
  return linear(normed, classifier, { name: 'output' });
}

/**
 * Why the classifier ('output') must run on the host, or undefined when a kernel can hold it: it
 * packs its table (V columns) next to the S positions of its input, and beyond the chip's spatial
 * cap no kernel can hold that.
 */
export function classifierHostReason(config: LlamaConfig, seq: number, chip: ChipName): string | undefined {
  const spatialCap = ruleLimit(getRule('dim-spatial'), chip) ?? Number.POSITIVE_INFINITY;
  if (config.vocab_size + seq <= spatialCap) return undefined;
  return `the classifier's packed input is ${seq} positions + ${config.vocab_size} vocabulary columns wide, over the ${chip} spatial cap ${spatialCap} [ANE rule dim-spatial]: it runs on the host`;
}

/**
 * The forward graph for a window of `seq` positions: input `tokens` [S] int32, output `logits`
 * [V, S] fp32 channel-first (`FORWARD_IO.logits`: entry (v, s) at `v * S + s`). Every parameter is
 * a trainable graph parameter, so its values are staged as data exactly as in training (fp16 on
 * the device) and the programs are independent of the weights.
 */
export function buildForwardGraph(
  model: LlamaConfig | PresetName,
  options: ForwardGraphOptions,
): ForwardGraph {
  const { config, seq, chip } = checkGraphArguments('buildForwardGraph', model, options);
  const parameters = parameterSpecs(config);
  const g = new Graph();
  const param = declareParameters(g, parameters);
  const tokens = g.input(FORWARD_IO.tokens, [seq], { dtype: 'int32' });
  const logits = modelLogits(g, config, seq, tokens, param);
  g.output(FORWARD_IO.logits, logits);

  const hostPlacements: { op: string; reason: string }[] = [];
  const placement: Record<string, 'host' | 'ane'> = {};
  const reason = classifierHostReason(config, seq, chip);
  if (reason !== undefined) {
    placement.output = 'host';
    hostPlacements.push({ op: 'output', reason });
  }
  const plan = partition(g, { placement, chip });
  return { config, seq, chip, graph: g, plan, parameters, hostPlacements };
}
