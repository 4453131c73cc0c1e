// Contiguous fp16 conversion of one run of n elements, per SIMD path: the building block of the
// fp16 kernels and of the optimizers' fused fp16 copy. Internal to native/kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace ane {
namespace kernels {

//   src: [n] fp32, dst: [n] fp16 bits. stream: use non-temporal stores (large outputs).
using ToHalfRun = void (*)(const float* src, std::uint16_t* dst, std::ptrdiff_t n, bool saturate, bool stream);
//   src: [n] fp16 bits, dst: [n] fp32.
using ToFloatRun = void (*)(const std::uint16_t* src, float* dst, std::ptrdiff_t n, bool stream);

ToHalfRun toHalfRunFor(Isa isa);
ToFloatRun toFloatRunFor(Isa isa);

// A binary32's bits, and back.
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

}  // namespace kernels
}  // namespace ane
