/**
 * IEEE binary16 helpers: the one place this repo converts between fp16 and JS numbers (ane-bridge's
 * host kernels use this codec as the TypeScript twin of their native fp16 conversion).
 *
 * Rounding is round-to-nearest, ties-to-even (the ANE's and IEEE's default). Values beyond the fp16
 * range (|x| >= 65520 after rounding) become ±Infinity; NaN stays NaN.
 *
 * Two encoders, for two sources:
 * - `fp16BitsFromNumber(x)` rounds the JS number `x` (a float64) to fp16 once;
 * - `fp32ToFp16Bits(x)` / `fp32BitsToFp16Bits(bits)` convert a float32 (what a Float32Array holds)
 *   exactly as x86 F16C (`vcvtps2ph`) and arm64 `fcvtn` do: round to nearest even; |x| >= 65520
 *   becomes ±inf, unless `saturate` is set, when finite values clamp to ±65504 (±inf stays ±inf);
 *   NaN stays NaN, quieted (bit 9 set), with its sign and top 10 payload bits; values below 2^-14
 *   become subnormals (multiples of 2^-24), |x| <= 2^-25 becomes ±0; the sign of zero is kept.
 * fp16 -> fp32 is exact (every half is a float), subnormals included; `fp16BitsToFp32` returns a
 * NaN quieted (bit 22 set, as F16C and arm64 fcvtl do) with its sign and payload kept, while
 * `numberFromFp16Bits` and `decodeFp16` give the canonical NaN.
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

const FP16_MAX_BITS = 0x7bff;
const FP16_INF_BITS = 0x7c00;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bits of the float32 value `x` (x is first rounded to float32). */
export function fp32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

/** fp16 bits of float32 bits `f` (round to nearest even, F16C semantics; see the module comment). */
export function fp32BitsToFp16Bits(f: number, saturate = false): number {
  const sign = (f >>> 16) & 0x8000;
  const abs = f & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00 | ((abs >>> 13) & 0x3ff); // NaN: quiet, keep payload
  if (abs === 0x7f800000) return sign | FP16_INF_BITS; // ±inf
  let half: number;
  if (abs >= 0x47800000) {
    half = FP16_INF_BITS; // >= 65536: overflows whatever the rounding
  } else if (abs >= 0x38800000) {
    // Normal half: rebias the exponent (127 -> 15) and drop 13 mantissa bits, rounding to even.
    // A carry out of the mantissa bumps the exponent, which is the correct rounding (up to inf).
    half = (abs - 0x38000000) >>> 13;
    const dropped = abs & 0x1fff;
    if (dropped > 0x1000 || (dropped === 0x1000 && (half & 1) === 1)) half += 1;
  } else {
    // Subnormal half: the value in units of 2^-24, rounded to the nearest integer, ties to even.
    // (An fp32 times 2^24 is exact in float64.) Rounding up to 1024 gives the smallest normal.
    scratchU32[0] = abs;
    const units = scratchF32[0]! * 16777216;
    half = Math.floor(units);
    const fraction = units - half;
    if (fraction > 0.5 || (fraction === 0.5 && (half & 1) === 1)) half += 1;
  }
  if (saturate && half === FP16_INF_BITS) half = FP16_MAX_BITS;
  return sign | half;
}

/** fp16 bits of the number `x` after rounding it to float32 (as a Float32Array store does). */
export function fp32ToFp16Bits(x: number, saturate = false): number {
  return fp32BitsToFp16Bits(fp32Bits(x), saturate);
}

/** The float32 value of fp16 bits `h` (exact; a NaN keeps its sign and payload, quieted). */
export function fp16BitsToFp32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // ±0 and subnormals
  if (exponent === 31) {
    if (mantissa === 0) return sign * Number.POSITIVE_INFINITY;
    // NaN: rebuild the float bits so the payload survives (quieted).
    scratchU32[0] = ((h & 0x8000) << 16) | 0x7fc00000 | (mantissa << 13);
    return scratchF32[0]!;
  }
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** fp16 bit pattern of the fp16 value nearest the JS number `x` (one rounding, from float64). */
export function fp16BitsFromNumber(x: number): number {
  // f16round(x) is an fp16 value, so it is exact in float32 and the conversion below rounds nothing.
  const bits = fp32Bits(f16round(x));
  // A NaN becomes the quiet NaN with its sign and no other payload.
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7e00;
  return fp32BitsToFp16Bits(bits);
}

// fp16 -> fp32 as 65536 float bit patterns, built once from fp16BitsToFp32 (NaN payloads kept).
let halfToFloatBits: Uint32Array | undefined;
function halfTable(): Uint32Array {
  if (halfToFloatBits === undefined) {
    const table = new Uint32Array(65536);
    const asFloat = new Float32Array(table.buffer);
    for (let h = 0; h < 65536; h++) asFloat[h] = fp16BitsToFp32(h);
    // Float32Array stores may canonicalise NaNs; write their bits directly.
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0)
        table[h] = ((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13);
    }
    halfToFloatBits = table;
  }
  return halfToFloatBits;
}

// fp16 -> number, with every NaN the canonical NaN.
const DECODE_TABLE = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const value = fp16BitsToFp32(h);
    table[h] = Number.isNaN(value) ? Number.NaN : value;
  }
  return table;
})();

/** The number an fp16 bit pattern encodes. */
export function numberFromFp16Bits(bits: number): number {
  return DECODE_TABLE[bits & 0xffff]!;
}

/**
 * A rows x cols block of float32 -> fp16 bits, F16C semantics (see the module comment):
 *   dst[dstOffset + r*dstRowStride + c] = fp16(src[srcOffset + r*srcRowStride + c]).
 * No argument checks: callers (ane-bridge's fp32ToFp16 kernels) check the block against both arrays.
 */
export function fp32BlockToFp16Bits(
  src: Float32Array,
  dst: Uint16Array,
  rows: number,
  cols: number,
  srcOffset = 0,
  srcRowStride = cols,
  dstOffset = 0,
  dstRowStride = cols,
  saturate = false,
): void {
  if (rows === 0 || cols === 0) return;
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let r = 0; r < rows; r++) {
    const s = srcOffset + r * srcRowStride;
    const d = dstOffset + r * dstRowStride;
    for (let c = 0; c < cols; c++) dst[d + c] = fp32BitsToFp16Bits(bits[s + c]!, saturate);
  }
}

/**
 * A rows x cols block of fp16 bits -> float32, exact (NaN payloads kept):
 *   dst[dstOffset + r*dstRowStride + c] = fp32(src[srcOffset + r*srcRowStride + c]).
 * No argument checks: callers (ane-bridge's fp16ToFp32 kernels) check the block against both arrays.
 */
export function fp16BitsBlockToFp32(
  src: Uint16Array,
  dst: Float32Array,
  rows: number,
  cols: number,
  srcOffset = 0,
  srcRowStride = cols,
  dstOffset = 0,
  dstRowStride = cols,
): void {
  if (rows === 0 || cols === 0) return;
  const table = halfTable();
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let r = 0; r < rows; r++) {
    const s = srcOffset + r * srcRowStride;
    const d = dstOffset + r * dstRowStride;
    for (let c = 0; c < cols; c++) out[d + c] = table[src[s + c]!]!;
  }
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
