// Entry point of the ane-bridge native addon. Every function exported here has a pure-TS twin in
// src/, which the loader uses when this addon is absent.
#include <napi.h>

#include "cpu_features.h"
#include "kernels/napi_kernels.h"
#include "kernels/napi_sim_ops.h"
#include "kernels/simd.h"
#include "kernels/thread_pool.h"

#ifdef ANE_BRIDGE_HAS_MAC_ANE
#include "ane/ane_addon.h"
#include "mac/ane_framework_probe.h"
#include "mac/platform_mac.h"
#endif

namespace {

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ane::CpuFeatures& features = ane::cpuFeatures();
  Napi::Object result = Napi::Object::New(env);
  // The path the host kernels take (the CPU's best unless narrowed with kernels.setSimdLevel).
  result.Set("simdLevel", ane::kernels::isaName(ane::kernels::activeIsa()));
  result.Set("hostThreads", ane::kernels::hostThreads());
  // Which GEMM sgemm runs: Apple's (Accelerate, macOS arm64) or ours (native/kernels/gemm.cc).
#if defined(ANE_BRIDGE_HAS_ACCELERATE)
  result.Set("gemm", "accelerate");
#else
  result.Set("gemm", "ane-bridge");
#endif
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("avx2", features.avx2);
  cpu.Set("fma", features.fma);
  cpu.Set("f16c", features.f16c);
  cpu.Set("avx512f", features.avx512f);
  cpu.Set("neon", features.neon);
  result.Set("cpu", cpu);
#ifdef ANE_BRIDGE_HAS_MAC_ANE
  ane::FrameworkProbe probe = ane::probeAneFramework();
  Napi::Object framework = Napi::Object::New(env);
  framework.Set("loaded", probe.frameworkLoaded);
  framework.Set("classesFound", probe.classesFound);
  framework.Set("detail", probe.detail);
  result.Set("aneFramework", framework);
#else
  result.Set("aneFramework", env.Null());
#endif
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 7));
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  ane::kernels::registerKernels(env, exports);
  ane::sim::registerSimOps(env, exports);
#ifdef ANE_BRIDGE_HAS_MAC_ANE
  // The ANE device (native/ane/ane_addon.h) over the real platform.
  ane::addAneExports(env, exports, ane::macPlatform());
#else
  exports.Set("ane", env.Null());
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(ane_bridge, Init)
