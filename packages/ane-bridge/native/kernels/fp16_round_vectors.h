// Each lane to its nearest fp16 and back (round to nearest even, the hardware conversion), a NaN
// keeping its fp32 bits: the simulator's fp16 rounding (ane-ir/mil roundToFp16InPlace) on a
// register, shared by the simulator's ops and the GEMM's in-register finish.
#pragma once

#include "simd.h"

#if ANE_X86
#include <immintrin.h>
#endif
#if ANE_ARM64
#include <arm_neon.h>
#endif

namespace ane {
namespace kernels {

#if ANE_X86
ANE_TARGET_AVX512 inline __m512 roundedToFp16(__m512 v) {
  const __m512 r = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), r, v);
}

ANE_TARGET_AVX2 inline __m256 roundedToFp16(__m256 v) {
  const __m256 r = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  return _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
#endif

#if ANE_ARM64
inline float32x4_t roundedToFp16(float32x4_t v) {
  return vbslq_f32(vceqq_f32(v, v), vcvt_f32_f16(vcvt_f16_f32(v)), v);
}
#endif

}  // namespace kernels
}  // namespace ane
