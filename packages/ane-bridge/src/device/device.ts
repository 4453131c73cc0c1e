/**
 * openDevice: picks a backend, compiles programs once (cached by content hash) within the compile
 * budget, and hands out kernels with their own I/O buffers.
 */

import type { Plan } from 'ane-ir';
import { CHIP_FAMILIES, type ChipFamily, DEFAULT_CHIP, getRule, type Program, ruleLimit } from 'ane-ir/mil';
import { capabilities } from '../capabilities';
import { didYouMean } from '../did-you-mean';
import {
  CompileBudgetError,
  DeviceError,
  DeviceOptionsError,
  DeviceUnavailableError,
  InvalidProgramError,
} from '../errors';
import { type LoadOptions, PlanExecutable } from '../executor/plan-executable';
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
   * its own buffers. Takes a `Program`, or anything that carries one in its `program` field (the
   * lowered kernel `lowerGraph` returns). Throws InvalidProgramError when the argument is not a
   * Program, CompileError when the program is rejected, CompileBudgetError past the budget.
   */
  compile(programOrLowered: Program | { readonly program: Program }): Kernel {
    if (this.disposed) throw new DeviceError('this device was disposed; open a new one');
    const program = programOf(programOrLowered);
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

  /**
   * Loads a partitioned graph (ane-ir's `partition(graph)`): compiles each distinct program once
   * (a cache hit for programs compiled before), allocates every buffer once, and returns the
   * executable that runs it (`run`, `runSync`, `write`, `read`). Throws PlanError for something
   * that is not a plan or a plan for another chip, CompileError/CompileBudgetError like `compile`.
   */
  load(plan: Plan, options?: LoadOptions): PlanExecutable {
    if (this.disposed) throw new DeviceError('this device was disposed; open a new one');
    return new PlanExecutable(this, plan, options);
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

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name ?? 'object';
    return `${/^[AEIOaeio]/.test(name) ? 'an' : 'a'} ${name}`;
  }
  if (typeof value === 'string')
    return `the string '${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  return String(value);
}

const PROGRAM_FIELDS =
  'a Program { mil: string, weights: Map<string, Uint8Array>, inputs: TensorSpec[], outputs: TensorSpec[] }';

/**
 * The Program in `value`: the value itself, or its `program` field (ane-ir's lowered kernel
 * carries its Program there). Checks the shape, so a wrong argument is an InvalidProgramError
 * naming the field rather than a TypeError deep inside a backend.
 */
export function programOf(value: unknown, caller = 'device.compile'): Program {
  const fail = (what: string): never => {
    throw new InvalidProgramError(
      `${caller} takes ${PROGRAM_FIELDS} (or lowerGraph's result, which carries one in .program): ${what}`,
    );
  };
  if (value === null || typeof value !== 'object') return fail(`got ${describeValue(value)}`);
  const candidate = value as Record<string, unknown>;
  if (typeof candidate.mil !== 'string' && 'program' in candidate && typeof candidate.program !== 'object') {
    return fail(`its .program must be a Program, got ${describeValue(candidate.program)}`);
  }
  const program = (
    typeof candidate.mil !== 'string' && candidate.program !== null && typeof candidate.program === 'object'
      ? candidate.program
      : candidate
  ) as Record<string, unknown>;
  const where = program === candidate ? 'program' : 'program (from .program)';
  if (typeof program.mil !== 'string')
    return fail(`${where}.mil must be the MIL text (a string), got ${describeValue(program.mil)}`);
  if (!(program.weights instanceof Map)) {
    return fail(
      `${where}.weights must be a Map from BLOBFILE path to blob bytes (new Map() when there are none), got ${describeValue(program.weights)}`,
    );
  }
  for (const [key, bytes] of program.weights) {
    if (typeof key !== 'string' || !(bytes instanceof Uint8Array)) {
      return fail(
        `${where}.weights must map strings to Uint8Array blob bytes, found ${describeValue(key)} -> ${describeValue(bytes)}`,
      );
    }
  }
  for (const field of ['inputs', 'outputs'] as const) {
    const specs = program[field];
    if (!Array.isArray(specs))
      return fail(
        `${where}.${field} must be an array of TensorSpec { name, dtype, shape }, got ${describeValue(specs)}`,
      );
    for (const [i, spec] of (specs as unknown[]).entries()) {
      const s = (spec ?? {}) as Record<string, unknown>;
      const ok =
        typeof spec === 'object' &&
        typeof s.name === 'string' &&
        typeof s.dtype === 'string' &&
        Array.isArray(s.shape) &&
        s.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);
      if (!ok) {
        return fail(
          `${where}.${field}[${i}] must be a TensorSpec { name: string, dtype: 'fp16' | 'fp32', shape: whole numbers ≥ 0 }, got ${JSON.stringify(spec) ?? describeValue(spec)}`,
        );
      }
    }
  }
  return program as unknown as Program;
}

/** The ANE backend over the native addon's device (macOS arm64 builds only; see `ane doctor`). */
function aneBackend(): BackendImplementation | undefined {
  const ane = nativeAddon().addon?.ane;
  return ane ? createAneBackend(ane) : undefined;
}

const HOW_TO_USE_SIM =
  "openDevice({ backend: 'sim' }) runs the same programs in the simulator, with the ANE's fp16 numerics and rules";

const OPTION_KEYS = ['backend', 'chip', 'compileBudget'] as const;
const BACKENDS = ['auto', 'ane', 'sim'] as const;

/** Checks every option at open, so a typo fails here with a suggestion, not later in a compile. */
function checkOptions(options: unknown): OpenDeviceOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new DeviceOptionsError(
      `openDevice takes an options object ({ backend?, chip?, compileBudget? }), got ${describeValue(options)}`,
      'options',
    );
  }
  for (const key of Object.keys(options)) {
    if (!(OPTION_KEYS as readonly string[]).includes(key)) {
      throw new DeviceOptionsError(
        `openDevice: unknown option '${key}'${didYouMean(key, OPTION_KEYS)} (the options are ${OPTION_KEYS.join(', ')})`,
        key,
      );
    }
  }
  const { backend, chip, compileBudget } = options as Record<string, unknown>;
  if (backend !== undefined && !(BACKENDS as readonly unknown[]).includes(backend)) {
    const hint = typeof backend === 'string' ? didYouMean(backend, BACKENDS) : '';
    throw new DeviceOptionsError(
      `openDevice: backend must be 'auto', 'ane' or 'sim', got ${describeValue(backend)}${hint}`,
      'backend',
    );
  }
  if (chip !== undefined && !(CHIP_FAMILIES as readonly unknown[]).includes(chip)) {
    const hint = typeof chip === 'string' ? didYouMean(chip, CHIP_FAMILIES) : '';
    throw new DeviceOptionsError(
      `openDevice: chip must be one of ${CHIP_FAMILIES.map((c) => `'${c}'`).join(', ')} (the Apple-silicon family whose ANE rules apply), got ${describeValue(chip)}${hint}`,
      'chip',
    );
  }
  if (
    compileBudget !== undefined &&
    !(Number.isSafeInteger(compileBudget) && (compileBudget as number) >= 0)
  ) {
    throw new DeviceOptionsError(
      `openDevice: compileBudget must be a whole number ≥ 0 (default ${DEFAULT_COMPILE_BUDGET}), got ${describeValue(compileBudget)}`,
      'compileBudget',
    );
  }
  return options as OpenDeviceOptions;
}

/**
 * Opens a device. Every option is checked here: an unknown key, a chip outside M1–M5 or a backend
 * other than auto/ane/sim is a DeviceOptionsError that suggests the nearest valid spelling.
 */
export function openDevice(openOptions?: OpenDeviceOptions): Device {
  const options = checkOptions(openOptions);
  const requested = options.backend ?? 'auto';
  const budget = options.compileBudget ?? DEFAULT_COMPILE_BUDGET;
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
