/**
 * The device runtime: one session per sequence length ("bucket"), in this process first, and the
 * compile budget. A process can compile only so many programs (the hardware framework fails after
 * about 119; `compileBudget` makes it smaller). Before a bucket loads, the runtime counts the
 * programs its plan will compile in the current device process (programs that process compiled
 * before are cache hits and do not count); when they would not fit the process's remaining budget,
 * device work moves to a fresh worker process: it is started, given the current weights, loads the
 * bucket and runs the step. The exhausted process's sessions are disposed and it never compiles
 * again. No step is lost and the user's process is never exec()'d.
 */
import { DEFAULT_COMPILE_BUDGET, type Device, openDevice } from 'ane-bridge';
import { CheckpointError, ConfigError, TrainError } from '../errors';
import type { LlamaConfig } from '../model/config';
import { parameterSpecs } from '../model/parameters';
import { batchTrainingGraph, type ChipName, type TrainingGraph } from '../model/training-graph';
import {
  type DeviceSession,
  describe,
  gradsAsViews,
  InProcessSession,
  type SessionSpec,
  type StepOptions,
  type StepResult,
} from './session';
import { WorkerProcess, type WorkerSession } from './worker-session';

/** A compile budget's state in one device process. */
export interface CompileBudgetState {
  used: number;
  limit: number;
}

/** What the runtime reports as it goes (`onEvent`). */
export type RuntimeEvent =
  | {
      /** A bucket was loaded: `programs` compiles (the others were cache hits) in `where`. */
      type: 'compile';
      /** `in-process` or the worker's label (`worker 1 (pid 1234)`). */
      where: string;
      seq: number;
      /** Programs compiled for this load. */
      programs: number;
      /** The plan's programs that this process had compiled before. */
      cached: number;
      /** The process's budget after the load. */
      budget: CompileBudgetState;
    }
  | {
      /** Device work moved to a fresh worker process. */
      type: 'hand-over';
      /** `in-process` or the old worker's label. */
      from: string;
      /** The new worker's label. */
      to: string;
      reason: string;
      /** Programs the bucket that did not fit needs. */
      programs: number;
      /** The old process's budget when it was left. */
      budget: CompileBudgetState;
    };

export interface DeviceRuntimeOptions {
  config: LlamaConfig;
  /** Sequences per step. */
  batch: number;
  backend?: 'auto' | 'ane' | 'sim';
  chip?: ChipName;
  /** Programs one device process may compile (default ane-bridge's, 119). */
  compileBudget?: number;
  onEvent?: (event: RuntimeEvent) => void;
  /**
   * Whether this runtime's in-process compiles count against one budget shared by every
   * DeviceRuntime of the process that shares it, as the hardware's limit is per process (ane-bridge
   * counts per device). Default: true on the Neural Engine, false on the simulator.
   */
  sharedBudget?: boolean;
  /** The worker entry to fork (default: dist/worker-main.{js,cjs} beside this module). */
  workerEntry?: string;
  /**
   * The in-process device keeps the weights in the arrays given to setWeights instead of copying
   * them at each restaging (an optimizer arena's views, updated in place between steps). Then
   * change them only between steps, and always call setWeights after a change. Default false.
   */
  shareWeights?: boolean;
}

/** What a run over given sequence lengths will compile (`DeviceRuntime.compilePlan`). */
export interface CompilePlan {
  /** Each bucket's distinct programs, in order of first use. */
  buckets: { seq: number; programs: number }[];
  /** Compiles over the whole run, every process counted. */
  compiles: number;
  /** Device processes used: this one, then one per hand-over. */
  processes: number;
  handOvers: number;
  /** The per-process budget it was planned against. */
  limit: number;
}

export type RuntimeStepResult = StepResult & {
  backend: 'ane' | 'sim';
  where: 'in-process' | 'worker';
  /** This step moved device work to a fresh worker process first. */
  handedOver: boolean;
};

/** The device process device work currently runs in. */
interface DeviceProcess {
  label: string;
  where: 'in-process' | 'worker';
  /** Program hashes compiled in this process (the device's compile cache). */
  compiled: Set<string>;
  budget: CompileBudgetState;
  sessions: Map<number, Bucket>;
  device?: Device;
  /** In-process: the budget is shared with the process's other sharing runtimes. */
  shared?: boolean;
  worker?: WorkerProcess;
}

/**
 * Programs compiled in this process by the in-process devices of every DeviceRuntime that shares the
 * process budget (never decreases: on the hardware a disposed model's compile is not given back).
 */
let sharedProcessCompiles = 0;

interface Bucket {
  session: DeviceSession;
  /** Weight version last written to the session, by HF name. */
  written: Map<string, number>;
}

export class DeviceRuntime {
  private readonly config: LlamaConfig;
  private readonly batch: number;
  private readonly backend: 'auto' | 'ane' | 'sim';
  private readonly chip: ChipName | undefined;
  private readonly budgetOption: number | undefined;
  private readonly onEvent: ((event: RuntimeEvent) => void) | undefined;
  private readonly workerEntry: string | undefined;
  private readonly shareWeights: boolean;
  private readonly sharedBudget: boolean | undefined;
  private readonly parameters: Map<string, number>;
  /** The training graph of every bucket seen (built once; the plan says what a load compiles). */
  private readonly graphs = new Map<number, TrainingGraph>();
  /** Latest weights (the caller's arrays, read at restaging time) and a version per name. */
  private readonly weights = new Map<string, Float32Array>();
  private readonly versions = new Map<string, number>();
  private version = 0;
  private current: DeviceProcess | undefined;
  /** Once the in-process device has handed over, it never compiles again. */
  private inProcessDone = false;
  private resolvedBackend: 'ane' | 'sim' | undefined;
  private resolvedChip: ChipName | undefined;
  private handOverCount = 0;
  /** The worker that died, until a fresh one takes over. */
  private lostWorker: string | undefined;
  private busy = false;
  private disposed = false;

  constructor(options: DeviceRuntimeOptions) {
    if (options === null || typeof options !== 'object') {
      throw new ConfigError(`DeviceRuntime takes options { config, batch, ... }, got ${describe(options)}`);
    }
    const { config, batch } = options;
    if (!Number.isSafeInteger(batch) || batch < 1) {
      throw new ConfigError(
        `batch must be a whole number ≥ 1 (sequences per step), got ${String(batch)}`,
        'batch',
      );
    }
    const backend = options.backend ?? 'auto';
    if (!['auto', 'ane', 'sim'].includes(backend)) {
      throw new ConfigError(
        `backend must be 'auto', 'ane' or 'sim', got ${JSON.stringify(backend)}`,
        'backend',
      );
    }
    if (
      options.compileBudget !== undefined &&
      !(Number.isSafeInteger(options.compileBudget) && options.compileBudget >= 1)
    ) {
      throw new ConfigError(
        `compileBudget must be a whole number ≥ 1 (programs one process may compile), got ${String(options.compileBudget)}`,
        'compileBudget',
      );
    }
    this.config = config;
    this.batch = batch;
    this.backend = backend;
    this.chip = options.chip;
    this.budgetOption = options.compileBudget;
    this.onEvent = options.onEvent;
    this.workerEntry = options.workerEntry;
    this.shareWeights = options.shareWeights === true;
    this.sharedBudget = options.sharedBudget;
    this.parameters = new Map(
      parameterSpecs(config).map((p) => [p.name, p.shape.reduce((a, b) => a * b, 1)]),
    );
  }

  /** Times device work moved to a fresh worker process. */
  get handOvers(): number {
    return this.handOverCount;
  }

  /** Compiles used and allowed in the current device process (before the first step: none used). */
  get compiles(): { used: number; limit: number } {
    if (this.current !== undefined) return { ...this.current.budget };
    return { used: 0, limit: this.budgetOption ?? DEFAULT_COMPILE_BUDGET };
  }

  /** Distinct programs a bucket's plan compiles in a fresh process (builds and keeps its graph). */
  programsFor(seq: number): number {
    return this.graph(seq).plan.programs.length;
  }

  /**
   * Before a run: what stepping through `seqs` in this order will compile, from a fresh runtime
   * (the same rule `step` follows: a bucket already loaded in the current process is free, its
   * plan's programs that process compiled are cache hits, and a plan that does not fit what is left
   * moves device work to a fresh process). Throws the ConfigError `step` would for a plan larger
   * than the whole budget.
   */
  compilePlan(seqs: readonly number[]): CompilePlan {
    const limit = this.budgetOption ?? DEFAULT_COMPILE_BUDGET;
    const buckets = new Map<number, number>();
    let compiled = new Set<string>();
    let loaded = new Set<number>();
    let compiles = 0;
    let used = 0;
    let processes = 1;
    for (const seq of seqs) {
      const hashes = this.graph(seq).plan.programs.map((p) => p.hash);
      buckets.set(seq, new Set(hashes).size);
      if (loaded.has(seq)) continue;
      this.checkFitsBudget(seq, new Set(hashes).size, limit);
      let fresh = hashes.filter((h) => !compiled.has(h)).length;
      if (fresh > limit - used) {
        processes += 1;
        compiled = new Set();
        loaded = new Set();
        used = 0;
        fresh = new Set(hashes).size;
      }
      for (const h of hashes) compiled.add(h);
      loaded.add(seq);
      used += fresh;
      compiles += fresh;
    }
    return {
      buckets: [...buckets].map(([seq, programs]) => ({ seq, programs })),
      compiles,
      processes,
      handOvers: processes - 1,
      limit,
    };
  }

  private checkFitsBudget(seq: number, needed: number, limit: number): void {
    if (needed > limit) {
      throw new ConfigError(
        `the plan for seq ${seq} compiles ${needed} programs, more than a whole process may compile (compileBudget ${limit}): ` +
          'raise compileBudget (at most about 119 on the hardware), or use a smaller model or fewer programs',
        'compileBudget',
      );
    }
  }

  /**
   * Takes weights by Hugging Face name (any subset) and marks them changed: they are restaged into
   * the device before the next step. The arrays are read then, not now (an arena's views may be
   * passed once and updated in place; call setWeights again after each update).
   */
  setWeights(weights: ReadonlyMap<string, Float32Array>): void {
    if (this.disposed) throw new TrainError('setWeights: this DeviceRuntime was disposed; create a new one');
    if (!(weights instanceof Map)) {
      throw new CheckpointError(
        `setWeights takes a Map from Hugging Face parameter name to Float32Array, got ${describe(weights)}`,
      );
    }
    for (const [name, values] of weights) {
      const size = this.parameters.get(name);
      if (size === undefined) {
        throw new CheckpointError(
          `the model has no parameter '${name}' (${this.parameters.size} parameters, e.g. '${this.parameters.keys().next().value}'): pass weights under their Hugging Face names`,
          { tensor: name },
        );
      }
      if (!(values instanceof Float32Array) || values.length !== size) {
        throw new CheckpointError(
          `weight '${name}' must be a Float32Array of ${size} values, got ${
            values instanceof Float32Array ? `${values.length} values` : describe(values)
          }: check the model config matches the weights`,
          { tensor: name },
        );
      }
    }
    this.version += 1;
    for (const [name, values] of weights) {
      this.weights.set(name, values);
      this.versions.set(name, this.version);
    }
  }

  /**
   * One step of B sequences of `seq + 1` tokens on the bucket for `seq` (loaded on first use, in the
   * current device process, or in a fresh worker when its programs do not fit that process's budget).
   * With `{ grads: 'view' }` the gradients are the session's own buffers, valid until this runtime's
   * next step or dispose (StepOptions); by default they are the caller's to keep.
   */
  async step(
    tokens: Int32Array,
    seq: number,
    lossScale: number,
    options?: StepOptions,
  ): Promise<RuntimeStepResult> {
    this.checkUsable('step');
    gradsAsViews(options);
    if (this.weights.size !== this.parameters.size) {
      const missing = [...this.parameters.keys()].filter((name) => !this.weights.has(name));
      throw new CheckpointError(
        `${missing.length} of the model's ${this.parameters.size} weights were never set ('${missing[0]}'${
          missing.length > 1 ? ', …' : ''
        }): call setWeights with every parameter before the first step`,
        { tensor: missing[0]! },
      );
    }
    this.busy = true;
    try {
      const started = performance.now();
      const { bucket, process, handedOver } = await this.bucketFor(seq);
      const loaded = performance.now();
      let result: StepResult;
      try {
        const stale = new Map<string, Float32Array>();
        const staleVersions = new Map<string, number>();
        for (const [name, version] of this.versions) {
          if (bucket.written.get(name) === version) continue;
          stale.set(name, this.weights.get(name)!);
          staleVersions.set(name, version);
        }
        if (stale.size > 0) {
          await bucket.session.writeWeights(stale, this.shareWeights ? { share: true } : undefined);
          for (const [name, version] of staleVersions) bucket.written.set(name, version);
        }
        result = await bucket.session.step(tokens, lossScale, options);
      } catch (error) {
        // A dead worker takes its device state with it: the next step starts a fresh one.
        if (process.worker?.dead) {
          this.lostWorker = process.label;
          await this.abandon(process);
        }
        throw error;
      }
      const finished = performance.now();
      // Loading a bucket (compiling, starting a worker) counts as idle; restaging weights as staging.
      const staging = finished - loaded - result.profile.totalMs;
      return {
        loss: result.loss,
        grads: result.grads,
        profile: {
          deviceMs: result.profile.deviceMs,
          hostMs: result.profile.hostMs,
          stagingMs: result.profile.stagingMs + Math.max(0, staging),
          idleMs: result.profile.idleMs + (loaded - started),
          totalMs: finished - started,
        },
        backend: bucket.session.backend,
        where: bucket.session.where,
        handedOver,
      };
    } finally {
      this.busy = false;
    }
  }

  /** Ends every session, the in-process device and any worker process. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.current !== undefined) await this.abandon(this.current);
  }

  private graph(seq: number): TrainingGraph {
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw new ConfigError(
        `seq must be a whole number ≥ 1 (positions per sequence), got ${String(seq)}`,
        'seq',
      );
    }
    let training = this.graphs.get(seq);
    if (training === undefined) {
      training = batchTrainingGraph(this.config, {
        seq,
        batch: this.batch,
        ...((this.resolvedChip ?? this.chip) ? { chip: (this.resolvedChip ?? this.chip)! } : {}),
      });
      this.graphs.set(seq, training);
    }
    return training;
  }

  /** The bucket for `seq` in the current device process, loading it (or handing over) as needed. */
  private async bucketFor(
    seq: number,
  ): Promise<{ bucket: Bucket; process: DeviceProcess; handedOver: boolean }> {
    if (this.current?.device !== undefined) this.refresh(this.current);
    if (this.current?.worker?.dead) {
      this.lostWorker = this.current.label;
      await this.abandon(this.current);
    }
    const gone = this.lostWorker;
    if (this.current === undefined && !this.inProcessDone) this.current = this.openInProcess();
    const existing = this.current?.sessions.get(seq);
    if (existing !== undefined && this.current !== undefined) {
      return { bucket: existing, process: this.current, handedOver: false };
    }
    const training = this.graph(seq);
    const hashes = training.plan.programs.map((p) => p.hash);
    const needed = new Set(hashes).size;
    const limit = this.budgetOption ?? this.current?.budget.limit ?? DEFAULT_COMPILE_BUDGET;
    this.checkFitsBudget(seq, needed, limit);
    let handedOver = false;
    let process = this.current;
    const fresh = process === undefined ? needed : hashes.filter((h) => !process!.compiled.has(h)).length;
    if (process === undefined || fresh > process.budget.limit - process.budget.used) {
      const from = process;
      const reason =
        from === undefined
          ? gone !== undefined
            ? `${gone} died; its device state is rebuilt from this process's weights`
            : 'no device process is running (the last worker was lost or could not start)'
          : `the plan for seq ${seq} needs ${fresh} more compiles and ${from.label} has ${
              from.budget.limit - from.budget.used
            } of its ${from.budget.limit} left`;
      if (from !== undefined) await this.abandon(from);
      process = await this.startWorker();
      this.handOverCount += 1;
      this.lostWorker = undefined;
      handedOver = true;
      this.emit({
        type: 'hand-over',
        from: from?.label ?? gone ?? 'a dead worker',
        to: process.label,
        reason,
        programs: needed,
        budget: from ? { ...from.budget } : { used: 0, limit },
      });
    }
    const bucket = await this.load(process, training);
    return { bucket, process, handedOver };
  }

  private openInProcess(): DeviceProcess {
    const device = openDevice({
      backend: this.backend,
      ...(this.chip !== undefined ? { chip: this.chip } : {}),
      ...(this.budgetOption !== undefined ? { compileBudget: this.budgetOption } : {}),
    });
    this.resolvedBackend = device.backend;
    this.resolvedChip = device.chip as ChipName;
    const process: DeviceProcess = {
      label: 'in-process',
      where: 'in-process',
      compiled: new Set(),
      budget: { used: 0, limit: 0 },
      sessions: new Map(),
      device,
      shared: this.sharedBudget ?? device.backend === 'ane',
    };
    this.refresh(process);
    return process;
  }

  /** An in-process budget: the device's count, or the process-wide one when shared. */
  private refresh(process: DeviceProcess): void {
    const { used, limit } = process.device!.compileBudget;
    process.budget = { used: process.shared ? Math.max(used, sharedProcessCompiles) : used, limit };
  }

  private async startWorker(): Promise<DeviceProcess> {
    const worker = await WorkerProcess.start(
      this.workerEntry !== undefined ? { entry: this.workerEntry } : {},
    );
    const process: DeviceProcess = {
      label: worker.label,
      where: 'worker',
      compiled: new Set(),
      budget: { used: 0, limit: this.budgetOption ?? DEFAULT_COMPILE_BUDGET },
      sessions: new Map(),
      worker,
    };
    this.current = process;
    return process;
  }

  private async load(process: DeviceProcess, training: TrainingGraph): Promise<Bucket> {
    const hashes = training.plan.programs.map((p) => p.hash);
    const cached = hashes.filter((h) => process.compiled.has(h)).length;
    const before = process.budget.used;
    let session: DeviceSession;
    if (process.device !== undefined) {
      const deviceBefore = process.device.compileBudget.used;
      try {
        session = new InProcessSession(process.device, training, this.batch, { ownsDevice: false });
      } finally {
        // A load that failed part-way still spent what it compiled.
        if (process.shared) sharedProcessCompiles += process.device.compileBudget.used - deviceBefore;
        this.refresh(process);
      }
    } else {
      const spec: SessionSpec = {
        config: this.config,
        seq: training.seq,
        batch: this.batch,
        // The backend and chip this process resolved: a hand-over never changes either.
        backend: this.resolvedBackend ?? this.backend,
        ...((this.resolvedChip ?? this.chip) ? { chip: (this.resolvedChip ?? this.chip)! } : {}),
        ...(this.budgetOption !== undefined ? { compileBudget: this.budgetOption } : {}),
      };
      const opened: WorkerSession = await process.worker!.openSession(spec);
      this.resolvedBackend ??= opened.backend;
      process.budget = { ...opened.budget };
      session = opened;
    }
    for (const h of hashes) process.compiled.add(h);
    const bucket: Bucket = { session, written: new Map() };
    process.sessions.set(training.seq, bucket);
    this.emit({
      type: 'compile',
      where: process.label,
      seq: training.seq,
      programs: process.budget.used - before,
      cached,
      budget: { ...process.budget },
    });
    return bucket;
  }

  /** Disposes a process's sessions and the process (its device, or the worker). */
  private async abandon(process: DeviceProcess): Promise<void> {
    if (this.current === process) this.current = undefined;
    if (process.where === 'in-process') this.inProcessDone = true;
    for (const bucket of process.sessions.values()) {
      // A session that cannot end cleanly (its worker died) has nothing left to free.
      await bucket.session.dispose().catch(() => {});
    }
    process.sessions.clear();
    process.device?.dispose();
    await process.worker?.dispose();
  }

  private emit(event: RuntimeEvent): void {
    this.onEvent?.(event);
  }

  private checkUsable(call: string): void {
    if (this.disposed) throw new TrainError(`${call}: this DeviceRuntime was disposed; create a new one`);
    if (this.busy) {
      throw new TrainError(
        `${call}: a step is still running on this DeviceRuntime; await it before calling ${call}`,
      );
    }
  }
}
