// The JS face of the simulator's native ops (sim_ops.h): `exports.simOps`.
#pragma once

#include <napi.h>

namespace ane {
namespace sim {

void registerSimOps(Napi::Env env, Napi::Object exports);

}  // namespace sim
}  // namespace ane
