/**
 * A device session: one model's training graph for one sequence length (a "bucket") loaded once on
 * a device (`device.load`, every program compiled once), fed weights by Hugging Face name
 * (`writeWeights`: restaged, never recompiled) and run one batch at a time (`step`: the mean
 * next-token cross-entropy over the batch and the gradient of every parameter).
 *
 * `openSession` runs in this process on a device of its own; a worker process runs the same code
 * (worker-session.ts), and `DeviceRuntime` (device-runtime.ts) picks between them.
 */
import { type Device, openDevice, type PlanExecutable, type PlanOutputs } from 'ane-bridge';
import { CheckpointError, ConfigError, DataError, TrainError } from '../errors';
import type { LlamaConfig } from '../model/config';
import { batchTrainingGraph, type ChipName, TRAINING_IO, type TrainingGraph } from '../model/training-graph';

/** What a session runs: serializable as is (it goes to a worker process unchanged). */
export interface SessionSpec {
  config: LlamaConfig;
  /** Positions per sequence (S): each sequence of a batch holds S + 1 tokens. */
  seq: number;
  /** Sequences per step (B). */
  batch: number;
  /**
   * Sequences each pass of the plan computes at once (a divisor of `batch`; default
   * `batchTrainingGraph`'s choice: `sequencesPerPass(seq, batch)` within `PASS_ACTIVATION_BYTES`):
   * 1 runs the plan once per sequence.
   */
  sequences?: number;
  backend: 'auto' | 'ane' | 'sim';
  chip?: ChipName;
  /** Programs the session's device may compile (default ane-bridge's, 119). */
  compileBudget?: number;
}

/** Where one step's time went, in milliseconds (from the plan executable's profile). */
export interface StepProfile {
  /** Device kernels (excluding staging). */
  deviceMs: number;
  /** Host ops: dW GEMMs, embedding, norms and the loss where the plan puts them. */
  hostMs: number;
  /** Converting and copying values into and out of device buffers, splitting tokens, copying gradients. */
  stagingMs: number;
  /** Wall time during which nothing of the above ran (for a worker: includes the messages to and from it). */
  idleMs: number;
  totalMs: number;
}

export interface StepResult {
  /** Mean over the batch of each sequence's mean next-token cross-entropy (not scaled). */
  loss: number;
  /**
   * By Hugging Face name: d(loss × lossScale)/dparam (loss being the batch mean), fp32. The caller's
   * to keep, unless the step was asked for `{ grads: 'view' }` (see StepOptions).
   */
  grads: Map<string, Float32Array>;
  profile: StepProfile;
}

export interface StepOptions {
  /**
   * How `StepResult.grads` are handed over:
   * - 'copy' (default): fresh arrays, the caller's to keep.
   * - 'view': the session's own buffers, with no copy (a fresh copy of every gradient costs 4 bytes
   *   of new memory per parameter per step, slower than the copy itself). They are valid until the
   *   next `step` or `dispose` of the session (for a DeviceRuntime: its next step or dispose) and
   *   are overwritten then: read them, or copy them (e.g. into an optimizer arena), before that, and
   *   do not write to them. A worker session's gradients arrive as fresh arrays either way.
   */
  grads?: 'copy' | 'view';
  /**
   * With grads 'view': arrays (by Hugging Face name, each the parameter's length) that an
   * in-process session of batch 1 computes the gradients straight into, run after run, and hands
   * back as `StepResult.grads` (an optimizer's gradient arena: nothing is copied). Ignored by other
   * sessions, which hand over their own arrays as before.
   */
  gradsInto?: ReadonlyMap<string, Float32Array>;
}

export interface WriteWeightsOptions {
  /**
   * An in-process session keeps the weights in these arrays instead of copying them (ane-bridge's
   * `exe.bind`): they are read when the next step stages them. Write them again after every change,
   * and change them only between steps. A worker session copies them either way.
   */
  share?: boolean;
}

export interface DeviceSession {
  readonly where: 'in-process' | 'worker';
  /** The device's backend ('auto' resolved). */
  readonly backend: 'ane' | 'sim';
  /** Distinct programs its plan compiles. */
  readonly programs: number;
  /**
   * Stages weights by Hugging Face name (any subset: what changed). Never recompiles. An unknown
   * name or a wrong length is a CheckpointError naming the tensor; nothing is written then.
   */
  writeWeights(weights: ReadonlyMap<string, Float32Array>, options?: WriteWeightsOptions): Promise<void>;
  /**
   * One step on B sequences of S + 1 ids back to back (inputs = [0..S), targets = [1..S]).
   * `lossScale` multiplies the gradients (not the loss); it is staged as the graph's fp16
   * `loss_scale`, so powers of two are exact.
   */
  step(tokens: Int32Array, lossScale: number, options?: StepOptions): Promise<StepResult>;
  dispose(): Promise<void>;
}

/** The largest finite fp16 value: a bigger loss scale would reach the device as infinity. */
const FP16_MAX = 65504;

/** Checks a spec's own fields (the model config is checked where the graph is built). */
export function checkSessionSpec(spec: SessionSpec): void {
  if (spec === null || typeof spec !== 'object') {
    throw new ConfigError(
      `a session spec must be an object { config, seq, batch, backend }, got ${String(spec)}`,
      'spec',
    );
  }
  if (!Number.isSafeInteger(spec.batch) || spec.batch < 1) {
    throw new ConfigError(
      `batch must be a whole number ≥ 1 (sequences per step), got ${String(spec.batch)}`,
      'batch',
    );
  }
  if (!Number.isSafeInteger(spec.seq) || spec.seq < 1) {
    throw new ConfigError(
      `seq must be a whole number ≥ 1 (positions per sequence), got ${String(spec.seq)}`,
      'seq',
    );
  }
  if (
    spec.sequences !== undefined &&
    !(Number.isSafeInteger(spec.sequences) && spec.sequences >= 1 && spec.batch % spec.sequences === 0)
  ) {
    throw new ConfigError(
      `sequences must be a whole number ≥ 1 that divides the batch (${spec.batch}), got ${typeof spec.sequences === 'number' ? String(spec.sequences) : describe(spec.sequences)}`,
      'sequences',
    );
  }
  if (!['auto', 'ane', 'sim'].includes(spec.backend)) {
    throw new ConfigError(
      `backend must be 'auto', 'ane' or 'sim', got ${JSON.stringify(spec.backend)}`,
      'backend',
    );
  }
}

/** The training graph a session of `spec` runs on a device of `chip` (spec.chip wins). */
export function sessionTrainingGraph(spec: SessionSpec, chip: ChipName): TrainingGraph {
  return batchTrainingGraph(spec.config, {
    seq: spec.seq,
    batch: spec.batch,
    ...(spec.sequences !== undefined ? { sequences: spec.sequences } : {}),
    chip: spec.chip ?? chip,
  });
}

/**
 * Opens a session in this process on a device of its own (disposed with the session): builds the
 * training graph, opens the device and loads the plan (each distinct program compiled once).
 */
export async function openSession(spec: SessionSpec): Promise<DeviceSession> {
  checkSessionSpec(spec);
  const device = openDevice({
    backend: spec.backend,
    ...(spec.chip !== undefined ? { chip: spec.chip } : {}),
    ...(spec.compileBudget !== undefined ? { compileBudget: spec.compileBudget } : {}),
  });
  try {
    return new InProcessSession(device, sessionTrainingGraph(spec, device.chip), spec.batch, {
      ownsDevice: true,
    });
  } catch (error) {
    device.dispose();
    throw error;
  }
}

/** How fast a step copies gradients: dividing by B is exact when folded into a power-of-two loss scale. */
function isPowerOfTwo(n: number): boolean {
  return (n & (n - 1)) === 0;
}

/** Checks a step's options; returns whether the gradients are handed over as views. */
export function gradsAsViews(options: StepOptions | undefined): boolean {
  if (options === undefined) return false;
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(
      `step options must be an object { grads?, gradsInto? }, got ${describe(options)}`,
      'options',
    );
  }
  for (const key of Object.keys(options)) {
    if (key !== 'grads' && key !== 'gradsInto') {
      throw new ConfigError(
        `unknown step option '${key}' (the options are grads: 'copy' | 'view' and gradsInto)`,
        key,
      );
    }
  }
  const { grads = 'copy', gradsInto } = options;
  if (grads !== 'copy' && grads !== 'view') {
    throw new ConfigError(`step option grads must be 'copy' or 'view', got ${describe(grads)}`, 'grads');
  }
  if (gradsInto !== undefined) {
    if (grads !== 'view')
      throw new ConfigError(
        "step option gradsInto needs grads: 'view' (the arrays are handed back)",
        'gradsInto',
      );
    if (!(gradsInto instanceof Map))
      throw new ConfigError(
        `step option gradsInto must be a Map from parameter name to Float32Array, got ${describe(gradsInto)}`,
        'gradsInto',
      );
  }
  return grads === 'view';
}

/**
 * A training graph loaded on a device of this process. `DeviceRuntime` shares one device between
 * the sessions of several buckets (the compile cache and budget are the process's); `openSession`
 * gives each session a device of its own.
 */
export class InProcessSession implements DeviceSession {
  readonly where = 'in-process' as const;
  readonly backend: 'ane' | 'sim';
  readonly programs: number;
  readonly seq: number;
  readonly batch: number;
  /** Passes of the plan per step: batch / training.sequences. */
  private readonly passes: number;
  private readonly exe: PlanExecutable;
  /** HF name → graph source, values per parameter, gradient output. */
  private readonly parameters: Map<
    string,
    { source: string; shape: readonly number[]; size: number; grad: string }
  >;
  private readonly written = new Set<string>();
  /** Gradient outputs computed into the caller's arrays (StepOptions.gradsInto), by HF name. */
  private readonly boundGrads = new Map<string, Float32Array>();
  private readonly vocab: number;
  // Reused every step: B sequences of S inputs / S targets back to back, the per-sequence loss scale.
  private readonly inputs: Int32Array; // [B, S]
  private readonly targets: Int32Array; // [B, S]
  private readonly lossScales: Float32Array; // [passes]
  private readonly feeds: Record<string, Int32Array | Float32Array>;
  /**
   * A batch that is not a power of two: the mean gradients handed over as views, by HF name
   * (allocated on the first such step, then reused; the executable's sums are divided into them).
   */
  private meanBuffers: Map<string, Float32Array> | undefined;
  private busy = false;
  private disposed = false;

  constructor(
    private readonly device: Device,
    readonly training: TrainingGraph,
    batch: number,
    private readonly options: { ownsDevice: boolean },
  ) {
    this.backend = device.backend;
    this.seq = training.seq;
    this.batch = batch;
    if (!Number.isSafeInteger(batch / training.sequences)) {
      throw new ConfigError(
        `a batch of ${batch} cannot run as passes of the training graph's ${training.sequences} sequences: build it with a sequences count that divides the batch (sequencesPerPass)`,
        'batch',
      );
    }
    this.passes = batch / training.sequences;
    this.vocab = training.config.vocab_size;
    this.parameters = new Map(
      training.parameters.map((p) => [
        p.name,
        {
          source: p.source,
          shape: p.shape,
          size: p.shape.reduce((a, b) => a * b, 1),
          grad: training.gradOutput(p.name),
        },
      ]),
    );
    this.exe = device.load(training.plan, {
      batch: this.passes,
      sumOverBatch: [TRAINING_IO.loss, ...[...this.parameters.values()].map((p) => p.grad)],
    });
    this.programs = training.plan.programs.length;
    this.inputs = new Int32Array(batch * this.seq);
    this.targets = new Int32Array(batch * this.seq);
    this.lossScales = new Float32Array(this.passes);
    this.feeds = {
      [TRAINING_IO.tokens]: this.inputs,
      [TRAINING_IO.targets]: this.targets,
      [TRAINING_IO.lossScale]: this.lossScales,
    };
  }

  async writeWeights(
    weights: ReadonlyMap<string, Float32Array>,
    options?: WriteWeightsOptions,
  ): Promise<void> {
    this.checkUsable('writeWeights');
    const share = options?.share === true;
    if (!(weights instanceof Map)) {
      throw new CheckpointError(
        `writeWeights takes a Map from Hugging Face parameter name to Float32Array, got ${describe(weights)}`,
      );
    }
    // Check everything before writing anything: a refused call changes nothing.
    for (const [name, values] of weights) {
      const parameter = this.parameters.get(name);
      if (parameter === undefined) {
        const near = nearestName(name, [...this.parameters.keys()]);
        throw new CheckpointError(
          `the model has no parameter '${name}' (${this.parameters.size} parameters, e.g. '${this.parameters.keys().next().value}')` +
            `${near ? `; did you mean '${near}'?` : ''}: pass weights under their Hugging Face names`,
          { tensor: name },
        );
      }
      if (!(values instanceof Float32Array)) {
        throw new CheckpointError(
          `weight '${name}' must be a Float32Array, got ${describe(values)}: convert it to fp32 first`,
          { tensor: name },
        );
      }
      if (values.length !== parameter.size) {
        throw new CheckpointError(
          `weight '${name}' has ${values.length} values, expected ${parameter.size} (shape [${parameter.shape.join(', ')}]): check the model config matches the weights`,
          { tensor: name },
        );
      }
      if (share && (values.buffer as ArrayBuffer & { resizable?: boolean }).resizable === true) {
        throw new CheckpointError(
          `weight '${name}' is a view of a resizable ArrayBuffer, which cannot be shared with the device (its memory can shrink): pass a fixed-length array`,
          { tensor: name },
        );
      }
    }
    for (const [name, values] of weights) {
      const source = this.parameters.get(name)!.source;
      if (share) this.exe.bind(source, values);
      else this.exe.write(source, values);
      this.written.add(name);
    }
  }

  async step(tokens: Int32Array, lossScale: number, options?: StepOptions): Promise<StepResult> {
    this.checkUsable('step');
    const started = performance.now();
    const views = gradsAsViews(options);
    if (this.written.size !== this.parameters.size) {
      const missing = [...this.parameters.keys()].filter((name) => !this.written.has(name));
      throw new CheckpointError(
        `${missing.length} of the model's ${this.parameters.size} weights were never written (${missing
          .slice(0, 3)
          .map((n) => `'${n}'`)
          .join(
            ', ',
          )}${missing.length > 3 ? ', …' : ''}): call writeWeights with every parameter before the first step`,
        { tensor: missing[0]! },
      );
    }
    if (
      !(typeof lossScale === 'number' && Number.isFinite(lossScale) && lossScale > 0 && lossScale <= FP16_MAX)
    ) {
      throw new ConfigError(
        `lossScale must be a finite number in (0, ${FP16_MAX}] (it is staged as fp16), got ${String(lossScale)}: use a power of two such as 1024`,
        'lossScale',
      );
    }
    if (views && this.passes === 1 && options?.gradsInto !== undefined) this.bindGrads(options.gradsInto);
    this.splitTokens(tokens);
    // Each pass's loss is the mean over its sequences (each of S positions), and the executor sums
    // the passes: the batch mean is the sum / passes. For a power-of-two number of passes the
    // 1/passes rides in the loss scale (exact in fp16: only the exponent changes), so the sums come
    // back as means and are copied at memory speed; otherwise they are divided here.
    const folded = isPowerOfTwo(this.passes);
    this.lossScales.fill(folded ? lossScale / this.passes : lossScale);
    this.busy = true;
    let outputs: PlanOutputs;
    try {
      outputs = await this.exe.run(this.feeds);
    } finally {
      this.busy = false;
    }
    const copyStarted = performance.now();
    const loss = (outputs[TRAINING_IO.loss] as Float32Array)[0]! / this.passes;
    const grads = new Map<string, Float32Array>();
    if (!folded && views) this.meanBuffers ??= new Map();
    for (const [name, parameter] of this.parameters) {
      const summed = outputs[parameter.grad] as Float32Array;
      if (folded) {
        // Views: the executable's own output arrays (overwritten by its next run). Copies: fresh.
        grads.set(name, views ? summed : summed.slice());
        continue;
      }
      let mean = views ? this.meanBuffers!.get(name) : undefined;
      if (mean === undefined) {
        mean = new Float32Array(summed.length);
        if (views) this.meanBuffers!.set(name, mean);
      }
      const inverse = 1 / this.passes;
      for (let i = 0; i < summed.length; i++) mean[i] = summed[i]! * inverse;
      grads.set(name, mean);
    }
    const finished = performance.now();
    const run = this.exe.profile!;
    const totalMs = finished - started;
    const outside = copyStarted - started - run.totalMs; // checks and token split before the run
    return {
      loss,
      grads,
      profile: {
        deviceMs: run.deviceMs,
        hostMs: run.hostMs,
        stagingMs: run.stagingMs + Math.max(0, outside) + (finished - copyStarted),
        idleMs: run.idleMs,
        totalMs,
      },
    };
  }

  /** Each gradient computed straight into the caller's array (checked first; bound once per array). */
  private bindGrads(into: ReadonlyMap<string, Float32Array>): void {
    for (const [name, parameter] of this.parameters) {
      const array = into.get(name);
      if (
        !(array instanceof Float32Array) ||
        array.length !== parameter.size ||
        (array.buffer as ArrayBuffer & { resizable?: boolean }).resizable === true
      ) {
        throw new ConfigError(
          `step option gradsInto: '${name}' must be a Float32Array of ${parameter.size} values over fixed-length memory, got ${describe(array)}`,
          'gradsInto',
        );
      }
    }
    for (const [name, parameter] of this.parameters) {
      const array = into.get(name)!;
      if (this.boundGrads.get(name) === array) continue;
      this.exe.bind(parameter.grad, array);
      this.boundGrads.set(name, array);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.exe.dispose();
    if (this.options.ownsDevice) this.device.dispose();
  }

  /** Checks B × (S + 1) ids in [0, vocab) and splits them into the inputs and targets buffers. */
  private splitTokens(tokens: Int32Array): void {
    const { batch, seq, vocab } = this;
    if (!(tokens instanceof Int32Array)) {
      throw new DataError(
        `step takes the batch's token ids as an Int32Array of ${batch} × ${seq + 1} values, got ${describe(tokens)}`,
      );
    }
    if (tokens.length !== batch * (seq + 1)) {
      throw new DataError(
        `step takes ${batch} sequences of ${seq + 1} tokens (batch × (seq + 1) = ${batch * (seq + 1)} ids), got ${tokens.length}: ` +
          `each sequence holds seq inputs and the one token after them`,
      );
    }
    for (let b = 0; b < batch; b++) {
      const row = b * (seq + 1);
      for (let s = 0; s <= seq; s++) {
        const id = tokens[row + s]!;
        if (id < 0 || id >= vocab) {
          throw new DataError(
            `token ${id} at sequence ${b}, position ${s} (index ${row + s}) is outside the vocabulary [0, ${vocab}): ` +
              'check the tokenizer matches the model config (vocab_size)',
          );
        }
      }
      this.inputs.set(tokens.subarray(row, row + seq), b * seq);
      this.targets.set(tokens.subarray(row + 1, row + seq + 1), b * seq);
    }
  }

  private checkUsable(call: string): void {
    if (this.disposed) throw new TrainError(`${call}: this device session was disposed; open a new one`);
    if (this.busy) {
      throw new TrainError(
        `${call}: a step is still running on this session; await it before calling ${call} again`,
      );
    }
  }
}

/** `a Float64Array`, `a Map`, `undefined`: for messages. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return `a ${value.constructor?.name ?? 'object'}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** The closest candidate by edit distance, when it is close enough to be a typo. */
function nearestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(3, Math.floor(name.length / 4)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}
