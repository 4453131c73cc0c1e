// Which SIMD path the kernels take. Chosen once from the CPU (cpu_features.h); tests and benches
// may force a narrower path to compare every variant on one machine.
#pragma once

namespace ane {
namespace kernels {

enum class Isa { Scalar, Avx2, Avx512, Neon };

// The widest path this CPU runs: Avx512 needs AVX-512F plus AVX2/FMA/F16C, Avx2 needs
// AVX2/FMA/F16C, Neon is every arm64 CPU; anything else runs the portable code.
Isa bestIsa();
// The path in use: bestIsa() unless narrowed by setIsa().
Isa activeIsa();
// Forces a path; returns false (and changes nothing) when this CPU cannot run it.
bool setIsa(Isa isa);
const char* isaName(Isa isa);  // "avx512", "avx2-fma", "neon", "scalar" (capabilities' names)
bool parseIsa(const char* name, Isa* out);

}  // namespace kernels
}  // namespace ane

#if defined(__x86_64__) || defined(_M_X64)
#define ANE_X86 1
#define ANE_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define ANE_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#else
#define ANE_X86 0
#endif

#if defined(__aarch64__)
#define ANE_ARM64 1
#else
#define ANE_ARM64 0
#endif
