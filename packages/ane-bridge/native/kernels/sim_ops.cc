// The simulator's hot ops; see sim_ops.h for the arithmetic contract. Large ops spread over the
// host thread pool by output element ranges: every element's arithmetic depends only on its own
// inputs (softmax: on its own row or column), so the split never changes a bit.
#include "sim_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "fp16_round_vectors.h"
#include "fp16_rows.h"
#include "kernels.h"
#include "simd.h"
#include "thread_pool.h"
#include "warnings.h"

#if ANE_X86
#include <immintrin.h>
#endif
#if ANE_ARM64
#include <arm_neon.h>
#endif

namespace ane {
namespace sim {

namespace {

using kernels::bitsFloat;
using kernels::floatBits;
using kernels::Isa;

// Below this many elements an op runs on the calling thread alone. 2^15 rather than 2^17: a
// Stories15M layer's [6, 256, 48] values (73,728) then split over the pool too; its kernels ran
// 2-20% faster alone (attention backward 0.83), 2^14 and 2^16 no better.
constexpr Index kMinParallel = 1 << 15;
// Ops that compute then round work in blocks this long, so the rounding pass reads a hot cache.
constexpr Index kBlock = 2048;

// ane-ir/mil roundToFp16InPlace on one value: normal halves by a round-half-even of the mantissa,
// overflow to +-inf, NaN unchanged, the subnormal range through the exact conversion.
inline float roundHalf(float v) {
  const std::uint32_t u = floatBits(v);
  const std::uint32_t magnitude = u & 0x7fffffffu;
  if (magnitude >= 0x38800000u && magnitude < 0x477ff000u) {
    return bitsFloat((u & 0x80000000u) | ((magnitude + 0xfffu + ((magnitude >> 13) & 1u)) & ~0x1fffu));
  }
  if (magnitude >= 0x477ff000u && magnitude <= 0x7f800000u) return bitsFloat((u & 0x80000000u) | 0x7f800000u);
  if (magnitude > 0x7f800000u) return v;
  return kernels::fp16ToFp32Scalar(kernels::fp32ToFp16Scalar(v, false));
}

void roundScalar(float* p, Index n) {
  for (Index i = 0; i < n; i++) p[i] = roundHalf(p[i]);
}

// The hardware round trip (vcvtps2ph with round-to-nearest-even, then back) gives the same value
// for every non-NaN input, subnormal halves included; a NaN keeps its fp32 bits, as in the twin.
#if ANE_X86
ANE_TARGET_AVX2 void roundAvx2(float* p, Index n) {
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(p + i, kernels::roundedToFp16(_mm256_loadu_ps(p + i)));
  }
  roundScalar(p + i, n - i);
}

ANE_TARGET_AVX512 void roundAvx512(float* p, Index n) {
  Index i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(p + i, kernels::roundedToFp16(_mm512_loadu_ps(p + i)));
  }
  roundAvx2(p + i, n - i);
}
#endif

#if ANE_ARM64
void roundNeon(float* p, Index n) {
  Index i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(p + i, kernels::roundedToFp16(vld1q_f32(p + i)));
  }
  roundScalar(p + i, n - i);
}
#endif

void roundSpan(float* p, Index n) {
  switch (kernels::activeIsa()) {
#if ANE_X86
    case Isa::Avx512:
      return roundAvx512(p, n);
    case Isa::Avx2:
      return roundAvx2(p, n);
#endif
#if ANE_ARM64
    case Isa::Neon:
      return roundNeon(p, n);
#endif
    default:
      return roundScalar(p, n);
  }
}

// |v| past the threshold (>= when inclusive) to +-inf; NaN stays. The comparison is in float64, as
// the twin's; a threshold that is a float (every rule's is) compares the same in float.
#if ANE_X86
// The vector form of the float comparison below: |v| >= limit (> when not inclusive; ordered, so
// a NaN never saturates) becomes inf with v's sign.
ANE_TARGET_AVX512 Index saturateAvx512(float* p, Index n, float limit, bool inclusive) {
  const __m512 bound = _mm512_set1_ps(limit);
  const __m512i signBit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512i infBits = _mm512_set1_epi32(0x7f800000);
  Index i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(p + i);
    const __m512 magnitude = _mm512_castsi512_ps(_mm512_andnot_si512(signBit, _mm512_castps_si512(v)));
    const __mmask16 past = inclusive ? _mm512_cmp_ps_mask(magnitude, bound, _CMP_GE_OQ)
                                     : _mm512_cmp_ps_mask(magnitude, bound, _CMP_GT_OQ);
    const __m512i signedInf = _mm512_or_si512(infBits, _mm512_and_si512(signBit, _mm512_castps_si512(v)));
    _mm512_storeu_ps(p + i, _mm512_mask_blend_ps(past, v, _mm512_castsi512_ps(signedInf)));
  }
  return i;
}

ANE_TARGET_AVX2 Index saturateAvx2(float* p, Index n, float limit, bool inclusive) {
  const __m256 bound = _mm256_set1_ps(limit);
  const __m256 signBit = _mm256_set1_ps(-0.0f);
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(p + i);
    const __m256 magnitude = _mm256_andnot_ps(signBit, v);
    const __m256 past = inclusive ? _mm256_cmp_ps(magnitude, bound, _CMP_GE_OQ) : _mm256_cmp_ps(magnitude, bound, _CMP_GT_OQ);
    const __m256 signedInf = _mm256_or_ps(inf, _mm256_and_ps(signBit, v));
    _mm256_storeu_ps(p + i, _mm256_blendv_ps(v, signedInf, past));
  }
  return i;
}
#endif

void saturateSpan(float* p, Index n, double threshold, bool inclusive) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  if (static_cast<double>(static_cast<float>(threshold)) == threshold) {
    const float limit = static_cast<float>(threshold);
    Index done = 0;
#if ANE_X86
    // A limit of 0 or below would saturate signed zeros by sign, which the vector sign copy does
    // not reproduce (the scalar `p > 0` sends -0 and +0 to -inf); the rules' limits are positive.
    if (limit > 0) {
      if (kernels::activeIsa() == Isa::Avx512) done = saturateAvx512(p, n, limit, inclusive);
      else if (kernels::activeIsa() == Isa::Avx2) done = saturateAvx2(p, n, limit, inclusive);
    }
#endif
    p += done;
    n -= done;
    for (Index i = 0; i < n; i++) {
      const float magnitude = std::fabs(p[i]);
      if (inclusive ? magnitude >= limit : magnitude > limit) p[i] = p[i] > 0 ? inf : -inf;
    }
    return;
  }
  for (Index i = 0; i < n; i++) {
    const double magnitude = std::fabs(static_cast<double>(p[i]));
    if (inclusive ? magnitude >= threshold : magnitude > threshold) p[i] = p[i] > 0 ? inf : -inf;
  }
}

inline double sigmoidOf(double v) {
  if (v >= 0) return 1 / (1 + std::exp(-v));
  const double e = std::exp(v);
  return e / (1 + e);
}

// ---- exp in float64, vectorized ----------------------------------------------------------------
//
// The twins evaluate Math.exp in float64 and store binary32. The vector paths compute the float64
// exp themselves, to about 1 ulp (Cody-Waite reduction by ln 2 with FMA, a degree-13 Taylor
// polynomial on |r| <= ln2/2, 2^k applied exactly), so after the binary32 store they agree with
// Math.exp (and glibc's exp, which the scalar path calls) except where the exact value lies within a
// couple of float64 ulps of a binary32 rounding boundary: about 1 in 2^27 values, and then only in
// the last binary32 bit, which the fp16 rounding of an fp16 result removes. Arguments below -110
// give +0 and above 89 give +inf: there the binary32 result is exactly that whatever the float64.

constexpr double kLog2e = 1.4426950408889634;
constexpr double kLn2Hi = 0.6931471805599453;      // float64 nearest to ln 2
constexpr double kLn2Lo = 2.3190468138462996e-17;  // ln 2 - kLn2Hi
constexpr double kExpMin = -110.0;
constexpr double kExpMax = 89.0;
// 1/k! for k = 13 down to 2.
constexpr double kInvFactorial[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                    1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,      1.0 / 720.0,
                                    1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,         0.5};

#if ANE_X86
ANE_TARGET_AVX512 inline __m512d exp512(__m512d x) {
  const __m512d clamped = _mm512_min_pd(_mm512_max_pd(x, _mm512_set1_pd(kExpMin)), _mm512_set1_pd(kExpMax));
  const __m512d k =
      _mm512_roundscale_pd(_mm512_mul_pd(clamped, _mm512_set1_pd(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(kLn2Hi), clamped);
  r = _mm512_fnmadd_pd(k, _mm512_set1_pd(kLn2Lo), r);
  __m512d p = _mm512_set1_pd(kInvFactorial[0]);
  for (int i = 1; i < 12; i++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInvFactorial[i]));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  __m512d result = _mm512_scalef_pd(p, k);
  result = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, _mm512_set1_pd(kExpMax), _CMP_GT_OQ), result,
                                _mm512_set1_pd(std::numeric_limits<double>::infinity()));
  result = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, _mm512_set1_pd(kExpMin), _CMP_LT_OQ), result, _mm512_setzero_pd());
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), result, x);
}

ANE_TARGET_AVX2 inline __m256d exp256(__m256d x) {
  const __m256d clamped = _mm256_min_pd(_mm256_max_pd(x, _mm256_set1_pd(kExpMin)), _mm256_set1_pd(kExpMax));
  const __m256d k =
      _mm256_round_pd(_mm256_mul_pd(clamped, _mm256_set1_pd(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(kLn2Hi), clamped);
  r = _mm256_fnmadd_pd(k, _mm256_set1_pd(kLn2Lo), r);
  __m256d p = _mm256_set1_pd(kInvFactorial[0]);
  for (int i = 1; i < 12; i++) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(kInvFactorial[i]));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  // 2^k (k in [-159, 129]) built from its exponent bits.
  const __m256i exponent =
      _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023)), 52);
  __m256d result = _mm256_mul_pd(p, _mm256_castsi256_pd(exponent));
  result = _mm256_blendv_pd(result, _mm256_set1_pd(std::numeric_limits<double>::infinity()),
                            _mm256_cmp_pd(x, _mm256_set1_pd(kExpMax), _CMP_GT_OQ));
  result = _mm256_blendv_pd(result, _mm256_setzero_pd(), _mm256_cmp_pd(x, _mm256_set1_pd(kExpMin), _CMP_LT_OQ));
  return _mm256_blendv_pd(result, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}

// exp(v) below this is below half of float's smallest subnormal (2^-150 = e^-103.97): +0 as a float.
constexpr double kExpFloatZero = -110.0;

// out[i] = float(exp(double(x[i]) - shift)). A block whose every argument is below kExpFloatZero (a
// causal mask's -inf) is stored as the zeros exp would give, without computing them.
ANE_TARGET_AVX512 void expMinusAvx512(float* out, const float* x, Index n, double shift) {
  Index i = 0;
  const __m512d s = _mm512_set1_pd(shift);
  const __m512d zeroBelow = _mm512_set1_pd(kExpFloatZero);
  for (; i + 8 <= n; i += 8) {
    const __m512d v = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), s);
    // Not-less-than, unordered: a NaN argument is computed.
    if (_mm512_cmp_pd_mask(v, zeroBelow, _CMP_NLT_UQ) == 0) {
      _mm256_storeu_ps(out + i, _mm256_setzero_ps());
      continue;
    }
    _mm256_storeu_ps(out + i, _mm512_cvtpd_ps(exp512(v)));
  }
  for (; i < n; i++) out[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - shift));
}

ANE_TARGET_AVX2 void expMinusAvx2(float* out, const float* x, Index n, double shift) {
  Index i = 0;
  const __m256d s = _mm256_set1_pd(shift);
  const __m256d zeroBelow = _mm256_set1_pd(kExpFloatZero);
  for (; i + 4 <= n; i += 4) {
    const __m256d v = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), s);
    if (_mm256_movemask_pd(_mm256_cmp_pd(v, zeroBelow, _CMP_NLT_UQ)) == 0) {
      _mm_storeu_ps(out + i, _mm_setzero_ps());
      continue;
    }
    _mm_storeu_ps(out + i, _mm256_cvtpd_ps(exp256(v)));
  }
  for (; i < n; i++) out[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - shift));
}

// sigmoid (and silu = v * sigmoid) with the twin's two branches: t = exp(-|v|), then 1/(1+t) for
// v >= 0 (NaN: the other branch) and t/(1+t) below.
ANE_TARGET_AVX512 void sigmoidAvx512(float* out, const float* x, Index n, bool silu) {
  Index i = 0;
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d signBit = _mm512_set1_pd(-0.0);
  for (; i + 8 <= n; i += 8) {
    const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
    const __m512d t = exp512(_mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(v), _mm512_castpd_si512(signBit))));
    const __m512d denominator = _mm512_add_pd(one, t);
    const __mmask8 nonNegative = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_GE_OQ);
    __m512d s = _mm512_mask_blend_pd(nonNegative, _mm512_div_pd(t, denominator), _mm512_div_pd(one, denominator));
    if (silu) s = _mm512_mul_pd(v, s);
    _mm256_storeu_ps(out + i, _mm512_cvtpd_ps(s));
  }
  for (; i < n; i++) out[i] = static_cast<float>(silu ? x[i] * sigmoidOf(x[i]) : sigmoidOf(x[i]));
}

ANE_TARGET_AVX2 void sigmoidAvx2(float* out, const float* x, Index n, bool silu) {
  Index i = 0;
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d signBit = _mm256_set1_pd(-0.0);
  for (; i + 4 <= n; i += 4) {
    const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    const __m256d t = exp256(_mm256_or_pd(v, signBit));
    const __m256d denominator = _mm256_add_pd(one, t);
    const __m256d nonNegative = _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_GE_OQ);
    __m256d s = _mm256_blendv_pd(_mm256_div_pd(t, denominator), _mm256_div_pd(one, denominator), nonNegative);
    if (silu) s = _mm256_mul_pd(v, s);
    _mm_storeu_ps(out + i, _mm256_cvtpd_ps(s));
  }
  for (; i < n; i++) out[i] = static_cast<float>(silu ? x[i] * sigmoidOf(x[i]) : sigmoidOf(x[i]));
}

// Whether ±0 / divisor is the same ±0 (a positive, finite divisor): blocks of zeros are then left
// as they are (a causal mask's zero probabilities).
bool keepsZeros(double divisor) { return divisor > 0 && divisor <= std::numeric_limits<double>::max(); }

// o[i] = float(double(o[i]) / divisor).
ANE_TARGET_AVX512 void divideAvx512(float* o, Index n, double divisor) {
  const bool skipZeros = keepsZeros(divisor);
  const __m512d d = _mm512_set1_pd(divisor);
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(o + i);
    if (skipZeros && _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_EQ_OQ)) == 0xff) continue;
    _mm256_storeu_ps(o + i, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_cvtps_pd(v), d)));
  }
  for (; i < n; i++) o[i] = static_cast<float>(static_cast<double>(o[i]) / divisor);
}
ANE_TARGET_AVX2 void divideAvx2(float* o, Index n, double divisor) {
  const bool skipZeros = keepsZeros(divisor);
  const __m256d d = _mm256_set1_pd(divisor);
  Index i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_loadu_ps(o + i);
    if (skipZeros && _mm_movemask_ps(_mm_cmpeq_ps(v, _mm_setzero_ps())) == 0xf) continue;
    _mm_storeu_ps(o + i, _mm256_cvtpd_ps(_mm256_div_pd(_mm256_cvtps_pd(v), d)));
  }
  for (; i < n; i++) o[i] = static_cast<float>(static_cast<double>(o[i]) / divisor);
}

// max(x[0, n)) as `if (v > m) m = v` from -inf finds it: a NaN never wins. Of tied +0 and -0 it may
// return the other one, which no caller can tell: x - max is the same either way.
ANE_TARGET_AVX512 double rowMaxAvx512(const float* x, Index n) {
  // max_ps(v, m) is m when v is NaN, and m is never NaN.
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  Index i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);
  float best = _mm512_reduce_max_ps(m);
  for (; i < n; i++)
    if (x[i] > best) best = x[i];
  return best;
}
#endif

void expMinus(float* out, const float* x, Index n, double shift) {
#if ANE_X86
  switch (kernels::activeIsa()) {
    case Isa::Avx512:
      return expMinusAvx512(out, x, n, shift);
    case Isa::Avx2:
      return expMinusAvx2(out, x, n, shift);
    default:
      break;
  }
#endif
  for (Index i = 0; i < n; i++) out[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - shift));
}

void sigmoidSpan(float* out, const float* x, Index n, bool silu) {
#if ANE_X86
  switch (kernels::activeIsa()) {
    case Isa::Avx512:
      return sigmoidAvx512(out, x, n, silu);
    case Isa::Avx2:
      return sigmoidAvx2(out, x, n, silu);
    default:
      break;
  }
#endif
  for (Index i = 0; i < n; i++) out[i] = static_cast<float>(silu ? x[i] * sigmoidOf(x[i]) : sigmoidOf(x[i]));
}

double rowMax(const float* x, Index n) {
#if ANE_X86
  if (kernels::activeIsa() == Isa::Avx512) return rowMaxAvx512(x, n);
#endif
  double max = -std::numeric_limits<double>::infinity();
  for (Index i = 0; i < n; i++)
    if (x[i] > max) max = x[i];
  return max;
}

void divideSpan(float* o, Index n, double divisor) {
#if ANE_X86
  switch (kernels::activeIsa()) {
    case Isa::Avx512:
      return divideAvx512(o, n, divisor);
    case Isa::Avx2:
      return divideAvx2(o, n, divisor);
    default:
      break;
  }
#endif
  for (Index i = 0; i < n; i++) o[i] = static_cast<float>(static_cast<double>(o[i]) / divisor);
}

// Splits [0, n) over the pool (one range when small).
template <typename Body>
void forRanges(Index n, const Body& body) {
  if (n < kMinParallel || kernels::hostThreads() < 2) {
    body(0, n);
    return;
  }
  kernels::parallelFor(n, kMinParallel / 2, 64, [&](Index begin, Index end) { body(begin, end); });
}

// ---- the twins' float64 arithmetic -----------------------------------------------------------

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// JS `a ** b`: NaN for a NaN exponent and for (+-1) ** (+-inf), where C's pow says 1.
inline double jsPow(double a, double b) {
  if (std::isnan(b)) return kNaN;
  if (std::isinf(b) && std::fabs(a) == 1.0) return kNaN;
  return std::pow(a, b);
}
// Math.max / Math.min: NaN wins, and +0 is above -0.
inline double jsMax(double a, double b) {
  if (a != a || b != b) return kNaN;
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}
inline double jsMin(double a, double b) {
  if (a != a || b != b) return kNaN;
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}

template <BinaryOp Op>
inline double applyBinary(double a, double b) {
  switch (Op) {
    case BinaryOp::Add:
      return a + b;
    case BinaryOp::Sub:
      return a - b;
    case BinaryOp::Mul:
      return a * b;
    case BinaryOp::RealDiv:
      return a / b;
    case BinaryOp::Pow:
      return jsPow(a, b);
    case BinaryOp::Maximum:
      return jsMax(a, b);
    case BinaryOp::Minimum:
      return jsMin(a, b);
  }
  return kNaN;
}


template <UnaryOp Op>
inline double applyUnary(double v, double epsilon) {
  switch (Op) {
    case UnaryOp::Exp:
      return std::exp(v);
    case UnaryOp::Log:
      return std::log(v + epsilon);
    case UnaryOp::Sqrt:
      return std::sqrt(v);
    case UnaryOp::Rsqrt:
      return 1 / std::sqrt(v + epsilon);
    case UnaryOp::Inverse:
      return 1 / (v + epsilon);
    case UnaryOp::Tanh:
      return std::tanh(v);
    case UnaryOp::Sigmoid:
      return sigmoidOf(v);
    case UnaryOp::Silu:
      return v * sigmoidOf(v);
    case UnaryOp::Relu:
      return v > 0 || std::isnan(v) ? v : 0.0;
  }
  return kNaN;
}

// +, -, * and / computed in float give the float64 result rounded to float (a format of p bits
// computes a correctly rounded one of at most (p - 2) / 2 bits: 53 >= 2 * 24 + 2), so these run on
// float vectors with the twins' bits; a NaN operand comes back quieted with its payload either way.
template <BinaryOp Op>
constexpr bool kExactInFloat =
    Op == BinaryOp::Add || Op == BinaryOp::Sub || Op == BinaryOp::Mul || Op == BinaryOp::RealDiv;

#if ANE_X86
template <BinaryOp Op>
ANE_TARGET_AVX512 inline __m512 binaryAvx512(__m512 a, __m512 b) {
  if constexpr (Op == BinaryOp::Add) return _mm512_add_ps(a, b);
  else if constexpr (Op == BinaryOp::Sub) return _mm512_sub_ps(a, b);
  else if constexpr (Op == BinaryOp::Mul) return _mm512_mul_ps(a, b);
  else return _mm512_div_ps(a, b);
}

// o[0, i) = x OP y for the longest whole-vector prefix, rounded to fp16 on the registers when
// asked; xs, ys: 1 dense, 0 one value for all. Returns i.
template <BinaryOp Op>
ANE_TARGET_AVX512 Index binarySpanAvx512(float* o, const float* x, Index xs, const float* y, Index ys, Index n,
                                         bool round) {
  const __m512 xOne = _mm512_set1_ps(x[0]), yOne = _mm512_set1_ps(y[0]);
  Index i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = binaryAvx512<Op>(xs != 0 ? _mm512_loadu_ps(x + i) : xOne, ys != 0 ? _mm512_loadu_ps(y + i) : yOne);
    if (round) v = kernels::roundedToFp16(v);
    _mm512_storeu_ps(o + i, v);
  }
  return i;
}

template <BinaryOp Op>
ANE_TARGET_AVX2 inline __m256 binaryAvx2(__m256 a, __m256 b) {
  if constexpr (Op == BinaryOp::Add) return _mm256_add_ps(a, b);
  else if constexpr (Op == BinaryOp::Sub) return _mm256_sub_ps(a, b);
  else if constexpr (Op == BinaryOp::Mul) return _mm256_mul_ps(a, b);
  else return _mm256_div_ps(a, b);
}

// binarySpanAvx512 on 8-wide vectors.
template <BinaryOp Op>
ANE_TARGET_AVX2 Index binarySpanAvx2(float* o, const float* x, Index xs, const float* y, Index ys, Index n, bool round) {
  const __m256 xOne = _mm256_set1_ps(x[0]), yOne = _mm256_set1_ps(y[0]);
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = binaryAvx2<Op>(xs != 0 ? _mm256_loadu_ps(x + i) : xOne, ys != 0 ? _mm256_loadu_ps(y + i) : yOne);
    if (round) v = kernels::roundedToFp16(v);
    _mm256_storeu_ps(o + i, v);
  }
  return i;
}
#endif

#if ANE_ARM64
template <BinaryOp Op>
inline float32x4_t binaryNeon(float32x4_t a, float32x4_t b) {
  if constexpr (Op == BinaryOp::Add) return vaddq_f32(a, b);
  else if constexpr (Op == BinaryOp::Sub) return vsubq_f32(a, b);
  else if constexpr (Op == BinaryOp::Mul) return vmulq_f32(a, b);
  else return vdivq_f32(a, b);
}

// binarySpanAvx512 on 4-wide vectors.
template <BinaryOp Op>
Index binarySpanNeon(float* o, const float* x, Index xs, const float* y, Index ys, Index n, bool round) {
  const float32x4_t xOne = vdupq_n_f32(x[0]), yOne = vdupq_n_f32(y[0]);
  Index i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t v = binaryNeon<Op>(xs != 0 ? vld1q_f32(x + i) : xOne, ys != 0 ? vld1q_f32(y + i) : yOne);
    if (round) v = kernels::roundedToFp16(v);
    vst1q_f32(o + i, v);
  }
  return i;
}
#endif

// The vector prefix of a dense or one-value binary op on this CPU: how many of o[0, n) it wrote
// (finished, rounded when asked); 0 where no vector path applies.
template <BinaryOp Op>
Index binarySpanVector(float* o, const float* x, Index xs, const float* y, Index ys, Index n, bool round) {
  if constexpr (kExactInFloat<Op>) {
    if (n <= 0) return 0;
    switch (kernels::activeIsa()) {
#if ANE_X86
      case Isa::Avx512:
        return binarySpanAvx512<Op>(o, x, xs, y, ys, n, round);
      case Isa::Avx2:
        return binarySpanAvx2<Op>(o, x, xs, y, ys, n, round);
#endif
#if ANE_ARM64
      case Isa::Neon:
        return binarySpanNeon<Op>(o, x, xs, y, ys, n, round);
#endif
      default:
        return 0;
    }
  }
  return 0;
}

// out[begin, end) of a walk over two operands; rounds each finished block when asked.
template <BinaryOp Op>
void binaryRange(float* out, const float* x, const float* y, const Walk& w, Index begin, Index end, bool round) {
  const Index xs = w.strides[0], ys = w.strides[1];
  Index i = begin;
  while (i < end) {
    const Index row = i / w.inner;
    const Index col = i - row * w.inner;
    const Index stop = std::min(end, (row + 1) * w.inner);
    const float* xp = x + w.rowOffsets[0][row] + col * xs;
    const float* yp = y + w.rowOffsets[1][row] + col * ys;
    float* o = out + i;
    const Index n = stop - i;
    const bool vectorable = (xs == 0 || xs == 1) && (ys == 0 || ys == 1) && !(xs == 0 && ys == 0);
    const Index done = vectorable ? binarySpanVector<Op>(o, xp, xs, yp, ys, n, round) : 0;
    if (xs == 1 && ys == 1) {
      for (Index k = done; k < n; k++) o[k] = static_cast<float>(applyBinary<Op>(xp[k], yp[k]));
    } else if (xs == 1 && ys == 0) {
      const double b = yp[0];
      for (Index k = done; k < n; k++) o[k] = static_cast<float>(applyBinary<Op>(xp[k], b));
    } else if (xs == 0 && ys == 1) {
      const double a = xp[0];
      for (Index k = done; k < n; k++) o[k] = static_cast<float>(applyBinary<Op>(a, yp[k]));
    } else {
      for (Index k = done; k < n; k++) o[k] = static_cast<float>(applyBinary<Op>(xp[k * xs], yp[k * ys]));
    }
    if (round) roundSpan(o + done, n - done);
    i = stop;
  }
}

template <BinaryOp Op>
void binaryOp(float* out, const float* x, const float* y, const Walk& w, bool round) {
  forRanges(w.rows * w.inner, [&](Index begin, Index end) {
    for (Index b = begin; b < end; b += kBlock) binaryRange<Op>(out, x, y, w, b, std::min(end, b + kBlock), round);
  });
}

// out[0, n) = op(x[0, n)), rounded when asked.
template <UnaryOp Op>
void unarySpan(float* out, const float* x, Index n, double epsilon, bool round) {
  if (Op == UnaryOp::Exp) expMinus(out, x, n, 0.0);
  else if (Op == UnaryOp::Sigmoid || Op == UnaryOp::Silu) sigmoidSpan(out, x, n, Op == UnaryOp::Silu);
  else for (Index i = 0; i < n; i++) out[i] = static_cast<float>(applyUnary<Op>(x[i], epsilon));
  if (round) roundSpan(out, n);
}

template <UnaryOp Op>
void unaryOp(float* out, const float* x, Index n, double epsilon, bool round) {
  forRanges(n, [&](Index begin, Index end) {
    for (Index b = begin; b < end; b += kBlock) unarySpan<Op>(out + b, x + b, std::min(end, b + kBlock) - b, epsilon, round);
  });
}

// A gather's rows go through the tiled transpose when at least this many of them (and of their
// values) form one.
constexpr Index kMinTransposeRun = 8;

template <typename T>
void gather(T* out, const T* src, const Walk& w) {
  const Index stride = w.strides[0];
  const std::int32_t* offsets = w.rowOffsets[0];
  const Index inner = w.inner;
  auto rows = [&](Index first, Index last) {
    for (Index row = first; row < last;) {
      // Rows that start one element apart (out[row + t][k] = src[offsets[row] + t + k * stride]) are
      // a transpose of src [inner, run]: register tiles rather than a strided read per element.
      Index run = 1;
      if constexpr (sizeof(T) == 4) {
        if (stride > 1 && inner >= kMinTransposeRun) {
          while (row + run < last && offsets[row + run] == offsets[row] + run) run++;
        }
      }
      if (run >= kMinTransposeRun) {
        kernels::transposed32OnThisThread(reinterpret_cast<const std::uint32_t*>(src + offsets[row]), stride,
                                          reinterpret_cast<std::uint32_t*>(out + row * inner), inner, inner, run);
        row += run;
        continue;
      }
      const T* s = src + offsets[row];
      T* o = out + row * inner;
      if (stride == 1) {
        std::memcpy(o, s, static_cast<std::size_t>(inner) * sizeof(T));
      } else {
        for (Index k = 0; k < inner; k++) o[k] = s[k * stride];
      }
      row++;
    }
  };
  if (w.rows * inner < kMinParallel || kernels::hostThreads() < 2 || w.rows < 2) {
    rows(0, w.rows);
    return;
  }
  const Index minRows = std::max<Index>(1, kMinParallel / 2 / std::max<Index>(inner, 1));
  kernels::parallelFor(w.rows, minRows, 1, rows);
}

// Rows reduced side by side: each row's max and sum are a chain of dependent float64 steps in
// index order (as the twin computes them), so one row at a time waits on the adder's latency;
// kInterleavedRows independent chains keep it busy, each row's own order unchanged.
constexpr Index kInterleavedRows = 8;

// Rows of a last-axis softmax: x[rows, length].
void softmaxRows(float* out, const float* x, Index first, Index last, Index length, bool round) {
  for (Index row = first; row < last; row += kInterleavedRows) {
    const Index count = std::min(kInterleavedRows, last - row);
    double max[kInterleavedRows];
    double sum[kInterleavedRows];
    const float* xr = x + row * length;
    float* o = out + row * length;
    for (Index k = 0; k < count; k++) {
      max[k] = rowMax(xr + k * length, length);
      sum[k] = 0;
    }
    for (Index k = 0; k < count; k++) expMinus(o + k * length, xr + k * length, length, max[k]);
    for (Index j = 0; j < length; j++)
      for (Index k = 0; k < count; k++) sum[k] += o[k * length + j];
    for (Index k = 0; k < count; k++) {
      divideSpan(o + k * length, length, sum[k]);
      if (round) roundSpan(o + k * length, length);
    }
  }
}

// Columns [first, last) of one outer block of x[reduced, inner] (softmax down each column).
void softmaxColumns(float* out, const float* x, Index reduced, Index inner, Index first, Index last,
                    std::vector<double>& scratch) {
  const Index width = last - first;
  scratch.assign(static_cast<std::size_t>(2 * width), 0.0);
  double* max = scratch.data();
  double* sum = max + width;
  for (Index i = 0; i < width; i++) max[i] = -std::numeric_limits<double>::infinity();
  for (Index r = 0; r < reduced; r++) {
    const float* xr = x + r * inner + first;
    for (Index i = 0; i < width; i++)
      if (xr[i] > max[i]) max[i] = xr[i];
  }
  for (Index r = 0; r < reduced; r++) {
    const float* xr = x + r * inner + first;
    float* o = out + r * inner + first;
    for (Index i = 0; i < width; i++) {
      o[i] = static_cast<float>(std::exp(static_cast<double>(xr[i]) - max[i]));
      sum[i] += o[i];
    }
  }
  for (Index r = 0; r < reduced; r++) {
    float* o = out + r * inner + first;
    for (Index i = 0; i < width; i++) o[i] = static_cast<float>(o[i] / sum[i]);
  }
}

// ---- fused chains -----------------------------------------------------------------------------

// Elements per register: a chain's registers for one block stay in L1 while every op of the chain
// runs over them.
constexpr Index kFusedBlock = 512;

// out[0, n) = x OP y over n elements (xs, ys: 1 dense, 0 one value for all), through binaryRange
// on a one-row walk: the same per-element code as the op run alone.
void binaryDense(BinaryOp op, float* out, const float* x, Index xs, const float* y, Index ys, Index n, bool round) {
  static const std::int32_t zero[1] = {0};
  Walk w;
  w.rows = 1;
  w.inner = n;
  w.strides[0] = xs;
  w.strides[1] = ys;
  w.rowOffsets[0] = w.rowOffsets[1] = zero;
  switch (op) {
    case BinaryOp::Add:
      return binaryRange<BinaryOp::Add>(out, x, y, w, 0, n, round);
    case BinaryOp::Sub:
      return binaryRange<BinaryOp::Sub>(out, x, y, w, 0, n, round);
    case BinaryOp::Mul:
      return binaryRange<BinaryOp::Mul>(out, x, y, w, 0, n, round);
    case BinaryOp::RealDiv:
      return binaryRange<BinaryOp::RealDiv>(out, x, y, w, 0, n, round);
    case BinaryOp::Pow:
      return binaryRange<BinaryOp::Pow>(out, x, y, w, 0, n, round);
    case BinaryOp::Maximum:
      return binaryRange<BinaryOp::Maximum>(out, x, y, w, 0, n, round);
    case BinaryOp::Minimum:
      return binaryRange<BinaryOp::Minimum>(out, x, y, w, 0, n, round);
  }
}

void unaryDense(UnaryOp op, float* out, const float* x, Index n, double epsilon, bool round) {
  switch (op) {
    case UnaryOp::Exp:
      return unarySpan<UnaryOp::Exp>(out, x, n, epsilon, round);
    case UnaryOp::Log:
      return unarySpan<UnaryOp::Log>(out, x, n, epsilon, round);
    case UnaryOp::Sqrt:
      return unarySpan<UnaryOp::Sqrt>(out, x, n, epsilon, round);
    case UnaryOp::Rsqrt:
      return unarySpan<UnaryOp::Rsqrt>(out, x, n, epsilon, round);
    case UnaryOp::Inverse:
      return unarySpan<UnaryOp::Inverse>(out, x, n, epsilon, round);
    case UnaryOp::Tanh:
      return unarySpan<UnaryOp::Tanh>(out, x, n, epsilon, round);
    case UnaryOp::Sigmoid:
      return unarySpan<UnaryOp::Sigmoid>(out, x, n, epsilon, round);
    case UnaryOp::Silu:
      return unarySpan<UnaryOp::Silu>(out, x, n, epsilon, round);
    case UnaryOp::Relu:
      return unarySpan<UnaryOp::Relu>(out, x, n, epsilon, round);
  }
}

// reg[0, end - begin) = the operand's elements [begin, end) of the chain's index space.
void gatherOperand(float* reg, const FusedOperand& operand, Index begin, Index end) {
  Index i = begin;
  while (i < end) {
    const Index row = i / operand.inner;
    const Index stop = std::min(end, (row + 1) * operand.inner);
    const float* src = operand.data + operand.rowOffsets[row] + (i - row * operand.inner) * operand.stride;
    const Index n = stop - i;
    if (operand.stride == 1) std::memcpy(reg, src, static_cast<std::size_t>(n) * sizeof(float));
    else if (operand.stride == 0) std::fill(reg, reg + n, src[0]);
    else for (Index k = 0; k < n; k++) reg[k] = src[k * operand.stride];
    reg += n;
    i = stop;
  }
}

// Where a register's values for the current block are: its own storage, an operand's memory read
// in place, or the output it was stored to. stride 0: one value stands for the whole block.
struct Source {
  const float* at = nullptr;
  Index stride = 1;
};

// Blocks end at multiples of `rowLength` too, so that an operand whose rows are that long (or a
// multiple) is read in place rather than gathered across a row boundary.
void fusedRange(const FusedChain& chain, Index rowLength, Index begin, Index end) {
  thread_local std::vector<float> file;
  thread_local std::vector<Source> sources;
  file.resize(static_cast<std::size_t>(chain.registers * kFusedBlock));
  sources.resize(static_cast<std::size_t>(chain.registers));
  const auto reg = [&](int r) { return file.data() + static_cast<Index>(r) * kFusedBlock; };
  for (Index b = begin, stop = 0; b < end; b = stop) {
    stop = std::min({end, b + kFusedBlock, (b / rowLength + 1) * rowLength});
    const Index n = stop - b;
    for (Index k = 0; k < chain.count; k++) {
      const FusedInstruction& in = chain.code[k];
      // An op whose value is stored next computes straight into the output.
      const auto target = [&]() {
        const bool storedNext = k + 1 < chain.count && chain.code[k + 1].kind == FusedKind::Store && chain.code[k + 1].a == in.dst;
        return storedNext ? chain.outputs[chain.code[++k].dst] + b : reg(in.dst);
      };
      switch (in.kind) {
        case FusedKind::Load: {
          // In place when the block lies in one row of a unit or zero stride, else gathered.
          const FusedOperand& operand = chain.operands[in.a];
          const Index row = b / operand.inner;
          if (stop <= (row + 1) * operand.inner && (operand.stride == 1 || operand.stride == 0)) {
            sources[in.dst] = {operand.data + operand.rowOffsets[row] + (b - row * operand.inner) * operand.stride,
                               operand.stride};
          } else {
            gatherOperand(reg(in.dst), operand, b, stop);
            sources[in.dst] = {reg(in.dst), 1};
          }
          break;
        }
        case FusedKind::Binary: {
          const Source x = sources[in.a], y = sources[in.b];
          float* out = target();
          binaryDense(static_cast<BinaryOp>(in.op), out, x.at, x.stride, y.at, y.stride, n, in.round);
          sources[in.dst] = {out, 1};
          break;
        }
        case FusedKind::Unary: {
          Source x = sources[in.a];
          if (x.stride == 0) {
            std::fill(reg(in.a), reg(in.a) + n, x.at[0]);
            x = sources[in.a] = {reg(in.a), 1};
          }
          float* out = target();
          unaryDense(static_cast<UnaryOp>(in.op), out, x.at, n, in.epsilon, in.round);
          sources[in.dst] = {out, 1};
          break;
        }
        case FusedKind::Store: {
          float* out = chain.outputs[in.dst] + b;
          const Source x = sources[in.a];
          if (x.at == out) break;
          if (x.stride == 0) std::fill(out, out + n, x.at[0]);
          else std::memcpy(out, x.at, static_cast<std::size_t>(n) * sizeof(float));
          break;
        }
      }
    }
  }
}

}  // namespace

void fusedElementwise(const FusedChain& chain) {
  if (chain.length <= 0) return;
  // The shortest operand row, unless so short that blocks of it would cost more than gathering.
  Index rowLength = chain.length;
  for (Index k = 0; k < chain.operandCount; k++) rowLength = std::min(rowLength, chain.operands[k].inner);
  if (rowLength < kFusedBlock / 8) rowLength = chain.length;
  if (chain.length < kMinParallel || kernels::hostThreads() < 2) return fusedRange(chain, rowLength, 0, chain.length);
  kernels::parallelFor(chain.length, kMinParallel / 2, kFusedBlock,
                       [&](Index begin, Index end) { fusedRange(chain, rowLength, begin, end); });
}

void binary(BinaryOp op, float* out, const float* x, const float* y, const Walk& walk, bool roundFp16) {
  switch (op) {
    case BinaryOp::Add:
      return binaryOp<BinaryOp::Add>(out, x, y, walk, roundFp16);
    case BinaryOp::Sub:
      return binaryOp<BinaryOp::Sub>(out, x, y, walk, roundFp16);
    case BinaryOp::Mul:
      return binaryOp<BinaryOp::Mul>(out, x, y, walk, roundFp16);
    case BinaryOp::RealDiv:
      return binaryOp<BinaryOp::RealDiv>(out, x, y, walk, roundFp16);
    case BinaryOp::Pow:
      return binaryOp<BinaryOp::Pow>(out, x, y, walk, roundFp16);
    case BinaryOp::Maximum:
      return binaryOp<BinaryOp::Maximum>(out, x, y, walk, roundFp16);
    case BinaryOp::Minimum:
      return binaryOp<BinaryOp::Minimum>(out, x, y, walk, roundFp16);
  }
}

void unary(UnaryOp op, float* out, const float* x, Index n, double epsilon, bool roundFp16) {
  switch (op) {
    case UnaryOp::Exp:
      return unaryOp<UnaryOp::Exp>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Log:
      return unaryOp<UnaryOp::Log>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Sqrt:
      return unaryOp<UnaryOp::Sqrt>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Rsqrt:
      return unaryOp<UnaryOp::Rsqrt>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Inverse:
      return unaryOp<UnaryOp::Inverse>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Tanh:
      return unaryOp<UnaryOp::Tanh>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Sigmoid:
      return unaryOp<UnaryOp::Sigmoid>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Silu:
      return unaryOp<UnaryOp::Silu>(out, x, n, epsilon, roundFp16);
    case UnaryOp::Relu:
      return unaryOp<UnaryOp::Relu>(out, x, n, epsilon, roundFp16);
  }
}

void roundToFp16(float* data, Index n, double saturateAt) {
  forRanges(n, [&](Index begin, Index end) {
    for (Index b = begin; b < end; b += kBlock) {
      const Index stop = std::min(end, b + kBlock);
      roundSpan(data + b, stop - b);
      if (std::isfinite(saturateAt)) saturateSpan(data + b, stop - b, saturateAt, true);
    }
  });
}

void saturateToInfinity(float* data, Index n, double threshold, bool inclusive) {
  forRanges(n, [&](Index begin, Index end) { saturateSpan(data + begin, end - begin, threshold, inclusive); });
}

template <ReduceKind Kind>
inline double accumulate(double a, double v) {
  switch (Kind) {
    case ReduceKind::Sum:
    case ReduceKind::Mean:
      return a + v;
    case ReduceKind::SumSquare:
    case ReduceKind::L2Norm:
      return a + v * v;
    case ReduceKind::L1Norm:
      return a + std::fabs(v);
    case ReduceKind::Max:
      return v > a || std::isnan(v) ? v : a;
    case ReduceKind::Min:
      return v < a || std::isnan(v) ? v : a;
    case ReduceKind::Prod:
      return a * v;
  }
  return kNaN;
}

template <ReduceKind Kind>
void reduceKind(float* out, const float* x, Index outer, Index reduced, Index inner, bool round) {
  const double start = Kind == ReduceKind::Max   ? -std::numeric_limits<double>::infinity()
                       : Kind == ReduceKind::Min ? std::numeric_limits<double>::infinity()
                       : Kind == ReduceKind::Prod ? 1.0
                                                  : 0.0;
  auto finish = [&](double a) {
    if (Kind == ReduceKind::Mean) return a / static_cast<double>(reduced);
    if (Kind == ReduceKind::L2Norm) return std::sqrt(a);
    return a;
  };
  // Output columns [first, last) of x viewed as [outer * inner] columns of `reduced` values each.
  auto columns = [&](Index first, Index last) {
    if (inner == 1) {
      // Each column is a contiguous row: reduce kInterleavedRows of them side by side.
      for (Index c = first; c < last; c += kInterleavedRows) {
        const Index count = std::min(kInterleavedRows, last - c);
        double acc[kInterleavedRows];
        for (Index k = 0; k < count; k++) acc[k] = start;
        const float* rows = x + c * reduced;
        for (Index r = 0; r < reduced; r++)
          for (Index k = 0; k < count; k++) acc[k] = accumulate<Kind>(acc[k], rows[k * reduced + r]);
        for (Index k = 0; k < count; k++) out[c + k] = static_cast<float>(finish(acc[k]));
        if (round) roundSpan(out + c, count);
      }
      return;
    }
    std::vector<double> acc;
    Index c = first;
    while (c < last) {
      const Index b = c / inner;
      const Index i0 = c - b * inner;
      const Index i1 = std::min(inner, i0 + (last - c));
      const Index width = i1 - i0;
      acc.assign(static_cast<std::size_t>(width), start);
      const float* base = x + b * reduced * inner + i0;
      for (Index r = 0; r < reduced; r++) {
        const float* row = base + r * inner;
        for (Index k = 0; k < width; k++) acc[static_cast<std::size_t>(k)] = accumulate<Kind>(acc[static_cast<std::size_t>(k)], row[k]);
      }
      float* o = out + b * inner + i0;
      for (Index k = 0; k < width; k++) o[k] = static_cast<float>(finish(acc[static_cast<std::size_t>(k)]));
      if (round) roundSpan(o, width);
      c += width;
    }
  };
  const Index columnsTotal = outer * inner;
  if (columnsTotal * reduced < kMinParallel || kernels::hostThreads() < 2 || columnsTotal < 2) {
    columns(0, columnsTotal);
  } else {
    kernels::parallelFor(columnsTotal, 1, 1, columns);
  }
}

template <typename T>
void copyRows(T* dst, Index dstStride, const T* src, Index srcStride, Index rows, Index cols) {
  for (Index r = 0; r < rows; r++) {
    std::memcpy(dst + r * dstStride, src + r * srcStride, static_cast<std::size_t>(cols) * sizeof(T));
  }
}

void gather32(std::uint32_t* out, const std::uint32_t* src, const Walk& walk) { gather(out, src, walk); }
void gather8(std::uint8_t* out, const std::uint8_t* src, const Walk& walk) { gather(out, src, walk); }

void copyRows32(std::uint32_t* dst, Index dstStride, const std::uint32_t* src, Index srcStride, Index rows, Index cols) {
  copyRows(dst, dstStride, src, srcStride, rows, cols);
}
void copyRows8(std::uint8_t* dst, Index dstStride, const std::uint8_t* src, Index srcStride, Index rows, Index cols) {
  copyRows(dst, dstStride, src, srcStride, rows, cols);
}

void reduce(ReduceKind kind, float* out, const float* x, Index outer, Index reduced, Index inner, bool roundFp16) {
  if (outer == 0 || inner == 0) return;
  switch (kind) {
    case ReduceKind::Sum:
      return reduceKind<ReduceKind::Sum>(out, x, outer, reduced, inner, roundFp16);
    case ReduceKind::Mean:
      return reduceKind<ReduceKind::Mean>(out, x, outer, reduced, inner, roundFp16);
    case ReduceKind::SumSquare:
      return reduceKind<ReduceKind::SumSquare>(out, x, outer, reduced, inner, roundFp16);
    case ReduceKind::L1Norm:
      return reduceKind<ReduceKind::L1Norm>(out, x, outer, reduced, inner, roundFp16);
    case ReduceKind::L2Norm:
      return reduceKind<ReduceKind::L2Norm>(out, x, outer, reduced, inner, roundFp16);
    case ReduceKind::Max:
      return reduceKind<ReduceKind::Max>(out, x, outer, reduced, inner, roundFp16);
    case ReduceKind::Min:
      return reduceKind<ReduceKind::Min>(out, x, outer, reduced, inner, roundFp16);
    case ReduceKind::Prod:
      return reduceKind<ReduceKind::Prod>(out, x, outer, reduced, inner, roundFp16);
  }
}

void softmax(float* out, const float* x, Index outer, Index reduced, Index inner, bool roundFp16) {
  if (outer == 0 || reduced == 0 || inner == 0) return;
  if (inner == 1) {
    const Index minRows = std::max<Index>(1, kMinParallel / 4 / reduced);
    if (outer * reduced < kMinParallel || kernels::hostThreads() < 2 || outer < 2) {
      softmaxRows(out, x, 0, outer, reduced, roundFp16);
    } else {
      kernels::parallelFor(outer, minRows, 1,
                           [&](Index first, Index last) { softmaxRows(out, x, first, last, reduced, roundFp16); });
    }
    return;
  }
  // Columns of each outer block, split into chunks the pool shares; a chunk never spans two blocks.
  const Index chunk = 256;
  const Index chunksPerBlock = (inner + chunk - 1) / chunk;
  auto run = [&](Index firstTask, Index lastTask) {
    std::vector<double> scratch;
    for (Index task = firstTask; task < lastTask; task++) {
      const Index b = task / chunksPerBlock;
      const Index first = (task - b * chunksPerBlock) * chunk;
      const Index last = std::min(inner, first + chunk);
      const Index base = b * reduced * inner;
      softmaxColumns(out + base, x + base, reduced, inner, first, last, scratch);
      if (roundFp16) {
        for (Index r = 0; r < reduced; r++) roundSpan(out + base + r * inner + first, last - first);
      }
    }
  };
  const Index tasks = outer * chunksPerBlock;
  if (outer * reduced * inner < kMinParallel || kernels::hostThreads() < 2 || tasks < 2) {
    run(0, tasks);
  } else {
    kernels::parallelFor(tasks, 1, 1, run);
  }
}

void finishMatmul(float* c, Index ld, Index rows, Index cols, const MatmulFinish& finish) {
  const bool saturate = std::isfinite(finish.saturateAt);
  if (!finish.roundFp16 && !saturate) return;
  // One span when the rows are contiguous (a dense block), else row by row.
  const Index spans = ld == cols ? 1 : rows;
  const Index span = ld == cols ? rows * cols : cols;
  for (Index r = 0; r < spans; r++) {
    float* p = c + r * ld;
    if (finish.roundFp16) roundSpan(p, span);
    if (saturate) saturateSpan(p, span, finish.saturateAt, true);
  }
}

kernels::GemmEpilogue matmulEpilogue(const MatmulFinish& finish) {
  kernels::GemmEpilogue epilogue{[](float* c, Index ld, Index rows, Index cols, const void* context) {
                                   finishMatmul(c, ld, rows, cols, *static_cast<const MatmulFinish*>(context));
                                 },
                                 &finish};
  // In registers when saturateSpan would compare in float: no limit, or a positive float one.
  const double at = finish.saturateAt;
  const bool floatLimit = std::isfinite(at) && at > 0 && static_cast<double>(static_cast<float>(at)) == at;
  if (finish.roundFp16 && (at == std::numeric_limits<double>::infinity() || floatLimit)) {
    epilogue.fp16InRegisters = true;
    epilogue.saturateLimit = floatLimit ? static_cast<float>(at) : std::numeric_limits<float>::infinity();
  }
  return epilogue;
}

void batchedMatmul(float* out, const float* x, const float* y, bool transX, bool transY, Index M, Index N, Index K,
                   float alpha, const std::int32_t* xOffsets, const std::int32_t* yOffsets, Index batch,
                   const MatmulFinish& finish) {
  const Index lda = transX ? M : K;
  const Index ldb = transY ? K : N;
  const kernels::GemmEpilogue epilogue = matmulEpilogue(finish);
  auto entry = [&](Index b) {
    kernels::sgemmHalfOperands(transX, transY, M, N, K, alpha, x + xOffsets[b], nullptr, lda, y + yOffsets[b], nullptr,
                               ldb, 0.0f, out + b * M * N, N, epilogue);
  };
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  // An entry sgemm would split runs alone on the whole pool; small ones (attention's per-head
  // products) would each leave all but one thread idle, so the pool takes them one per task
  // (inside a task, sgemm finds the pool busy and stays on its thread: the same arithmetic).
  if (batch < 2 || kernels::hostThreads() < 2 || work >= kernels::kSgemmMinParallelWork ||
      work * static_cast<double>(batch) < kernels::kSgemmMinParallelWork) {
    for (Index b = 0; b < batch; b++) entry(b);
    return;
  }
  kernels::runTasks(static_cast<int>(batch), [&](int b) { entry(b); });
}

}  // namespace sim
}  // namespace ane
