// fp32 <-> fp16 conversion (see kernels.h for the rounding, overflow and NaN rules). The SIMD
// paths use the hardware converters (x86 F16C / AVX-512F vcvtps2ph with round-to-nearest-even,
// arm64 fcvtn), which implement exactly the rules of the scalar code below; the tests hold all of
// them to the scalar code bit for bit.
#include <algorithm>
#include <cstring>

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

namespace {

constexpr std::uint16_t kHalfMax = 0x7bff;
constexpr std::uint16_t kHalfInf = 0x7c00;

inline std::uint32_t floatBits(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

inline float bitsFloat(std::uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace

std::uint16_t fp32ToFp16Scalar(float x, bool saturate) {
  const std::uint32_t f = floatBits(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((f >> 16) & 0x8000u);
  const std::uint32_t abs = f & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN
  if (abs == 0x7f800000u) return static_cast<std::uint16_t>(sign | kHalfInf);                        // inf
  std::uint32_t half;
  if (abs >= 0x47800000u) {
    half = kHalfInf;  // >= 65536
  } else if (abs >= 0x38800000u) {
    // Normal: rebias the exponent (127 -> 15), drop 13 mantissa bits, round to nearest even; a
    // carry out of the mantissa correctly bumps the exponent (65520 and up become inf).
    half = (abs - 0x38000000u) >> 13;
    const std::uint32_t dropped = abs & 0x1fffu;
    if (dropped > 0x1000u || (dropped == 0x1000u && (half & 1u))) half++;
  } else if (abs > 0x33000000u) {
    // Subnormal half (units of 2^-24): shift the full significand right, round to nearest even.
    const std::uint32_t exponent = abs >> 23;                  // 102..112
    const std::uint32_t significand = (abs & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - exponent;               // 14..24
    half = significand >> shift;
    const std::uint32_t dropped = significand & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (dropped > halfway || (dropped == halfway && (half & 1u))) half++;
  } else {
    half = 0;  // |x| <= 2^-25 rounds to zero (2^-25 itself is a tie, to the even 0)
  }
  if (saturate && half == kHalfInf) half = kHalfMax;
  return static_cast<std::uint16_t>(sign | half);
}

float fp16ToFp32Scalar(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) {
    // inf; NaN comes back quieted (as F16C and fcvtl do), payload kept
    return bitsFloat(sign | 0x7f800000u | (mantissa != 0 ? 0x400000u : 0u) | (mantissa << 13));
  }
  if (exponent != 0) return bitsFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return bitsFloat(sign);
  // Subnormal half: mantissa * 2^-24, exact in fp32.
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
  return sign ? -magnitude : magnitude;
}

namespace {

// ---- portable runs -------------------------------------------------------------------------

void toHalfScalar(const float* src, std::uint16_t* dst, std::ptrdiff_t n, bool saturate, bool /*stream*/) {
  for (std::ptrdiff_t i = 0; i < n; i++) dst[i] = fp32ToFp16Scalar(src[i], saturate);
}

void toFloatScalar(const std::uint16_t* src, float* dst, std::ptrdiff_t n, bool /*stream*/) {
  for (std::ptrdiff_t i = 0; i < n; i++) dst[i] = fp16ToFp32Scalar(src[i]);
}

#if ANE_X86

// ---- AVX2 + F16C: 8 lanes ------------------------------------------------------------------

// Clamps finite lanes to +-65504; NaN and +-inf pass through (minps/maxps return their second
// operand when either is NaN, so x goes second).
ANE_TARGET_AVX2 inline __m256 saturate8(__m256 x) {
  const __m256 clamped = _mm256_max_ps(_mm256_set1_ps(-65504.0f), _mm256_min_ps(_mm256_set1_ps(65504.0f), x));
  const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 isInf = _mm256_cmp_ps(abs, _mm256_set1_ps(__builtin_inff()), _CMP_EQ_OQ);
  return _mm256_blendv_ps(clamped, x, isInf);
}

ANE_TARGET_AVX2 void toHalfAvx2(const float* src, std::uint16_t* dst, std::ptrdiff_t n, bool saturate, bool stream) {
  std::ptrdiff_t i = 0;
  if (stream) {
    for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 15u) != 0; i++) dst[i] = fp32ToFp16Scalar(src[i], saturate);
    for (; i + 16 <= n; i += 16) {
      __m256 a = _mm256_loadu_ps(src + i), b = _mm256_loadu_ps(src + i + 8);
      if (saturate) a = saturate8(a), b = saturate8(b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 8), _mm256_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT));
    }
    _mm_sfence();
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_loadu_ps(src + i);
    if (saturate) a = saturate8(a);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; i++) dst[i] = fp32ToFp16Scalar(src[i], saturate);
}

ANE_TARGET_AVX2 void toFloatAvx2(const std::uint16_t* src, float* dst, std::ptrdiff_t n, bool stream) {
  std::ptrdiff_t i = 0;
  if (stream) {
    for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 31u) != 0; i++) dst[i] = fp16ToFp32Scalar(src[i]);
    for (; i + 16 <= n; i += 16) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 8));
      _mm256_stream_ps(dst + i, _mm256_cvtph_ps(a));
      _mm256_stream_ps(dst + i + 8, _mm256_cvtph_ps(b));
    }
    _mm_sfence();
  }
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; i++) dst[i] = fp16ToFp32Scalar(src[i]);
}

// ---- AVX-512F: 16 lanes ----------------------------------------------------------------------

ANE_TARGET_AVX512 inline __m512 saturate16(__m512 x) {
  const __m512 clamped = _mm512_max_ps(_mm512_set1_ps(-65504.0f), _mm512_min_ps(_mm512_set1_ps(65504.0f), x));
  const __m512 abs = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
  const __mmask16 isInf = _mm512_cmp_ps_mask(abs, _mm512_set1_ps(__builtin_inff()), _CMP_EQ_OQ);
  return _mm512_mask_blend_ps(isInf, clamped, x);
}

ANE_TARGET_AVX512 void toHalfAvx512(const float* src, std::uint16_t* dst, std::ptrdiff_t n, bool saturate,
                                    bool stream) {
  std::ptrdiff_t i = 0;
  if (stream) {
    for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 31u) != 0; i++) dst[i] = fp32ToFp16Scalar(src[i], saturate);
    for (; i + 32 <= n; i += 32) {
      __m512 a = _mm512_loadu_ps(src + i), b = _mm512_loadu_ps(src + i + 16);
      if (saturate) a = saturate16(a), b = saturate16(b);
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 16), _mm512_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT));
    }
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) {
    __m512 a = _mm512_loadu_ps(src + i);
    if (saturate) a = saturate16(a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
  }
  toHalfAvx2(src + i, dst + i, n - i, saturate, false);
}

ANE_TARGET_AVX512 void toFloatAvx512(const std::uint16_t* src, float* dst, std::ptrdiff_t n, bool stream) {
  std::ptrdiff_t i = 0;
  if (stream) {
    for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 63u) != 0; i++) dst[i] = fp16ToFp32Scalar(src[i]);
    for (; i + 32 <= n; i += 32) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 16));
      _mm512_stream_ps(dst + i, _mm512_cvtph_ps(a));
      _mm512_stream_ps(dst + i + 16, _mm512_cvtph_ps(b));
    }
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
  toFloatAvx2(src + i, dst + i, n - i, false);
}

#endif  // ANE_X86

#if ANE_ARM64

// ---- NEON: fcvtn / fcvtl, 8 lanes per step -------------------------------------------------------

inline float32x4_t saturate4(float32x4_t x) {
  // FMIN/FMAX propagate NaN; +-inf is put back after the clamp.
  const float32x4_t clamped = vmaxq_f32(vminq_f32(x, vdupq_n_f32(65504.0f)), vdupq_n_f32(-65504.0f));
  const uint32x4_t isInf = vceqq_f32(vabsq_f32(x), vdupq_n_f32(__builtin_inff()));
  return vbslq_f32(isInf, x, clamped);
}

void toHalfNeon(const float* src, std::uint16_t* dst, std::ptrdiff_t n, bool saturate, bool /*stream*/) {
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t a = vld1q_f32(src + i), b = vld1q_f32(src + i + 4);
    if (saturate) a = saturate4(a), b = saturate4(b);
    const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(a), b);
    vst1q_u16(dst + i, vreinterpretq_u16_f16(h));
  }
  for (; i < n; i++) dst[i] = fp32ToFp16Scalar(src[i], saturate);
}

void toFloatNeon(const std::uint16_t* src, float* dst, std::ptrdiff_t n, bool /*stream*/) {
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(src + i));
    vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(h)));
    vst1q_f32(dst + i + 4, vcvt_high_f32_f16(h));
  }
  for (; i < n; i++) dst[i] = fp16ToFp32Scalar(src[i]);
}

#endif  // ANE_ARM64

// Outputs at least this large bypass the caches (non-temporal stores): they cannot stay cached,
// and streaming them avoids reading every destination line before overwriting it.
constexpr std::size_t kStreamBytes = std::size_t{8} << 20;
// Elements per parallel task, at least.
constexpr std::ptrdiff_t kMinParallel = std::ptrdiff_t{1} << 16;

}  // namespace

ToHalfRun toHalfRunFor(Isa isa) {
  switch (isa) {
#if ANE_X86
    case Isa::Avx512:
      return toHalfAvx512;
    case Isa::Avx2:
      return toHalfAvx2;
#endif
#if ANE_ARM64
    case Isa::Neon:
      return toHalfNeon;
#endif
    default:
      return toHalfScalar;
  }
}

ToFloatRun toFloatRunFor(Isa isa) {
  switch (isa) {
#if ANE_X86
    case Isa::Avx512:
      return toFloatAvx512;
    case Isa::Avx2:
      return toFloatAvx2;
#endif
#if ANE_ARM64
    case Isa::Neon:
      return toFloatNeon;
#endif
    default:
      return toFloatScalar;
  }
}

void fp32ToFp16(const float* src, std::ptrdiff_t srcStride, std::uint16_t* dst, std::ptrdiff_t dstStride,
                std::ptrdiff_t rows, std::ptrdiff_t cols, bool saturate) {
  if (rows <= 0 || cols <= 0) return;
  const ToHalfRun run = toHalfRunFor(activeIsa());
  const bool stream = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols) * 2 >= kStreamBytes;
  if (rows == 1 || (srcStride == cols && dstStride == cols)) {
    // One contiguous run: split it evenly (64-element boundaries keep stores aligned).
    parallelFor(rows * cols, kMinParallel, 64, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
      run(src + begin, dst + begin, end - begin, saturate, stream);
    });
    return;
  }
  const std::ptrdiff_t minRows = std::max<std::ptrdiff_t>(1, kMinParallel / cols);
  parallelFor(rows, minRows, 1, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
    for (std::ptrdiff_t r = begin; r < end; r++) run(src + r * srcStride, dst + r * dstStride, cols, saturate, stream);
  });
}

void fp16ToFp32(const std::uint16_t* src, std::ptrdiff_t srcStride, float* dst, std::ptrdiff_t dstStride,
                std::ptrdiff_t rows, std::ptrdiff_t cols) {
  if (rows <= 0 || cols <= 0) return;
  const ToFloatRun run = toFloatRunFor(activeIsa());
  const bool stream = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols) * 4 >= kStreamBytes;
  if (rows == 1 || (srcStride == cols && dstStride == cols)) {
    parallelFor(rows * cols, kMinParallel, 64, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
      run(src + begin, dst + begin, end - begin, stream);
    });
    return;
  }
  const std::ptrdiff_t minRows = std::max<std::ptrdiff_t>(1, kMinParallel / cols);
  parallelFor(rows, minRows, 1, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
    for (std::ptrdiff_t r = begin; r < end; r++) run(src + r * srcStride, dst + r * dstStride, cols, stream);
  });
}

}  // namespace kernels
}  // namespace ane
