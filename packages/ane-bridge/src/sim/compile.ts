/**
 * `compileSimProgram` as the package exports it: the argument checks a caller outside the bridge
 * needs (a wrong program or option is a typed error naming it, not a TypeError deep inside), then
 * the simulator's compile.
 */
import { CHIP_FAMILIES, type Program } from 'ane-ir/mil';
import { describeValue, programOf } from '../device/device';
import { DeviceOptionsError } from '../errors';
import { compileSimProgram as compile, type SimCompileOptions, type SimExecutable } from './executable';

const BOOLEAN_OPTIONS = [
  'inPlaceOperands',
  'inPlaceConcat',
  'fuseElementwise',
  'halfInputOperands',
  'profileOps',
] as const;
const KNOWN_OPTIONS = new Set(['chip', 'reduceSumAccumulation', 'memoryLimitBytes', ...BOOLEAN_OPTIONS]);

/**
 * Compiles `program` for the simulator without a device (no compile budget, no cache): parse,
 * validate, the chip's rule checks, then the plan. Throws InvalidProgramError for what is not a
 * Program, DeviceOptionsError for a bad option, CompileError when the program is rejected.
 */
export function compileSimProgram(
  program: Program | { readonly program: Program },
  options: SimCompileOptions = {},
): SimExecutable {
  const checked = programOf(program, 'compileSimProgram');
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new DeviceOptionsError(
      `compileSimProgram: options must be an object such as { chip: 'M4' }, got ${describeValue(options)}`,
      'options',
    );
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new DeviceOptionsError(
        `compileSimProgram: unknown option '${key}' (options: ${[...KNOWN_OPTIONS].join(', ')})`,
        key,
      );
    }
  }
  const { chip, reduceSumAccumulation, memoryLimitBytes } = options;
  if (chip !== undefined && !CHIP_FAMILIES.includes(chip)) {
    throw new DeviceOptionsError(
      `compileSimProgram: chip must be one of ${CHIP_FAMILIES.join(', ')}, got ${describeValue(chip)}`,
      'chip',
    );
  }
  if (
    reduceSumAccumulation !== undefined &&
    reduceSumAccumulation !== 'fp32' &&
    reduceSumAccumulation !== 'fp16'
  ) {
    throw new DeviceOptionsError(
      `compileSimProgram: reduceSumAccumulation must be 'fp32' or 'fp16', got ${describeValue(reduceSumAccumulation)}`,
      'reduceSumAccumulation',
    );
  }
  if (
    memoryLimitBytes !== undefined &&
    !(typeof memoryLimitBytes === 'number' && Number.isFinite(memoryLimitBytes) && memoryLimitBytes > 0)
  ) {
    throw new DeviceOptionsError(
      `compileSimProgram: memoryLimitBytes must be a positive number of bytes, got ${describeValue(memoryLimitBytes)}`,
      'memoryLimitBytes',
    );
  }
  for (const key of BOOLEAN_OPTIONS) {
    const value = options[key];
    if (value !== undefined && typeof value !== 'boolean') {
      throw new DeviceOptionsError(
        `compileSimProgram: ${key} must be true or false, got ${describeValue(value)}`,
        key,
      );
    }
  }
  return compile(checked, options);
}
