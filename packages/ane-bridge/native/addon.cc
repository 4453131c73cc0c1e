// Entry point of the ane-bridge native addon. Every function exported here has a pure-TS twin in
// src/, which the loader uses when this addon is absent.
#include <napi.h>

#include "cpu_features.h"

#ifdef ANE_BRIDGE_HAS_MAC_ANE
#include "mac/ane_framework_probe.h"
#endif

namespace {

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ane::CpuFeatures& features = ane::cpuFeatures();
  Napi::Object result = Napi::Object::New(env);
  result.Set("simdLevel", ane::simdLevel());
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
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  return exports;
}

}  // namespace

NODE_API_MODULE(ane_bridge, Init)
