/**
 * What a training step of a model costs and where each part runs: a JSON-able summary of a
 * training graph's plan (programs and their compile count, kernel runs, host ops with the native
 * kernel that runs each kind, every op's place and why, FLOPs, I/O and an estimate of memory) and
 * its text rendering. `ane-train plan` prints it; tools read the JSON.
 *
 * Everything here is read off the partitioner's plan (ane-ir) and the executor's host-kernel
 * registry (ane-bridge); nothing is re-derived. The plan covers one sequence of S positions: a step
 * of B sequences runs every kernel and host op B times on the same programs (no recompile).
 */
import { bindHostOp } from 'ane-bridge';
import type { HostOp, Plan, PlanStep } from 'ane-ir';
import type { ParameterSpec } from './model/parameters';
import { planActivationBytes, type TrainingGraph } from './model/training-graph';
import { estimateStepTime, formatStepEstimate, type StepTimeEstimate } from './step-estimate';

/** The parts of a training graph the summary reads (a `TrainingGraph` has them all). */
export type PlanSummarySource = Pick<TrainingGraph, 'config' | 'seq' | 'chip' | 'plan' | 'hostPlacements'> & {
  readonly parameters: readonly Pick<ParameterSpec, 'name' | 'shape'>[];
  /** Sequences one pass of the plan computes (TrainingGraph.sequences); default 1. */
  readonly sequences?: number;
};

export interface PlanSummaryOptions {
  /**
   * Sequences per step (default 1; a multiple of the plan's `sequences`): every per-step figure is
   * the per-pass one times the passes, batch / sequences.
   */
  batch?: number;
  /** Micro-batches per optimizer step (default 1; the Trainer's `accumulate`): only the step-time estimate reads it. */
  accumulate?: number;
}

export interface TensorSummary {
  name: string;
  dtype: 'fp16' | 'fp32';
  shape: number[];
  bytes: number;
}

export interface ProgramSummary {
  /** `P<index>` in the plan report. */
  index: number;
  /** The program's content hash (a device compiles each hash once). */
  hash: string;
  /** Kernels running it for one sequence (every layer's instance of a shared program counts). */
  runsPerSequence: number;
  runsPerStep: number;
  inputs: TensorSummary[];
  outputs: TensorSummary[];
  inputBytes: number;
  outputBytes: number;
  flopsPerRun: number;
}

export interface HostOpKindSummary {
  /** The host-op kind (ane-ir's composite kind, or a primitive's label). */
  kind: string;
  /** Host ops of this kind per sequence. */
  count: number;
  flopsPerSequence: number;
  /** The native host kernels (ane-bridge) that run this kind; 'generic' is the slow float32 evaluator. */
  kernels: string[];
  /** Why some ops of this kind fall back to the generic evaluator (empty when none do). */
  slowBecause: string[];
  /** Why this kind runs on the host (the partitioner's reasons, deduplicated). */
  reasons: string[];
  ruleIds: string[];
}

export interface OpPlacementSummary {
  node: string;
  op: string;
  device: 'ane' | 'host';
  reason: string;
  ruleId?: string;
  /** `kernel<i>` (an ANE kernel run) or `host<i>` (a host op), as in the plan's steps. */
  step: string;
}

export interface PlacementGroupSummary {
  device: 'ane' | 'host';
  reason: string;
  ruleId?: string;
  ops: number;
  /** The first few ops placed for this reason. */
  examples: string[];
}

export interface MemorySummary {
  /** fp32 master weights (one arena). */
  masterWeightBytes: number;
  /** fp32 gradients, one per parameter. */
  gradientBytes: number;
  /** AdamW's first and second moments (fp32 m and v). */
  optimizerStateBytes: number;
  /** Weights staged into kernel inputs (fp16; a weight read by k kernel runs is staged k times). Part of `deviceBufferBytes`. */
  stagedWeightBytes: number;
  /** Every kernel run's own input and output buffers (staged weights included). */
  deviceBufferBytes: number;
  /** Values passed between steps (kernel outputs, host-op results; not the graph's outputs) for one sequence, on the host in fp32/int32. */
  activationBytesPerSequence: number;
  /**
   * The graph's outputs (the loss, one gradient per parameter) as the executor holds them: each
   * sequence's value and the sum over the batch (fp32).
   */
  outputBytes: number;
  /** Activations held during a step: the executor runs a batch one sequence at a time and reuses them. */
  activationBytes: number;
  /** The step's token inputs and targets (int32, B sequences). */
  inputBytes: number;
  /** The sum of the above (staged weights counted once, inside the device buffers). */
  totalBytes: number;
}

export interface PlanSummary {
  model: {
    modelType: string;
    layers: number;
    hiddenSize: number;
    intermediateSize: number;
    heads: number;
    kvHeads: number;
    headDim: number;
    vocabSize: number;
    tiedEmbeddings: boolean;
  };
  chip: string;
  seq: number;
  batch: number;
  /**
   * Sequences one pass of the plan computes (each attending within itself); the step runs the plan
   * batch / sequencesPerPass times (passes). The `…PerSequence` figures are per pass.
   */
  sequencesPerPass: number;
  /** Trainable parameters. */
  parameters: number;
  /** Distinct programs: what a run compiles, each once (the compile count). */
  programs: number;
  programList: ProgramSummary[];
  kernelRunsPerSequence: number;
  kernelRunsPerStep: number;
  hostOpsPerSequence: number;
  hostOpsPerStep: number;
  hostOpsByKind: HostOpKindSummary[];
  /** Ops of the graph (forward and backward) on each side. */
  opsOnAne: number;
  opsOnHost: number;
  placementsByReason: PlacementGroupSummary[];
  /** Every op of the graph, where it runs and why. */
  placements: OpPlacementSummary[];
  /** What the model planner put on the host beyond the partitioner's own choices (e.g. a classifier over the spatial cap), and why. */
  hostPlacements: { op: string; reason: string }[];
  flopsPerStep: { device: number; host: number; total: number };
  /** Bytes moved into and out of device buffers per step (every kernel run's inputs and outputs). */
  ioBytesPerStep: { deviceInputs: number; deviceOutputs: number; total: number };
  memory: MemorySummary;
  /** The constraint checker's warnings (deduplicated). */
  warnings: string[];
  /** Estimated milliseconds per step on the plan's chip (`estimateStepTime`): arithmetic on published figures, not a measurement. */
  estimate: StepTimeEstimate;
}

const EXAMPLES_PER_GROUP = 3;

function product(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function dtypeBytes(dtype: string): number {
  return dtype === 'fp16' ? 2 : 4;
}

function stepLabel(step: PlanStep): string {
  return `${step.kind}${step.index}`;
}

/** `part of embedding 'embed': gather has …` → `gather has …` (the group's reason, without the call). */
function groupReason(reason: string): string {
  return reason.replace(/^part of [^:]*: /, '');
}

function hostKernelsOf(op: HostOp): { kernels: readonly string[]; slowBecause?: string } {
  try {
    const { bound, slowBecause } = bindHostOp(op);
    return { kernels: bound.kernels, ...(slowBecause !== undefined ? { slowBecause } : {}) };
  } catch (error) {
    return { kernels: ['generic'], slowBecause: (error as Error).message };
  }
}

function pushUnique<T>(list: T[], value: T | undefined): void {
  if (value !== undefined && !list.includes(value)) list.push(value);
}

/** Summarises `source.plan` for a step of `batch` sequences of `source.seq` positions. */
export function describePlan(source: PlanSummarySource, options: PlanSummaryOptions = {}): PlanSummary {
  const batch = options.batch ?? 1;
  if (!Number.isSafeInteger(batch) || batch < 1) {
    throw new RangeError(`describePlan: batch must be a whole number ≥ 1, got ${String(batch)}`);
  }
  const sequences = source.sequences ?? 1;
  if (batch % sequences !== 0) {
    throw new RangeError(
      `describePlan: batch ${batch} is not a multiple of the plan's ${sequences} sequences per pass`,
    );
  }
  const passes = batch / sequences;
  const { plan, config } = source;

  const programList: ProgramSummary[] = plan.programs.map((program) => {
    const tensor = (spec: { name: string; dtype: 'fp16' | 'fp32'; shape: number[] }): TensorSummary => ({
      name: spec.name,
      dtype: spec.dtype,
      shape: [...spec.shape],
      bytes: product(spec.shape) * dtypeBytes(spec.dtype),
    });
    return {
      index: program.index,
      hash: program.hash,
      runsPerSequence: program.instances.length,
      runsPerStep: program.instances.length * passes,
      inputs: program.program.inputs.map(tensor),
      outputs: program.program.outputs.map(tensor),
      inputBytes: program.inputBytes,
      outputBytes: program.outputBytes,
      flopsPerRun: program.flops,
    };
  });

  const hostOpsByKind = new Map<string, HostOpKindSummary>();
  for (const op of plan.hostOps) {
    let entry = hostOpsByKind.get(op.kind);
    if (entry === undefined) {
      entry = {
        kind: op.kind,
        count: 0,
        flopsPerSequence: 0,
        kernels: [],
        slowBecause: [],
        reasons: [],
        ruleIds: [],
      };
      hostOpsByKind.set(op.kind, entry);
    }
    entry.count += 1;
    entry.flopsPerSequence += op.flops;
    const bound = hostKernelsOf(op);
    for (const kernel of bound.kernels) pushUnique(entry.kernels, kernel);
    pushUnique(entry.slowBecause, bound.slowBecause);
    pushUnique(entry.reasons, op.reason);
    pushUnique(entry.ruleIds, op.ruleId);
  }

  const placements: OpPlacementSummary[] = plan.placements.map((p) => ({
    node: p.node,
    op: p.op,
    device: p.device,
    reason: p.reason,
    ...(p.ruleId !== undefined ? { ruleId: p.ruleId } : {}),
    step: stepLabel(p.step),
  }));
  const groups = new Map<string, PlacementGroupSummary>();
  for (const p of plan.placements) {
    const reason = groupReason(p.reason);
    const key = `${p.device}\u0000${p.ruleId ?? ''}\u0000${reason}`;
    let group = groups.get(key);
    if (group === undefined) {
      group = {
        device: p.device,
        reason,
        ...(p.ruleId !== undefined ? { ruleId: p.ruleId } : {}),
        ops: 0,
        examples: [],
      };
      groups.set(key, group);
    }
    group.ops += 1;
    if (group.examples.length < EXAMPLES_PER_GROUP) group.examples.push(p.node);
  }
  const opsOnAne = plan.placements.filter((p) => p.device === 'ane').length;

  const deviceFlops = plan.kernels.reduce((n, k) => n + plan.programs[k.program]!.flops, 0);
  const hostFlops = plan.hostOps.reduce((n, op) => n + op.flops, 0);
  const deviceInputs = plan.kernels.reduce((n, k) => n + plan.programs[k.program]!.inputBytes, 0);
  const deviceOutputs = plan.kernels.reduce((n, k) => n + plan.programs[k.program]!.outputBytes, 0);

  const memory = estimateMemory(source, plan, batch, deviceInputs + deviceOutputs);
  const parameters = source.parameters.reduce((n, p) => n + product(p.shape), 0);

  const summary: Omit<PlanSummary, 'estimate'> = {
    model: {
      modelType: config.model_type,
      layers: config.num_hidden_layers,
      hiddenSize: config.hidden_size,
      intermediateSize: config.intermediate_size,
      heads: config.num_attention_heads,
      kvHeads: config.num_key_value_heads,
      headDim: config.head_dim,
      vocabSize: config.vocab_size,
      tiedEmbeddings: config.tie_word_embeddings,
    },
    chip: source.chip,
    seq: source.seq,
    batch,
    sequencesPerPass: sequences,
    parameters,
    programs: plan.programs.length,
    programList,
    kernelRunsPerSequence: plan.kernels.length,
    kernelRunsPerStep: plan.kernels.length * passes,
    hostOpsPerSequence: plan.hostOps.length,
    hostOpsPerStep: plan.hostOps.length * passes,
    hostOpsByKind: [...hostOpsByKind.values()],
    opsOnAne,
    opsOnHost: plan.placements.length - opsOnAne,
    placementsByReason: [...groups.values()],
    placements,
    hostPlacements: source.hostPlacements.map((p) => ({ op: p.op, reason: p.reason })),
    flopsPerStep: {
      device: deviceFlops * passes,
      host: hostFlops * passes,
      total: (deviceFlops + hostFlops) * passes,
    },
    ioBytesPerStep: {
      deviceInputs: deviceInputs * passes,
      deviceOutputs: deviceOutputs * passes,
      total: (deviceInputs + deviceOutputs) * passes,
    },
    memory,
    warnings: [...new Set(plan.warnings.map((w) => w.message))],
  };
  const estimate = estimateStepTime(
    summary,
    source.chip,
    options.accumulate !== undefined ? { accumulate: options.accumulate } : {},
  );
  return { ...summary, estimate };
}

function estimateMemory(
  source: PlanSummarySource,
  plan: Plan,
  batch: number,
  deviceBufferBytes: number,
): MemorySummary {
  const parameters = source.parameters.reduce((n, p) => n + product(p.shape), 0);
  let stagedWeightBytes = 0;
  for (const kernel of plan.kernels)
    for (const port of kernel.inputs)
      for (const segment of port.segments)
        if (segment.role === 'weight')
          stagedWeightBytes += product(segment.shape) * dtypeBytes(port.spec.dtype);
  let outputValueBytes = 0;
  for (const output of plan.outputs) outputValueBytes += output.tensor.size * 4;
  const activationBytesPerSequence = planActivationBytes(plan);
  const outputBytes = 2 * outputValueBytes;
  const masterWeightBytes = parameters * 4;
  const gradientBytes = parameters * 4;
  const optimizerStateBytes = parameters * 8;
  const activationBytes = activationBytesPerSequence;
  // tokens and targets: int32 [S] each, per sequence
  const inputBytes = 2 * source.seq * 4 * batch;
  return {
    masterWeightBytes,
    gradientBytes,
    optimizerStateBytes,
    stagedWeightBytes,
    deviceBufferBytes,
    activationBytesPerSequence,
    activationBytes,
    outputBytes,
    inputBytes,
    totalBytes:
      masterWeightBytes +
      gradientBytes +
      optimizerStateBytes +
      deviceBufferBytes +
      activationBytes +
      outputBytes +
      inputBytes,
  };
}

// ---- text ----------------------------------------------------------------------------------------

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function formatFlops(n: number): string {
  if (n >= 1e12) return `${(n / 1e12).toFixed(2)} TFLOP`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GFLOP`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MFLOP`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kFLOP`;
  return `${n} FLOP`;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return `${n}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function tensorList(tensors: readonly TensorSummary[]): string {
  return tensors.map((t) => `${t.name} ${t.dtype}[${t.shape.join(', ')}]`).join(', ');
}

/** The summary as text: what `ane-train plan` prints without `--json`. */
export function formatPlanSummary(summary: PlanSummary): string {
  const m = summary.model;
  const lines: string[] = [];
  lines.push(
    `${m.modelType} model: ${m.layers} layers, hidden ${m.hiddenSize}, FFN ${m.intermediateSize}, ${m.heads} heads / ${m.kvHeads} KV heads of ${m.headDim}, vocab ${m.vocabSize}${m.tiedEmbeddings ? ' (tied embeddings)' : ''}; ${formatCount(summary.parameters)} parameters`,
  );
  lines.push(
    summary.sequencesPerPass === 1
      ? `Step: ${plural(summary.batch, 'sequence')} of ${summary.seq} positions on ${summary.chip}; the plan runs once per sequence on the same programs.`
      : `Step: ${plural(summary.batch, 'sequence')} of ${summary.seq} positions on ${summary.chip}; each pass of the plan computes ${summary.sequencesPerPass} of them at once (${summary.sequencesPerPass * summary.seq} positions, each sequence attending within itself), ${summary.batch / summary.sequencesPerPass === 1 ? '1 pass' : `${summary.batch / summary.sequencesPerPass} passes`} a step on the same programs.`,
  );
  lines.push('');
  lines.push(
    `Programs: ${summary.programs} distinct (compiled once each: ${plural(summary.programs, 'compile')} per run, whatever the depth); ${summary.kernelRunsPerSequence} kernel runs per ${summary.sequencesPerPass === 1 ? 'sequence' : 'pass'}, ${summary.kernelRunsPerStep} per step.`,
  );
  for (const p of summary.programList) {
    lines.push(
      `  P${p.index} ${p.hash}: ${p.runsPerSequence}×/${summary.sequencesPerPass === 1 ? 'seq' : 'pass'}; in ${tensorList(p.inputs)} (${formatBytes(p.inputBytes)}); out ${tensorList(p.outputs)} (${formatBytes(p.outputBytes)}); ${formatFlops(p.flopsPerRun)}/run`,
    );
  }
  lines.push('');
  lines.push(
    `Host ops: ${summary.hostOpsPerSequence} per sequence, ${summary.hostOpsPerStep} per step, by kind:`,
  );
  for (const kind of summary.hostOpsByKind) {
    const kernels = kind.kernels.join(', ');
    const slow = kind.slowBecause.length > 0 ? `; SLOW generic path: ${kind.slowBecause.join('; ')}` : '';
    lines.push(
      `  ${kind.kind} ×${kind.count} (${formatFlops(kind.flopsPerSequence)}/seq) on ${kernels}${slow}: ${kind.reasons.join('; ')}${kind.ruleIds.length > 0 ? ` [${kind.ruleIds.join(', ')}]` : ''}`,
    );
  }
  lines.push('');
  lines.push(
    `Where ops run: ${summary.opsOnAne} of ${summary.opsOnAne + summary.opsOnHost} on the ANE, ${summary.opsOnHost} on the host.`,
  );
  for (const group of summary.placementsByReason) {
    const more = group.ops > group.examples.length ? ', …' : '';
    lines.push(
      `  ${group.device === 'ane' ? 'ane ' : 'host'} ${String(group.ops).padStart(5)} ops: ${group.reason}${group.ruleId !== undefined ? ` [${group.ruleId}]` : ''} (${group.examples.join(', ')}${more})`,
    );
  }
  if (summary.hostPlacements.length > 0) {
    lines.push('Placed on the host by the model planner:');
    for (const p of summary.hostPlacements) lines.push(`  ${p.op}: ${p.reason}`);
  }
  lines.push('');
  const f = summary.flopsPerStep;
  lines.push(
    `FLOPs per step: ${formatFlops(f.total)} (device ${formatFlops(f.device)}, host ${formatFlops(f.host)}).`,
  );
  const io = summary.ioBytesPerStep;
  lines.push(
    `Device I/O per step: ${formatBytes(io.total)} (in ${formatBytes(io.deviceInputs)}, out ${formatBytes(io.deviceOutputs)}).`,
  );
  const mem = summary.memory;
  lines.push(`Memory (estimate): ${formatBytes(mem.totalBytes)}`);
  lines.push(`  fp32 master weights   ${formatBytes(mem.masterWeightBytes)}`);
  lines.push(`  fp32 gradients        ${formatBytes(mem.gradientBytes)}`);
  lines.push(`  AdamW m, v (fp32)     ${formatBytes(mem.optimizerStateBytes)}`);
  lines.push(
    `  device buffers        ${formatBytes(mem.deviceBufferBytes)} (of which fp16 staged weights ${formatBytes(mem.stagedWeightBytes)})`,
  );
  lines.push(
    summary.sequencesPerPass === 1
      ? `  activations           ${formatBytes(mem.activationBytes)} (one sequence's; the batch runs one sequence at a time)`
      : `  activations           ${formatBytes(mem.activationBytes)} (one pass's: ${summary.sequencesPerPass} sequences; the batch runs one pass at a time)`,
  );
  lines.push(
    `  step outputs          ${formatBytes(mem.outputBytes)} (loss and gradients: per sequence and summed)`,
  );
  lines.push(`  tokens and targets    ${formatBytes(mem.inputBytes)}`);
  // A run report written before the estimate existed has none.
  if (summary.estimate !== undefined) {
    lines.push('');
    lines.push(...formatStepEstimate(summary.estimate));
  }
  if (summary.warnings.length > 0) {
    lines.push('');
    lines.push(`Constraint warnings (${summary.warnings.length}):`);
    for (const w of summary.warnings) lines.push(`  ${w}`);
  }
  return `${lines.join('\n')}\n`;
}
