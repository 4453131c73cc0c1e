// Run-time CPU feature detection. Kernels pick their SIMD path from these flags; nothing is
// compiled with -march=native, so one binary runs on every CPU of its architecture.
#pragma once

#include <string>

namespace ane {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool neon = false;
};

const CpuFeatures& cpuFeatures();

// The widest SIMD path the kernels will use: "avx512", "avx2-fma", "neon" or "scalar".
std::string simdLevel();

}  // namespace ane
