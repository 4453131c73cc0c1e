// Single-precision GEMM (see kernels.h for the contract), the Goto/BLIS way:
//
//   for jc in N by NC:                      C's columns, one B block per step (stays in L3)
//     for pc in K by KC:                    the depth, one slice at a time
//       pack op(B)[pc:+KC, jc:+NC] -> Bp    NR-wide column panels, KC deep, zero-padded
//       for ic in M by MC:
//         pack op(A)[ic:+MC, pc:+KC] -> Ap  MR-tall row panels, KC deep (stays in L2)
//         for jr in NC by NR:               one B micro-panel (stays in L1) ...
//           for ir in MC by MR:             ... against every A micro-panel:
//             micro-kernel: C[ir:+MR, jr:+NR] (+)= alpha * Ap_ir * Bp_jr   (MR x NR in registers)
//
// Packing makes both operands sequential whatever the transposes and strides, so one
// micro-kernel per SIMD path serves all four transpose combinations. Each thread of the pool takes
// a rectangle of C (columns when N is the larger side, rows otherwise) and runs this loop on it with
// its own packing buffers. On macOS (ANE_BRIDGE_HAS_ACCELERATE), Accelerate's cblas_sgemm runs
// instead: it uses the AMX units, which no SIMD code here can match.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include "fp16_round_vectors.h"
#include "kernels.h"
#include "simd.h"
#include "thread_pool.h"
#include "transpose8x8.h"
#include "warnings.h"

#if ANE_X86
#include <immintrin.h>
#endif
#if ANE_ARM64
#include <arm_neon.h>
#endif
#if defined(ANE_BRIDGE_HAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#endif

namespace ane {
namespace kernels {

namespace {

using Index = std::ptrdiff_t;

// acc = Ap[kc][MR] * Bp[kc][NR];  C[MR, NR] (row stride ldc) = alpha * acc + beta * C (beta 0: no read)
using MicroKernel = void (*)(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha, float beta);
// The same, each stored value finished as GemmEpilogue::fp16InRegisters says (saturating at limit).
using RoundingMicroKernel = void (*)(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha,
                                     float beta, float limit);
// Packers (see packA/packB below for the layouts).
// (An operand of fp16 bits is widened to fp32 as it is packed: the same packed values.)
template <typename T>
using PackA = void (*)(bool transA, const T* A, Index lda, Index i0, Index p0, Index mc, Index kc, int MR, float* ap);
template <typename T>
using PackB = void (*)(bool transB, const T* B, Index ldb, Index p0, Index j0, Index kc, Index nc, int NR, float* bp);

struct GemmPath {
  int mr, nr;
  Index mc, kc, nc;  // cache blocks: Ap is mc x kc (L2), Bp is kc x nc (L3), one B micro-panel kc x nr (L1)
  MicroKernel micro;
  PackA<float> packA;
  PackB<float> packB;
  PackA<std::uint16_t> packAHalf;
  PackB<std::uint16_t> packBHalf;
  RoundingMicroKernel microRounding = nullptr;  // null: an epilogue's finish runs on stored blocks
};

// An operand element as fp32 (fp16 bits widened exactly).
inline float widened(float x) { return x; }
inline float widened(std::uint16_t h) { return fp16ToFp32Scalar(h); }

// ---- micro-kernels ---------------------------------------------------------------------------

// Stores an MR x NR tile held as acc[r][j].
template <int MR, int NR>
inline void storeTile(const float (&acc)[MR][NR], float* c, Index ldc, float alpha, float beta) {
  for (int r = 0; r < MR; r++) {
    float* row = c + r * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < NR; j++) row[j] = alpha * acc[r][j];
    } else {
      for (int j = 0; j < NR; j++) row[j] = alpha * acc[r][j] + beta * row[j];
    }
  }
}

// Portable: plain loops the compiler vectorizes for the baseline ISA.
template <int MR, int NR>
void microPortable(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha, float beta) {
  float acc[MR][NR] = {};
  for (Index k = 0; k < kc; k++) {
    const float* a = ap + k * MR;  // [MR]
    const float* b = bp + k * NR;  // [NR]
    for (int r = 0; r < MR; r++) {
      for (int j = 0; j < NR; j++) acc[r][j] += a[r] * b[j];
    }
  }
  storeTile<MR, NR>(acc, c, ldc, alpha, beta);
}

#if ANE_X86

// AVX2 + FMA, 6 x 16: twelve ymm accumulators, two B vectors and one broadcast A value per step
// (15 of 16 registers). Written out by hand: GCC keeps an array of __m256 accumulators on the stack.
ANE_TARGET_AVX2 void microAvx2x6x16(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha,
                                    float beta) {
  for (int r = 0; r < 6; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (Index k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
    __m256 a = _mm256_broadcast_ss(ap + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    ap += 6;
    bp += 16;
  }
  const __m256 alphaV = _mm256_set1_ps(alpha), betaV = _mm256_set1_ps(beta);
  const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int r = 0; r < 6; r++) {
    float* row = c + r * ldc;
    for (int v = 0; v < 2; v++) {
      __m256 out = _mm256_mul_ps(alphaV, acc[r][v]);
      if (beta != 0.0f) out = _mm256_add_ps(out, _mm256_mul_ps(betaV, _mm256_loadu_ps(row + v * 8)));
      _mm256_storeu_ps(row + v * 8, out);
    }
  }
}

// v to its nearest fp16 and back (a NaN keeps its bits), then |v| >= limit to +-inf: the
// simulator's roundToFp16 with saturation (src/sim numerics; native/kernels/sim_ops.cc roundSpan
// and saturateSpan), on a register.
ANE_TARGET_AVX512 inline __m512 finishedFp16(__m512 v, __m512 limit) {
  const __m512 kept = roundedToFp16(v);
  const __m512i signBit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512i bits = _mm512_castps_si512(kept);
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_andnot_si512(signBit, bits));
  const __mmask16 past = _mm512_cmp_ps_mask(magnitude, limit, _CMP_GE_OQ);
  const __m512i signedInf = _mm512_or_si512(_mm512_set1_epi32(0x7f800000), _mm512_and_si512(signBit, bits));
  return _mm512_mask_blend_ps(past, kept, _mm512_castsi512_ps(signedInf));
}

// AVX-512F, 6 x 32: 12 zmm accumulators, two B vectors, one broadcast A value per step. Finish:
// each stored value finished by finishedFp16 (the last K block of a GEMM with such an epilogue).
template <bool Finish>
ANE_TARGET_AVX512 inline void microAvx512x6x32Body(Index kc, const float* ap, const float* bp, float* c, Index ldc,
                                                   float alpha, float beta, float limit) {
  for (int r = 0; r < 6; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 31), _MM_HINT_T0);
  }
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
  __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
  __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
  __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (Index k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
    __m512 a;
    a = _mm512_set1_ps(ap[0]);
    c00 = _mm512_fmadd_ps(a, b0, c00);
    c01 = _mm512_fmadd_ps(a, b1, c01);
    a = _mm512_set1_ps(ap[1]);
    c10 = _mm512_fmadd_ps(a, b0, c10);
    c11 = _mm512_fmadd_ps(a, b1, c11);
    a = _mm512_set1_ps(ap[2]);
    c20 = _mm512_fmadd_ps(a, b0, c20);
    c21 = _mm512_fmadd_ps(a, b1, c21);
    a = _mm512_set1_ps(ap[3]);
    c30 = _mm512_fmadd_ps(a, b0, c30);
    c31 = _mm512_fmadd_ps(a, b1, c31);
    a = _mm512_set1_ps(ap[4]);
    c40 = _mm512_fmadd_ps(a, b0, c40);
    c41 = _mm512_fmadd_ps(a, b1, c41);
    a = _mm512_set1_ps(ap[5]);
    c50 = _mm512_fmadd_ps(a, b0, c50);
    c51 = _mm512_fmadd_ps(a, b1, c51);
    ap += 6;
    bp += 32;
  }
  const __m512 alphaV = _mm512_set1_ps(alpha), betaV = _mm512_set1_ps(beta);
  const __m512 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int r = 0; r < 6; r++) {
    float* row = c + r * ldc;
    for (int v = 0; v < 2; v++) {
      __m512 out = _mm512_mul_ps(alphaV, acc[r][v]);
      if (beta != 0.0f) out = _mm512_add_ps(out, _mm512_mul_ps(betaV, _mm512_loadu_ps(row + v * 16)));
      if (Finish) out = finishedFp16(out, _mm512_set1_ps(limit));
      _mm512_storeu_ps(row + v * 16, out);
    }
  }
}

ANE_TARGET_AVX512 void microAvx512x6x32(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha,
                                       float beta) {
  microAvx512x6x32Body<false>(kc, ap, bp, c, ldc, alpha, beta, 0.0f);
}

ANE_TARGET_AVX512 void microAvx512x6x32Rounding(Index kc, const float* ap, const float* bp, float* c, Index ldc,
                                               float alpha, float beta, float limit) {
  microAvx512x6x32Body<true>(kc, ap, bp, c, ldc, alpha, beta, limit);
}

#endif  // ANE_X86

#if ANE_ARM64

// NEON: 8 rows x 12 columns in 24 q registers; A's 8 values ride in two q registers and are used
// by lane (fmla by element).
void microNeon8x12(Index kc, const float* ap, const float* bp, float* c, Index ldc, float alpha, float beta) {
  float32x4_t acc[8][3];
  for (int r = 0; r < 8; r++) {
    for (int v = 0; v < 3; v++) acc[r][v] = vdupq_n_f32(0.0f);
  }
  for (Index k = 0; k < kc; k++) {
    const float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
    const float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32(ap + 4);
#define ANE_NEON_ROW(r, a, lane)                               \
  acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, a, lane);         \
  acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, a, lane);         \
  acc[r][2] = vfmaq_laneq_f32(acc[r][2], b2, a, lane);
    ANE_NEON_ROW(0, a0, 0)
    ANE_NEON_ROW(1, a0, 1)
    ANE_NEON_ROW(2, a0, 2)
    ANE_NEON_ROW(3, a0, 3)
    ANE_NEON_ROW(4, a1, 0)
    ANE_NEON_ROW(5, a1, 1)
    ANE_NEON_ROW(6, a1, 2)
    ANE_NEON_ROW(7, a1, 3)
#undef ANE_NEON_ROW
    ap += 8;
    bp += 12;
  }
  const float32x4_t alphaV = vdupq_n_f32(alpha), betaV = vdupq_n_f32(beta);
  for (int r = 0; r < 8; r++) {
    float* row = c + r * ldc;
    for (int v = 0; v < 3; v++) {
      float32x4_t out = vmulq_f32(alphaV, acc[r][v]);
      if (beta != 0.0f) out = vaddq_f32(out, vmulq_f32(betaV, vld1q_f32(row + v * 4)));
      vst1q_f32(row + v * 4, out);
    }
  }
}

#endif  // ANE_ARM64

// ---- packing ---------------------------------------------------------------------------------

// Ap[panel][k][r] = op(A)[i0 + panel*MR + r, p0 + k] for an mc x kc block; rows past mc are 0.
//   A: [M, K] row stride lda (transA: [K, M]),  Ap: [ceil(mc/MR)][kc][MR]
template <typename T>
void packA(bool transA, const T* A, Index lda, Index i0, Index p0, Index mc, Index kc, int MR, float* ap) {
  for (Index ir = 0; ir < mc; ir += MR) {
    const int rows = static_cast<int>(std::min<Index>(MR, mc - ir));
    if (transA) {
      // op(A)[i, k] = A[k, i]: MR contiguous values per k.
      for (Index k = 0; k < kc; k++) {
        const T* src = A + (p0 + k) * lda + i0 + ir;
        float* dst = ap + k * MR;
        for (int r = 0; r < rows; r++) dst[r] = widened(src[r]);
        for (int r = rows; r < MR; r++) dst[r] = 0.0f;
      }
    } else {
      // op(A)[i, k] = A[i, k]: read each row contiguously, write with stride MR.
      for (int r = 0; r < rows; r++) {
        const T* src = A + (i0 + ir + r) * lda + p0;
        for (Index k = 0; k < kc; k++) ap[k * MR + r] = widened(src[k]);
      }
      for (int r = rows; r < MR; r++) {
        for (Index k = 0; k < kc; k++) ap[k * MR + r] = 0.0f;
      }
    }
    ap += kc * MR;
  }
}

// Bp[panel][k][j] = op(B)[p0 + k, j0 + panel*NR + j] for a kc x nc block; columns past nc are 0.
//   B: [K, N] row stride ldb (transB: [N, K]),  Bp: [ceil(nc/NR)][kc][NR]
template <typename T>
void packB(bool transB, const T* B, Index ldb, Index p0, Index j0, Index kc, Index nc, int NR, float* bp) {
  for (Index jr = 0; jr < nc; jr += NR) {
    const int cols = static_cast<int>(std::min<Index>(NR, nc - jr));
    if (!transB) {
      for (Index k = 0; k < kc; k++) {
        const T* src = B + (p0 + k) * ldb + j0 + jr;
        float* dst = bp + k * NR;
        if (std::is_same<T, float>::value && cols == NR) {
          std::memcpy(dst, src, sizeof(float) * static_cast<std::size_t>(NR));
        } else {
          for (int j = 0; j < cols; j++) dst[j] = widened(src[j]);
          for (int j = cols; j < NR; j++) dst[j] = 0.0f;
        }
      }
    } else {
      // op(B)[k, j] = B[j, k]: read each row of B contiguously, write with stride NR.
      for (int j = 0; j < cols; j++) {
        const T* src = B + (j0 + jr + j) * ldb + p0;
        for (Index k = 0; k < kc; k++) bp[k * NR + j] = widened(src[k]);
      }
      for (int j = cols; j < NR; j++) {
        for (Index k = 0; k < kc; k++) bp[k * NR + j] = 0.0f;
      }
    }
    bp += kc * NR;
  }
}

#if ANE_X86

// Rows of the source packed together (both packers' row-major cases): 8 rows of 6 or 32 floats
// write 192 bytes or 1 KiB contiguously per panel, while 8 read streams stay within what the
// hardware prefetchers follow.
constexpr Index kPackBand = 8;

// Eight consecutive elements as fp32.
ANE_TARGET_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
ANE_TARGET_AVX2 inline __m256 load8(const std::uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Six consecutive elements as fp32 into dst[0..5] (no element past the sixth is read).
ANE_TARGET_AVX2 inline void copy6(const float* src, float* dst) {
  _mm_storeu_ps(dst, _mm_loadu_ps(src));
  _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 4))));
}
ANE_TARGET_AVX2 inline void copy6(const std::uint16_t* src, float* dst) {
  _mm_storeu_ps(dst, _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src))));
  std::int32_t lastTwo;
  std::memcpy(&lastTwo, src + 4, sizeof lastTwo);
  _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), _mm_cvtph_ps(_mm_cvtsi32_si128(lastTwo)));
}

// packA with the transposing case (A not transposed: MR values of one k lie in MR rows) done as
// 8 x 8 register transposes, 8 k at a time; MR is 6 on both x86 paths. Ragged panels and the
// transposed case (already MR contiguous values per k) take the scalar code.
template <typename T>
ANE_TARGET_AVX2 void packAAvx2(bool transA, const T* A, Index lda, Index i0, Index p0, Index mc, Index kc, int MR,
                               float* ap) {
  if (MR != 6) return packA(transA, A, lda, i0, p0, mc, kc, MR, ap);
  const Index full = mc / 6 * 6;
  if (transA) {
    // op(A)[i, k] = A[k, i]: each row of A holds 6 contiguous values for every panel. A band of
    // kPackBand rows is read left to right, panel by panel, so each panel receives one contiguous
    // run of kPackBand * 6 values: one row at a time scattered 24-byte stores kc * 24 bytes apart,
    // a cache line and often a page each, and packing took a third of a small GEMM's time.
    const Index panels = full / 6;
    for (Index kb = 0; kb < kc; kb += kPackBand) {
      const Index kn = std::min(kPackBand, kc - kb);
      for (Index panel = 0; panel < panels; panel++) {
        const T* src = A + (p0 + kb) * lda + i0 + panel * 6;
        float* dst = ap + panel * kc * 6 + kb * 6;
        for (Index k = 0; k < kn; k++) {
          copy6(src, dst);
          src += lda;
          dst += 6;
        }
      }
    }
    if (full < mc) packA(transA, A, lda, i0 + full, p0, mc - full, kc, MR, ap + full * kc);
    return;
  }
  for (Index ir = 0; ir < full; ir += 6) {
    const T* src = A + (i0 + ir) * lda + p0;
    Index k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 r[8];
      for (int row = 0; row < 6; row++) r[row] = load8(src + row * lda + k);
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8x8(r);
      float* dst = ap + k * 6;
      for (int j = 0; j < 8; j++) {
        // Lanes 0..5 of r[j] are op(A)[ir + 0..5, k + j]: store 4 + 2.
        _mm_storeu_ps(dst + j * 6, _mm256_castps256_ps128(r[j]));
        _mm_storel_pi(reinterpret_cast<__m64*>(dst + j * 6 + 4), _mm256_extractf128_ps(r[j], 1));
      }
    }
    for (; k < kc; k++) {
      for (int row = 0; row < 6; row++) ap[k * 6 + row] = widened(src[row * lda + k]);
    }
    ap += kc * 6;
  }
  if (full < mc) packA(transA, A, lda, i0 + full, p0, mc - full, kc, MR, ap);
}

// packB with SIMD copies (B not transposed: NR contiguous values per k) and 8 x 8 register
// transposes (B transposed: the NR values of one k lie in NR rows of B), for NR a multiple of 8.
template <typename T>
ANE_TARGET_AVX2 void packBAvx2(bool transB, const T* B, Index ldb, Index p0, Index j0, Index kc, Index nc, int NR,
                               float* bp) {
  if (NR % 8 != 0) return packB(transB, B, ldb, p0, j0, kc, nc, NR, bp);
  const Index full = nc / NR * NR;
  if (!transB) {
    // A band of kPackBand rows of B at a time, each read left to right across the panels (see
    // packAAvx2's transposed case: the same rows walked panel by panel missed on every row).
    const Index panels = full / NR;
    for (Index kb = 0; kb < kc; kb += kPackBand) {
      const Index kn = std::min(kPackBand, kc - kb);
      for (Index panel = 0; panel < panels; panel++) {
        const T* src = B + (p0 + kb) * ldb + j0 + panel * NR;
        float* dst = bp + panel * kc * NR + kb * NR;
        for (Index k = 0; k < kn; k++) {
          for (int j = 0; j < NR; j += 8) _mm256_store_ps(dst + j, load8(src + j));
          src += ldb;
          dst += NR;
        }
      }
    }
    bp += panels * kc * NR;
  } else {
    // B transposed: the NR values of one k lie in NR rows of B, 8 x 8 register transposes.
    for (Index jr = 0; jr < full; jr += NR) {
      for (int jb = 0; jb < NR; jb += 8) {
        const T* src = B + (j0 + jr + jb) * ldb + p0;
        Index k = 0;
        for (; k + 8 <= kc; k += 8) {
          __m256 r[8];
          for (int row = 0; row < 8; row++) r[row] = load8(src + row * ldb + k);
          transpose8x8(r);
          for (int j = 0; j < 8; j++) _mm256_store_ps(bp + (k + j) * NR + jb, r[j]);
        }
        for (; k < kc; k++) {
          for (int row = 0; row < 8; row++) bp[k * NR + jb + row] = widened(src[row * ldb + k]);
        }
      }
      bp += kc * NR;
    }
  }
  if (full < nc) packB(transB, B, ldb, p0, j0 + full, kc, nc - full, NR, bp);
}

#endif  // ANE_X86

// ---- per-thread packing buffers ------------------------------------------------------------------

struct AlignedBuffer {
  float* data = nullptr;
  std::size_t capacity = 0;  // floats
  ~AlignedBuffer() { std::free(data); }
  float* reserve(std::size_t floats) {
    if (floats > capacity) {
      std::free(data);
      const std::size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (data == nullptr) throw std::bad_alloc();
      capacity = floats;
    }
    return data;
  }
};

struct PackBuffers {
  AlignedBuffer a, b;
};

// A GEMM operand: fp32 values, or fp16 bits (exactly one of the two), row stride ld.
struct Operand {
  const float* f32;
  const std::uint16_t* f16;
  Index ld;
  // The operand from element `offset` on (a thread's strip).
  Operand from(Index offset) const {
    return {f32 == nullptr ? nullptr : f32 + offset, f16 == nullptr ? nullptr : f16 + offset, ld};
  }
};

// Packs op(A)[i0:+mc, p0:+kc] (see packA) from either width.
void packOperandA(const GemmPath& path, bool transA, const Operand& A, Index i0, Index p0, Index mc, Index kc, float* ap) {
  if (A.f32 != nullptr) path.packA(transA, A.f32, A.ld, i0, p0, mc, kc, path.mr, ap);
  else path.packAHalf(transA, A.f16, A.ld, i0, p0, mc, kc, path.mr, ap);
}

// Packs op(B)[p0:+kc, j0:+nc] (see packB) from either width.
void packOperandB(const GemmPath& path, bool transB, const Operand& B, Index p0, Index j0, Index kc, Index nc, float* bp) {
  if (B.f32 != nullptr) path.packB(transB, B.f32, B.ld, p0, j0, kc, nc, path.nr, bp);
  else path.packBHalf(transB, B.f16, B.ld, p0, j0, kc, nc, path.nr, bp);
}

PackBuffers& threadBuffers() {
  thread_local PackBuffers buffers;
  return buffers;
}

// ---- the blocked loop nest on one rectangle of C ------------------------------------------------

// C[M, N] = alpha * op(A) op(B) + beta * C, single-threaded; A, B, C point at the rectangle's corner.
void gemmBlocked(const GemmPath& path, bool transA, bool transB, Index M, Index N, Index K, float alpha,
                 const Operand& A, const Operand& B, float beta, float* C, Index ldc, const GemmEpilogue* epilogue) {
  const int MR = path.mr, NR = path.nr;
  const Index MC = path.mc, KC = path.kc, NC = path.nc;
  PackBuffers& buffers = threadBuffers();
  const Index ncMax = std::min(NC, (N + NR - 1) / NR * NR);
  const Index kcMax = std::min(KC, K);
  const Index mcMax = std::min(MC, (M + MR - 1) / MR * MR);
  float* bp = buffers.b.reserve(static_cast<std::size_t>(ncMax * kcMax));
  float* ap = buffers.a.reserve(static_cast<std::size_t>(mcMax * kcMax));
  alignas(64) float edge[16 * 64];  // one MR x NR tile for C's ragged edges (MR*NR <= 1024)
  // The epilogue on the micro-kernel's registers where it can, else on each stored block.
  const bool inRegisters = epilogue != nullptr && epilogue->fp16InRegisters && path.microRounding != nullptr;

  for (Index jc = 0; jc < N; jc += NC) {
    const Index nc = std::min(NC, N - jc);
    for (Index pc = 0; pc < K; pc += KC) {
      const Index kc = std::min(KC, K - pc);
      const float betaHere = pc == 0 ? beta : 1.0f;
      const bool lastK = pc + kc >= K;  // C's sums are final after this block
      packOperandB(path, transB, B, pc, jc, kc, nc, bp);
      for (Index ic = 0; ic < M; ic += MC) {
        // Per row block (tens of microseconds): finer gave nothing more in paired Trainer steps.
        yieldToForeground();
        const Index mc = std::min(MC, M - ic);
        packOperandA(path, transA, A, ic, pc, mc, kc, ap);
        for (Index jr = 0; jr < nc; jr += NR) {
          const Index nr = std::min<Index>(NR, nc - jr);
          const float* bPanel = bp + (jr / NR) * kc * NR;
          for (Index ir = 0; ir < mc; ir += MR) {
            const Index mr = std::min<Index>(MR, mc - ir);
            const float* aPanel = ap + (ir / MR) * kc * MR;
            float* c = C + (ic + ir) * ldc + jc + jr;
            if (mr == MR && nr == NR) {
              if (inRegisters && lastK) {
                path.microRounding(kc, aPanel, bPanel, c, ldc, alpha, betaHere, epilogue->saturateLimit);
              } else {
                path.micro(kc, aPanel, bPanel, c, ldc, alpha, betaHere);
              }
            } else {
              path.micro(kc, aPanel, bPanel, edge, NR, 1.0f, 0.0f);
              for (Index r = 0; r < mr; r++) {
                float* row = c + r * ldc;
                const float* tile = edge + r * NR;
                if (betaHere == 0.0f) {
                  for (Index j = 0; j < nr; j++) row[j] = alpha * tile[j];
                } else {
                  for (Index j = 0; j < nr; j++) row[j] = alpha * tile[j] + betaHere * row[j];
                }
              }
              if (inRegisters && lastK) epilogue->finish(c, ldc, mr, nr, epilogue->context);
            }
          }
        }
        // Finish the block while it is in cache.
        if (epilogue != nullptr && !inRegisters && lastK) {
          epilogue->finish(C + ic * ldc + jc, ldc, mc, nc, epilogue->context);
        }
      }
    }
  }
}

// C[M, N] *= beta (beta 0 writes zeros without reading).
// C = beta * C over rows [i0, i1) and columns [j0, j1).
void scaleBlock(Index i0, Index i1, Index j0, Index j1, float beta, float* C, Index ldc) {
  for (Index i = i0; i < i1; i++) {
    float* row = C + i * ldc;
    if (beta == 0.0f) {
      std::fill(row + j0, row + j1, 0.0f);
    } else {
      for (Index j = j0; j < j1; j++) row[j] *= beta;
    }
  }
}

// Elements, at least, before scaling C is shared among threads (it is memory-bound).
constexpr Index kMinParallelScale = Index{1} << 16;

void scaleC(Index M, Index N, float beta, float* C, Index ldc) {
  if (M * N < kMinParallelScale || hostThreads() < 2) return scaleBlock(0, M, 0, N, beta, C, ldc);
  // One long row (a vector scaled as a 1 x N matrix) splits by columns, anything else by rows.
  if (M == 1) {
    parallelFor(N, kMinParallelScale / 2, 16, [&](Index j0, Index j1) { scaleBlock(0, 1, j0, j1, beta, C, ldc); });
  } else {
    parallelFor(M, std::max<Index>(1, kMinParallelScale / 2 / N), 1,
                [&](Index i0, Index i1) { scaleBlock(i0, i1, 0, N, beta, C, ldc); });
  }
}

// The epilogue on all of C (the paths that do not block C), rows shared among the pool's threads.
void finishWhole(const GemmEpilogue& epilogue, float* C, Index ldc, Index M, Index N) {
  parallelFor(M, std::max<Index>(1, kMinParallelScale / 2 / N), 1,
              [&](Index i0, Index i1) { epilogue.finish(C + i0 * ldc, ldc, i1 - i0, N, epilogue.context); });
}

// The busiest thread's work when C's `split` side (micro-tile `unit`) is cut into `threads` strips
// and the `other` side (micro-tile `otherUnit`) is not, in multiply-adds: its micro-tiles in full,
// plus packing, an element costing about as much as kPackCost multiply-adds.
double splitCost(Index split, int unit, Index other, int otherUnit, Index K, int threads) {
  constexpr double kPackCost = 8.0;
  const Index units = (split + unit - 1) / unit;
  const Index parts = std::min<Index>(threads, units);
  const double mine = static_cast<double>((units + parts - 1) / parts * unit);
  const double others = static_cast<double>((other + otherUnit - 1) / otherUnit * otherUnit);
  return static_cast<double>(K) * (mine * others + kPackCost * (mine + others));
}

GemmPath pathFor(Isa isa) {
  switch (isa) {
#if ANE_X86
    case Isa::Avx512:
      return {6,
              32,
              192,
              384,
              4096,
              microAvx512x6x32,
              packAAvx2<float>,
              packBAvx2<float>,
              packAAvx2<std::uint16_t>,
              packBAvx2<std::uint16_t>,
              microAvx512x6x32Rounding};
    case Isa::Avx2:
      return {6,
              16,
              192,
              384,
              4080,
              microAvx2x6x16,
              packAAvx2<float>,
              packBAvx2<float>,
              packAAvx2<std::uint16_t>,
              packBAvx2<std::uint16_t>};
#endif
#if ANE_ARM64
    case Isa::Neon:
      return {8, 12, 128, 256, 4080, microNeon8x12, packA<float>, packB<float>, packA<std::uint16_t>, packB<std::uint16_t>};
#endif
    default:
      return {4, 8, 128, 256, 2048, microPortable<4, 8>, packA<float>, packB<float>, packA<std::uint16_t>,
              packB<std::uint16_t>};
  }
}

// Strips per thread a background GEMM is cut into (see gemm).
constexpr int kBackgroundStripsPerThread = 4;

// C = alpha * op(A) op(B) + beta * C for operands of either width (see sgemm and sgemmHalfOperands).
void gemm(bool transA, bool transB, Index M, Index N, Index K, float alpha, const Operand& A, const Operand& B,
          float beta, float* C, Index ldc, const GemmEpilogue* epilogue) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    if (beta != 1.0f) scaleC(M, N, beta, C, ldc);
    if (epilogue != nullptr) finishWhole(*epilogue, C, ldc, M, N);
    return;
  }
#if defined(ANE_BRIDGE_HAS_ACCELERATE)
  if (M <= 0x7fffffff && N <= 0x7fffffff && K <= 0x7fffffff) {
    // Accelerate takes fp32 only: an fp16 operand is widened whole first.
    std::vector<float> wideA, wideB;
    const auto widenWhole = [](const Operand& x, Index rows, Index cols, std::vector<float>& wide) -> const float* {
      if (x.f32 != nullptr) return x.f32;
      wide.resize(static_cast<std::size_t>((rows - 1) * x.ld + cols));
      fp16ToFp32(x.f16, x.ld, wide.data(), x.ld, rows, cols);
      return wide.data();
    };
    const float* a = transA ? widenWhole(A, K, M, wideA) : widenWhole(A, M, K, wideA);
    const float* b = transB ? widenWhole(B, N, K, wideB) : widenWhole(B, K, N, wideB);
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, a, static_cast<int>(A.ld), b,
                static_cast<int>(B.ld), beta, C, static_cast<int>(ldc));
    if (epilogue != nullptr) finishWhole(*epilogue, C, ldc, M, N);
    return;
  }
#endif
  const GemmPath path = pathFor(activeIsa());
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int threads = static_cast<int>(std::min<double>(hostThreads(), std::max(1.0, work / kSgemmMinParallelWork)));
  if (threads <= 1) {
    gemmBlocked(path, transA, transB, M, N, K, alpha, A, B, beta, C, ldc, epilogue);
    return;
  }
  // Cut C into `threads` strips aligned to the micro-tile, along the side that leaves the busiest
  // thread the least work: its share of micro-tiles (the strips are whole tiles, so 9 column panels
  // on 2 threads leave one thread 5) plus the packing it does (each thread packs all of the operand
  // it does not split).
  const bool splitColumns = splitCost(N, path.nr, M, path.mr, K, threads) <= splitCost(M, path.mr, N, path.nr, K, threads);
  const Index extent = splitColumns ? N : M;
  const Index unit = splitColumns ? path.nr : path.mr;
  const Index units = (extent + unit - 1) / unit;
  // Background work gets CPU time in slices no other thread wants, unevenly: smaller strips,
  // claimed by whichever background thread is free, keep one late strip from ending alone.
  const int strips = inBackground() ? threads * kBackgroundStripsPerThread : threads;
  const int parts = static_cast<int>(std::min<Index>(strips, units));
  runTasks(parts, [&](int part) {
    const Index begin = std::min(extent, units * part / parts * unit);
    const Index end = std::min(extent, units * (part + 1) / parts * unit);
    if (begin >= end) return;
    if (splitColumns) {
      const Operand b = B.from(transB ? begin * B.ld : begin);
      gemmBlocked(path, transA, transB, M, end - begin, K, alpha, A, b, beta, C + begin, ldc, epilogue);
    } else {
      const Operand a = A.from(transA ? begin : begin * A.ld);
      gemmBlocked(path, transA, transB, end - begin, N, K, alpha, a, B, beta, C + begin * ldc, ldc, epilogue);
    }
  });
}

}  // namespace

void sgemm(bool transA, bool transB, Index M, Index N, Index K, float alpha, const float* A, Index lda, const float* B,
           Index ldb, float beta, float* C, Index ldc) {
  gemm(transA, transB, M, N, K, alpha, {A, nullptr, lda}, {B, nullptr, ldb}, beta, C, ldc, nullptr);
}

void sgemmHalfOperands(bool transA, bool transB, Index M, Index N, Index K, float alpha, const float* A,
                       const std::uint16_t* A16, Index lda, const float* B, const std::uint16_t* B16, Index ldb,
                       float beta, float* C, Index ldc) {
  gemm(transA, transB, M, N, K, alpha, {A16 == nullptr ? A : nullptr, A16, lda}, {B16 == nullptr ? B : nullptr, B16, ldb},
       beta, C, ldc, nullptr);
}

void sgemmHalfOperands(bool transA, bool transB, Index M, Index N, Index K, float alpha, const float* A,
                       const std::uint16_t* A16, Index lda, const float* B, const std::uint16_t* B16, Index ldb,
                       float beta, float* C, Index ldc, const GemmEpilogue& epilogue) {
  gemm(transA, transB, M, N, K, alpha, {A16 == nullptr ? A : nullptr, A16, lda}, {B16 == nullptr ? B : nullptr, B16, ldb},
       beta, C, ldc, &epilogue);
}

}  // namespace kernels
}  // namespace ane
