/**
 * Worker threads for the flat-arena step when the TypeScript kernels run (the native kernels have
 * their own thread pool in ane-bridge: ANE_BRIDGE_THREADS). Each update is split into contiguous
 * ranges; the calling thread does the first, each worker one of the others, all calling the same
 * ane-bridge kernel over views of the arena's SharedArrayBuffers. stepArena stays synchronous: the
 * caller waits for the workers with Atomics.wait.
 *
 * Protocol, per worker: a control word (0 idle, 1 job posted, 2 done, 3 failed, 4 exit), a ready
 * word (set once the worker has loaded ane-bridge) and a MessagePort that carries the arena's
 * buffers (when they change) and each job; the worker reads the port synchronously
 * (receiveMessageOnPort) when the control word turns 1. A worker starts only once the calling
 * thread's event loop runs, so a step never waits for one that is not ready: the calling thread
 * does that range itself (await `pool.ready` to have every thread from the first step).
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { describeValue, OptimizerConfigError, OptimizerInputError } from './errors';
import type { KernelCall } from './kernels';

const IDLE = 0;
const POSTED = 1;
const DONE = 2;
const FAILED = 3;
const EXIT = 4;
/** Ranges start on 64-byte boundaries, so no two threads write the same cache line. */
const ALIGN = 16;
/** A worker that does not answer within this long is reported, not waited for forever. */
const JOB_TIMEOUT_MS = 120_000;

const WORKER_SOURCE = `
const { workerData, receiveMessageOnPort, parentPort } = require('node:worker_threads');
const { bridgePath, control, port } = workerData;
const { hostKernels } = require(bridgePath);
const word = new Int32Array(control);
Atomics.store(word, 1, 1);
parentPort.postMessage('ready');
let buffers = {};
for (;;) {
  let state;
  while ((state = Atomics.load(word, 0)) !== ${POSTED} && state !== ${EXIT}) Atomics.wait(word, 0, state);
  if (state === ${EXIT}) break;
  try {
    let job;
    for (let message; (message = receiveMessageOnPort(port)) !== undefined; ) {
      if (message.message.type === 'buffers') buffers = message.message.buffers;
      else job = message.message;
    }
    if (job === undefined) throw new Error('no job was posted');
    const { implementation, kernel, state: fields, options, start, end, fp16 } = job;
    const kernels = hostKernels[implementation];
    if (!kernels) throw new Error('the ' + implementation + ' kernels do not load in a worker thread');
    const view = (name) => buffers[name].subarray(start, end);
    const stateViews = fields.map((field) => (field === null ? null : view(field)));
    kernels[kernel](view('params'), view('grads'), ...stateViews, options, fp16 ? buffers.fp16Out.subarray(start, end) : undefined);
    Atomics.store(word, 0, ${DONE});
  } catch (error) {
    port.postMessage({ error: String(error && error.stack || error) });
    Atomics.store(word, 0, ${FAILED});
  }
  Atomics.notify(word, 0);
}
`;

function withoutInputType(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i] as string;
    if (arg === '--input-type') i++;
    else if (!arg.startsWith('--input-type=')) kept.push(arg);
  }
  return kept;
}

interface PoolWorker {
  worker: Worker;
  port: MessagePort;
  word: Int32Array;
}

/** The buffers a pooled step reads and writes, by name: params, grads, the state fields, fp16Out. */
export type PoolBuffers = Record<string, Float32Array | Uint16Array>;

export interface ThreadPoolOptions {
  /**
   * Where the workers load ane-bridge from (default: the one ane-optim resolves). They run the
   * kernels the optimizer chose (its `kernels` option).
   */
  aneBridgePath?: string;
}

/**
 * The most threads a pool may have: 4 per CPU this process may use, and never more than 256 (the
 * native kernels' pool has the same ceiling). Each worker is a Node isolate with its own heap, so a
 * pool past the core count only costs memory; `new ThreadPool(100000)` used to abort the process.
 */
export function maxPoolThreads(): number {
  return Math.min(256, 4 * Math.max(1, availableParallelism()));
}

/**
 * `threads` threads in all for `stepArena(arena, { pool })`, the calling thread being one of them
 * (a pool of 2 starts 1 worker), at most maxPoolThreads(). Needs an arena created with `{ shared: true }`. Close it when
 * done (`close()` or `using`); its workers do not keep the process alive.
 */
export class ThreadPool {
  readonly threads: number;
  private readonly workers: PoolWorker[] = [];
  private attached: PoolBuffers | null = null;
  private closed = false;
  /** Resolves once every worker has started (stepArena never waits for one that has not). */
  readonly ready: Promise<void>;

  constructor(threads: number, options: ThreadPoolOptions = {}) {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new OptimizerConfigError(
        `ThreadPool: threads must be a positive integer (the calling thread counts as one), got ${describeValue(threads)}`,
        'threads',
      );
    }
    const limit = maxPoolThreads();
    if (threads > limit) {
      throw new OptimizerConfigError(
        `ThreadPool: threads must be at most ${limit} (4 per CPU, at most 256; this process may use ${availableParallelism()} CPUs), got ${threads}; a pool past the core count only costs memory: use new ThreadPool(${Math.min(limit, availableParallelism())})`,
        'threads',
      );
    }
    this.threads = threads;
    const bridgePath = options.aneBridgePath ?? createRequire(import.meta.url).resolve('ane-bridge');
    const started: Array<Promise<void>> = [];
    for (let i = 1; i < threads; i++) {
      const control = new SharedArrayBuffer(8);
      const { port1, port2 } = new MessageChannel();
      let worker: Worker;
      try {
        worker = new Worker(WORKER_SOURCE, {
          eval: true,
          // The worker's source is CommonJS whatever the parent runs as (node --input-type=module -e ...).
          execArgv: withoutInputType(process.execArgv),
          workerData: { bridgePath, control, port: port2 },
          transferList: [port2],
        });
      } catch (error) {
        // The system refused a thread (memory, a thread limit): stop the ones that started.
        this.close();
        throw new OptimizerConfigError(
          `ThreadPool: worker thread ${i} of ${threads - 1} did not start (${String((error as Error)?.message ?? error)}); ask for fewer threads`,
          'threads',
        );
      }
      worker.unref();
      started.push(
        new Promise((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
          worker.once('exit', (code) =>
            reject(new Error(`ThreadPool: a worker exited (code ${code}) before starting`)),
          );
        }),
      );
      this.workers.push({ worker, port: port1, word: new Int32Array(control) });
    }
    this.ready = Promise.all(started).then(() => undefined);
    this.ready.catch(() => {}); // a failed start shows as a missing worker, not an unhandled rejection
  }

  /**
   * Runs `call` over [start, end) of `buffers`, split across the pool; returns when every range is
   * done. `local` runs one range on the calling thread.
   */
  run(
    implementation: 'native' | 'ts',
    call: KernelCall,
    buffers: PoolBuffers,
    start: number,
    end: number,
    hasFp16: boolean,
    local: (start: number, end: number) => void,
  ): void {
    if (this.closed) throw new OptimizerInputError('ThreadPool: this pool is closed; create a new one');
    const length = end - start;
    const readyWorkers = this.workers.filter((w) => Atomics.load(w.word, 1) === 1);
    const parts = Math.min(readyWorkers.length + 1, Math.max(1, Math.floor(length / (ALIGN * 1024))));
    if (parts <= 1) {
      local(start, end);
      return;
    }
    this.attach(buffers);
    const chunk = Math.ceil(length / parts / ALIGN) * ALIGN;
    const busy: PoolWorker[] = [];
    for (let part = 1; part < parts; part++) {
      const from = start + part * chunk;
      if (from >= end) break;
      const worker = readyWorkers[part - 1] as PoolWorker;
      worker.port.postMessage({
        ...call,
        implementation,
        start: from,
        end: Math.min(end, from + chunk),
        fp16: hasFp16,
      });
      Atomics.store(worker.word, 0, POSTED);
      Atomics.notify(worker.word, 0);
      busy.push(worker);
    }
    let failure: string | undefined;
    try {
      local(start, Math.min(end, start + chunk));
    } finally {
      for (const worker of busy) {
        const deadline = Date.now() + JOB_TIMEOUT_MS;
        while (Atomics.load(worker.word, 0) === POSTED) {
          if (Atomics.wait(worker.word, 0, POSTED, 1000) === 'timed-out' && Date.now() > deadline) {
            failure ??= `a worker did not finish within ${JOB_TIMEOUT_MS / 1000} s`;
            break;
          }
        }
        if (Atomics.load(worker.word, 0) === FAILED) {
          failure ??= String(receiveMessageOnPort(worker.port)?.message?.error ?? 'a worker failed');
        }
        Atomics.store(worker.word, 0, IDLE);
      }
    }
    if (failure !== undefined) throw new Error(`ThreadPool: ${failure}`);
  }

  /** Throws unless this pool can step `arena` (open, shared memory for the arena and fp16Out). */
  checkUsable(arena: { shared: boolean }, fp16Out: Uint16Array | undefined, where: string): void {
    if (this.closed) throw new OptimizerInputError(`${where}: this ThreadPool is closed; create a new one`);
    if (!arena.shared) {
      throw new OptimizerInputError(
        `${where}: a thread pool needs the arena's buffers in shared memory; create it with new FlatArena(layout, { shared: true })`,
      );
    }
    if (fp16Out !== undefined && !(fp16Out.buffer instanceof SharedArrayBuffer)) {
      throw new OptimizerInputError(
        `${where}: with a thread pool, fp16Out must be over a SharedArrayBuffer: new Uint16Array(new SharedArrayBuffer(arena.size * 2))`,
      );
    }
  }

  /** Worker threads that have started and take work (the calling thread is not counted). */
  get readyWorkers(): number {
    return this.workers.filter((w) => Atomics.load(w.word, 1) === 1).length;
  }

  private attach(buffers: PoolBuffers): void {
    const previous = this.attached;
    const same =
      previous !== null &&
      Object.keys(buffers).length === Object.keys(previous).length &&
      Object.entries(buffers).every(([name, buffer]) => previous[name] === buffer);
    if (same) return;
    for (const [name, buffer] of Object.entries(buffers)) {
      if (!(buffer.buffer instanceof SharedArrayBuffer)) {
        throw new OptimizerInputError(
          `ThreadPool: '${name}' is not in shared memory; create the arena with new FlatArena(layout, { shared: true })${name === 'fp16Out' ? ' and fp16Out over a SharedArrayBuffer' : ''}`,
        );
      }
    }
    for (const worker of this.workers) worker.port.postMessage({ type: 'buffers', buffers });
    this.attached = buffers;
  }

  /** Stops the workers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const worker of this.workers) {
      Atomics.store(worker.word, 0, EXIT);
      Atomics.notify(worker.word, 0);
      worker.port.close();
      void worker.worker.terminate();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
