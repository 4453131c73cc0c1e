/**
 * fp32 <-> fp16 (IEEE binary16) conversion, the readable twin of native/kernels/fp16.cc.
 *
 * fp32 -> fp16 rounds to nearest, ties to even, exactly as x86 F16C (`vcvtps2ph`) and arm64 `fcvtn`:
 * - |x| >= 65520 (the halfway point above the largest finite half, 65504) becomes ±inf, unless
 *   `saturate` is set, when finite values clamp to ±65504 (±inf stays ±inf);
 * - ±inf stays ±inf; NaN stays NaN, quieted (bit 9 set), sign and top 10 payload bits kept;
 * - values below 2^-14 become fp16 subnormals (rounded to multiples of 2^-24); |x| <= 2^-25 becomes ±0;
 * - the sign of zero is kept.
 * fp16 -> fp32 is exact (every half is a float), subnormals included; a NaN comes back quieted
 * (bit 22 set, as F16C and arm64 fcvtl do) with its sign and payload kept.
 */
import { checkAtLeast, checkLength, checkNonNegativeInteger } from './checks';

export interface Fp16Options {
  /** Clamp finite values beyond ±65504 to ±65504 instead of rounding them to ±inf (default false). */
  saturate?: boolean;
}

const FP16_MAX_BITS = 0x7bff;
const FP16_INF_BITS = 0x7c00;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bits of the float32 value `x` (x is first rounded to float32). */
export function fp32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0] as number;
}

/** fp16 bits of float32 bits `f` (round to nearest even; see the module comment). */
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
    const units = (scratchF32[0] as number) * 16777216;
    half = Math.floor(units);
    const fraction = units - half;
    if (fraction > 0.5 || (fraction === 0.5 && (half & 1) === 1)) half += 1;
  }
  if (saturate && half === FP16_INF_BITS) half = FP16_MAX_BITS;
  return sign | half;
}

/** fp16 bits of the number `x`, after rounding `x` to float32 (as a Float32Array store does). */
export function fp32ToFp16Bits(x: number, saturate = false): number {
  return fp32BitsToFp16Bits(fp32Bits(x), saturate);
}

/** The float32 value of fp16 bits `h` (exact). */
export function fp16BitsToFp32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // ±0 and subnormals
  if (exponent === 31) {
    if (mantissa === 0) return sign * Number.POSITIVE_INFINITY;
    // NaN: rebuild the float bits so the payload survives (quieted).
    scratchU32[0] = ((h & 0x8000) << 16) | 0x7fc00000 | (mantissa << 13);
    return scratchF32[0] as number;
  }
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

// fp16 -> fp32 as a 65536-entry table of float bits, built once from fp16BitsToFp32.
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

function floatBitsView(src: Float32Array): Uint32Array {
  return new Uint32Array(src.buffer, src.byteOffset, src.length);
}

/** dst[i] = fp16(src[i]).  src: [n] fp32, dst: [n] fp16 bits. */
export function fp32ToFp16(src: Float32Array, dst: Uint16Array, options: Fp16Options = {}): void {
  checkLength('fp32ToFp16', 'dst', dst.length, src.length, 'src.length');
  const bits = floatBitsView(src);
  const saturate = options.saturate === true;
  for (let i = 0; i < bits.length; i++) dst[i] = fp32BitsToFp16Bits(bits[i] as number, saturate);
}

/** dst[i] = fp32(src[i]).  src: [n] fp16 bits, dst: [n] fp32. */
export function fp16ToFp32(src: Uint16Array, dst: Float32Array): void {
  checkLength('fp16ToFp32', 'dst', dst.length, src.length, 'src.length');
  const table = halfTable();
  const out = floatBitsView(dst);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i] as number] as number;
}

/**
 * A rows x cols block inside two larger row-major buffers: element (r, c) is read at
 * src[srcOffset + r*srcRowStride + c] and written at dst[dstOffset + r*dstRowStride + c]. With a
 * [C, S] channel-first tensor, rows are channels: packing a [C, S] weight at channel offset c0 and
 * spatial offset s0 of a [Ctot, Stot] device buffer is
 * `{ rows: C, cols: S, dstOffset: c0*Stot + s0, dstRowStride: Stot }`.
 */
export interface StridedBlock {
  rows: number;
  cols: number;
  /** Default 0. */
  srcOffset?: number;
  /** Default cols. */
  srcRowStride?: number;
  /** Default 0. */
  dstOffset?: number;
  /** Default cols. */
  dstRowStride?: number;
}

export interface ResolvedBlock {
  rows: number;
  cols: number;
  srcOffset: number;
  srcRowStride: number;
  dstOffset: number;
  dstRowStride: number;
}

/** Fills defaults and checks that the block lies inside both buffers. */
export function resolveBlock(
  kernel: string,
  block: StridedBlock,
  srcLength: number,
  dstLength: number,
): ResolvedBlock {
  const resolved: ResolvedBlock = {
    rows: block.rows,
    cols: block.cols,
    srcOffset: block.srcOffset ?? 0,
    srcRowStride: block.srcRowStride ?? block.cols,
    dstOffset: block.dstOffset ?? 0,
    dstRowStride: block.dstRowStride ?? block.cols,
  };
  for (const key of Object.keys(resolved) as (keyof ResolvedBlock)[]) {
    checkNonNegativeInteger(kernel, key, resolved[key]);
  }
  const { rows, cols } = resolved;
  if (rows === 0 || cols === 0) return resolved;
  if (resolved.srcRowStride < cols && rows > 1) {
    throw new RangeError(
      `${kernel}: srcRowStride ${resolved.srcRowStride} is less than cols ${cols}; rows would overlap`,
    );
  }
  if (resolved.dstRowStride < cols && rows > 1) {
    throw new RangeError(
      `${kernel}: dstRowStride ${resolved.dstRowStride} is less than cols ${cols}; rows would overlap`,
    );
  }
  const srcEnd = resolved.srcOffset + (rows - 1) * resolved.srcRowStride + cols;
  const dstEnd = resolved.dstOffset + (rows - 1) * resolved.dstRowStride + cols;
  checkAtLeast(kernel, 'src', srcLength, srcEnd, 'srcOffset + (rows-1)*srcRowStride + cols');
  checkAtLeast(kernel, 'dst', dstLength, dstEnd, 'dstOffset + (rows-1)*dstRowStride + cols');
  return resolved;
}

/** fp32 -> fp16 of a strided block (see StridedBlock).  src: fp32, dst: fp16 bits. */
export function fp32ToFp16Strided(
  src: Float32Array,
  dst: Uint16Array,
  block: StridedBlock,
  options: Fp16Options = {},
): void {
  const b = resolveBlock('fp32ToFp16Strided', block, src.length, dst.length);
  const bits = floatBitsView(src);
  const saturate = options.saturate === true;
  for (let r = 0; r < b.rows; r++) {
    const s = b.srcOffset + r * b.srcRowStride;
    const d = b.dstOffset + r * b.dstRowStride;
    for (let c = 0; c < b.cols; c++) dst[d + c] = fp32BitsToFp16Bits(bits[s + c] as number, saturate);
  }
}

/** fp16 -> fp32 of a strided block (see StridedBlock).  src: fp16 bits, dst: fp32. */
export function fp16ToFp32Strided(src: Uint16Array, dst: Float32Array, block: StridedBlock): void {
  const b = resolveBlock('fp16ToFp32Strided', block, src.length, dst.length);
  const table = halfTable();
  const out = floatBitsView(dst);
  for (let r = 0; r < b.rows; r++) {
    const s = b.srcOffset + r * b.srcRowStride;
    const d = b.dstOffset + r * b.dstRowStride;
    for (let c = 0; c < b.cols; c++) out[d + c] = table[src[s + c] as number] as number;
  }
}
