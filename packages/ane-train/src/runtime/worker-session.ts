/**
 * Device sessions in a worker process: `child_process.fork` of the worker entry (worker-main), which
 * opens a device of its own (a fresh per-process compile budget) and runs `openSession`'s code for
 * every bucket the parent opens there. The parent's process is never exec()'d; a worker that dies
 * fails every pending and later request with a TrainError naming its exit code or signal.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrainError } from '../errors';
import {
  type OpenResult,
  reviveError,
  type WorkerBudget,
  type WorkerMessage,
  type WorkerRequest,
  type WorkerResults,
} from './protocol';
import {
  checkSessionSpec,
  type DeviceSession,
  gradsAsViews,
  type SessionSpec,
  type StepOptions,
  type StepResult,
  type WriteWeightsOptions,
} from './session';

/** Overrides where the worker entry is (a file Node can run): for tests and unusual bundlings. */
export const WORKER_ENTRY_ENV = 'ANE_TRAIN_WORKER_ENTRY';

/**
 * The worker entry shipped next to this module: `dist/worker-main.js` beside `dist/index.js` (ESM),
 * `dist/worker-main.cjs` beside `dist/index.cjs` (CJS; tsup's shims give `import.meta.url` there).
 * Run from source (`src/runtime/worker-session.ts`, as in the package's tests), a forked Node cannot
 * run the TypeScript entry: the package's built `dist/worker-main.js` is used (`pnpm test` builds
 * first; after changing the runtime, rebuild with `pnpm --filter ane-train build`).
 */
export function resolveWorkerEntry(): string {
  const override = process.env[WORKER_ENTRY_ENV];
  if (override) return override;
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return join(dirname(here), '..', '..', 'dist', 'worker-main.js');
  const extension = here.endsWith('.cjs') ? '.cjs' : '.js';
  return join(dirname(here), `worker-main${extension}`);
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  what: string;
}

type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

/** How much of a dead worker's stderr a TrainError quotes. */
const STDERR_TAIL = 2000;

/** How long a failed send waits for the worker's exit to be reported, which then names the cause. */
const SEND_FAILURE_GRACE_MS = 2000;

/** One worker process with its own device; sessions open in it by id. */
export class WorkerProcess {
  private static started = 0;
  /** `worker 1 (pid 1234)`: for events and messages. */
  readonly label: string;
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextRequest = 1;
  private nextSession = 1;
  private stderrTail = '';
  private exitReason: string | undefined;
  private readonly ready: Promise<void>;
  private exited: Promise<void>;

  private constructor(entry: string) {
    const number = ++WorkerProcess.started;
    this.child = fork(entry, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      // The worker inherits the environment (ANE_BRIDGE_* switches) but not the parent's
      // --inspect or loader flags meant for the parent.
      execArgv: [],
    });
    this.label = `worker ${number} (pid ${this.child.pid ?? '?'})`;
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL);
    });
    let markReady: () => void;
    let failReady: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    this.ready.catch(() => {}); // observed through request(); never an unhandled rejection
    let markExited: () => void;
    this.exited = new Promise<void>((resolve) => {
      markExited = resolve;
    });
    this.child.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') {
        markReady();
        return;
      }
      const pending = this.pending.get(message.id);
      if (pending === undefined) return;
      this.pending.delete(message.id);
      this.updateRef();
      if (message.ok) pending.resolve(message.result);
      else pending.reject(reviveError(message.error, `${this.label}, ${pending.what}`));
    });
    const fail = (reason: string) => {
      if (this.exitReason !== undefined) return;
      this.exitReason = reason;
      const error = () => this.deathError();
      failReady(error());
      for (const [id, pending] of this.pending) {
        this.pending.delete(id);
        pending.reject(error());
      }
      markExited();
    };
    this.child.on('error', (error) => fail(`could not run: ${error.message}`));
    this.child.on('exit', (code, signal) => {
      fail(signal !== null ? `was killed by signal ${signal}` : `exited with code ${code}`);
    });
  }

  /** Forks a worker and waits until it listens. */
  static async start(options: { entry?: string } = {}): Promise<WorkerProcess> {
    const entry = options.entry ?? resolveWorkerEntry();
    if (!existsSync(entry)) {
      throw new TrainError(
        `the device worker entry ${entry} does not exist: build ane-train (pnpm --filter ane-train build), ` +
          `or point ${WORKER_ENTRY_ENV} at a worker entry Node can run`,
      );
    }
    const worker = new WorkerProcess(entry);
    worker.updateRef(1);
    try {
      await worker.ready;
    } finally {
      worker.updateRef();
    }
    return worker;
  }

  /** The worker's pid (undefined when it could not start). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the process is gone (exited, killed or never started). */
  get dead(): boolean {
    return this.exitReason !== undefined;
  }

  /** Opens a session for `spec` on the worker's device (its compile budget is the worker's). */
  async openSession(spec: SessionSpec, options: { ownsWorker?: boolean } = {}): Promise<WorkerSession> {
    checkSessionSpec(spec);
    const session = this.nextSession++;
    const opened = await this.request('open', { type: 'open', session, spec });
    return new WorkerSession(this, session, spec, opened, options.ownsWorker ?? false);
  }

  /** Sends one request and resolves with its result, or rejects with the worker's error / its death. */
  request<K extends RequestBody['type']>(
    what: K,
    body: Extract<RequestBody, { type: K }>,
  ): Promise<WorkerResults[K]> {
    if (this.exitReason !== undefined) return Promise.reject(this.deathError());
    const id = this.nextRequest++;
    return new Promise<WorkerResults[K]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, what });
      this.updateRef();
      this.child.send({ ...body, id } as WorkerRequest, (error) => {
        if (!error || !this.pending.has(id)) return;
        // A worker that was just killed fails the send before its exit is reported: give the exit
        // a moment to say why (it then rejects this request with the signal or exit code).
        const giveUp = setTimeout(() => {
          if (!this.pending.delete(id)) return;
          this.updateRef();
          reject(new TrainError(`could not send '${what}' to ${this.label}: ${error.message}`));
        }, SEND_FAILURE_GRACE_MS);
        void this.exited.then(() => clearTimeout(giveUp));
      });
    });
  }

  /** Ends the worker (its device and every session in it) and waits for it to exit. */
  async dispose(): Promise<void> {
    if (this.exitReason === undefined) {
      this.child.disconnect?.(); // the worker exits when its channel closes
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** Keeps the parent alive only while a request is outstanding. */
  private updateRef(extra = 0): void {
    const busy = this.pending.size + extra > 0;
    // The process, its IPC channel and its stderr pipe each hold the event loop open.
    const handles = [this.child.channel, this.child.stderr] as (
      | { ref?(): void; unref?(): void }
      | null
      | undefined
    )[];
    if (busy) {
      this.child.ref();
      for (const handle of handles) handle?.ref?.();
    } else {
      this.child.unref();
      for (const handle of handles) handle?.unref?.();
    }
  }

  private deathError(): TrainError {
    const tail = this.stderrTail.trim();
    return new TrainError(
      `the device ${this.label} ${this.exitReason}; the device state in it is lost (the weights in this process are not)` +
        `${tail ? `. Its last output: ${tail.slice(-600)}` : ''}. ` +
        'Open a new session (a DeviceRuntime starts a fresh worker on the next step); if it keeps happening, run with backend "sim" to see whether the device is at fault',
    );
  }
}

/** A session in a worker process: the same calls as an in-process one, over the worker's channel. */
export class WorkerSession implements DeviceSession {
  readonly where = 'worker' as const;
  readonly programs: number;
  readonly backend: 'ane' | 'sim';
  /** The worker device's compile budget right after this session loaded. */
  readonly budget: WorkerBudget;
  private disposed = false;

  constructor(
    readonly worker: WorkerProcess,
    private readonly id: number,
    readonly spec: SessionSpec,
    opened: OpenResult,
    private readonly ownsWorker: boolean,
  ) {
    this.programs = opened.programs;
    this.backend = opened.backend;
    this.budget = opened.budget;
  }

  /** Copies the weights to the worker (`share` cannot cross a process). */
  async writeWeights(
    weights: ReadonlyMap<string, Float32Array>,
    _options?: WriteWeightsOptions,
  ): Promise<void> {
    this.checkUsable('writeWeights');
    await this.worker.request('writeWeights', {
      type: 'writeWeights',
      session: this.id,
      // Sent as they are: Node's advanced serialization writes a typed array's own bytes only
      // (not the rest of its buffer, e.g. an optimizer arena), at the call, so no copy is needed.
      weights: weights instanceof Map ? weights : new Map(weights),
    });
  }

  /** `options.grads` is checked, and either way the gradients are fresh arrays (they crossed a process). */
  async step(tokens: Int32Array, lossScale: number, options?: StepOptions): Promise<StepResult> {
    this.checkUsable('step');
    gradsAsViews(options);
    const started = performance.now();
    const result = await this.worker.request('step', {
      type: 'step',
      session: this.id,
      tokens,
      lossScale,
    });
    // The messages to and from the worker count as idle time: neither device nor host worked on it here.
    const totalMs = performance.now() - started;
    result.profile.idleMs += Math.max(0, totalMs - result.profile.totalMs);
    result.profile.totalMs = totalMs;
    return result;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    try {
      if (!this.worker.dead) await this.worker.request('dispose', { type: 'dispose', session: this.id });
    } finally {
      if (this.ownsWorker) await this.worker.dispose();
    }
  }

  private checkUsable(call: string): void {
    if (this.disposed) throw new TrainError(`${call}: this device session was disposed; open a new one`);
  }
}

/**
 * Opens a session in a fresh worker process of its own (ended with the session): the same results
 * as `openSession`, bit for bit, on a device whose compile budget is that process's.
 */
export async function openWorkerSession(
  spec: SessionSpec,
  options: { entry?: string } = {},
): Promise<DeviceSession> {
  checkSessionSpec(spec);
  const worker = await WorkerProcess.start(options);
  try {
    return await worker.openSession(spec, { ownsWorker: true });
  } catch (error) {
    await worker.dispose();
    throw error;
  }
}
