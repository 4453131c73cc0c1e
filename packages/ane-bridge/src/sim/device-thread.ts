/**
 * The simulator's device thread: one `worker_threads` Worker per process that runs simulated
 * kernels off the JS thread, as the Neural Engine evaluates a real kernel while the CPU goes on.
 * `Kernel.run` (and so the plan executor) hands a run to it; the JS thread is then free to stage
 * the next values and drive the host kernels, which the executor overlaps with the device.
 *
 * The worker compiles each program it is given once (the main thread compiled it already: that
 * compile is the one that checks the program and reports errors) and runs it on the kernel's own
 * I/O buffers, which live in SharedArrayBuffers, so nothing is copied. Runs are executed one at a
 * time in the order they arrive, like a device queue. The worker keeps the process alive only while
 * a run is pending.
 *
 * The worker is the built `dist/sim-worker.js`; where it is missing (running from the sources
 * before a build), or the system refuses a thread, kernels run on the JS thread as before.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ChipFamily, Program } from 'ane-ir/mil';
import { DeviceError, KernelInputError } from '../errors';
import { findPackageRoot } from '../native/package-root';
import type { WorkerReply, WorkerRequest } from './device-thread-protocol';
import { simOpsMode } from './native-ops';

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
  /** Runs the kernel on the JS thread instead (when the worker cannot start). */
  fallback: () => void;
}

const ERROR_TYPES: Readonly<Record<string, new (message: string) => Error>> = {
  KernelInputError,
  DeviceError,
};

class DeviceThread {
  private readonly pending = new Map<number, Pending>();
  private nextRun = 1;
  private nextHandle = 1;
  /** Programs the current worker has compiled (a new worker starts empty). */
  private compiled = new Set<number>();
  private readonly programs = new Map<number, { program: Program; chip: ChipFamily }>();

  constructor(private readonly script: string) {}

  private worker: Worker | null = null;
  private online = false;
  /** Set when a worker could not start: every run then takes the JS thread. */
  unavailable: string | undefined;

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    // The parent's eval-only flags (node --input-type=module -e ...) would stop a file worker.
    const execArgv = process.execArgv.filter((flag) => !/^--(input-type|eval|print)\b|^-[ep]$/.test(flag));
    const worker = new Worker(this.script, { execArgv });
    worker.unref();
    worker.once('online', () => {
      this.online = true;
    });
    worker.on('message', (reply: WorkerReply) => this.settle(reply));
    worker.on('error', (error) =>
      this.lost(worker, `the simulator's device thread failed: ${error.message}`),
    );
    worker.on('exit', (code) => this.lost(worker, `the simulator's device thread exited (code ${code})`));
    this.worker = worker;
    this.online = false;
    this.compiled = new Set();
    return worker;
  }

  /** Registers a program; the worker compiles it before its first run. */
  register(program: Program, chip: ChipFamily): number {
    const handle = this.nextHandle++;
    this.programs.set(handle, { program, chip });
    return handle;
  }

  release(handle: number): void {
    this.programs.delete(handle);
    if (this.worker !== null && this.compiled.delete(handle)) this.post({ type: 'release', handle });
  }

  /**
   * Runs the program on the device thread; `fallback` runs it on the JS thread instead, after a
   * turn of the event loop, when the thread cannot start or a buffer is not shared memory.
   */
  run(
    handle: number,
    inputs: readonly Uint8Array[],
    outputs: readonly Uint8Array[],
    fallback: () => void,
  ): Promise<void> {
    const entry = this.programs.get(handle);
    if (entry === undefined) return Promise.reject(new DeviceError('this simulated program was released'));
    const onNextTurn = () => new Promise<void>((resolve) => setImmediate(resolve)).then(fallback);
    if (this.unavailable !== undefined || ![...inputs, ...outputs].every(isShared)) return onNextTurn();
    let worker: Worker;
    try {
      worker = this.start();
    } catch (error) {
      this.unavailable = (error as Error).message;
      return onNextTurn();
    }
    if (!this.compiled.has(handle)) {
      this.post({ type: 'compile', handle, program: entry.program, chip: entry.chip });
      this.compiled.add(handle);
    }
    const id = this.nextRun++;
    if (this.pending.size === 0) worker.ref();
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, fallback });
      this.post({ type: 'run', id, handle, inputs: [...inputs], outputs: [...outputs], mode: simOpsMode() });
    });
  }

  private post(request: WorkerRequest): void {
    this.worker!.postMessage(request);
  }

  private settle(reply: WorkerReply): void {
    const waiting = this.pending.get(reply.id);
    if (waiting === undefined) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.error === undefined) waiting.resolve();
    else {
      const Type = ERROR_TYPES[reply.error.name] ?? DeviceError;
      waiting.reject(new Type(reply.error.message));
    }
  }

  /**
   * The worker died. One that never came online could not start (flags, limits): its runs and all
   * later ones take the JS thread. Otherwise every pending run fails with a DeviceError and the
   * next run starts a new worker.
   */
  private lost(worker: Worker, message: string): void {
    if (this.worker !== worker) return;
    this.worker = null;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    if (!this.online) {
      this.unavailable = message;
      for (const run of waiting) {
        try {
          run.fallback();
          run.resolve();
        } catch (error) {
          run.reject(error as Error);
        }
      }
      return;
    }
    for (const run of waiting) run.reject(new DeviceError(message));
  }
}

let thread: DeviceThread | null | undefined;

/**
 * The process's device thread, or null when kernels run on the JS thread: the default, since on
 * the 2-core machines this was measured on the extra thread competing with the host kernels' pool
 * made a stories15M training step ~10% slower (see the README); ANE_BRIDGE_SIM_THREAD=1 turns it on.
 */
export function simDeviceThread(): DeviceThread | null {
  if (thread === undefined && process.env.ANE_BRIDGE_SIM_THREAD !== '1') thread = null;
  if (thread === undefined) {
    let script: string | undefined;
    try {
      script = join(findPackageRoot(), 'dist', 'sim-worker.js');
    } catch {
      script = undefined;
    }
    thread = script !== undefined && existsSync(script) ? new DeviceThread(script) : null;
  }
  return thread;
}

/** Whether a buffer lives in shared memory (the device thread uses it in place). */
function isShared(buffer: Uint8Array): boolean {
  return buffer.buffer instanceof SharedArrayBuffer;
}

export type { DeviceThread };
