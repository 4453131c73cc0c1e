/**
 * Argument checks shared by every host kernel: the TS twins and the native dispatch call the same
 * check before doing anything, so both refuse the same input with the same error class and
 * message. A value of the wrong kind (a Float64Array, a plain array, a string, a missing option) is
 * a TypeError; a size, index or value out of range is a RangeError; memory that could move under a
 * kernel is a HostKernelBufferError. Each message names the kernel, the argument, what was expected
 * and what was found.
 */

import { isSharedArrayBuffer } from 'node:util/types';

export function checkLength(
  kernel: string,
  name: string,
  actual: number,
  expected: number,
  expectedFrom: string,
): void {
  if (actual !== expected) {
    throw new RangeError(
      `${kernel}: ${name} has ${actual} elements, expected ${expected} (${expectedFrom}); pass arrays of equal length`,
    );
  }
}

export function checkAtLeast(
  kernel: string,
  name: string,
  actual: number,
  needed: number,
  why: string,
): void {
  if (actual < needed) {
    throw new RangeError(`${kernel}: ${name} has ${actual} elements, needs at least ${needed} (${why})`);
  }
}

export function checkNonNegativeInteger(kernel: string, name: string, value: number): void {
  checkNumber(kernel, name, value);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${kernel}: ${name} must be a non-negative integer, got ${value}`);
  }
}

export function checkPositiveInteger(kernel: string, name: string, value: number): void {
  checkNumber(kernel, name, value);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${kernel}: ${name} must be a positive integer, got ${value}`);
  }
}

export function checkFinite(kernel: string, name: string, value: number): void {
  if (!Number.isFinite(value))
    throw new RangeError(`${kernel}: ${name} must be a finite number, got ${value}`);
}

// ---- what an argument is ------------------------------------------------------------------------
// Read through the intrinsic getters, so an object cannot pass for a typed array by its own
// properties (a fake `length`, a `buffer` property): the TS twins then see what the addon sees.

const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
function intrinsicGetter(target: object, key: PropertyKey): ((this: unknown) => unknown) | undefined {
  return Object.getOwnPropertyDescriptor(target, key)?.get as ((this: unknown) => unknown) | undefined;
}
const typedArrayTag = intrinsicGetter(typedArrayPrototype, Symbol.toStringTag)!;
const typedArrayLength = intrinsicGetter(typedArrayPrototype, 'length')!;
const typedArrayBuffer = intrinsicGetter(typedArrayPrototype, 'buffer')!;
const typedArrayByteOffset = intrinsicGetter(typedArrayPrototype, 'byteOffset')!;
const typedArrayByteLength = intrinsicGetter(typedArrayPrototype, 'byteLength')!;
/** undefined on a Node without resizable ArrayBuffers. */
const arrayBufferResizable = intrinsicGetter(ArrayBuffer.prototype, 'resizable');

/**
 * A host kernel was handed an array whose memory may not stay put while the kernel uses it: a view
 * of a resizable ArrayBuffer (`code` 'ERR_ANE_BRIDGE_RESIZABLE_BUFFER', every kernel, at the call),
 * or, for the native `…Async` kernels, an array detached (transferred) while the kernel ran
 * ('ERR_ANE_BRIDGE_DETACHED': the Promise rejects and the result is discarded).
 */
export class HostKernelBufferError extends TypeError {
  override name = 'HostKernelBufferError';
  constructor(
    message: string,
    readonly code: 'ERR_ANE_BRIDGE_RESIZABLE_BUFFER' | 'ERR_ANE_BRIDGE_DETACHED',
  ) {
    super(message);
  }
}

/** Whether `value` is a Uint16Array (by its tag: arrays from another realm count too). */
export function isUint16Array(value: unknown): value is Uint16Array {
  return typedArrayTag.call(value) === 'Uint16Array';
}

/** checkTypedArray for an input taken as fp32 values (Float32Array) or fp16 bits (Uint16Array). */
export function checkFloatsOrHalves(kernel: string, name: string, value: unknown): void {
  const tag = typedArrayTag.call(value);
  if (tag !== 'Float32Array' && tag !== 'Uint16Array') {
    throw new TypeError(
      `${kernel}: ${name} must be a Float32Array, or a Uint16Array of fp16 bits, got ${describeArgument(value)}`,
    );
  }
  checkTypedArray(kernel, name, value, tag);
}

/** Short description of a value for messages: 'a Float64Array', 'an array', 'a string', 'null'. */
export function describeArgument(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  const tag = typedArrayTag.call(value);
  if (typeof tag === 'string') return `a ${tag}`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return value instanceof ArrayBuffer ? 'an ArrayBuffer' : 'an object';
  if (typeof value === 'string') return `a string (${JSON.stringify(value.slice(0, 20))})`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return `${typeof value} ${String(value)}`;
  return `a ${typeof value}`;
}

export type ElementType = 'Float32Array' | 'Uint16Array' | 'Int32Array';

/**
 * Checks that `value` is a `type` (its subclasses included) whose memory stays put: the element
 * count is its real one (an own or inherited `length` that says otherwise is refused), and its
 * buffer is not resizable. SharedArrayBuffer views are accepted (growable ones too: they only grow,
 * in place). Throws TypeError or HostKernelBufferError; the native kernels run this same check.
 */
export function checkTypedArray(kernel: string, name: string, value: unknown, type: ElementType): void {
  if (typedArrayTag.call(value) !== type) {
    throw new TypeError(`${kernel}: ${name} must be a ${type}, got ${describeArgument(value)}`);
  }
  const elements = typedArrayLength.call(value) as number;
  const claimed = (value as { length: unknown }).length;
  if (claimed !== elements) {
    throw new TypeError(
      `${kernel}: ${name} reports length ${String(claimed)} but holds ${elements} elements; pass the ${type} itself, without a length property of its own`,
    );
  }
  // A SharedArrayBuffer is asked nothing: the ArrayBuffer getter would throw, and an exception per
  // call (a stack trace each) cost the trainer's hot loop 3% of its CPU time.
  const buffer = typedArrayBuffer.call(value);
  if (!isSharedArrayBuffer(buffer) && arrayBufferResizable?.call(buffer) === true) {
    throw new HostKernelBufferError(
      `${kernel}: ${name} is a view of a resizable ArrayBuffer, whose memory can shrink while a kernel uses it; copy it into a fixed-length array first (new ${type}(view))`,
      'ERR_ANE_BRIDGE_RESIZABLE_BUFFER',
    );
  }
}

/** checkTypedArray, or null/undefined when `nullable`. */
export function checkOptionalTypedArray(
  kernel: string,
  name: string,
  value: unknown,
  type: ElementType,
): void {
  if (value === null || value === undefined) return;
  checkTypedArray(kernel, name, value, type);
}

/** TypeError unless `value` is a number (NaN and infinities included: see checkFinite). */
export function checkNumber(kernel: string, name: string, value: unknown): void {
  if (typeof value !== 'number') {
    throw new TypeError(`${kernel}: ${name} must be a number, got ${describeArgument(value)}`);
  }
}

/** TypeError unless `value` is true or false. */
export function checkBoolean(kernel: string, name: string, value: unknown): void {
  if (typeof value !== 'boolean') {
    throw new TypeError(`${kernel}: ${name} must be true or false, got ${describeArgument(value)}`);
  }
}

/** TypeError unless `value` is a plain options object (not null, not an array). */
export function checkOptionsObject(kernel: string, name: string, value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${kernel}: ${name} must be an object, got ${describeArgument(value)}`);
  }
}

/** A finite number option, e.g. `options.lr` (TypeError when missing, RangeError when not finite). */
export function checkFiniteOption(kernel: string, options: object, key: string): void {
  const value = (options as Record<string, unknown>)[key];
  checkNumber(kernel, `options.${key}`, value);
  checkFinite(kernel, `options.${key}`, value as number);
}

/** An optional `options.gradScale`: a number that stays finite when rounded to fp32 (the kernels read it so). */
export function checkGradScaleOption(kernel: string, options: { gradScale?: number }): void {
  if (options.gradScale === undefined) return;
  checkFiniteOption(kernel, options, 'gradScale');
  if (!Number.isFinite(Math.fround(options.gradScale))) {
    throw new RangeError(
      `${kernel}: options.gradScale must be within fp32's range (|x| ≤ 3.4e38: it is rounded to fp32), got ${options.gradScale}`,
    );
  }
}

/** A boolean option, e.g. `options.nesterov`. */
export function checkBooleanOption(kernel: string, options: object, key: string): void {
  checkBoolean(kernel, `options.${key}`, (options as Record<string, unknown>)[key]);
}

/**
 * RangeError when `output` shares memory with `input` (the same buffer, overlapping bytes): a kernel
 * that reads `input` while writing `output` would see its own writes, differently in each
 * implementation.
 */
export function checkNoOverlap(
  kernel: string,
  outputName: string,
  output: object,
  inputName: string,
  input: object,
): void {
  if (typedArrayBuffer.call(output) !== typedArrayBuffer.call(input)) return;
  const outStart = typedArrayByteOffset.call(output) as number;
  const outEnd = outStart + (typedArrayByteLength.call(output) as number);
  const inStart = typedArrayByteOffset.call(input) as number;
  const inEnd = inStart + (typedArrayByteLength.call(input) as number);
  if (outStart < inEnd && inStart < outEnd) {
    throw new RangeError(
      `${kernel}: ${outputName} overlaps ${inputName} in memory (bytes [${outStart}, ${outEnd}) and [${inStart}, ${inEnd}) of one buffer); write into a separate array`,
    );
  }
}
