/**
 * The training graph of a Llama-family model for one sequence of S positions: embedding, blocks,
 * final norm, classifier, mean next-token cross-entropy, and its backward (ane-autograd's
 * `valueAndGrad`, gradients of `loss × loss_scale`), partitioned once into a plan whose programs
 * every layer shares.
 */
import { gradOutputName, valueAndGrad } from 'ane-autograd';
import { Graph, type Plan, partition, softmaxCrossEntropy } from 'ane-ir';
import { ConfigError } from '../errors';
import type { LlamaConfig, PresetName } from './config';
import {
  type ChipName,
  checkGraphArguments,
  classifierHostReason,
  declareParameters,
  modelLogits,
} from './forward-graph';
import { type ParameterSpec, parameterSpecs } from './parameters';

export type { ChipName } from './forward-graph';

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
  /**
   * Sequences computed in one pass (default 1): the inputs hold that many sequences of S back to
   * back, each attending within itself, and the loss is the mean over all their positions (the
   * mean of the sequences' means). See `sequencesPerPass`.
   */
  sequences?: number;
  /** The chip to plan for (a device's `chip`); default ane-ir's default (M4). */
  chip?: ChipName;
}

export interface TrainingGraph {
  readonly config: LlamaConfig;
  readonly seq: number;
  /** Sequences of `seq` positions computed in one pass (the inputs hold seq × sequences ids). */
  readonly sequences: number;
  readonly chip: ChipName;
  readonly graph: Graph;
  readonly plan: Plan;
  readonly parameters: readonly ParameterSpec[];
  /** The plan output holding the gradient of the parameter named `hfName`. */
  gradOutput(hfName: string): string;
  /** What the model planner put on the host beyond the partitioner's own choices, and why. */
  readonly hostPlacements: readonly { op: string; reason: string }[];
}

/**
 * The most positions one pass of a session holds when it computes several sequences of a batch at
 * once (`sequencesPerPass`). A pass costs a fixed overhead per kernel and host op, which the
 * sequences it holds share, and its GEMMs grow with its positions; attention stays per sequence
 * (ane-ir attention's `sequences`), so it costs the same however many a pass holds. Measured on the
 * simulator (2-core x64; sessions of each K in one process, steps alternating): stories15M at batch
 * 4, seq 256 took 1.07 (K = 2) and about 1.15 (K = 1) of the time of K = 4; at batch 8, seq 128,
 * K = 4 and 8 took 0.83 and 0.86 of K = 2's; the tiny preset at batch 8, seq 64, K = 8 took 0.82 of
 * K = 4's and at batch 32, K = 16 and 32 took 0.80 and 0.68 of K = 8's. Every preset's plan at 1024
 * positions passes the rules of every chip family with the programs of one sequence.
 */
export const PASS_POSITIONS = 1024;

/**
 * How many sequences of `seq` positions a session of `batch` sequences computes in one pass: the
 * largest divisor K of `batch` with K × seq ≤ PASS_POSITIONS (1 when seq alone is longer). The
 * step then runs batch / K passes of one training graph built with `sequences: K`.
 */
export function sequencesPerPass(seq: number, batch: number): number {
  for (const [name, value] of [
    ['seq', seq],
    ['batch', batch],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ConfigError(
        `sequencesPerPass: ${name} must be a whole number ≥ 1, got ${typeof value === 'number' ? String(value) : `${typeof value} ${JSON.stringify(value)}`}`,
        name,
      );
    }
  }
  let best = 1;
  for (let k = 2; k <= batch && k * seq <= PASS_POSITIONS; k++) if (batch % k === 0) best = k;
  return best;
}

/**
 * The most host memory a pass's activations may take when it folds several sequences
 * (`batchTrainingGraph`): a pass holds every value its steps pass on for each of its sequences
 * (`planActivationBytes`), so folding multiplies most of it. At seq 256: stories15M 204, 338 and
 * 606 MiB for 1, 2 and 4 sequences a pass; stories110M 627, 1066 and 1944 MiB, so its batch of 4
 * folds 2 (measured on the simulator: 0.86–0.92 of the time of one a pass, as fast as 4); a
 * qwen3-0.6b sequence alone takes over 3 GiB, so it folds none. Large models gain the least from
 * folding (their kernels' fixed cost is a small share of their time) and need the memory most.
 */
export const PASS_ACTIVATION_BYTES = 1.5 * 2 ** 30;

/**
 * Host bytes of the values a plan's steps pass on, for one pass (fp32 host arrays: kernel outputs
 * and host-op results, the plan's outputs left out). `ane-train plan`'s memory estimate counts them
 * as activations.
 */
export function planActivationBytes(plan: Plan): number {
  // Values passed between steps, by the name they travel under: one host array each.
  const activations = new Map<string, number>();
  for (const kernel of plan.kernels)
    for (const port of kernel.outputs)
      for (const segment of port.segments)
        activations.set(segment.source, segment.shape.reduce((a, b) => a * b, 1) * 4);
  for (const op of plan.hostOps)
    op.outputs.forEach((tensor, i) => {
      activations.set(op.outputSources[i] ?? tensor.name, tensor.size * 4);
    });
  for (const output of plan.outputs) activations.delete(output.name);
  return [...activations.values()].reduce((n, b) => n + b, 0);
}

/**
 * The training graph a session of `batch` sequences of `seq` positions runs: `sequences` per pass
 * when given, else `sequencesPerPass(seq, batch)` as long as the pass's activations fit
 * `PASS_ACTIVATION_BYTES` (else the largest divisor of the batch whose do, at least 1). Every
 * session, the worker and `ane-train plan` choose through this one function.
 */
export function batchTrainingGraph(
  model: LlamaConfig | PresetName,
  options: { seq: number; batch: number; sequences?: number; chip?: ChipName },
): TrainingGraph {
  checkGraphArguments('batchTrainingGraph', model, options);
  const { seq, batch, chip } = options;
  if (!Number.isSafeInteger(batch) || batch < 1) {
    throw new ConfigError(
      `batchTrainingGraph: batch must be a whole number ≥ 1 (sequences per step), got ${typeof batch === 'number' ? String(batch) : `${typeof batch} ${JSON.stringify(batch)}`}`,
      'batch',
    );
  }
  const given = options.sequences;
  // (A sequences count that is no whole number ≥ 1 is buildTrainingGraph's to refuse.)
  if (given !== undefined && Number.isSafeInteger(given) && given >= 1 && batch % given !== 0) {
    throw new ConfigError(
      `batchTrainingGraph: sequences (${String(options.sequences)}) must divide the batch (${batch}): each pass computes that many of its sequences`,
      'sequences',
    );
  }
  const build = (sequences: number) =>
    buildTrainingGraph(model, { seq, sequences, ...(chip ? { chip } : {}) });
  if (options.sequences !== undefined) return build(options.sequences);
  let sequences = sequencesPerPass(seq, batch);
  let training = build(sequences);
  for (;;) {
    const bytes = planActivationBytes(training.plan);
    if (sequences === 1 || bytes <= PASS_ACTIVATION_BYTES) return training;
    // The next smaller divisor of the batch whose share of these bytes fits (a pass also holds
    // values that do not grow with its sequences, so the rebuilt plan is checked again).
    let next = sequences - 1;
    while (next > 1 && (batch % next !== 0 || (next * bytes) / sequences > PASS_ACTIVATION_BYTES)) next--;
    sequences = next;
    training = build(sequences);
  }
}

export function buildTrainingGraph(
  model: LlamaConfig | PresetName,
  options: TrainingGraphOptions,
): TrainingGraph {
  const { config, seq, chip } = checkGraphArguments('buildTrainingGraph', model, options);
  const sequences = options.sequences ?? 1;
  if (!Number.isSafeInteger(sequences) || sequences < 1) {
    throw new ConfigError(
      `buildTrainingGraph: sequences must be a whole number ≥ 1, got ${String(options.sequences)}`,
      'sequences',
    );
  }
  const positions = seq * sequences;
  const parameters = parameterSpecs(config);
  const g = new Graph();
  const param = declareParameters(g, parameters);

  const tokens = g.input(TRAINING_IO.tokens, [positions], { dtype: 'int32' });
  const targets = g.input(TRAINING_IO.targets, [positions], { dtype: 'int32' });
  // The forward is the sampler's (forward-graph.ts), built by the same function.
  const logits = modelLogits(g, config, seq, tokens, param, sequences);
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
  const classifierReason = classifierHostReason(config, positions, chip);
  if (classifierReason !== undefined) {
    placement.output = 'host';
    // Its input gradient (tableᵀ · dlogits) contracts over the vocabulary: on the host as well.
    for (const node of g.nodes) {
      if (node.name.startsWith('output.') && node.name.includes('.grad.') && node.op.kind === 'matmul') {
        placement[node.name] = 'host';
      }
    }
    hostPlacements.push({ op: 'output', reason: classifierReason });
  }
  const plan = partition(g, { placement, chip });

  const gradNames = new Map(parameters.map((spec) => [spec.name, gradOutputName(spec.source)]));
  return {
    config,
    seq,
    sequences,
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
