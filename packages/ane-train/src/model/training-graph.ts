/**
 * The training graph of a Llama-family model for one sequence of S positions: embedding, blocks,
 * final norm, classifier, mean next-token cross-entropy, and its backward (ane-autograd's
 * `valueAndGrad`, gradients of `loss × loss_scale`), partitioned once into a plan whose programs
 * every layer shares.
 */
import { gradOutputName, valueAndGrad } from 'ane-autograd';
import {
  embedding,
  Graph,
  linear,
  llamaBlock,
  type Plan,
  partition,
  rmsNorm,
  ropeTables,
  softmaxCrossEntropy,
  type Tensor,
} from 'ane-ir';
import { type ChipFamily, DEFAULT_CHIP, getRule, ruleLimit } from 'ane-ir/mil';
import { ConfigError } from '../errors';
import type { LlamaConfig } from './config';
import { type ParameterSpec, parameterSpecs } from './parameters';

export type ChipName = ChipFamily;

/** Names of the training graph's inputs and outputs (what a plan executable is fed and returns). */
export const TRAINING_IO = Object.freeze({
  tokens: 'tokens',
  targets: 'targets',
  lossScale: 'loss_scale',
  loss: 'loss',
});

export interface TrainingGraphOptions {
  /** Positions per sequence (the model reads S tokens and predicts the S next ones). */
  seq: number;
  /** The chip to plan for (a device's `chip`); default ane-ir's default (M4). */
  chip?: ChipName;
}

export interface TrainingGraph {
  readonly config: LlamaConfig;
  readonly seq: number;
  readonly chip: ChipName;
  readonly graph: Graph;
  readonly plan: Plan;
  readonly parameters: readonly ParameterSpec[];
  /** The plan output holding the gradient of the parameter named `hfName`. */
  gradOutput(hfName: string): string;
  /** What the model planner put on the host beyond the partitioner's own choices, and why. */
  readonly hostPlacements: readonly { op: string; reason: string }[];
}

export function buildTrainingGraph(config: LlamaConfig, options: TrainingGraphOptions): TrainingGraph {
  const seq = options.seq;
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new ConfigError(`seq must be a whole number ≥ 1, got ${String(seq)}`, 'seq');
  }
  if (seq > config.max_position_embeddings) {
    throw new ConfigError(
      `seq ${seq} is longer than the model's max_position_embeddings (${config.max_position_embeddings}): use a shorter sequence`,
      'seq',
    );
  }
  const chip = options.chip ?? DEFAULT_CHIP;
  const parameters = parameterSpecs(config);
  const g = new Graph();
  const params = new Map<string, Tensor>();
  for (const spec of parameters) params.set(spec.source, g.param(spec.source, [...spec.shape]));
  const param = (source: string) => params.get(source)!;

  const tokens = g.input(TRAINING_IO.tokens, [seq], { dtype: 'int32' });
  const targets = g.input(TRAINING_IO.targets, [seq], { dtype: 'int32' });
  const rope = ropeTables(g, seq, config.head_dim, {
    base: config.rope_theta,
    convention: 'rotate-half',
  });
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
        eps: config.rms_norm_eps,
        name: 'block',
        ...qkNorm,
      }),
    );
  }
  const normed = rmsNorm(h, param('norm'), { eps: config.rms_norm_eps, name: 'norm' });
  const classifier = config.tie_word_embeddings ? param('embed') : param('lm_head');
  const logits = linear(normed, classifier, { name: 'output' });
  const loss = softmaxCrossEntropy(logits, targets, { name: 'xent' });

  const derived = valueAndGrad(g, {
    loss,
    lossScale: { name: TRAINING_IO.lossScale },
    lossName: TRAINING_IO.loss,
  });

  // The classifier packs its table (V columns) next to the S positions of its input: beyond the
  // chip's spatial cap no kernel can hold it, so it runs on the host (sgemm).
  const hostPlacements: { op: string; reason: string }[] = [];
  const placement: Record<string, 'host' | 'ane'> = { ...derived.placement };
  const spatialCap = ruleLimit(getRule('dim-spatial'), chip) ?? Number.POSITIVE_INFINITY;
  if (config.vocab_size + seq > spatialCap) {
    placement.output = 'host';
    // Its input gradient (tableᵀ · dlogits) contracts over the vocabulary: on the host as well.
    for (const node of g.nodes) {
      if (node.name.startsWith('output.') && node.name.includes('.grad.') && node.op.kind === 'matmul') {
        placement[node.name] = 'host';
      }
    }
    hostPlacements.push({
      op: 'output',
      reason: `the classifier's packed input is ${seq} positions + ${config.vocab_size} vocabulary columns wide, over the ${chip} spatial cap ${spatialCap} [ANE rule dim-spatial]: it runs on the host`,
    });
  }
  const plan = partition(g, { placement, chip });

  const gradNames = new Map(parameters.map((spec) => [spec.name, gradOutputName(spec.source)]));
  return {
    config,
    seq,
    chip,
    graph: g,
    plan,
    parameters,
    gradOutput(hfName: string): string {
      const name = gradNames.get(hfName);
      if (name === undefined) {
        throw new ConfigError(`the model has no parameter '${hfName}'`, 'parameter');
      }
      return name;
    },
    hostPlacements,
  };
}
