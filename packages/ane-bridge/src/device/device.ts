/**
 * openDevice: picks a backend, compiles programs once (cached by content hash) within the compile
 * budget, and hands out kernels with their own I/O buffers.
 */
import { type ChipFamily, DEFAULT_CHIP, getRule, type Program, ruleLimit } from 'ane-ir/mil';
import { capabilities } from '../capabilities';
import { CompileBudgetError, DeviceError, DeviceUnavailableError } from '../errors';
import { nativeAddon } from '../native/loader';
import { createAneBackend } from './ane-backend';
import { type CompiledProgram, Kernel } from './kernel';
import { programHash } from './program-hash';
import { simBackend } from './sim-backend';

export type BackendName = 'ane' | 'sim';

export type { ChipFamily };

export interface OpenDeviceOptions {
  /** 'auto' (default) picks the ANE where it is available, otherwise the simulator. */
  backend?: 'auto' | BackendName;
  /** The chip family whose rules apply (default 'M4'); on the ANE it is the machine's own. */
  chip?: ChipFamily;
  /**
   * How many programs the device may compile (default 119). The ANE framework leaks on every
   * compile and fails past about 119 in one process; every backend enforces the same budget so
   * code that runs in the simulator also fits on the hardware. Cache hits are free.
   */
  compileBudget?: number;
}

/** What a backend must provide to a device. */
export interface BackendImplementation {
  compile(program: Program, chip: ChipFamily): CompiledProgram;
}

const COMPILE_BUDGET_RULE = getRule('rt-compile-budget');

/** The hardware's per-process compile limit, from the rule table (rule `rt-compile-budget`). */
export const DEFAULT_COMPILE_BUDGET = ruleLimit(COMPILE_BUDGET_RULE, DEFAULT_CHIP) ?? 119;

export class Device implements Disposable {
  private readonly cache = new Map<string, CompiledProgram>();
  private readonly liveKernels = new Set<Kernel>();
  private compiles = 0;
  private disposed = false;

  constructor(
    /** The backend in use. */
    readonly backend: BackendName,
    /** Why this backend was chosen. */
    readonly reason: string,
    readonly chip: ChipFamily,
    private readonly implementation: BackendImplementation,
    readonly compileBudgetLimit: number,
  ) {}

  /** Compiles used and left in this device's budget. */
  get compileBudget(): { limit: number; used: number; remaining: number } {
    const limit = this.compileBudgetLimit;
    return { limit, used: this.compiles, remaining: Math.max(0, limit - this.compiles) };
  }

  /**
   * Compiles `program` (or reuses the compile of an identical one) and returns a new kernel with
   * its own buffers. Throws CompileError when the program is rejected, CompileBudgetError past
   * the budget.
   */
  compile(program: Program): Kernel {
    if (this.disposed) throw new DeviceError('this device was disposed; open a new one');
    const hash = programHash(program, `${this.backend}:${this.chip}`);
    let compiled = this.cache.get(hash);
    if (!compiled) {
      if (this.compiles >= this.compileBudgetLimit) {
        throw new CompileBudgetError(
          `compile budget exhausted: this device has compiled ${this.compiles} programs (limit ${this.compileBudgetLimit}). ` +
            `The ANE framework fails past about ${DEFAULT_COMPILE_BUDGET} compiles per process. ${COMPILE_BUDGET_RULE.fix}`,
          { ruleId: COMPILE_BUDGET_RULE.id },
        );
      }
      compiled = this.implementation.compile(program, this.chip);
      this.compiles++;
      this.cache.set(hash, compiled);
    }
    const kernel = new Kernel(hash, program, compiled, (k) => this.liveKernels.delete(k));
    this.liveKernels.add(kernel);
    return kernel;
  }

  /** Kernels handed out and not yet disposed. */
  get kernelCount(): number {
    return this.liveKernels.size;
  }

  /**
   * Disposes every kernel and frees every compile (on the ANE: unload, release the surfaces, remove
   * the staging directory). Throws the first DeviceError a backend reported, after freeing the rest.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const kernel of [...this.liveKernels]) kernel.dispose();
    const failures: unknown[] = [];
    for (const compiled of this.cache.values()) {
      try {
        compiled.dispose?.();
      } catch (error) {
        failures.push(error);
      }
    }
    this.cache.clear();
    if (failures.length > 0) throw failures[0];
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The ANE backend over the native addon's device (macOS arm64 builds only; see `ane doctor`). */
function aneBackend(): BackendImplementation | undefined {
  const ane = nativeAddon().addon?.ane;
  return ane ? createAneBackend(ane) : undefined;
}

const HOW_TO_USE_SIM =
  "openDevice({ backend: 'sim' }) runs the same programs in the simulator, with the ANE's fp16 numerics and rules";

export function openDevice(options: OpenDeviceOptions = {}): Device {
  const requested = options.backend ?? 'auto';
  const budget = options.compileBudget ?? DEFAULT_COMPILE_BUDGET;
  if (!Number.isInteger(budget) || budget < 0) {
    throw new RangeError(`compileBudget must be a whole number ≥ 0, got ${budget}`);
  }
  if (!['auto', 'ane', 'sim'].includes(requested)) {
    throw new RangeError(`backend must be 'auto', 'ane' or 'sim', got '${String(requested)}'`);
  }
  if (requested === 'sim')
    return new Device('sim', "backend 'sim' was requested", options.chip ?? DEFAULT_CHIP, simBackend, budget);
  // Only a request that may use the ANE asks for it (on a Mac the first ask runs the ANE probe).
  const ane = capabilities().ane;
  const aneImplementation = ane.status === 'available' ? aneBackend() : undefined;
  const aneUsable = aneImplementation !== undefined;
  if (requested === 'ane' && !aneUsable) {
    throw new DeviceUnavailableError(
      `backend 'ane' is unavailable: ${ane.reason}. ${HOW_TO_USE_SIM}`,
      ane.reason,
    );
  }
  if (requested === 'ane' || (requested === 'auto' && aneUsable)) {
    // On the ANE the rules are the machine's own chip's, as the probe found it.
    const chip = options.chip ?? ane.probe?.chipFamily ?? DEFAULT_CHIP;
    return new Device('ane', 'the Neural Engine is available', chip, aneImplementation!, budget);
  }
  return new Device(
    'sim',
    `'auto' chose the simulator: ${ane.reason}`,
    options.chip ?? DEFAULT_CHIP,
    simBackend,
    budget,
  );
}
