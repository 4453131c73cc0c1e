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
#include "transpose8x8.h"

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
// ...when their rows are at least this long: a short strided row (a weight's 288 columns staged
// into a packed input) would stream partial lines and fence once per row, several times slower
// than plain stores.
constexpr std::size_t kStreamRowBytes = 4096;

bool streams(std::ptrdiff_t rows, std::ptrdiff_t cols, std::size_t elementBytes, bool contiguous) {
  const std::size_t row = static_cast<std::size_t>(cols) * elementBytes;
  return static_cast<std::size_t>(rows) * row >= kStreamBytes && (contiguous || row >= kStreamRowBytes);
}
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

void fp16ToFp32Run(const std::uint16_t* src, float* dst, std::ptrdiff_t n) {
  if (n > 0) toFloatRunFor(activeIsa())(src, dst, n, false);
}

void fp32ToFp16(const float* src, std::ptrdiff_t srcStride, std::uint16_t* dst, std::ptrdiff_t dstStride,
                std::ptrdiff_t rows, std::ptrdiff_t cols, bool saturate) {
  if (rows <= 0 || cols <= 0) return;
  const ToHalfRun run = toHalfRunFor(activeIsa());
  const bool contiguous = rows == 1 || (srcStride == cols && dstStride == cols);
  const bool stream = streams(rows, cols, 2, contiguous);
  if (contiguous) {
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
  const bool contiguous = rows == 1 || (srcStride == cols && dstStride == cols);
  const bool stream = streams(rows, cols, 4, contiguous);
  if (contiguous) {
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


// ---- transposed blocks ---------------------------------------------------------------------------
// dst[c*dstStride + r] = convert(src[r*srcStride + c]). The block is cut into cache blocks (64 x 64:
// 16 KiB of fp32 and 8 KiB of fp16 stay in L1; see transposed() for the 128 x 128 staged case),
// each covered by square register tiles: a tile of T rows is loaded row by row, transposed in registers
// (unpack/shuffle networks, bit-exact: NaN payloads untouched), converted by the hardware
// converter and stored row by row into dst. The edges that do not fill a tile go to the next
// smaller tile (AVX-512 16x16 -> AVX2 8x8 -> scalar; NEON 4x4 -> scalar).

namespace {

using Index = std::ptrdiff_t;

inline std::uint16_t convertScalar(float x, bool saturate) { return fp32ToFp16Scalar(x, saturate); }
inline float convertScalar(std::uint16_t h, bool /*saturate*/) { return fp16ToFp32Scalar(h); }
inline std::uint32_t convertScalar(std::uint32_t bits, bool /*saturate*/) { return bits; }

// A whole block (any rows x cols), or a tile (exactly T x T); saturate is ignored by fp16 -> fp32.
//   src: [rows, srcStride] S, dst: [cols, dstStride] D
template <typename S, typename D>
using TransposedBlock = void (*)(const S* src, Index srcStride, D* dst, Index dstStride, Index rows, Index cols,
                                 bool saturate);
template <typename S, typename D>
using TransposedTile = void (*)(const S* src, Index srcStride, D* dst, Index dstStride, bool saturate);

template <typename S, typename D>
void transposedScalar(const S* src, Index srcStride, D* dst, Index dstStride, Index rows, Index cols, bool saturate) {
  for (Index c = 0; c < cols; c++) {
    D* out = dst + c * dstStride;
    for (Index r = 0; r < rows; r++) out[r] = convertScalar(src[r * srcStride + c], saturate);
  }
}

// Full T x T tiles by Tile; the right and bottom edges by Edge (a smaller tile size, or scalar).
template <typename S, typename D, Index T, TransposedTile<S, D> Tile, TransposedBlock<S, D> Edge>
void transposedTiled(const S* src, Index srcStride, D* dst, Index dstStride, Index rows, Index cols, bool saturate) {
  const Index fullRows = rows - rows % T, fullCols = cols - cols % T;
  for (Index r = 0; r < fullRows; r += T) {
    for (Index c = 0; c < fullCols; c += T) Tile(src + r * srcStride + c, srcStride, dst + c * dstStride + r, dstStride, saturate);
  }
  if (cols > fullCols) Edge(src + fullCols, srcStride, dst + fullCols * dstStride, dstStride, rows, cols - fullCols, saturate);
  if (rows > fullRows && fullCols > 0) {
    Edge(src + fullRows * srcStride, srcStride, dst + fullRows, dstStride, rows - fullRows, fullCols, saturate);
  }
}

#if ANE_X86

// ---- AVX2 + F16C: 8 x 8 tiles ----------------------------------------------------------------

//   src: [8, srcStride] fp32, dst: [8, dstStride] fp16 bits
ANE_TARGET_AVX2 void toHalfTileAvx2(const float* src, Index srcStride, std::uint16_t* dst, Index dstStride,
                                    bool saturate) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * srcStride);
  transpose8x8(r);
  for (int i = 0; i < 8; i++) {
    const __m256 x = saturate ? saturate8(r[i]) : r[i];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i * dstStride), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
  }
}

//   src: [8, srcStride] fp16 bits, dst: [8, dstStride] fp32
ANE_TARGET_AVX2 void toFloatTileAvx2(const std::uint16_t* src, Index srcStride, float* dst, Index dstStride,
                                     bool /*saturate*/) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) {
    r[i] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * srcStride)));
  }
  transpose8x8(r);
  for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + i * dstStride, r[i]);
}

//   src: [8, srcStride] 32-bit patterns, dst: [8, dstStride]; moved as floats, which never alters a bit
ANE_TARGET_AVX2 void copyTileAvx2(const std::uint32_t* src, Index srcStride, std::uint32_t* dst, Index dstStride,
                                  bool /*saturate*/) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + i * srcStride));
  transpose8x8(r);
  for (int i = 0; i < 8; i++) _mm256_storeu_ps(reinterpret_cast<float*>(dst + i * dstStride), r[i]);
}

// ---- AVX-512F: 16 x 16 tiles -----------------------------------------------------------------

// In place: r[i][j] <- r[j][i] (rows of 16 floats, four 128-bit lanes each).
ANE_TARGET_AVX512 inline void transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // lane L: r0[4L] r1[4L] r0[4L+1] r1[4L+1]
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // lane L: columns 4L+2, 4L+3
  }
  // u[4g + k], lane L: rows 4g..4g+3 of column 4L + k.
  for (int g = 0; g < 4; g++) {
    u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  // Gather lane L of u[k], u[4+k], u[8+k], u[12+k] into column 4L + k.
  for (int k = 0; k < 4; k++) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88);  // lanes 0, 2 of each
    const __m512 v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xdd);  // lanes 1, 3
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xdd);
    r[k] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[8 + k] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
    r[4 + k] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + k] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
  }
}

//   src: [16, srcStride] fp32, dst: [16, dstStride] fp16 bits
ANE_TARGET_AVX512 void toHalfTileAvx512(const float* src, Index srcStride, std::uint16_t* dst, Index dstStride,
                                        bool saturate) {
  __m512 r[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * srcStride);
  transpose16x16(r);
  for (int i = 0; i < 16; i++) {
    const __m512 x = saturate ? saturate16(r[i]) : r[i];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i * dstStride), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
  }
}

//   src: [16, srcStride] fp16 bits, dst: [16, dstStride] fp32
ANE_TARGET_AVX512 void toFloatTileAvx512(const std::uint16_t* src, Index srcStride, float* dst, Index dstStride,
                                         bool /*saturate*/) {
  __m512 r[16];
  for (int i = 0; i < 16; i++) {
    r[i] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i * srcStride)));
  }
  transpose16x16(r);
  for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * dstStride, r[i]);
}

//   src: [16, srcStride] 32-bit patterns, dst: [16, dstStride]
ANE_TARGET_AVX512 void copyTileAvx512(const std::uint32_t* src, Index srcStride, std::uint32_t* dst, Index dstStride,
                                      bool /*saturate*/) {
  __m512 r[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(reinterpret_cast<const float*>(src + i * srcStride));
  transpose16x16(r);
  for (int i = 0; i < 16; i++) _mm512_storeu_ps(reinterpret_cast<float*>(dst + i * dstStride), r[i]);
}

#endif  // ANE_X86

#if ANE_ARM64

// ---- NEON: 4 x 4 tiles -------------------------------------------------------------------------

inline void transpose4x4(float32x4_t r[4]) {
  const float32x4x2_t t01 = vtrnq_f32(r[0], r[1]);  // val[0]: r0[0] r1[0] r0[2] r1[2]; val[1]: r0[1] r1[1] r0[3] r1[3]
  const float32x4x2_t t23 = vtrnq_f32(r[2], r[3]);
  r[0] = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
  r[1] = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
  r[2] = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
  r[3] = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
}

//   src: [4, srcStride] fp32, dst: [4, dstStride] fp16 bits
void toHalfTileNeon(const float* src, Index srcStride, std::uint16_t* dst, Index dstStride, bool saturate) {
  float32x4_t r[4];
  for (int i = 0; i < 4; i++) r[i] = vld1q_f32(src + i * srcStride);
  transpose4x4(r);
  for (int i = 0; i < 4; i++) {
    const float32x4_t x = saturate ? saturate4(r[i]) : r[i];
    vst1_u16(dst + i * dstStride, vreinterpret_u16_f16(vcvt_f16_f32(x)));
  }
}

//   src: [4, srcStride] fp16 bits, dst: [4, dstStride] fp32
void toFloatTileNeon(const std::uint16_t* src, Index srcStride, float* dst, Index dstStride, bool /*saturate*/) {
  float32x4_t r[4];
  for (int i = 0; i < 4; i++) r[i] = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i * srcStride)));
  transpose4x4(r);
  for (int i = 0; i < 4; i++) vst1q_f32(dst + i * dstStride, r[i]);
}

//   src: [4, srcStride] 32-bit patterns, dst: [4, dstStride]
void copyTileNeon(const std::uint32_t* src, Index srcStride, std::uint32_t* dst, Index dstStride, bool /*saturate*/) {
  float32x4_t r[4];
  for (int i = 0; i < 4; i++) r[i] = vreinterpretq_f32_u32(vld1q_u32(src + i * srcStride));
  transpose4x4(r);
  for (int i = 0; i < 4; i++) vst1q_u32(dst + i * dstStride, vreinterpretq_u32_f32(r[i]));
}

#endif  // ANE_ARM64

// Each conversion's register tiles per SIMD path (copies move 32-bit patterns unchanged).
template <typename S, typename D>
struct Tiles;

template <>
struct Tiles<float, std::uint16_t> {
#if ANE_X86
  static constexpr TransposedTile<float, std::uint16_t> avx512 = toHalfTileAvx512, avx2 = toHalfTileAvx2;
#endif
#if ANE_ARM64
  static constexpr TransposedTile<float, std::uint16_t> neon = toHalfTileNeon;
#endif
};

template <>
struct Tiles<std::uint16_t, float> {
#if ANE_X86
  static constexpr TransposedTile<std::uint16_t, float> avx512 = toFloatTileAvx512, avx2 = toFloatTileAvx2;
#endif
#if ANE_ARM64
  static constexpr TransposedTile<std::uint16_t, float> neon = toFloatTileNeon;
#endif
};

template <>
struct Tiles<std::uint32_t, std::uint32_t> {
#if ANE_X86
  static constexpr TransposedTile<std::uint32_t, std::uint32_t> avx512 = copyTileAvx512, avx2 = copyTileAvx2;
#endif
#if ANE_ARM64
  static constexpr TransposedTile<std::uint32_t, std::uint32_t> neon = copyTileNeon;
#endif
};

template <typename S, typename D>
TransposedBlock<S, D> transposedBlockFor(Isa isa) {
  using T = Tiles<S, D>;
  switch (isa) {
#if ANE_X86
    case Isa::Avx512:
      return transposedTiled<S, D, 16, T::avx512, transposedTiled<S, D, 8, T::avx2, transposedScalar<S, D>>>;
    case Isa::Avx2:
      return transposedTiled<S, D, 8, T::avx2, transposedScalar<S, D>>;
#endif
#if ANE_ARM64
    case Isa::Neon:
      return transposedTiled<S, D, 4, T::neon, transposedScalar<S, D>>;
#endif
    default:
      return transposedScalar<S, D>;
  }
}

// The cache blocks (multiples of every tile size): 64 x 64 written straight into dst, or 128 x 128
// staged through a scratch block when the destination row stride is a multiple of 1 KiB.
constexpr Index kTransposeBlock = 64;
constexpr Index kStagedTransposeBlock = 128;

// When dstStride is a multiple of 1 KiB (2048 halves, 768 floats, ...), the destination rows of a
// block fall in a few L1 sets: written a tile (half a line) at a time, each line was evicted
// between its halves (a 4096 x 4096 block ran at a third of the speed of 4000 x 4000, and
// 288 x 768 -> fp32 at 60% of 768 x 288). Such blocks are transposed into a contiguous scratch
// block first, then copied out one whole destination row (128 elements) at a time. Other strides
// write straight to dst (there the extra copy costs more than it saves).
template <typename D>
bool stagedTranspose(Index dstStride) {
  return (dstStride * static_cast<Index>(sizeof(D))) % 1024 == 0;
}

// Source rows [r0, r1) and columns [c0, c1) of the block, on the calling thread: `block` over each
// cache block, a band of source rows at a time.
template <typename S, typename D>
void transposedRange(const S* src, Index srcStride, D* dst, Index dstStride, Index r0, Index r1, Index c0, Index c1,
                     bool saturate) {
  const TransposedBlock<S, D> block = transposedBlockFor<S, D>(activeIsa());
  const bool staged = stagedTranspose<D>(dstStride);
  const Index blockSize = staged ? kStagedTransposeBlock : kTransposeBlock;
  alignas(64) D scratch[kStagedTransposeBlock * kStagedTransposeBlock];  // [nc, blockSize] when staged
  for (Index rb = r0; rb < r1; rb += blockSize) {
    const Index nr = std::min(blockSize, r1 - rb);
    for (Index cb = c0; cb < c1; cb += blockSize) {
      const Index nc = std::min(blockSize, c1 - cb);
      const S* from = src + rb * srcStride + cb;
      if (!staged) {
        block(from, srcStride, dst + cb * dstStride + rb, dstStride, nr, nc, saturate);
        continue;
      }
      block(from, srcStride, scratch, blockSize, nr, nc, saturate);
      for (Index c = 0; c < nc; c++) {
        std::memcpy(dst + (cb + c) * dstStride + rb, scratch + c * blockSize, static_cast<std::size_t>(nr) * sizeof(D));
      }
    }
  }
}

// Splits the block over the pool along its longer side (whole cache blocks per task).
template <typename S, typename D>
void transposed(const S* src, Index srcStride, D* dst, Index dstStride, Index rows, Index cols, bool saturate) {
  if (rows <= 0 || cols <= 0) return;
  const Index blockSize = stagedTranspose<D>(dstStride) ? kStagedTransposeBlock : kTransposeBlock;
  const auto run = [&](Index r0, Index r1, Index c0, Index c1) {
    transposedRange<S, D>(src, srcStride, dst, dstStride, r0, r1, c0, c1, saturate);
  };
  if (cols >= rows) {
    const Index minCols = std::max<Index>(blockSize, kMinParallel / rows);
    parallelFor(cols, minCols, blockSize, [&](Index begin, Index end) { run(0, rows, begin, end); });
  } else {
    const Index minRows = std::max<Index>(blockSize, kMinParallel / cols);
    parallelFor(rows, minRows, blockSize, [&](Index begin, Index end) { run(begin, end, 0, cols); });
  }
}

}  // namespace

void fp32ToFp16Transposed(const float* src, std::ptrdiff_t srcStride, std::uint16_t* dst, std::ptrdiff_t dstStride,
                          std::ptrdiff_t rows, std::ptrdiff_t cols, bool saturate) {
  transposed<float, std::uint16_t>(src, srcStride, dst, dstStride, rows, cols, saturate);
}

void fp16ToFp32Transposed(const std::uint16_t* src, std::ptrdiff_t srcStride, float* dst, std::ptrdiff_t dstStride,
                          std::ptrdiff_t rows, std::ptrdiff_t cols) {
  transposed<std::uint16_t, float>(src, srcStride, dst, dstStride, rows, cols, false);
}

void transposed32OnThisThread(const std::uint32_t* src, std::ptrdiff_t srcStride, std::uint32_t* dst,
                              std::ptrdiff_t dstStride, std::ptrdiff_t rows, std::ptrdiff_t cols) {
  if (rows <= 0 || cols <= 0) return;
  transposedRange<std::uint32_t, std::uint32_t>(src, srcStride, dst, dstStride, 0, rows, 0, cols, false);
}

}  // namespace kernels
}  // namespace ane
