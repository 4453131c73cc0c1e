/**
 * IEEE binary16 helpers: the one place this repo converts between fp16 and JS numbers.
 *
 * Rounding is round-to-nearest, ties-to-even (the ANE's and IEEE's default). Values beyond the fp16
 * range (|x| >= 65520 after rounding) become ±Infinity; NaN stays NaN.
 */
import { f16round } from '@petamoriken/float16';

/** Largest finite fp16 value. */
export const FP16_MAX = 65504;
/** Smallest positive normal fp16 value, 2^-14. */
export const FP16_MIN_NORMAL = 2 ** -14;
/** Smallest positive subnormal fp16 value, 2^-24. */
export const FP16_MIN_SUBNORMAL = 2 ** -24;

/** The fp16 value nearest `x` (ties to even), as a JS number. */
export const roundToFp16: (x: number) => number = f16round;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** fp16 bit pattern of the fp16 value nearest `x`. */
export function fp16BitsFromNumber(x: number): number {
  const v = f16round(x);
  scratchF32[0] = v;
  const bits = scratchU32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  if (exponent === 0xff) return sign | 0x7c00 | (bits & 0x7fffff ? 0x200 : 0);
  // v is exactly representable in fp16, so these conversions drop no bits.
  if (exponent >= 113) return sign | ((exponent - 112) << 10) | ((bits & 0x7fffff) >>> 13);
  return sign | Math.round(Math.abs(v) * 2 ** 24);
}

const DECODE_TABLE = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    let value: number;
    if (exponent === 0) value = mantissa * 2 ** -24;
    else if (exponent === 31) value = mantissa ? Number.NaN : Number.POSITIVE_INFINITY;
    else value = (1 + mantissa / 1024) * 2 ** (exponent - 15);
    table[h] = sign * value;
  }
  return table;
})();

/** The number an fp16 bit pattern encodes. */
export function numberFromFp16Bits(bits: number): number {
  return DECODE_TABLE[bits & 0xffff]!;
}

/** Decodes fp16 bit patterns into `out` (allocated when omitted). */
export function decodeFp16(
  bits: Uint16Array,
  out: Float32Array = new Float32Array(bits.length),
): Float32Array {
  if (out.length < bits.length)
    throw new RangeError(`decodeFp16: output holds ${out.length} < ${bits.length}`);
  for (let i = 0; i < bits.length; i++) out[i] = DECODE_TABLE[bits[i]!]!;
  return out;
}

/** Encodes numbers as fp16 bit patterns (round to nearest even) into `out` (allocated when omitted). */
export function encodeFp16(
  values: ArrayLike<number>,
  out: Uint16Array = new Uint16Array(values.length),
): Uint16Array {
  if (out.length < values.length)
    throw new RangeError(`encodeFp16: output holds ${out.length} < ${values.length}`);
  for (let i = 0; i < values.length; i++) out[i] = fp16BitsFromNumber(values[i]!);
  return out;
}

const FP32_INFINITY_BITS = 0x7f800000;
/** 65520 as fp32: the smallest magnitude that rounds to fp16 infinity (it ties to the even 65536). */
const FP32_FP16_OVERFLOW_BITS = 0x477ff000;
/** 2^-14 as fp32: the smallest normal fp16 magnitude. */
const FP32_FP16_MIN_NORMAL_BITS = 0x38800000;

/** Rounds every element of `values` to its nearest fp16 value, in place. */
export function roundToFp16InPlace(values: Float32Array | Float64Array): void {
  if (values instanceof Float64Array) {
    for (let i = 0; i < values.length; i++) values[i] = f16round(values[i]!);
    return;
  }
  // On the fp32 bits, the fp16 rounding of a normal value is a round-half-even of the mantissa to
  // 10 bits; overflow, NaN and the (rare) subnormal range take the slow path.
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i]!;
    const magnitude = u & 0x7fffffff;
    if (magnitude >= FP32_FP16_MIN_NORMAL_BITS && magnitude < FP32_FP16_OVERFLOW_BITS) {
      const rounded = (magnitude + 0xfff + ((magnitude >>> 13) & 1)) & ~0x1fff;
      bits[i] = ((u & 0x80000000) | rounded) >>> 0;
    } else if (magnitude >= FP32_FP16_OVERFLOW_BITS && magnitude <= FP32_INFINITY_BITS) {
      bits[i] = ((u & 0x80000000) | FP32_INFINITY_BITS) >>> 0;
    } else if (magnitude < FP32_FP16_MIN_NORMAL_BITS) {
      values[i] = f16round(values[i]!);
    }
  }
}
