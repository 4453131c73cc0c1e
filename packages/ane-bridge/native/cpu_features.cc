#include "cpu_features.h"

namespace ane {

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
#elif defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory on AArch64.
#endif
  return f;
}

const CpuFeatures& cpuFeatures() {
  static const CpuFeatures features = detect();
  return features;
}

std::string simdLevel() {
  const CpuFeatures& f = cpuFeatures();
  if (f.avx512f && f.fma) return "avx512";
  if (f.avx2 && f.fma) return "avx2-fma";
  if (f.neon) return "neon";
  return "scalar";
}

}  // namespace ane
