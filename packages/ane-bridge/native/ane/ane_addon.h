// The ANE device as seen from JavaScript (`addon.ane`):
//
//   ane.compile(mil: string, weights: Map<string, Uint8Array>, inputs: TensorSpec[],
//               outputs: TensorSpec[], options?: { minSurfaceBytes?: number }) -> AneModel
//   ane.compileCount(), ane.compileLimit(), ane.setCompileLimit(n), ane.liveModels()
//   model.run(inputs: Uint8Array[], outputs: Uint8Array[])         on the calling thread
//   model.runAsync(inputs, outputs) -> Promise<void>                 on a libuv worker thread
//   model.free(); model.isFreed; model.hexIdentifier; model.stagingDirectory;
//   model.inputSurfaceBytes; model.outputSurfaceBytes
//
// Errors are Error objects with `code` = ANE_UNAVAILABLE | ANE_COMPILE | ANE_BUDGET | ANE_DEVICE |
// ANE_INPUT (see ane_device.h); src/device/ane-backend.ts maps them to typed errors.
#pragma once

#include <napi.h>

#include "ane_device.h"
#include "platform.h"

namespace ane {

// Sets `exports.ane`, backed by `platform`. The runtime is process-wide (the framework's compile
// limit is per process) and is created on the first call; later calls must pass the same platform.
// Live models are freed when their environment is torn down, and their staging directories are
// removed at process exit.
void addAneExports(Napi::Env env, Napi::Object exports, platform::Platform& platform);

// The process-wide runtime (nullptr before addAneExports).
AneRuntime* aneRuntime();

}  // namespace ane
