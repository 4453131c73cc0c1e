/**
 * fp32 <-> fp16 (IEEE binary16) conversion kernels: the argument checks (shared with the native
 * kernels, native/kernels/fp16.cc) and the TypeScript twin, which is ane-ir's fp16 codec
 * (`ane-ir/mil`: fp32BlockToFp16Bits, fp16BitsBlockToFp32), the one fp16 codec of the repo.
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
import { fp16BitsBlockToFp32, fp32BlockToFp16Bits } from 'ane-ir/mil';
import {
  checkAtLeast,
  checkBoolean,
  checkLength,
  checkNonNegativeInteger,
  checkNoOverlap,
  checkOptionsObject,
  checkTypedArray,
  describeArgument,
} from './checks';

export { fp16BitsToFp32, fp32Bits, fp32BitsToFp16Bits, fp32ToFp16Bits } from 'ane-ir/mil';

export interface Fp16Options {
  /** Clamp finite values beyond ±65504 to ±65504 instead of rounding them to ±inf (default false). */
  saturate?: boolean;
}

/** `options.saturate`, checked (undefined options or saturate: false). */
function saturateOption(kernel: string, options: Fp16Options | undefined): boolean {
  if (options === undefined) return false;
  checkOptionsObject(kernel, 'options', options);
  if (options.saturate === undefined) return false;
  checkBoolean(kernel, 'options.saturate', options.saturate);
  return options.saturate;
}

/** The shared check of fp32ToFp16 (TS and native); returns options.saturate. */
export function checkFp32ToFp16Arguments(
  src: Float32Array,
  dst: Uint16Array,
  options?: Fp16Options,
): boolean {
  checkTypedArray('fp32ToFp16', 'src', src, 'Float32Array');
  checkTypedArray('fp32ToFp16', 'dst', dst, 'Uint16Array');
  const saturate = saturateOption('fp32ToFp16', options);
  checkLength('fp32ToFp16', 'dst', dst.length, src.length, 'src.length');
  return saturate;
}

/** The shared check of fp16ToFp32 (TS and native). */
export function checkFp16ToFp32Arguments(src: Uint16Array, dst: Float32Array): void {
  checkTypedArray('fp16ToFp32', 'src', src, 'Uint16Array');
  checkTypedArray('fp16ToFp32', 'dst', dst, 'Float32Array');
  checkLength('fp16ToFp32', 'dst', dst.length, src.length, 'src.length');
}

/** dst[i] = fp16(src[i]).  src: [n] fp32, dst: [n] fp16 bits. */
export function fp32ToFp16(src: Float32Array, dst: Uint16Array, options?: Fp16Options): void {
  const saturate = checkFp32ToFp16Arguments(src, dst, options);
  fp32BlockToFp16Bits(src, dst, 1, src.length, 0, src.length, 0, src.length, saturate);
}

/** dst[i] = fp32(src[i]).  src: [n] fp16 bits, dst: [n] fp32. */
export function fp16ToFp32(src: Uint16Array, dst: Float32Array): void {
  checkFp16ToFp32Arguments(src, dst);
  fp16BitsBlockToFp32(src, dst, 1, src.length, 0, src.length, 0, src.length);
}

/**
 * A rows x cols block inside two larger row-major buffers: element (r, c) is read at
 * src[srcOffset + r*srcRowStride + c] and written at dst[dstOffset + r*dstRowStride + c]. With a
 * [C, S] channel-first tensor, rows are channels: packing a [C, S] weight at channel offset c0 and
 * spatial offset s0 of a [Ctot, Stot] device buffer is
 * `{ rows: C, cols: S, dstOffset: c0*Stot + s0, dstRowStride: Stot }`. The …Transposed kernels
 * write element (r, c) at dst[dstOffset + c*dstRowStride + r] instead.
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
  /** Default cols (rows for the …Transposed kernels, whose dst holds the cols x rows transpose). */
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

/**
 * Fills defaults and checks that the block lies inside both buffers. `transposed`: the block is
 * written transposed (element (r, c) at dst[dstOffset + c*dstRowStride + r]), so dst holds a
 * cols x rows block and dstRowStride defaults to rows.
 */
function resolveBlock(
  kernel: string,
  block: StridedBlock,
  srcLength: number,
  dstLength: number,
  transposed = false,
): ResolvedBlock {
  if (typeof block !== 'object' || block === null || Array.isArray(block)) {
    throw new TypeError(
      `${kernel}: block must be an object { rows, cols, srcOffset?, srcRowStride?, dstOffset?, dstRowStride? }, got ${describeArgument(block)}`,
    );
  }
  const resolved: ResolvedBlock = {
    rows: block.rows,
    cols: block.cols,
    srcOffset: block.srcOffset ?? 0,
    srcRowStride: block.srcRowStride ?? block.cols,
    dstOffset: block.dstOffset ?? 0,
    dstRowStride: block.dstRowStride ?? (transposed ? block.rows : block.cols),
  };
  for (const key of Object.keys(resolved) as (keyof ResolvedBlock)[]) {
    checkNonNegativeInteger(kernel, key, resolved[key]);
  }
  const { rows, cols } = resolved;
  if (rows === 0 || cols === 0) return resolved; // empty: nothing is read or written
  // dst holds `dstRows` rows of `dstCols` elements (cols x rows when transposed).
  const [dstRows, dstCols] = transposed ? [cols, rows] : [rows, cols];
  const dstWhat = transposed ? `rows ${rows} (dst holds the block transposed)` : `cols ${cols}`;
  if (resolved.srcRowStride < cols && rows > 1) {
    throw new RangeError(
      `${kernel}: srcRowStride ${resolved.srcRowStride} is less than cols ${cols}; rows would overlap`,
    );
  }
  if (resolved.dstRowStride < dstCols && dstRows > 1) {
    throw new RangeError(
      `${kernel}: dstRowStride ${resolved.dstRowStride} is less than ${dstWhat}; rows would overlap`,
    );
  }
  // Exact in float64 up to 2^53; a sum past it is still far above any array length.
  const srcEnd = resolved.srcOffset + (rows - 1) * resolved.srcRowStride + cols;
  const dstEnd = resolved.dstOffset + (dstRows - 1) * resolved.dstRowStride + dstCols;
  checkAtLeast(kernel, 'src', srcLength, srcEnd, 'srcOffset + (rows-1)*srcRowStride + cols');
  checkAtLeast(
    kernel,
    'dst',
    dstLength,
    dstEnd,
    transposed ? 'dstOffset + (cols-1)*dstRowStride + rows' : 'dstOffset + (rows-1)*dstRowStride + cols',
  );
  return resolved;
}

/** The shared check of fp32ToFp16Strided (TS and native): the block, resolved, and saturate. */
export function checkFp32ToFp16StridedArguments(
  src: Float32Array,
  dst: Uint16Array,
  block: StridedBlock,
  options?: Fp16Options,
): { block: ResolvedBlock; saturate: boolean } {
  const kernel = 'fp32ToFp16Strided';
  checkTypedArray(kernel, 'src', src, 'Float32Array');
  checkTypedArray(kernel, 'dst', dst, 'Uint16Array');
  const resolved = resolveBlock(kernel, block, src.length, dst.length);
  return { block: resolved, saturate: saturateOption(kernel, options) };
}

/** The shared check of fp16ToFp32Strided (TS and native): the block, resolved. */
export function checkFp16ToFp32StridedArguments(
  src: Uint16Array,
  dst: Float32Array,
  block: StridedBlock,
): ResolvedBlock {
  const kernel = 'fp16ToFp32Strided';
  checkTypedArray(kernel, 'src', src, 'Uint16Array');
  checkTypedArray(kernel, 'dst', dst, 'Float32Array');
  return resolveBlock(kernel, block, src.length, dst.length);
}

/** fp32 -> fp16 of a strided block (see StridedBlock).  src: fp32, dst: fp16 bits. */
export function fp32ToFp16Strided(
  src: Float32Array,
  dst: Uint16Array,
  block: StridedBlock,
  options?: Fp16Options,
): void {
  const { block: b, saturate } = checkFp32ToFp16StridedArguments(src, dst, block, options);
  fp32BlockToFp16Bits(
    src,
    dst,
    b.rows,
    b.cols,
    b.srcOffset,
    b.srcRowStride,
    b.dstOffset,
    b.dstRowStride,
    saturate,
  );
}

/** fp16 -> fp32 of a strided block (see StridedBlock).  src: fp16 bits, dst: fp32. */
export function fp16ToFp32Strided(src: Uint16Array, dst: Float32Array, block: StridedBlock): void {
  const b = checkFp16ToFp32StridedArguments(src, dst, block);
  fp16BitsBlockToFp32(src, dst, b.rows, b.cols, b.srcOffset, b.srcRowStride, b.dstOffset, b.dstRowStride);
}

// ---- transposed blocks ---------------------------------------------------------------------------
// Staging a weight W: [out, in] (row-major fp32, the optimizer's master copy) into a kernel's input
// as Wᵀ: [in, out] (channel i holds W[:, i]) is fp32ToFp16Transposed with rows = out, cols = in;
// reading it back is fp16ToFp32Transposed.

/** The shared check of fp32ToFp16Transposed (TS and native): the block, resolved, and saturate. */
export function checkFp32ToFp16TransposedArguments(
  src: Float32Array,
  dst: Uint16Array,
  block: StridedBlock,
  options?: Fp16Options,
): { block: ResolvedBlock; saturate: boolean } {
  const kernel = 'fp32ToFp16Transposed';
  checkTypedArray(kernel, 'src', src, 'Float32Array');
  checkTypedArray(kernel, 'dst', dst, 'Uint16Array');
  const resolved = resolveBlock(kernel, block, src.length, dst.length, true);
  const saturate = saturateOption(kernel, options);
  checkNoOverlap(kernel, 'dst', dst, 'src', src);
  return { block: resolved, saturate };
}

/** The shared check of fp16ToFp32Transposed (TS and native): the block, resolved. */
export function checkFp16ToFp32TransposedArguments(
  src: Uint16Array,
  dst: Float32Array,
  block: StridedBlock,
): ResolvedBlock {
  const kernel = 'fp16ToFp32Transposed';
  checkTypedArray(kernel, 'src', src, 'Uint16Array');
  checkTypedArray(kernel, 'dst', dst, 'Float32Array');
  const resolved = resolveBlock(kernel, block, src.length, dst.length, true);
  checkNoOverlap(kernel, 'dst', dst, 'src', src);
  return resolved;
}

/**
 * fp32 -> fp16 of a rows x cols block, written transposed:
 *   dst[dstOffset + c*dstRowStride + r] = fp16(src[srcOffset + r*srcRowStride + c]),
 * so dst holds a cols x rows block (dstRowStride defaults to rows, srcRowStride to cols).
 * src: fp32, dst: fp16 bits; they must not share memory. Same rounding as fp32ToFp16.
 */
export function fp32ToFp16Transposed(
  src: Float32Array,
  dst: Uint16Array,
  block: StridedBlock,
  options?: Fp16Options,
): void {
  const { block: b, saturate } = checkFp32ToFp16TransposedArguments(src, dst, block, options);
  if (b.rows === 0 || b.cols === 0) return;
  // One call of the codec per line of the shorter side: a source row r is a column of dst
  // (cols x 1 block, dst stride dstRowStride), a source column c is a row of dst (rows x 1 block
  // read with stride srcRowStride, written contiguously).
  if (b.rows <= b.cols) {
    for (let r = 0; r < b.rows; r++) {
      fp32BlockToFp16Bits(
        src,
        dst,
        b.cols,
        1,
        b.srcOffset + r * b.srcRowStride,
        1,
        b.dstOffset + r,
        b.dstRowStride,
        saturate,
      );
    }
  } else {
    for (let c = 0; c < b.cols; c++) {
      fp32BlockToFp16Bits(
        src,
        dst,
        b.rows,
        1,
        b.srcOffset + c,
        b.srcRowStride,
        b.dstOffset + c * b.dstRowStride,
        1,
        saturate,
      );
    }
  }
}

/**
 * fp16 -> fp32 of a rows x cols block, written transposed:
 *   dst[dstOffset + c*dstRowStride + r] = fp32(src[srcOffset + r*srcRowStride + c]),
 * exact (NaN payloads kept). src: fp16 bits, dst: fp32; they must not share memory.
 */
export function fp16ToFp32Transposed(src: Uint16Array, dst: Float32Array, block: StridedBlock): void {
  const b = checkFp16ToFp32TransposedArguments(src, dst, block);
  if (b.rows === 0 || b.cols === 0) return;
  if (b.rows <= b.cols) {
    for (let r = 0; r < b.rows; r++) {
      fp16BitsBlockToFp32(
        src,
        dst,
        b.cols,
        1,
        b.srcOffset + r * b.srcRowStride,
        1,
        b.dstOffset + r,
        b.dstRowStride,
      );
    }
  } else {
    for (let c = 0; c < b.cols; c++) {
      fp16BitsBlockToFp32(
        src,
        dst,
        b.rows,
        1,
        b.srcOffset + c,
        b.srcRowStride,
        b.dstOffset + c * b.dstRowStride,
        1,
      );
    }
  }
}
