#include "simd.h"

#include <atomic>
#include <cstring>

#include "../cpu_features.h"

namespace ane {
namespace kernels {

namespace {

Isa detectIsa() {
  const CpuFeatures& f = cpuFeatures();
  if (f.neon) return Isa::Neon;
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  if (avx2 && f.avx512f) return Isa::Avx512;
  if (avx2) return Isa::Avx2;
  return Isa::Scalar;
}

std::atomic<int>& activeSlot() {
  static std::atomic<int> slot{static_cast<int>(detectIsa())};
  return slot;
}

bool supports(Isa isa) {
  const Isa best = bestIsa();
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Neon:
      return best == Isa::Neon;
    case Isa::Avx2:
      return best == Isa::Avx2 || best == Isa::Avx512;
    case Isa::Avx512:
      return best == Isa::Avx512;
  }
  return false;
}

}  // namespace

Isa bestIsa() {
  static const Isa best = detectIsa();
  return best;
}

Isa activeIsa() { return static_cast<Isa>(activeSlot().load(std::memory_order_relaxed)); }

bool setIsa(Isa isa) {
  if (!supports(isa)) return false;
  activeSlot().store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2-fma";
    case Isa::Neon:
      return "neon";
    case Isa::Scalar:
      return "scalar";
  }
  return "scalar";
}

bool parseIsa(const char* name, Isa* out) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (std::strcmp(name, isaName(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

}  // namespace kernels
}  // namespace ane
