/**
 * Single-precision GEMM in plain TypeScript: the one matrix-multiply kernel behind the simulator's
 * conv, matmul and linear, with the signature of BLAS `sgemm` so the native addon's GEMM can replace
 * it without touching the ops.
 *
 * Row-major: C = alpha * op(A) * op(B) + beta * C, with op(A) [M, K] and op(B) [K, N].
 *   A: [M, K] with row stride lda >= K   (transA: A is [K, M] with lda >= M)
 *   B: [K, N] with row stride ldb >= N   (transB: B is [N, K] with ldb >= K)
 *   C: [M, N] with row stride ldc >= N
 * beta = 0 overwrites C without reading it (NaN in C does not leak), as BLAS does.
 *
 * Numerics: each K_BLOCK-long slice of a dot product accumulates in float64 registers and is added
 * to C (binary32) once, so C holds an fp32-accumulated result. For K <= K_BLOCK (every shape in the
 * conformance corpus) that is the exact dot product rounded once to fp32.
 *
 * Structure (the classic Goto/BLIS loop nest): C is cut into M_BLOCK x N_BLOCK blocks and K into
 * K_BLOCK slices; the K_BLOCK x N_BLOCK slice of op(B) is packed into NR-wide column panels and the
 * M_BLOCK x K_BLOCK slice of op(A) into MR-tall row panels (both zero-padded at the tails), so the
 * MR x NR register-tiled micro-kernel reads both operands sequentially whatever the transposes.
 */

const MR = 4;
const NR = 4;
const M_BLOCK = 64;
const K_BLOCK = 512;
const N_BLOCK = 1024;

// Packing scratch, grown on demand and reused by every call (GEMM never runs re-entrantly).
let packedA = new Float64Array(M_BLOCK * K_BLOCK);
let packedB = new Float64Array(K_BLOCK * N_BLOCK);
// One MR x NR tile for the ragged edges of C.
const edgeTile = new Float64Array(MR * NR);

export function sgemm(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  lda: number,
  B: Float32Array,
  ldb: number,
  beta: number,
  C: Float32Array,
  ldc: number,
): void {
  checkSgemmArguments(transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
  if (M === 0 || N === 0) return;

  if (beta !== 1) scaleMatrix(C, ldc, M, N, beta);
  if (K === 0 || alpha === 0) return;

  const aPanelCapacity = M_BLOCK * K_BLOCK;
  if (packedA.length < aPanelCapacity) packedA = new Float64Array(aPanelCapacity);

  for (let jc = 0; jc < N; jc += N_BLOCK) {
    const nc = Math.min(N_BLOCK, N - jc);
    for (let pc = 0; pc < K; pc += K_BLOCK) {
      const kc = Math.min(K_BLOCK, K - pc);
      const bPanelSize = Math.ceil(nc / NR) * NR * kc;
      if (packedB.length < bPanelSize) packedB = new Float64Array(bPanelSize);
      packB(transB, B, ldb, pc, jc, kc, nc, packedB);
      for (let ic = 0; ic < M; ic += M_BLOCK) {
        const mc = Math.min(M_BLOCK, M - ic);
        packA(transA, A, lda, ic, pc, mc, kc, packedA);
        multiplyPackedBlock(mc, nc, kc, alpha, packedA, packedB, C, ic * ldc + jc, ldc);
      }
    }
  }
}

/** The argument checks of every GEMM (the native path runs them too, before touching pointers). */
export function checkSgemmArguments(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  A: Float32Array | Uint16Array,
  lda: number,
  B: Float32Array | Uint16Array,
  ldb: number,
  C: Float32Array,
  ldc: number,
): void {
  for (const [name, value] of [
    ['M', M],
    ['N', N],
    ['K', K],
    ['lda', lda],
    ['ldb', ldb],
    ['ldc', ldc],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new RangeError(`sgemm: ${name} = ${value} must be an integer >= 0`);
  }
  if (M === 0 || N === 0) return;
  const aRows = transA ? K : M;
  const aCols = transA ? M : K;
  const bRows = transB ? N : K;
  const bCols = transB ? K : N;
  if (K > 0) {
    if (lda < Math.max(1, aCols)) throw new RangeError(`sgemm: lda = ${lda} < ${aCols}`);
    if (ldb < Math.max(1, bCols)) throw new RangeError(`sgemm: ldb = ${ldb} < ${bCols}`);
    if (A.length < (aRows - 1) * lda + aCols)
      throw new RangeError(`sgemm: A holds ${A.length} elements, too few`);
    if (B.length < (bRows - 1) * ldb + bCols)
      throw new RangeError(`sgemm: B holds ${B.length} elements, too few`);
  }
  if (ldc < N) throw new RangeError(`sgemm: ldc = ${ldc} < N = ${N}`);
  if (C.length < (M - 1) * ldc + N) throw new RangeError(`sgemm: C holds ${C.length} elements, too few`);
}

// C[M, N] (row stride ldc) *= beta; beta = 0 writes zeros.
function scaleMatrix(C: Float32Array, ldc: number, M: number, N: number, beta: number): void {
  for (let i = 0; i < M; i++) {
    const row = i * ldc;
    if (beta === 0) C.fill(0, row, row + N);
    else for (let j = row; j < row + N; j++) C[j] = C[j]! * beta;
  }
}

// packed[panel][p][r] = op(A)[ic + panel*MR + r, pc + p]: MR-tall row panels, zero-padded rows.
function packA(
  transA: boolean,
  A: Float32Array,
  lda: number,
  ic: number,
  pc: number,
  mc: number,
  kc: number,
  packed: Float64Array,
): void {
  let out = 0;
  for (let i0 = 0; i0 < mc; i0 += MR) {
    const rows = Math.min(MR, mc - i0);
    for (let p = 0; p < kc; p++) {
      for (let r = 0; r < MR; r++) {
        if (r >= rows) packed[out++] = 0;
        else {
          const i = ic + i0 + r;
          const k = pc + p;
          packed[out++] = transA ? A[k * lda + i]! : A[i * lda + k]!;
        }
      }
    }
  }
}

// packed[panel][p][c] = op(B)[pc + p, jc + panel*NR + c]: NR-wide column panels, zero-padded columns.
function packB(
  transB: boolean,
  B: Float32Array,
  ldb: number,
  pc: number,
  jc: number,
  kc: number,
  nc: number,
  packed: Float64Array,
): void {
  let out = 0;
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const cols = Math.min(NR, nc - j0);
    if (!transB && cols === NR) {
      for (let p = 0; p < kc; p++) {
        const row = (pc + p) * ldb + jc + j0;
        packed[out] = B[row]!;
        packed[out + 1] = B[row + 1]!;
        packed[out + 2] = B[row + 2]!;
        packed[out + 3] = B[row + 3]!;
        out += NR;
      }
      continue;
    }
    for (let p = 0; p < kc; p++) {
      for (let c = 0; c < NR; c++) {
        if (c >= cols) packed[out++] = 0;
        else {
          const j = jc + j0 + c;
          const k = pc + p;
          packed[out++] = transB ? B[j * ldb + k]! : B[k * ldb + j]!;
        }
      }
    }
  }
}

// C[mc, nc] block at cOffset += alpha * packedA[mc, kc] * packedB[kc, nc], one MR x NR tile at a time.
function multiplyPackedBlock(
  mc: number,
  nc: number,
  kc: number,
  alpha: number,
  pa: Float64Array,
  pb: Float64Array,
  C: Float32Array,
  cOffset: number,
  ldc: number,
): void {
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const bPanel = (j0 / NR) * kc * NR;
    const cols = Math.min(NR, nc - j0);
    for (let i0 = 0; i0 < mc; i0 += MR) {
      const aPanel = (i0 / MR) * kc * MR;
      const rows = Math.min(MR, mc - i0);
      const c = cOffset + i0 * ldc + j0;
      if (rows === MR && cols === NR) microKernel4x4(kc, alpha, pa, aPanel, pb, bPanel, C, c, ldc);
      else {
        microKernel4x4Edge(kc, pa, aPanel, pb, bPanel);
        for (let r = 0; r < rows; r++) {
          for (let col = 0; col < cols; col++)
            C[c + r * ldc + col] = C[c + r * ldc + col]! + alpha * edgeTile[r * NR + col]!;
        }
      }
    }
  }
}

// C[4, 4] tile at c += alpha * (4 x kc panel) * (kc x 4 panel); sixteen float64 accumulators.
function microKernel4x4(
  kc: number,
  alpha: number,
  pa: Float64Array,
  a: number,
  pb: Float64Array,
  b: number,
  C: Float32Array,
  c: number,
  ldc: number,
): void {
  let c00 = 0;
  let c01 = 0;
  let c02 = 0;
  let c03 = 0;
  let c10 = 0;
  let c11 = 0;
  let c12 = 0;
  let c13 = 0;
  let c20 = 0;
  let c21 = 0;
  let c22 = 0;
  let c23 = 0;
  let c30 = 0;
  let c31 = 0;
  let c32 = 0;
  let c33 = 0;
  const end = a + kc * MR;
  for (; a < end; a += MR, b += NR) {
    const a0 = pa[a]!;
    const a1 = pa[a + 1]!;
    const a2 = pa[a + 2]!;
    const a3 = pa[a + 3]!;
    const b0 = pb[b]!;
    const b1 = pb[b + 1]!;
    const b2 = pb[b + 2]!;
    const b3 = pb[b + 3]!;
    c00 += a0 * b0;
    c01 += a0 * b1;
    c02 += a0 * b2;
    c03 += a0 * b3;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c12 += a1 * b2;
    c13 += a1 * b3;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c22 += a2 * b2;
    c23 += a2 * b3;
    c30 += a3 * b0;
    c31 += a3 * b1;
    c32 += a3 * b2;
    c33 += a3 * b3;
  }
  C[c] = C[c]! + alpha * c00;
  C[c + 1] = C[c + 1]! + alpha * c01;
  C[c + 2] = C[c + 2]! + alpha * c02;
  C[c + 3] = C[c + 3]! + alpha * c03;
  c += ldc;
  C[c] = C[c]! + alpha * c10;
  C[c + 1] = C[c + 1]! + alpha * c11;
  C[c + 2] = C[c + 2]! + alpha * c12;
  C[c + 3] = C[c + 3]! + alpha * c13;
  c += ldc;
  C[c] = C[c]! + alpha * c20;
  C[c + 1] = C[c + 1]! + alpha * c21;
  C[c + 2] = C[c + 2]! + alpha * c22;
  C[c + 3] = C[c + 3]! + alpha * c23;
  c += ldc;
  C[c] = C[c]! + alpha * c30;
  C[c + 1] = C[c + 1]! + alpha * c31;
  C[c + 2] = C[c + 2]! + alpha * c32;
  C[c + 3] = C[c + 3]! + alpha * c33;
}

// edgeTile[4, 4] = (4 x kc panel) * (kc x 4 panel), for tiles cut by the edge of C.
function microKernel4x4Edge(kc: number, pa: Float64Array, a: number, pb: Float64Array, b: number): void {
  edgeTile.fill(0);
  for (let p = 0; p < kc; p++, a += MR, b += NR) {
    for (let r = 0; r < MR; r++) {
      const ar = pa[a + r]!;
      for (let col = 0; col < NR; col++) edgeTile[r * NR + col] = edgeTile[r * NR + col]! + ar * pb[b + col]!;
    }
  }
}
