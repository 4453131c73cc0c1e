import type { Program, RuleViolation } from 'ane-ir/mil';
import { DeviceError, KernelInputError } from '../errors';
import { TensorBuffer, type TensorData } from './buffers';

/** A program compiled by a backend: executes on dense device buffers. */
export interface CompiledProgram {
  /** Reads `inputs` (declaration order) and writes `outputs` (return order). */
  run(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void;
  /**
   * The same off the JS thread (device backends). When absent, `Kernel.run` yields to the event
   * loop and then calls `run`.
   */
  runAsync?(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): Promise<void>;
  /** Releases what the backend holds for this compile (the ANE's model, surfaces, staging directory). */
  dispose?(): void;
  /** What the compile accepted with a warning (the simulator: rule-table warnings, blobs other tools wrote). */
  readonly warnings?: readonly RuleViolation[];
}

/** Inputs for a run: values in declaration order, or by parameter name. */
export type KernelInputs = readonly TensorData[] | Readonly<Record<string, TensorData>>;

/** Options of a run. */
export interface RunOptions {
  /**
   * Return copies of the output buffers instead of the kernel's own (default false). The kernel's
   * own buffers are overwritten by its next run; a copy is yours to keep.
   */
  copy?: boolean;
}

/**
 * A compiled program with its own input and output buffers. Write inputs (or pass them to `run`),
 * run, read outputs. Dispose it (or use `using`) when done.
 */
export class Kernel implements Disposable {
  readonly inputs: readonly TensorBuffer[];
  readonly outputs: readonly TensorBuffer[];
  /** Warnings of the compile (e.g. weight blobs written by other tools, rule `blob-offset`); empty when none. */
  get warnings(): readonly RuleViolation[] {
    return this.compiled.warnings ?? [];
  }
  private disposed = false;
  private running = false;

  constructor(
    /** Content hash of the program (kernels of equal programs share one compile). */
    readonly hash: string,
    program: Pick<Program, 'inputs' | 'outputs'>,
    private readonly compiled: CompiledProgram,
    private readonly onDispose: (kernel: Kernel) => void,
  ) {
    this.inputs = program.inputs.map((spec) => new TensorBuffer(spec));
    this.outputs = program.outputs.map((spec) => new TensorBuffer(spec));
  }

  /** The input buffer of the parameter named `name`. */
  input(name: string): TensorBuffer {
    return findBuffer(this.inputs, name, 'input');
  }

  /** The output buffer of the returned value named `name`. */
  output(name: string): TensorBuffer {
    return findBuffer(this.outputs, name, 'output');
  }

  /**
   * Runs on the calling thread and returns the kernel's own output buffers, which the next run
   * overwrites; pass `{ copy: true }` for copies that stay as they are.
   */
  runSync(inputs?: KernelInputs, options?: RunOptions): readonly TensorBuffer[] {
    const copy = copyOption(options);
    this.assertUsable();
    if (inputs !== undefined) this.writeInputs(inputs);
    this.running = true;
    try {
      this.compiled.run(
        this.inputs.map((b) => b.bytes),
        this.outputs.map((b) => b.bytes),
      );
    } finally {
      this.running = false;
    }
    return copy ? this.copyOutputs() : this.outputs;
  }

  /**
   * Runs and resolves with the kernel's own output buffers (overwritten by the next run; pass
   * `{ copy: true }` for copies). The simulator executes on the JS thread after yielding to the
   * event loop; device backends evaluate off the JS thread.
   */
  async run(inputs?: KernelInputs, options?: RunOptions): Promise<readonly TensorBuffer[]> {
    const copy = copyOption(options);
    this.assertUsable();
    if (inputs !== undefined) this.writeInputs(inputs);
    if (this.compiled.runAsync) {
      this.running = true;
      try {
        await this.compiled.runAsync(
          this.inputs.map((b) => b.bytes),
          this.outputs.map((b) => b.bytes),
        );
      } finally {
        this.running = false;
      }
      return copy ? this.copyOutputs() : this.outputs;
    }
    this.running = true;
    try {
      await new Promise<void>((resolve) => setImmediate(resolve));
    } finally {
      this.running = false;
    }
    return this.runSync(undefined, { copy });
  }

  /** Fresh buffers holding the outputs' current bytes, independent of later runs. */
  private copyOutputs(): readonly TensorBuffer[] {
    return this.outputs.map((output) => {
      const copy = new TensorBuffer(output.spec);
      copy.bytes.set(output.bytes);
      return copy;
    });
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.onDispose(this);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private assertUsable(): void {
    if (this.disposed) throw new DeviceError('this kernel was disposed; compile the program again to run it');
    if (this.running) throw new DeviceError('this kernel is already running; await the previous run first');
  }

  private writeInputs(inputs: KernelInputs): void {
    if (isInputList(inputs)) {
      if (inputs.length !== this.inputs.length) {
        throw new KernelInputError(
          `the program takes ${this.inputs.length} inputs (${names(this.inputs)}), got ${inputs.length}`,
        );
      }
      for (const [i, data] of inputs.entries()) this.inputs[i]!.write(data);
      return;
    }
    const given = Object.keys(inputs);
    const unknown = given.filter((name) => !this.inputs.some((b) => b.spec.name === name));
    const missing = this.inputs.filter((b) => !(b.spec.name in inputs)).map((b) => b.spec.name);
    if (unknown.length > 0 || missing.length > 0) {
      const parts = [];
      if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`);
      if (unknown.length > 0) parts.push(`unknown ${unknown.join(', ')}`);
      throw new KernelInputError(
        `inputs by name: ${parts.join('; ')} (the program takes ${names(this.inputs)})`,
      );
    }
    for (const buffer of this.inputs) buffer.write(inputs[buffer.spec.name]!);
  }
}

/** `options.copy` of a run, checked; `error` makes the caller's error type (a kernel's, a plan's). */
export function copyOption(
  options: RunOptions | undefined,
  error: (message: string) => Error = (message) => new KernelInputError(message),
): boolean {
  if (options === undefined) return false;
  if (options === null || typeof options !== 'object') {
    throw error(`run options must be an object ({ copy?: boolean }), got ${String(options)}`);
  }
  const unknown = Object.keys(options).filter((key) => key !== 'copy');
  if (unknown.length > 0) {
    throw error(`unknown run option '${unknown[0]}' (the only option is copy)`);
  }
  if (options.copy !== undefined && typeof options.copy !== 'boolean') {
    throw error(`run option copy must be true or false, got ${String(options.copy)}`);
  }
  return options.copy === true;
}

function isInputList(inputs: KernelInputs): inputs is readonly TensorData[] {
  return Array.isArray(inputs);
}

function names(buffers: readonly TensorBuffer[]): string {
  return buffers.map((b) => b.spec.name).join(', ') || 'none';
}

function findBuffer(buffers: readonly TensorBuffer[], name: string, kind: string): TensorBuffer {
  const buffer = buffers.find((b) => b.spec.name === name);
  if (!buffer) throw new KernelInputError(`no ${kind} named '${name}' (the program has ${names(buffers)})`);
  return buffer;
}
