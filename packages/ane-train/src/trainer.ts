/**
 * `Trainer`: the app developer's entry point. It owns the fp32 master weights (one ane-optim arena),
 * the optimizer, the loss scaler and the device runtime, and `fit` runs optimizer steps: per step
 * `accumulate` micro-batches through the device (forward and input gradients on the ANE, weight
 * gradients and the loss on the host, as the plan says), then unscale, clip, update, restage.
 */

import { CHIP_FAMILIES } from 'ane-ir/mil';
import {
  AdamW,
  type BaseHyperParameters,
  clipCoefficient,
  clipGradNorm,
  DynamicLossScaler,
  FlatArena,
  GradientAccumulator,
  globalNorm,
  type LossScalerOptions,
  type LossScalerState,
  type Optimizer,
  type OptimizerState,
  type OptimizerStateMeta,
} from 'ane-optim';
import { BatchSampler } from './data/sampler';
import { CheckpointError, ConfigError, DataError, TrainError } from './errors';
import type { LlamaConfig, PresetName } from './model/config';
import { resolveModel } from './model/config';
import {
  checkParametersFitMemory,
  initParameters,
  type ParameterSpec,
  parameterSpecs,
} from './model/parameters';
import type { ChipName } from './model/training-graph';
import { uniformSource } from './random';
import { DeviceRuntime, type RuntimeEvent } from './runtime/device-runtime';

export type Backend = 'auto' | 'ane' | 'sim';

// biome-ignore lint/suspicious/noExplicitAny: any optimizer's own state fields
type AnyOptimizer = Optimizer<BaseHyperParameters, any>;

/** The largest power of two fp16 holds: the device's loss-scale input is fp16. */
const MAX_LOSS_SCALE = 32768;

export interface TrainerOptions {
  /** A preset name or a Hugging Face Llama/Qwen3 config object. */
  model: PresetName | LlamaConfig | Record<string, unknown>;
  /**
   * An ane-optim optimizer over the model's Hugging Face parameter names; default AdamW with
   * learning rate 3e-4, betas [0.9, 0.95], weight decay 0.1 (none on norm gains).
   */
  optimizer?: AnyOptimizer;
  /** 'auto' (default) picks the ANE on a Mac and the simulator elsewhere. */
  backend?: Backend;
  /** Starting weights by Hugging Face name (e.g. read from safetensors); default a seeded init. */
  weights?: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>;
  /** Seed of the initial weights and of the windows drawn from a token stream (default 42). */
  seed?: number;
  /** Sequences per micro-batch (default 1). */
  batch?: number;
  /** Positions per sequence for token streams (default min(256, max_position_embeddings)). */
  seq?: number;
  /** Micro-batches whose mean gradient makes one optimizer step (default 1). */
  accumulate?: number;
  /** Global gradient-norm ceiling (default 1.0; `false`: no clipping). */
  gradClip?: number | false;
  /**
   * Dynamic loss scaling (default on: initial scale 1024, grows ×2 after 1000 clean steps up to
   * 32768, halves on a step with inf/NaN gradients, which is skipped); `false`: scale 1. The device
   * takes the scale as an fp16 input: scales above 32768 are refused.
   */
  lossScale?: LossScalerOptions | false;
  /** Programs one device process may compile (default: the device's). */
  compileBudget?: number;
  /** The chip to plan for (default: the device's). */
  chip?: ChipName;
}

/** One optimizer step, as `fit` reports it to callbacks and in `history`. */
export interface StepLog {
  /** 0-based optimizer step (skipped steps count: they consumed data). */
  step: number;
  /** Mean next-token cross-entropy over the step's micro-batches. */
  loss: number;
  /** The learning rate this step used (the schedule's value). */
  lr: number;
  tokensPerSecond: number;
  /** The loss scale this step's gradients were computed with. */
  lossScale: number;
  /** The gradients held inf or NaN: the update was skipped and the scale lowered. */
  skipped: boolean;
  /** Global gradient norm before clipping (NaN on a skipped step). */
  gradNorm: number;
  backend: 'ane' | 'sim';
  /** Where device work ran: this process, or a worker process after a compile-budget hand-over. */
  where: 'in-process' | 'worker';
  /**
   * Milliseconds: device, host kernels, staging (with copying each micro-batch's gradients into the
   * optimizer's arena) and idle, summed over micro-batches; optimizer (unscale, clip, update); total.
   */
  profile: {
    deviceMs: number;
    hostMs: number;
    stagingMs: number;
    idleMs: number;
    optimizerMs: number;
    totalMs: number;
  };
}

export interface History {
  /** Per metric, one value per step (as tf.js's `History.history`). */
  history: {
    loss: number[];
    lr: number[];
    tokensPerSecond: number[];
    lossScale: number[];
    backend: string[];
  };
  steps: StepLog[];
  /** Steps skipped for inf/NaN gradients. */
  skippedSteps: number;
  /** Times device work moved to a fresh worker process (compile budget). */
  handOvers: number;
  /** Whether the run stopped early on its AbortSignal. */
  aborted: boolean;
}

export interface FitCallbacks {
  onTrainBegin?(): void | Promise<void>;
  onStepEnd?(log: StepLog): void | Promise<void>;
  onTrainEnd?(history: History): void | Promise<void>;
  /**
   * Device-runtime events: compiles and compile-budget hand-overs. Not awaited (it is called from
   * inside a step); a throw, or the rejection of a promise it returns, fails the run.
   */
  onRuntimeEvent?(event: RuntimeEvent): void;
}

export interface FitOptions {
  /** Optimizer steps to run (default 100). */
  steps?: number;
  callbacks?: FitCallbacks;
  /** Stops cleanly after the step in flight. */
  signal?: AbortSignal;
}

/**
 * Training data for `fit`:
 * - a token stream (`Uint8Array` of bytes, `Uint16Array`, `Int32Array` or numbers): each micro-batch is `batch` windows of
 *   `seq + 1` tokens drawn at seeded random offsets;
 * - an iterable or async iterable of micro-batches, each `batch` sequences of S+1 tokens back to
 *   back (any S ≤ max_position_embeddings: each length is its own plan, a "bucket").
 */
export type TrainingData =
  | Uint8Array
  | Uint16Array
  | Int32Array
  | readonly number[]
  | Iterable<Int32Array | Uint16Array | readonly number[]>
  | AsyncIterable<Int32Array | Uint16Array | readonly number[]>;

/**
 * Everything besides the weights that a resumed run needs to continue exactly as if it had never
 * stopped: `Trainer.saveState()` returns it, `Trainer.loadState()` takes it back. JSON-serializable
 * except `optimizer.data` (every optimizer buffer, fp32, concatenated; see ane-optim's
 * `OptimizerState`).
 */
export interface TrainerState {
  /** Optimizer steps taken (skipped ones included): the next step's token-stream windows depend on it. */
  step: number;
  /** The seed of the token-stream windows. */
  seed: number;
  optimizer: OptimizerState;
  /** The dynamic loss scaler's scale and growth counter; null when loss scaling is off. */
  lossScaler: LossScalerState | null;
}

/** A Trainer's weights and state for a checkpoint (see `Trainer.withCheckpointView`). */
export interface TrainerCheckpointView {
  weights: Map<string, Float32Array>;
  state: TrainerState;
  /**
   * The optimizer's buffers, one per `state.optimizer.meta.buffers` entry, in that order (then
   * `state.optimizer.data` is empty); undefined when `state.optimizer.data` holds them.
   */
  optimizerBuffers: Float32Array[] | undefined;
}

export interface EvaluateOptions {
  /** Micro-batches to average (default: every one the data holds; give it for an endless sampler). */
  batches?: number;
}

const OPTION_KEYS = [
  'model',
  'optimizer',
  'backend',
  'weights',
  'seed',
  'batch',
  'seq',
  'accumulate',
  'gradClip',
  'lossScale',
  'compileBudget',
  'chip',
] as const;

export class Trainer {
  readonly config: LlamaConfig;
  readonly parameters: readonly ParameterSpec[];
  readonly optimizer: AnyOptimizer;
  readonly lossScaler: DynamicLossScaler | undefined;
  readonly batch: number;
  readonly seq: number;
  readonly accumulate: number;
  readonly gradClip: number | false;
  private readonly arena: FlatArena;
  private readonly runtime: DeviceRuntime;
  private seed: number;
  private readonly accumulator: GradientAccumulator<Record<string, Float32Array>>;
  /** The arena's gradient views, handed to the runtime to compute into (one micro-batch per step). */
  private readonly gradsInto: ReadonlyMap<string, Float32Array> | undefined;
  private stepsDone = 0;
  private runtimeListener: ((event: RuntimeEvent) => void) | undefined;
  /** The rejection of an async onRuntimeEvent, rethrown by fit. */
  private runtimeListenerError: { error: unknown } | undefined;
  private disposed = false;
  /** The fit in progress (one at a time: they would share the runtime, accumulator and optimizer). */
  private fitting = false;
  /** The optimizer step in flight: dispose waits for it before freeing the device. */
  private inFlight: Promise<unknown> | undefined;
  /** Checkpoints being written from the live arrays: steps wait, loadWeights/loadState refuse. */
  private holds = 0;
  private released: Promise<void> = Promise.resolve();
  private release: (() => void) | undefined;

  constructor(options: TrainerOptions) {
    if (options === null || typeof options !== 'object') {
      throw new ConfigError(
        'new Trainer(options): options must be an object with at least { model }',
        'options',
      );
    }
    for (const key of Object.keys(options)) {
      if (!(OPTION_KEYS as readonly string[]).includes(key)) {
        throw new ConfigError(
          `new Trainer: unknown option '${key}' (the options are ${OPTION_KEYS.join(', ')})`,
          key,
        );
      }
    }
    this.config = resolveModel(options.model as PresetName);
    this.parameters = parameterSpecs(this.config);
    this.seed = wholeNumber(options.seed ?? 42, 'seed', 0);
    this.batch = wholeNumber(options.batch ?? 1, 'batch', 1);
    this.seq = wholeNumber(options.seq ?? Math.min(256, this.config.max_position_embeddings), 'seq', 1);
    if (this.seq > this.config.max_position_embeddings) {
      throw new ConfigError(
        `seq ${this.seq} is longer than the model's max_position_embeddings (${this.config.max_position_embeddings})`,
        'seq',
      );
    }
    this.accumulate = wholeNumber(options.accumulate ?? 1, 'accumulate', 1);
    const clip = options.gradClip ?? 1;
    if (clip !== false && !(typeof clip === 'number' && clip > 0 && Number.isFinite(clip))) {
      throw new ConfigError(`gradClip must be a positive number or false, got ${String(clip)}`, 'gradClip');
    }
    this.gradClip = clip;
    if (options.chip !== undefined && !(CHIP_FAMILIES as readonly unknown[]).includes(options.chip)) {
      throw new ConfigError(
        `chip must be one of ${CHIP_FAMILIES.join(', ')}, got ${describeValue(options.chip)}: leave it out to plan for the device's own chip`,
        'chip',
      );
    }
    const backend = options.backend ?? 'auto';
    if (!['auto', 'ane', 'sim'].includes(backend)) {
      throw new ConfigError(`backend must be 'auto', 'ane' or 'sim', got ${String(backend)}`, 'backend');
    }

    if (
      options.optimizer !== undefined &&
      (options.optimizer === null ||
        typeof (options.optimizer as Partial<AnyOptimizer>).stepArena !== 'function' ||
        typeof (options.optimizer as Partial<AnyOptimizer>).learningRate !== 'number')
    ) {
      throw new ConfigError(
        `optimizer must be an ane-optim optimizer (new AdamW({ learningRate: 3e-4 }), SGD, Adam, Lion), got ${describeValue(options.optimizer)}`,
        'optimizer',
      );
    }
    checkParametersFitMemory(this.parameters, 8, 'new Trainer'); // fp32 weights and gradients
    this.arena = allocate(
      // Shared memory: the native kernels compute the gradients into it in place (gradsInto).
      () =>
        new FlatArena(
          this.parameters.map((spec) => [spec.name, [...spec.shape]] as [string, number[]]),
          { shared: true },
        ),
      () =>
        new ConfigError(
          `the model's ${this.parameters.reduce((n, spec) => n + spec.shape.reduce((a, b) => a * b, 1), 0)} fp32 parameters (with their gradients) cannot be allocated in this process: check the config's sizes (hidden_size, vocab_size, …) or use a smaller model`,
          'model',
        ),
    );
    this.copyWeights(options.weights ?? initParameters(this.config, { seed: this.seed }));
    this.optimizer =
      options.optimizer ??
      new AdamW({
        learningRate: 3e-4,
        betas: [0.9, 0.95],
        weightDecay: 0.1,
        groups: [
          { params: this.parameters.filter((p) => !p.weightDecay).map((p) => p.name), weightDecay: 0 },
        ],
      });
    this.lossScaler = options.lossScale === false ? undefined : lossScaler(options.lossScale);
    const gradTree = this.arena.gradsTree();
    this.accumulator = new GradientAccumulator(gradTree, { steps: this.accumulate });
    // One micro-batch per step: the session computes the gradients straight into the arena.
    this.gradsInto = this.accumulate === 1 ? new Map(Object.entries(gradTree)) : undefined;
    this.runtime = new DeviceRuntime({
      config: this.config,
      batch: this.batch,
      backend,
      ...(options.chip !== undefined ? { chip: options.chip } : {}),
      ...(options.compileBudget !== undefined ? { compileBudget: options.compileBudget } : {}),
      // The arena's views: updated in place by the optimizer, then set again (setWeights below).
      shareWeights: true,
      onEvent: (event) => {
        const result: unknown = this.runtimeListener?.(event);
        // An async listener's rejection fails the run like a throw would (unhandled, it would end
        // the process); fit rethrows it after the step in flight.
        if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
          (result as PromiseLike<unknown>).then(undefined, (error: unknown) => {
            this.runtimeListenerError ??= { error };
          });
        }
      },
    });
    this.runtime.setWeights(this.weights);
  }

  /**
   * The fp32 master weights by Hugging Face name (views into the arena: read, do not keep across
   * steps). The arena is a SharedArrayBuffer: `postMessage` shares these views; send `.slice()`s.
   */
  get weights(): Map<string, Float32Array> {
    return new Map(this.parameters.map((spec) => [spec.name, this.arena.view(spec.name)]));
  }

  /** Optimizer steps taken so far (skipped ones included). */
  get step(): number {
    return this.stepsDone;
  }

  /** Replaces the weights (by Hugging Face name; every parameter, fp32) and restages them. */
  loadWeights(weights: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>): void {
    if (this.disposed) {
      throw new TrainError('loadWeights: this Trainer was disposed: create a new Trainer with { weights }');
    }
    if (this.fitting) {
      throw new TrainError(
        'loadWeights: fit is running on this Trainer (a step would mix two sets of weights): await fit first',
      );
    }
    this.checkNotHeld('loadWeights');
    this.copyWeights(weights);
    this.runtime.setWeights(this.weights);
  }

  private checkNotHeld(what: string): void {
    if (this.holds > 0) {
      throw new TrainError(
        `${what}: a checkpoint is being written from this Trainer's weights and state: await saveTrainerCheckpoint first`,
      );
    }
  }

  private copyWeights(
    weights: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>,
  ): void {
    const entries = weights instanceof Map ? weights : new Map(Object.entries(weights));
    for (const spec of this.parameters) {
      const values = entries.get(spec.name);
      const size = spec.shape.reduce((a, b) => a * b, 1);
      if (!(values instanceof Float32Array) || values.length !== size) {
        throw new ConfigError(
          `weights: '${spec.name}' ${values === undefined ? 'is missing' : `must be a Float32Array of ${size} values (shape [${spec.shape.join(', ')}]), got ${values instanceof Float32Array ? values.length : typeof values}`}`,
          spec.name,
        );
      }
      const bad = values.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new ConfigError(
          `weights: '${spec.name}' holds ${values[bad]} at index ${bad}: starting weights must be finite (check the checkpoint or the code that made it)`,
          spec.name,
        );
      }
    }
    const known = new Set(this.parameters.map((spec) => spec.name));
    const unknown = [...entries.keys()].filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new ConfigError(
        `weights: ${unknown.map((n) => `'${n}'`).join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a parameter of this model (its parameters are Hugging Face names such as '${this.parameters[1]?.name}')`,
        unknown[0],
      );
    }
    for (const spec of this.parameters) this.arena.view(spec.name).set(entries.get(spec.name)!);
  }

  /** Trains for `steps` optimizer steps on `data`; resolves with the history. */
  async fit(data: TrainingData, options: FitOptions = {}): Promise<History> {
    if (this.disposed) {
      throw new TrainError(
        'fit: this Trainer was disposed: create a new Trainer (and loadWeights) to train again',
      );
    }
    if (this.fitting) {
      throw new TrainError(
        'fit is already running on this Trainer: await it before calling fit again (or use a second Trainer)',
      );
    }
    checkFitOptions(options);
    const steps = wholeNumber(options.steps ?? 100, 'steps', 0);
    const callbacks = options.callbacks ?? {};
    const batches = microBatches(data, {
      batch: this.batch,
      seq: this.seq,
      seed: this.seed,
      firstStep: this.stepsDone,
      accumulate: this.accumulate,
      vocab: this.config.vocab_size,
      maxSeq: this.config.max_position_embeddings,
      caller: 'fit',
    });
    const history: History = {
      history: { loss: [], lr: [], tokensPerSecond: [], lossScale: [], backend: [] },
      steps: [],
      skippedSteps: 0,
      handOvers: 0,
      aborted: false,
    };
    this.runtimeListener = callbacks.onRuntimeEvent;
    this.runtimeListenerError = undefined;
    const rethrowListenerError = () => {
      const failed = this.runtimeListenerError;
      if (failed !== undefined) {
        this.runtimeListenerError = undefined;
        throw failed.error;
      }
    };
    const handOversBefore = this.runtime.handOvers;
    this.fitting = true;
    try {
      await callbacks.onTrainBegin?.();
      for (let i = 0; i < steps; i++) {
        // A step can complete without ever leaving the microtask queue (a small model whose kernels
        // and host ops all run on the JS thread): give pending events (a Ctrl-C handler, an
        // AbortSignal's timer, I/O) their turn first, or a run could not be stopped.
        await eventLoopTurn();
        // A checkpoint written from the live arrays (saveTrainerCheckpoint) must see them unchanged.
        while (this.holds > 0) await this.released;
        if (this.disposed) {
          throw new TrainError(
            `the Trainer was disposed during fit, after ${history.steps.length} steps of ${steps}: the weights are as that step left them; await fit before dispose, or stop the run with an AbortSignal`,
          );
        }
        if (options.signal?.aborted) {
          history.aborted = true;
          break;
        }
        const inFlight = this.trainStep(batches);
        this.inFlight = inFlight;
        const log = await inFlight;
        rethrowListenerError();
        if (log === undefined) break; // the data ran out
        history.steps.push(log);
        history.history.loss.push(log.loss);
        history.history.lr.push(log.lr);
        history.history.tokensPerSecond.push(log.tokensPerSecond);
        history.history.lossScale.push(log.lossScale);
        history.history.backend.push(log.backend);
        if (log.skipped) history.skippedSteps += 1;
        history.handOvers = this.runtime.handOvers - handOversBefore;
        await callbacks.onStepEnd?.(log);
      }
      if (options.signal?.aborted) history.aborted = true;
      await Promise.resolve(); // a listener that rejected during the last step has run its handler
      rethrowListenerError();
      await callbacks.onTrainEnd?.(history);
      return history;
    } finally {
      this.fitting = false;
      this.inFlight = undefined;
      this.runtimeListener = undefined;
      await batches.return?.(undefined);
    }
  }

  private async trainStep(
    batches: AsyncIterator<{ tokens: Int32Array; seq: number }>,
  ): Promise<StepLog | undefined> {
    const started = performance.now();
    const scale = this.lossScaler?.scale ?? 1;
    const lr = this.optimizer.learningRate;
    const profile = { deviceMs: 0, hostMs: 0, stagingMs: 0, idleMs: 0, optimizerMs: 0, totalMs: 0 };
    let lossSum = 0;
    let tokens = 0;
    let backend: 'ane' | 'sim' = 'sim';
    let where: 'in-process' | 'worker' = 'in-process';
    // A round that failed part-way (bad data, a callback that threw) left partial sums behind:
    // drop them, so this step averages its own micro-batches only.
    if (this.accumulator.count > 0) this.accumulator.finish();
    for (let micro = 0; micro < this.accumulate; micro++) {
      const next = await batches.next();
      if (next.done) {
        if (micro === 0) return undefined;
        throw new DataError(
          `the data ran out in the middle of an optimizer step (${micro} of ${this.accumulate} micro-batches): give at least steps × accumulate micro-batches`,
        );
      }
      // The session's own gradient buffers (no fresh copy per step): copied into the arena below,
      // before anything else runs on the runtime.
      const result = await this.runtime.step(next.value.tokens, next.value.seq, scale, {
        grads: 'view',
        ...(this.gradsInto !== undefined ? { gradsInto: this.gradsInto } : {}),
      });
      lossSum += result.loss;
      tokens += this.batch * next.value.seq;
      backend = result.backend;
      where = result.where;
      profile.deviceMs += result.profile.deviceMs;
      profile.hostMs += result.profile.hostMs;
      profile.stagingMs += result.profile.stagingMs;
      profile.idleMs += result.profile.idleMs;
      const copyStarted = performance.now();
      this.accumulator.accumulate(Object.fromEntries(result.grads));
      profile.stagingMs += performance.now() - copyStarted; // copying gradients, as in the session
    }
    const optimizerStart = performance.now();
    const grads = this.accumulator.finish();
    const { gradNorm, skipped } = this.optimizerStep(grads);
    // A skipped step does not advance the optimizer; the step counter still moves on (data was used).
    profile.optimizerMs = performance.now() - optimizerStart;
    profile.totalMs = performance.now() - started;
    const log: StepLog = {
      step: this.stepsDone,
      loss: lossSum / this.accumulate,
      lr,
      tokensPerSecond: tokens / (profile.totalMs / 1000),
      lossScale: scale,
      skipped,
      gradNorm,
      backend,
      where,
      profile,
    };
    this.stepsDone += 1;
    return log;
  }

  /**
   * Unscale, check, clip and update. With a power-of-two loss scale (the dynamic scaler's, unless
   * told otherwise) in two passes over the gradients instead of five: one norm of the scaled
   * gradients (non-finite when one is: the check), and the update reading each gradient times
   * 1/scale times the clip factor (stepArena's gradScale). Same bits as unscaling, clipping and
   * updating one after the other: 1/scale is a power of two, so the products and the norm are
   * exact (barring gradients that 1/scale takes below fp32's normal range, 2^-126, which fp16
   * device gradients never are).
   */
  private optimizerStep(grads: Record<string, Float32Array>): { gradNorm: number; skipped: boolean } {
    const scaler = this.lossScaler;
    const inverse = scaler === undefined ? 1 : Math.fround(1 / scaler.scale);
    if (!isFp32PowerOfTwo(inverse)) {
      let gradNorm = Number.NaN;
      const apply = () => {
        gradNorm = this.gradClip === false ? Number.NaN : clipGradNorm(grads, this.gradClip);
        this.optimizer.stepArena(this.arena);
        this.runtime.setWeights(this.weights);
      };
      let skipped = false;
      if (scaler === undefined) apply();
      else skipped = scaler.step(grads, apply).skip;
      return { gradNorm, skipped };
    }
    const scaledNorm = scaler !== undefined || this.gradClip !== false ? globalNorm(grads) : Number.NaN;
    if (scaler !== undefined && !Number.isFinite(scaledNorm)) {
      scaler.update(true);
      return { gradNorm: Number.NaN, skipped: true };
    }
    let gradScale = inverse;
    let gradNorm = Number.NaN;
    if (this.gradClip !== false) {
      gradNorm = scaledNorm * inverse;
      gradScale = Math.fround(inverse * clipCoefficient(gradNorm, this.gradClip));
    }
    this.optimizer.stepArena(this.arena, { gradScale });
    this.runtime.setWeights(this.weights);
    scaler?.update(false);
    return { gradNorm, skipped: false };
  }

  /**
   * The step counter, the seed, the optimizer's state (copied) and the loss scaler's state: with the
   * weights, what `loadState` needs to continue this run bit for bit. Safe to call at any time, also
   * from a `fit` callback or while a step is in flight (it then describes the state before that step).
   */
  saveState(): TrainerState {
    return {
      step: this.stepsDone,
      seed: this.seed,
      optimizer: this.optimizer.saveState(),
      lossScaler: this.lossScaler?.saveState() ?? null,
    };
  }

  /**
   * Restores a state from `saveState` (of a Trainer of the same model, optimizer and loss-scaling
   * setting). Everything is checked before anything changes: a state that does not fit throws a
   * CheckpointError naming the field or tensor and leaves this Trainer as it was. Load the weights
   * too (`loadWeights`, or `restoreTrainer` for a checkpoint) to resume a run.
   */
  loadState(state: TrainerState): void {
    if (this.disposed) {
      throw new TrainError(
        'loadState: this Trainer was disposed: create a new Trainer and load the state into it',
      );
    }
    if (this.fitting) {
      throw new TrainError(
        'loadState: fit is running on this Trainer (the next step would mix two states): await fit first',
      );
    }
    this.checkNotHeld('loadState');
    const checked = this.checkState(state);
    if (checked.optimizer !== undefined) {
      try {
        this.optimizer.loadState(checked.optimizer);
      } catch (error) {
        // ane-optim checks the whole state before it changes anything.
        if (error instanceof Error && error.name === 'OptimizerStateError') {
          const { tensor, field } = (error as Error & { details: { tensor?: string; field?: string } })
            .details;
          throw new CheckpointError(`loadState: ${error.message}`, {
            ...(tensor !== undefined ? { tensor } : {}),
            ...(field !== undefined ? { field } : {}),
          });
        }
        throw error;
      }
    }
    // Checked above in full, so this cannot refuse now.
    if (this.lossScaler !== undefined) this.lossScaler.loadState(state.lossScaler!);
    this.stepsDone = state.step;
    this.seed = state.seed;
  }

  /** Checks `state` against this Trainer; returns the optimizer state to load. */
  private checkState(state: TrainerState): { optimizer: OptimizerState | undefined } {
    const fail: (message: string, details: { tensor?: string; field?: string }) => never = (
      message,
      details,
    ) => {
      throw new CheckpointError(`loadState: ${message}`, details);
    };
    if (state === null || typeof state !== 'object') {
      fail(
        `expected a state from Trainer.saveState() ({ step, seed, optimizer, lossScaler }), got ${describeValue(state)}`,
        { field: 'state' },
      );
    }
    for (const field of ['step', 'seed'] as const) {
      if (!Number.isSafeInteger(state[field]) || state[field] < 0) {
        fail(`${field} must be a whole number ≥ 0, got ${describeValue(state[field])}`, { field });
      }
    }
    const optimizer = state.optimizer;
    if (
      optimizer === null ||
      typeof optimizer !== 'object' ||
      optimizer.meta === null ||
      typeof optimizer.meta !== 'object' ||
      !(optimizer.data instanceof Float32Array) ||
      !Array.isArray(optimizer.meta.tensors)
    ) {
      fail(
        `optimizer must be an ane-optim OptimizerState { meta, data: Float32Array }, got ${describeValue(optimizer)}`,
        { field: 'optimizer' },
      );
    }
    if (optimizer.meta.optimizer !== this.optimizer.name) {
      fail(
        `the state is of a ${String(optimizer.meta.optimizer)} optimizer but this Trainer's is ${this.optimizer.name}: create the Trainer with the optimizer the run used`,
        { field: 'optimizer' },
      );
    }
    const shapes = new Map(this.parameters.map((spec) => [spec.name, spec.shape]));
    for (const tensor of optimizer.meta.tensors) {
      const shape = shapes.get(tensor?.name);
      if (shape === undefined) {
        fail(
          `the optimizer state has tensor '${String(tensor?.name)}', which this model does not have: the state was saved from another model`,
          { tensor: String(tensor?.name), field: 'optimizer' },
        );
      }
      const size = shape.reduce((a, b) => a * b, 1);
      if (
        tensor.length !== size ||
        (tensor.shape !== undefined && tensor.shape.join(',') !== shape.join(','))
      ) {
        fail(
          `the optimizer state of '${tensor.name}' is for ${tensor.shape !== undefined ? `shape [${tensor.shape.join(', ')}]` : `${tensor.length} elements`} but the parameter has shape [${shape.join(', ')}]: the state was saved from a model of another shape`,
          { tensor: tensor.name, field: 'shape' },
        );
      }
    }
    if ((state.lossScaler === null || state.lossScaler === undefined) !== (this.lossScaler === undefined)) {
      fail(
        this.lossScaler === undefined
          ? 'the state has a loss scaler but this Trainer was created with lossScale: false: create it with the loss scaling the run used'
          : 'the state has no loss scaler (the run used lossScale: false) but this Trainer scales the loss: create it with lossScale: false',
        { field: 'lossScaler' },
      );
    }
    if (state.lossScaler !== null && state.lossScaler !== undefined) {
      const { scale, growthTracker } = state.lossScaler;
      if (!(typeof scale === 'number' && scale > 0 && scale <= MAX_LOSS_SCALE)) {
        fail(`lossScaler.scale must be in (0, ${MAX_LOSS_SCALE}], got ${describeValue(scale)}`, {
          field: 'lossScaler',
        });
      }
      if (!Number.isSafeInteger(growthTracker) || growthTracker < 0) {
        fail(`lossScaler.growthTracker must be a whole number ≥ 0, got ${describeValue(growthTracker)}`, {
          field: 'lossScaler',
        });
      }
    }
    if (optimizer.meta.tensors.length === 0 && this.optimizer.state.size === 0) {
      // Saved before the first update, loaded before the first update: nothing to load.
      return { optimizer: undefined };
    }
    if (optimizer.meta.tensors.length === 0) {
      // A state saved before the first update: this optimizer has taken steps since; load zeros
      // (what a fresh optimizer starts from) instead of leaving its moments in place.
      const current = this.optimizer.saveState();
      return {
        optimizer: {
          meta: {
            ...current.meta,
            step: optimizer.meta.step,
            tensors: current.meta.tensors.map((tensor) => ({ ...tensor, step: 0 })),
          },
          data: new Float32Array(current.data.length),
        },
      };
    }
    return { optimizer };
  }

  /**
   * For `saveTrainerCheckpoint`: runs `work` with this Trainer's weights and state. Between fit
   * calls they are views of the live arrays (no copy: a large model's weights and optimizer state
   * are not held twice), and fit steps wait, loadWeights and loadState refuse, until `work`
   * settles; during fit (e.g. from a callback) they are copies taken at once.
   * @internal
   */
  async withCheckpointView<T>(work: (view: TrainerCheckpointView) => Promise<T>): Promise<T> {
    const live = this.fitting ? undefined : this.liveOptimizerState();
    if (live === undefined) {
      const weights = new Map([...this.weights].map(([name, values]) => [name, values.slice()]));
      return work({ weights, state: this.saveState(), optimizerBuffers: undefined });
    }
    if (this.holds === 0) this.released = new Promise((resolve) => (this.release = resolve));
    this.holds += 1;
    try {
      return await work({
        weights: this.weights,
        state: {
          step: this.stepsDone,
          seed: this.seed,
          optimizer: { meta: live.meta, data: new Float32Array(0) },
          lossScaler: this.lossScaler?.saveState() ?? null,
        },
        optimizerBuffers: live.buffers,
      });
    } finally {
      this.holds -= 1;
      if (this.holds === 0) this.release?.();
    }
  }

  /**
   * The optimizer's state as ane-optim's saveState describes it, with views of its buffers instead
   * of one copy (undefined when a tensor's state is not one of this model's parameters).
   */
  private liveOptimizerState(): { meta: OptimizerStateMeta; buffers: Float32Array[] } | undefined {
    const optimizer = this.optimizer;
    const specs = new Map(this.parameters.map((spec) => [spec.name, spec]));
    const names = [...optimizer.state.keys()];
    const fields: string[] = [];
    for (const name of names) {
      if (!specs.has(name)) return undefined;
      for (const [key, value] of Object.entries(optimizer.state.get(name)!)) {
        if (value instanceof Float32Array && !fields.includes(key)) fields.push(key);
      }
    }
    const tensors = names.map((name) => {
      const spec = specs.get(name)!;
      return {
        name,
        length: spec.shape.reduce((a, b) => a * b, 1),
        shape: [...spec.shape],
        step: optimizer.state.get(name)!.step,
      };
    });
    const entries: OptimizerStateMeta['buffers'] = [];
    const buffers: Float32Array[] = [];
    let offset = 0;
    for (const field of fields) {
      for (const name of names) {
        const buffer = (optimizer.state.get(name) as Record<string, unknown>)[field];
        if (!(buffer instanceof Float32Array)) continue;
        entries.push({ tensor: name, field, offset, length: buffer.length });
        buffers.push(buffer);
        offset += buffer.length;
      }
    }
    // For the record (loadState does not restore them): the groups these parameters use.
    const groups = new Map<string, Record<string, unknown>>();
    for (const spec of this.parameters) {
      const group = optimizer.groupNameOf(spec.name);
      if (groups.has(group)) continue;
      const described: Record<string, unknown> = { group };
      for (const [key, value] of Object.entries(optimizer.hyperParametersOf(spec.name))) {
        described[key] = typeof value === 'function' ? 'schedule' : value;
      }
      groups.set(group, described);
    }
    return {
      meta: {
        format: 'ane-optim/optimizer-state',
        version: 1,
        optimizer: optimizer.name,
        step: optimizer.step,
        tensors,
        buffers: entries,
        hyperParameters: [...groups.values()],
      },
      buffers,
    };
  }

  /**
   * The mean loss of `data`'s micro-batches under the current weights, without any update (the
   * gradients the device computes are ignored; loss scale 1). `data` is an iterable of micro-batches
   * (`batch` sequences of S + 1 tokens, as `fit` takes; e.g. `sequentialBatches` of validation
   * tokens; an endless one, like a BatchSampler, needs `batches`), or a token stream, cut into
   * consecutive windows of `seq + 1` tokens, `batch` per micro-batch.
   */
  async evaluate(data: TrainingData, options: EvaluateOptions = {}): Promise<number> {
    if (this.disposed) {
      throw new TrainError('evaluate: this Trainer was disposed: create a new Trainer to evaluate');
    }
    if (this.fitting) {
      throw new TrainError(
        'evaluate: fit is running on this Trainer (both use its device): call it between fit calls (run fit in chunks of steps, evaluating after each)',
      );
    }
    if (options === null || typeof options !== 'object') {
      throw new ConfigError(
        `evaluate: options must be an object { batches? }, got ${describeValue(options)}`,
        'options',
      );
    }
    if (data instanceof BatchSampler && options.batches === undefined) {
      // A BatchSampler never ends (epoch after epoch): without a limit this would never return.
      throw new ConfigError(
        `evaluate: a BatchSampler never ends (it starts another epoch): pass { batches: N }, or evaluate sequentialBatches(tokens, { batch: ${this.batch}, seq: ${this.seq} }) (every window once, in order)`,
        'batches',
      );
    }
    const limit =
      options.batches === undefined ? Number.POSITIVE_INFINITY : wholeNumber(options.batches, 'batches', 1);
    const batches = isTokenStream(data)
      ? consecutiveWindows(data as ArrayLike<number>, this.batch, this.seq, this.config.vocab_size)
      : microBatches(data, {
          batch: this.batch,
          seq: this.seq,
          seed: this.seed,
          firstStep: 0,
          accumulate: 1,
          vocab: this.config.vocab_size,
          maxSeq: this.config.max_position_embeddings,
          caller: 'evaluate',
        });
    this.fitting = true;
    let sum = 0;
    let count = 0;
    try {
      while (count < limit) {
        const next = await batches.next();
        if (next.done) break;
        // The gradients are ignored: take them as views (no copy).
        const inFlight = this.runtime.step(next.value.tokens, next.value.seq, 1, { grads: 'view' });
        this.inFlight = inFlight;
        sum += (await inFlight).loss;
        count += 1;
        if (this.disposed) throw new TrainError('the Trainer was disposed during evaluate');
      }
    } finally {
      this.fitting = false;
      this.inFlight = undefined;
      await batches.return?.(undefined);
    }
    if (count === 0) {
      throw new DataError(
        'evaluate: the data holds no micro-batch: give at least one (for a token stream, batch × (seq + 1) tokens)',
      );
    }
    return sum / count;
  }

  /** Frees the device (and any worker process). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // Let the step in flight finish (its fit then stops with a TrainError) before the device goes.
    await this.inFlight?.catch(() => {});
    await this.runtime.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

function wholeNumber(value: unknown, field: string, min: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    throw new ConfigError(`${field} must be a whole number ≥ ${min}, got ${describeValue(value)}`, field);
  }
  return value as number;
}

/** The dynamic loss scaler of `options` (ane-train's defaults under them), checked for fp16. */
function lossScaler(options: LossScalerOptions | undefined): DynamicLossScaler {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new ConfigError(
      `lossScale must be DynamicLossScaler options ({ initScale, growthInterval, maxScale, … }) or false, got ${describeValue(options)}`,
      'lossScale',
    );
  }
  const merged = { initScale: 1024, growthInterval: 1000, maxScale: MAX_LOSS_SCALE, ...(options ?? {}) };
  for (const key of ['initScale', 'maxScale'] as const) {
    const value = merged[key];
    if (typeof value === 'number' && value > MAX_LOSS_SCALE) {
      throw new ConfigError(
        `lossScale.${key} ${value} is above ${MAX_LOSS_SCALE}: the device takes the loss scale as an fp16 input (largest power of two ${MAX_LOSS_SCALE})`,
        'lossScale',
      );
    }
  }
  try {
    return new DynamicLossScaler(merged);
  } catch (error) {
    if (error instanceof Error && error.name === 'OptimizerConfigError') {
      throw new ConfigError(`lossScale: ${error.message}`, 'lossScale');
    }
    throw error;
  }
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return `the string '${value}'`;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : `a ${value.constructor?.name ?? 'object'}`;
}

/** Runs `make`; an allocation that does not fit (RangeError) becomes `refusal()`. */
function allocate<T>(make: () => T, refusal: () => Error): T {
  try {
    return make();
  } catch (error) {
    if (error instanceof RangeError) throw refusal();
    throw error;
  }
}

/** Resolves once the event loop has run the events pending now (setImmediate; setTimeout where there is none). */
function eventLoopTurn(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof setImmediate === 'function') setImmediate(resolve);
    else setTimeout(resolve, 0);
  });
}

const FIT_OPTION_KEYS = ['steps', 'callbacks', 'signal'];
const CALLBACK_KEYS = ['onTrainBegin', 'onStepEnd', 'onTrainEnd', 'onRuntimeEvent'];

function checkFitOptions(options: FitOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(
      `fit(data, options): options must be an object { steps?, callbacks?, signal? }, got ${describeValue(options)}`,
      'options',
    );
  }
  for (const key of Object.keys(options)) {
    if (!FIT_OPTION_KEYS.includes(key)) {
      throw new ConfigError(
        `unknown fit option '${key}' (the options are ${FIT_OPTION_KEYS.join(', ')}; run length is steps)`,
        key,
      );
    }
  }
  const { callbacks, signal } = options;
  if (callbacks !== undefined) {
    if (callbacks === null || typeof callbacks !== 'object') {
      throw new ConfigError(
        `fit: callbacks must be an object of functions, got ${describeValue(callbacks)}`,
        'callbacks',
      );
    }
    for (const [key, value] of Object.entries(callbacks)) {
      if (!CALLBACK_KEYS.includes(key)) {
        throw new ConfigError(
          `fit: unknown callback '${key}' (the callbacks are ${CALLBACK_KEYS.join(', ')})`,
          'callbacks',
        );
      }
      if (value !== undefined && typeof value !== 'function') {
        throw new ConfigError(
          `fit: callbacks.${key} must be a function, got ${describeValue(value)}`,
          'callbacks',
        );
      }
    }
  }
  // Duck-typed (only `aborted` is read): an AbortSignal from another realm or a polyfill works too.
  if (
    signal !== undefined &&
    (signal === null || typeof signal !== 'object' || typeof (signal as AbortSignal).aborted !== 'boolean')
  ) {
    throw new ConfigError(
      `fit: signal must be an AbortSignal (new AbortController().signal), got ${describeValue(signal)}`,
      'signal',
    );
  }
}

/** Whether `data` is a token stream (a typed array or an array of numbers), not micro-batches. */
function isTokenStream(data: unknown): boolean {
  return (
    (ArrayBuffer.isView(data) && !(data instanceof DataView)) ||
    (Array.isArray(data) && (data.length === 0 || typeof data[0] === 'number'))
  );
}

/**
 * A 32-bit seed for one micro-batch's windows: a hash of the run's seed, the optimizer step and the
 * micro-batch index (murmur3's finalizer after each word), so the windows of step k are the same
 * whether the run got there in one fit or resumed from a checkpoint.
 */
function windowSeed(seed: number, step: number, micro: number): number {
  let h = 0x9e3779b9;
  for (const word of [
    seed >>> 0,
    Math.floor(seed / 2 ** 32) >>> 0,
    step >>> 0,
    Math.floor(step / 2 ** 32) >>> 0,
    micro >>> 0,
  ]) {
    h = Math.imul(h ^ word, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** A token stream cut into consecutive windows of seq + 1 tokens, `batch` per micro-batch (for evaluate). */
async function* consecutiveWindows(
  stream: ArrayLike<number>,
  batch: number,
  seq: number,
  vocab: number,
): AsyncGenerator<{ tokens: Int32Array; seq: number }> {
  if (stream instanceof BigInt64Array || stream instanceof BigUint64Array) {
    throw new DataError(
      `evaluate(data): a ${stream.constructor.name} token stream is not supported: convert it to an Int32Array (Int32Array.from(data, Number))`,
    );
  }
  const window = seq + 1;
  if (stream.length < batch * window) {
    throw new DataError(
      `evaluate: the token stream holds ${stream.length} tokens, fewer than one micro-batch of batch × (seq + 1) = ${batch * window}: give more validation data or a shorter seq`,
    );
  }
  checkIds(stream, vocab, 'the token stream');
  const tokens = new Int32Array(batch * window);
  for (let start = 0; start + batch * window <= stream.length; start += batch * window) {
    for (let i = 0; i < batch * window; i++) tokens[i] = stream[start + i]!;
    yield { tokens, seq };
  }
}

/** The micro-batches of `data`: B×(S+1) int32 tokens and their S. */
async function* microBatches(
  data: TrainingData,
  options: {
    batch: number;
    seq: number;
    seed: number;
    /** The optimizer step the first micro-batch belongs to. */
    firstStep: number;
    accumulate: number;
    vocab: number;
    maxSeq: number;
    /** Named in errors. */
    caller: 'fit' | 'evaluate';
  },
): AsyncGenerator<{ tokens: Int32Array; seq: number }> {
  const { batch, seq, vocab } = options;
  const isStream = isTokenStream(data);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    throw new DataError(
      `${options.caller}(data): a ${data.constructor.name} token stream is not supported: convert it to an Int32Array (Int32Array.from(data, Number))`,
    );
  }
  if (isStream) {
    const stream = data as ArrayLike<number>;
    const length = stream.length;
    const window = seq + 1;
    if (stream.length < window) {
      throw new DataError(
        `the token stream holds ${stream.length} tokens, fewer than one sequence of seq + 1 = ${window}: give more data or a shorter seq`,
      );
    }
    checkIds(stream, vocab, 'the token stream');
    const positions = length - window + 1;
    const tokens = allocate(
      () => new Int32Array(batch * window),
      () =>
        new ConfigError(
          `a micro-batch of batch ${batch} × (seq ${seq} + 1) tokens cannot be allocated in this process: use a smaller batch (and accumulate micro-batches for a larger effective batch)`,
          'batch',
        ),
    );
    for (let index = 0; ; index++) {
      // The windows of micro-batch m of step k are a function of (seed, k, m) alone.
      const step = options.firstStep + Math.floor(index / options.accumulate);
      const random = uniformSource(windowSeed(options.seed, step, index % options.accumulate));
      // A resizable buffer (or a length-tracking view) may shrink between steps: never read past it.
      if (stream.length !== length) {
        throw new DataError(
          `the token stream changed length during fit (${length} → ${stream.length} tokens): do not resize its buffer while fit runs, or pass a copy`,
        );
      }
      for (let b = 0; b < batch; b++) {
        const start = Math.min(positions - 1, Math.floor(random() * positions));
        for (let i = 0; i < window; i++) tokens[b * window + i] = stream[start + i]!;
      }
      yield { tokens, seq };
    }
  }
  if (
    data === null ||
    typeof data !== 'object' ||
    !(Symbol.iterator in data || Symbol.asyncIterator in data)
  ) {
    throw new DataError(
      `${options.caller}(data): data must be a token stream (Uint16Array, Int32Array, number[]) or an iterable of micro-batches, got ${data === null ? 'null' : typeof data}`,
    );
  }
  if (data instanceof BatchSampler && data.batch !== batch) {
    // Its micro-batches would pass the size check as `batch` sequences of other, longer windows
    // (two unrelated windows glued together), and the model would silently learn from those.
    throw new DataError(
      `${options.caller}(data): the BatchSampler draws batch ${data.batch} × (seq ${data.seq} + 1) tokens, but this Trainer's batch is ${batch}: create the BatchSampler with batch ${batch} (or the Trainer with batch ${data.batch})`,
    );
  }
  let index = 0;
  for await (const item of data as AsyncIterable<ArrayLike<number>>) {
    if (
      item === null ||
      typeof item !== 'object' ||
      typeof (item as ArrayLike<number>).length !== 'number' ||
      item instanceof BigInt64Array ||
      item instanceof BigUint64Array
    ) {
      throw new DataError(
        `micro-batch ${index} is ${item === null ? 'null' : describeValue(item)}: each micro-batch must be an Int32Array, Uint16Array or number[] of token ids`,
      );
    }
    // Check the ids as given: Int32Array.from would turn 1.5 into 1, 'a' into 0 and 2^32 + 1 into 1.
    checkIds(item as ArrayLike<number>, vocab, `micro-batch ${index}`);
    const tokens = Int32Array.from(item as ArrayLike<number>);
    const length = tokens.length / batch;
    if (!Number.isInteger(length) || length < 2 || length - 1 > options.maxSeq) {
      throw new DataError(
        `micro-batch ${index} holds ${tokens.length} tokens: expected ${batch} sequences (batch) of S + 1 tokens each, 1 ≤ S ≤ ${options.maxSeq}`,
      );
    }
    yield { tokens, seq: length - 1 };
    index += 1;
  }
}

function checkIds(tokens: ArrayLike<number>, vocab: number, what: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) {
      throw new DataError(`${what}: token ${i} is ${id}, outside the vocabulary [0, ${vocab})`);
    }
  }
}

const fp32Bits = new Uint32Array(1);
const fp32View = new Float32Array(fp32Bits.buffer);

/** Whether the fp32 number x is 2^k, a normal number (no mantissa bits, exponent field 1..254). */
function isFp32PowerOfTwo(x: number): boolean {
  fp32View[0] = x;
  const bits = fp32Bits[0]!;
  const exponent = (bits >>> 23) & 0xff;
  return (
    fp32View[0] === x && bits >>> 31 === 0 && (bits & 0x7fffff) === 0 && exponent >= 1 && exponent <= 254
  );
}
