// Registers the host kernels on the addon's exports as `exports.kernels` (see
// src/native/loader.ts, NativeKernels, for the JS-side signatures).
#pragma once

#include <napi.h>

namespace ane {
namespace kernels {

void registerKernels(Napi::Env env, Napi::Object exports);

}  // namespace kernels
}  // namespace ane
