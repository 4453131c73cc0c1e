// Fused optimizer updates and the sum of squares (see kernels.h). The update loops live in
// optimizers_body.inc and are compiled here once per SIMD path; the pool splits the arrays into
// contiguous ranges, one per thread.
#include <algorithm>
#include <cmath>
#include <vector>

#include "fp16_rows.h"
#include "warnings.h"
#include "kernels.h"
#include "thread_pool.h"

#if ANE_X86
#include <immintrin.h>
#endif
#if ANE_ARM64
#include <arm_neon.h>
#endif

namespace ane {
namespace kernels {

namespace portable {
#define ANE_ISA_ATTR
#include "optimizers_body.inc"
#undef ANE_ISA_ATTR
}  // namespace portable

#if ANE_X86
namespace avx2 {
#define ANE_ISA_ATTR ANE_TARGET_AVX2
#include "optimizers_body.inc"
#undef ANE_ISA_ATTR
}  // namespace avx2
#endif

namespace {

// Elements per thread, at least: below this, waking a thread costs more than it saves.
constexpr std::ptrdiff_t kMinParallel = std::ptrdiff_t{1} << 15;

using SgdFn = void (*)(float*, const float*, float*, std::ptrdiff_t, const SgdScalars&, std::uint16_t*, ToHalfRun);
using AdamFn = void (*)(float*, const float*, float*, float*, std::ptrdiff_t, const AdamScalars&, std::uint16_t*,
                        ToHalfRun);
using LionFn = void (*)(float*, const float*, float*, std::ptrdiff_t, const LionScalars&, std::uint16_t*, ToHalfRun);

struct OptimizerTable {
  SgdFn sgd;
  AdamFn adam;
  LionFn lion;
};

// The path the optimizers take. On AVX-512 CPUs they keep the AVX2 loops: measured on Zen 5 with
// 110M parameters, the 256-bit AdamW streams at ~58 GB/s against ~48 GB/s for the compiler's
// 512-bit version (36 against 49 GB/s with the fp16 copy), and the loops are memory-bound anyway.
Isa optimizerIsa(Isa isa) { return isa == Isa::Avx512 ? Isa::Avx2 : isa; }

OptimizerTable tableFor(Isa isa) {
  switch (optimizerIsa(isa)) {
#if ANE_X86
    case Isa::Avx2:
      return {avx2::sgd, avx2::adam, avx2::lion};
#endif
    default:
      // arm64 builds vectorize the portable loops for NEON (Advanced SIMD is the baseline there).
      return {portable::sgd, portable::adam, portable::lion};
  }
}

// ---- sum of squares, float64 accumulation ----------------------------------------------------

double sumSquaresPortable(const float* x, std::ptrdiff_t n) {
  double acc[4] = {0, 0, 0, 0};
  std::ptrdiff_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; k++) {
      const double value = x[i + k];
      acc[k] += value * value;
    }
  }
  for (; i < n; i++) {
    const double value = x[i];
    acc[0] += value * value;
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

#if ANE_X86
ANE_TARGET_AVX2 double sumSquaresAvx2(const float* x, std::ptrdiff_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  std::ptrdiff_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    const __m256d x1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    const __m256d x2 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8));
    const __m256d x3 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
    a0 = _mm256_fmadd_pd(x0, x0, a0);
    a1 = _mm256_fmadd_pd(x1, x1, a1);
    a2 = _mm256_fmadd_pd(x2, x2, a2);
    a3 = _mm256_fmadd_pd(x3, x3, a3);
  }
  const __m256d sum = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, sum);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + sumSquaresPortable(x + i, n - i);
}

ANE_TARGET_AVX512 double sumSquaresAvx512(const float* x, std::ptrdiff_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
  std::ptrdiff_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512d x0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
    const __m512d x1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
    const __m512d x2 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16));
    const __m512d x3 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24));
    a0 = _mm512_fmadd_pd(x0, x0, a0);
    a1 = _mm512_fmadd_pd(x1, x1, a1);
    a2 = _mm512_fmadd_pd(x2, x2, a2);
    a3 = _mm512_fmadd_pd(x3, x3, a3);
  }
  const double head = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  return head + sumSquaresAvx2(x + i, n - i);
}
#endif

#if ANE_ARM64
double sumSquaresNeon(const float* x, std::ptrdiff_t n) {
  float64x2_t a0 = vdupq_n_f64(0), a1 = vdupq_n_f64(0), a2 = vdupq_n_f64(0), a3 = vdupq_n_f64(0);
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t lo = vld1q_f32(x + i), hi = vld1q_f32(x + i + 4);
    const float64x2_t x0 = vcvt_f64_f32(vget_low_f32(lo)), x1 = vcvt_high_f64_f32(lo);
    const float64x2_t x2 = vcvt_f64_f32(vget_low_f32(hi)), x3 = vcvt_high_f64_f32(hi);
    a0 = vfmaq_f64(a0, x0, x0);
    a1 = vfmaq_f64(a1, x1, x1);
    a2 = vfmaq_f64(a2, x2, x2);
    a3 = vfmaq_f64(a3, x3, x3);
  }
  const double head = vaddvq_f64(vaddq_f64(vaddq_f64(a0, a1), vaddq_f64(a2, a3)));
  return head + sumSquaresPortable(x + i, n - i);
}
#endif

double sumSquaresRun(const float* x, std::ptrdiff_t n) {
  switch (activeIsa()) {
#if ANE_X86
    case Isa::Avx512:
      return sumSquaresAvx512(x, n);
    case Isa::Avx2:
      return sumSquaresAvx2(x, n);
#endif
#if ANE_ARM64
    case Isa::Neon:
      return sumSquaresNeon(x, n);
#endif
    default:
      return sumSquaresPortable(x, n);
  }
}

}  // namespace

void sgdUpdate(float* params, const float* grads, float* momentumBuffer, std::ptrdiff_t n, const SgdScalars& s,
               std::uint16_t* fp16Out) {
  const Isa isa = activeIsa();
  const SgdFn fn = tableFor(isa).sgd;
  const ToHalfRun toHalf = toHalfRunFor(optimizerIsa(isa));
  parallelFor(n, kMinParallel, 64, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
    fn(params + b, grads + b, momentumBuffer ? momentumBuffer + b : nullptr, e - b, s, fp16Out ? fp16Out + b : nullptr,
       toHalf);
  });
}

void adamUpdate(float* params, const float* grads, float* m, float* v, std::ptrdiff_t n, const AdamScalars& s,
                std::uint16_t* fp16Out) {
  const Isa isa = activeIsa();
  const AdamFn fn = tableFor(isa).adam;
  const ToHalfRun toHalf = toHalfRunFor(optimizerIsa(isa));
  parallelFor(n, kMinParallel, 64, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
    fn(params + b, grads + b, m + b, v + b, e - b, s, fp16Out ? fp16Out + b : nullptr, toHalf);
  });
}

void lionUpdate(float* params, const float* grads, float* m, std::ptrdiff_t n, const LionScalars& s,
                std::uint16_t* fp16Out) {
  const Isa isa = activeIsa();
  const LionFn fn = tableFor(isa).lion;
  const ToHalfRun toHalf = toHalfRunFor(optimizerIsa(isa));
  parallelFor(n, kMinParallel, 64, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
    fn(params + b, grads + b, m + b, e - b, s, fp16Out ? fp16Out + b : nullptr, toHalf);
  });
}

double sumOfSquares(const float* x, std::ptrdiff_t n) {
  if (n <= 0) return 0.0;
  // Fixed-size blocks summed in order: the result does not depend on the thread count.
  constexpr std::ptrdiff_t kBlock = std::ptrdiff_t{1} << 16;
  const std::ptrdiff_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks == 1) return sumSquaresRun(x, n);
  std::vector<double> partial(static_cast<std::size_t>(blocks));
  parallelFor(blocks, 4, 1, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
    for (std::ptrdiff_t k = b; k < e; k++) {
      const std::ptrdiff_t begin = k * kBlock;
      partial[static_cast<std::size_t>(k)] = sumSquaresRun(x + begin, std::min(kBlock, n - begin));
    }
  });
  double total = 0.0;
  for (double value : partial) total += value;
  return total;
}

}  // namespace kernels
}  // namespace ane
