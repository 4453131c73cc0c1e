/**
 * The Neural Engine as a device backend: hands programs to the native bridge (native/ane/), which
 * compiles them with AppleNeuralEngine's in-memory model, and maps its failures to typed errors
 * carrying the framework's own text. Evaluation runs off the JS thread (`Kernel.run`).
 *
 * The backend checks what the hardware would get wrong silently: I/O specs that do not match
 * `func main` (surfaces of the wrong size read as zeros) and weights keys that are not
 * `@model_path/...` paths (they cannot be staged). Everything else is the framework's to judge.
 */
import {
  type ChipFamily,
  DEFAULT_CHIP,
  type Func,
  formatValueType,
  getRule,
  type MilProgram,
  type Program,
  parseProgram,
  ruleLimit,
  sameValueType,
  type TensorSpec,
  tensorType,
  type ValueType,
  withDefaultBuildInfo,
} from 'ane-ir/mil';
import type { NativeAne, NativeAneErrorCode, NativeAneModel } from '../ane/native-ane';
import {
  CompileBudgetError,
  CompileError,
  DeviceError,
  DeviceUnavailableError,
  KernelInputError,
} from '../errors';
import type { BackendImplementation } from './device';
import type { CompiledProgram } from './kernel';

const COMPILE_BUDGET_RULE = getRule('rt-compile-budget');
const MIN_SURFACE_RULE = getRule('io-min-surface');
const HOW_TO_USE_SIM =
  "openDevice({ backend: 'sim' }) runs the same programs in the simulator, with the ANE's fp16 numerics and rules";

export interface AneBackendOptions {
  /**
   * Smallest IOSurface to allocate (default: rule `io-min-surface`'s limit, 49,152 bytes). Data is
   * always packed from byte 0 (rule `io-packed-read`), so padding is invisible to programs.
   */
  minSurfaceBytes?: number;
}

/** The native error's `code`, if it has one. */
function nativeCode(error: unknown): NativeAneErrorCode | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ANE_') ? (code as NativeAneErrorCode) : undefined;
}

/**
 * The typed error for a failure of the native bridge. `during` says what was attempted; the
 * framework's text (e.g. `Error Domain=com.apple.appleneuralengine ... status=0x1d`) is kept whole.
 */
export function aneError(error: unknown, during: 'compile' | 'run' | 'free'): Error {
  const code = nativeCode(error);
  if (code === undefined) return error instanceof Error ? error : new DeviceError(String(error));
  const message = (error as Error).message;
  switch (code) {
    case 'ANE_UNAVAILABLE':
      return new DeviceUnavailableError(
        `the Neural Engine is unavailable: ${message}. ${HOW_TO_USE_SIM}`,
        message,
      );
    case 'ANE_BUDGET':
      return new CompileBudgetError(`${message}. ${COMPILE_BUDGET_RULE.fix}`, {
        ruleId: COMPILE_BUDGET_RULE.id,
        cause: error,
      });
    case 'ANE_COMPILE':
      return new CompileError(message, { cause: error });
    case 'ANE_INPUT':
      return during === 'compile'
        ? new CompileError(message, { cause: error })
        : new KernelInputError(message);
    default:
      return new DeviceError(message, { cause: error });
  }
}

function describeSpec(spec: { name: string; dtype: string; shape: readonly number[] }): string {
  return `${spec.name}: ${spec.dtype} [${spec.shape.join(', ')}]`;
}

function declaredType(func: Func, name: string): ValueType | undefined {
  for (const statement of func.body) {
    const output = statement.outputs.find((o) => o.name === name);
    if (output) return output.type;
  }
  return func.params.find((p) => p.name === name)?.type;
}

/**
 * Checks `program.inputs`/`outputs` against `func main`: the surfaces are sized from the specs, and
 * a surface of the wrong size is silently read as zeros by the hardware (reference §1.7). When our
 * parser cannot read the text the check is skipped: the framework's compiler has the last word.
 */
export function checkAneSignature(program: Program): void {
  let parsed: MilProgram;
  try {
    parsed = parseProgram(program.mil);
  } catch {
    return;
  }
  const main = parsed.functions.find((f) => f.name === 'main');
  if (!main) return;
  const compare = (
    kind: 'input' | 'output',
    specs: readonly TensorSpec[],
    declared: readonly { name: string; type: ValueType | undefined }[],
  ) => {
    const matches =
      specs.length === declared.length &&
      specs.every((spec, i) => {
        const type = declared[i]!.type;
        return (
          spec.name === declared[i]!.name &&
          (type === undefined || sameValueType(type, tensorType(spec.dtype, spec.shape)))
        );
      });
    if (!matches) {
      const declaredText = declared
        .map((d) => `${d.name}: ${d.type ? formatValueType(d.type) : '?'}`)
        .join(', ');
      throw new CompileError(
        `program ${kind}s do not match func main: the MIL declares (${declaredText}), the Program lists (${specs.map(describeSpec).join(', ')}). ` +
          `The ANE binds surfaces by position and reads a wrongly sized one as zeros; list program.${kind}s in ${kind === 'input' ? 'parameter declaration' : 'return'} order with the declared dtypes and shapes.`,
      );
    }
  };
  compare(
    'input',
    program.inputs,
    main.params.map((p) => ({ name: p.name, type: p.type })),
  );
  compare(
    'output',
    program.outputs,
    main.returns.map((r) => ({ name: r.name, type: declaredType(main, r.name) })),
  );
}

class AneCompiledProgram implements CompiledProgram {
  constructor(private readonly model: NativeAneModel) {}

  run(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void {
    try {
      this.model.run(inputs, outputs);
    } catch (error) {
      throw aneError(error, 'run');
    }
  }

  async runAsync(inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): Promise<void> {
    try {
      await this.model.runAsync(inputs, outputs);
    } catch (error) {
      throw aneError(error, 'run');
    }
  }

  dispose(): void {
    try {
      this.model.free();
    } catch (error) {
      throw aneError(error, 'free');
    }
  }
}

/**
 * A backend over the native ANE device `ane` (the macOS addon's `ane`, or the fake platform's in
 * tests). Sets the process-wide compile limit from rule `rt-compile-budget`.
 */
export function createAneBackend(ane: NativeAne, options: AneBackendOptions = {}): BackendImplementation {
  const minSurfaceBytes = options.minSurfaceBytes ?? ruleLimit(MIN_SURFACE_RULE, DEFAULT_CHIP) ?? 0;
  ane.setCompileLimit(ruleLimit(COMPILE_BUDGET_RULE, DEFAULT_CHIP) ?? 119);
  return {
    compile(program: Program, _chip: ChipFamily): CompiledProgram {
      // The framework's parser needs a buildInfo line; a text without one gets the standard line.
      const mil = typeof program.mil === 'string' ? withDefaultBuildInfo(program.mil) : program.mil;
      checkAneSignature({ ...program, mil });
      let model: NativeAneModel;
      try {
        model = ane.compile(mil, program.weights, program.inputs, program.outputs, {
          minSurfaceBytes,
        });
      } catch (error) {
        throw aneError(error, 'compile');
      }
      return new AneCompiledProgram(model);
    },
  };
}
