/**
 * matmul (NumPy batch broadcasting, transpose_x/transpose_y, 1-D promotion) and linear, both as
 * sgemm calls: accumulated in fp32, rounded to fp16 once.
 */
// The dispatching GEMM: the native addon's when loaded, else the TS twin in ../gemm.ts.
import { fp16ToFp32Strided, sgemm } from '../../kernels';
import type { GemmOperand } from '../constants';
import { runSimOp } from '../native-ops';
import { finishFloat, finishSaturated } from '../numerics';
import type { FloatTensor } from '../tensor';
import { broadcastShapes, contiguousStrides } from '../tensor';

export interface MatmulGeometry {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly transposeX: boolean;
  readonly transposeY: boolean;
  /** Start of each batch's x and y matrix; batch b writes out[b*M*N ...]. */
  readonly xOffsets: Int32Array;
  readonly yOffsets: Int32Array;
}

/**
 * Output shape and geometry of matmul(x, y). A 1-D x is [1, K] and a 1-D y is [K, 1], and the
 * promoted axis is dropped from the result (NumPy). Batch axes broadcast.
 */
export function planMatmul(
  xShape: readonly number[],
  yShape: readonly number[],
  transposeX: boolean,
  transposeY: boolean,
): { outShape: number[]; geometry: MatmulGeometry } {
  if (xShape.length === 0 || yShape.length === 0)
    throw new RangeError('matmul: operands must have rank >= 1');
  const xMatrix = xShape.length === 1 ? [1, xShape[0]!] : xShape.slice(-2);
  const yMatrix = yShape.length === 1 ? [yShape[0]!, 1] : yShape.slice(-2);
  const xT = xShape.length === 1 ? false : transposeX;
  const yT = yShape.length === 1 ? false : transposeY;
  const [M, Kx] = xT ? [xMatrix[1]!, xMatrix[0]!] : [xMatrix[0]!, xMatrix[1]!];
  const [Ky, N] = yT ? [yMatrix[1]!, yMatrix[0]!] : [yMatrix[0]!, yMatrix[1]!];
  if (Kx !== Ky) {
    throw new RangeError(
      `matmul: inner dimensions differ: x [${xShape.join(', ')}]${xT ? 'ᵀ' : ''} · y [${yShape.join(', ')}]${yT ? 'ᵀ' : ''} (${Kx} vs ${Ky})`,
    );
  }
  const xBatch = xShape.length > 2 ? xShape.slice(0, -2) : [];
  const yBatch = yShape.length > 2 ? yShape.slice(0, -2) : [];
  const batch = broadcastShapes(xBatch, yBatch);
  const batchCount = batch.reduce((a, b) => a * b, 1);

  const offsetsFor = (operandBatch: readonly number[], matrixSize: number): Int32Array => {
    const strides = contiguousStrides(operandBatch).map((s) => s * matrixSize);
    const shift = batch.length - operandBatch.length;
    const offsets = new Int32Array(batchCount);
    const index = new Array<number>(batch.length).fill(0);
    for (let b = 0; b < batchCount; b++) {
      let offset = 0;
      for (let axis = 0; axis < operandBatch.length; axis++) {
        if (operandBatch[axis] !== 1) offset += index[axis + shift]! * strides[axis]!;
      }
      offsets[b] = offset;
      for (let axis = batch.length - 1; axis >= 0; axis--) {
        index[axis]!++;
        if (index[axis]! < batch[axis]!) break;
        index[axis] = 0;
      }
    }
    return offsets;
  };

  const outShape = [...batch];
  if (xShape.length > 1) outShape.push(M);
  if (yShape.length > 1) outShape.push(N);
  return {
    outShape,
    geometry: {
      M,
      N,
      K: Kx,
      transposeX: xT,
      transposeY: yT,
      xOffsets: offsetsFor(xBatch, M * Kx),
      yOffsets: offsetsFor(yBatch, Kx * N),
    },
  };
}

/**
 * out [batch, M, N] = alpha · op(x) [batch, M, K] · op(y) [batch, K, N], rounded, and saturated at
 * `saturateAt` when given (rule num-matmul-output-inf).
 */
export function matmul(
  out: FloatTensor,
  x: Float32Array,
  y: Float32Array,
  g: MatmulGeometry,
  alpha = 1,
  saturateAt?: number,
): void {
  const { M, N, K, transposeX, transposeY } = g;
  const o = out.data;
  // Natively, small entries (attention's per-head products) run side by side on the pool, and
  // each product is finished (rounded, saturated) block by block as its GEMM completes them.
  runSimOp(
    'matmul',
    o,
    (ops) =>
      ops.matmul(
        o,
        x,
        y,
        transposeX,
        transposeY,
        M,
        N,
        K,
        alpha,
        g.xOffsets,
        g.yOffsets,
        out.dtype === 'fp16',
        saturateAt ?? Number.POSITIVE_INFINITY,
      ),
    () => {
      matmulEntries(o, x, y, g, alpha);
      finishSaturated(out, saturateAt);
    },
  );
}

/** Each batch entry's product into out[b*M*N ...], one sgemm per entry (the twin of the native op). */
function matmulEntries(
  o: Float32Array,
  x: Float32Array,
  y: Float32Array,
  g: MatmulGeometry,
  alpha: number,
): void {
  const { M, N, K, transposeX, transposeY } = g;
  const lda = transposeX ? M : K;
  const ldb = transposeY ? K : N;
  for (let b = 0; b < g.xOffsets.length; b++) {
    const xOffset = g.xOffsets[b]!;
    const yOffset = g.yOffsets[b]!;
    const outOffset = b * M * N;
    sgemm(
      transposeX,
      transposeY,
      M,
      N,
      K,
      alpha,
      xOffset === 0 ? x : x.subarray(xOffset),
      lda,
      yOffset === 0 ? y : y.subarray(yOffset),
      ldb,
      0,
      outOffset === 0 ? o : o.subarray(outOffset),
      N,
    );
  }
}

/** out [..., OUT] = x [..., IN] · weightᵀ ([OUT, IN]) + bias [OUT]. */
export function linear(
  out: FloatTensor,
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array | undefined,
  outFeatures: number,
  inFeatures: number,
): void {
  const o = out.data;
  const rows = inFeatures === 0 ? o.length / Math.max(outFeatures, 1) : x.length / inFeatures;
  if (bias !== undefined) {
    for (let r = 0; r < rows; r++) o.set(bias.subarray(0, outFeatures), r * outFeatures);
  }
  sgemm(
    false,
    true,
    rows,
    outFeatures,
    inFeatures,
    1,
    x,
    Math.max(inFeatures, 1),
    weight,
    Math.max(inFeatures, 1),
    bias === undefined ? 0 : 1,
    o,
    outFeatures,
  );
  finishFloat(out);
}

/**
 * out [M, N] = op(a) [M, K] · op(b) [K, N], operands read in place (see GemmOperand); an operand
 * bound to an fp16 input this run (GemmOperand.inputHalf) is read as those fp16 bits.
 */
export function matmulStrided(
  out: FloatTensor,
  a: GemmOperand,
  b: GemmOperand,
  M: number,
  N: number,
  K: number,
  saturateAt?: number,
): void {
  const o = out.data;
  const aHalf = halfBits(a);
  const bHalf = halfBits(b);
  runSimOp(
    'matmul',
    o,
    // Natively the output is finished (rounded, saturated) block by block as the GEMM completes
    // them, while they are in cache, instead of in a pass over the whole output after it.
    (ops) =>
      ops.gemm(
        o,
        aHalf?.bits ?? a.data,
        aHalf?.offset ?? 0,
        a.ld,
        a.transposed,
        bHalf?.bits ?? b.data,
        bHalf?.offset ?? 0,
        b.ld,
        b.transposed,
        M,
        N,
        K,
        out.dtype === 'fp16',
        saturateAt ?? Number.POSITIVE_INFINITY,
      ),
    () => {
      // The twin: widen the operands into their fp32 place (where the input is decoded when not
      // read as fp16), then the plain GEMM, then the finish over the whole output.
      if (aHalf !== undefined) widen(a, aHalf, a.transposed ? K : M, a.transposed ? M : K);
      if (bHalf !== undefined) widen(b, bHalf, b.transposed ? N : K, b.transposed ? K : N);
      sgemm(a.transposed, b.transposed, M, N, K, 1, a.data, a.ld, b.data, b.ld, 0, o, N);
      finishSaturated(out, saturateAt);
    },
  );
}

/** The fp16 input bits an operand is bound to in this run, or undefined (read as fp32). */
function halfBits(operand: GemmOperand): { bits: Uint16Array; offset: number } | undefined {
  const binding = operand.inputHalf.binding;
  const bits = binding?.views[binding.input];
  return bits === undefined ? undefined : { bits, offset: binding!.offset };
}

/** operand.data's rows x cols block (row stride ld) = the fp16 bits it is bound to, widened. */
function widen(
  operand: GemmOperand,
  half: { bits: Uint16Array; offset: number },
  rows: number,
  cols: number,
): void {
  fp16ToFp32Strided(half.bits, operand.data, {
    rows,
    cols,
    srcOffset: half.offset,
    srcRowStride: operand.ld,
    dstRowStride: operand.ld,
  });
}
