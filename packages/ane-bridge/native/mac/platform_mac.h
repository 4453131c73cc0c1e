// The real ANE platform on macOS arm64 (platform_mac.cc). Declared without Apple headers so that
// addon.cc can include it.
#pragma once

#include "../ane/platform.h"

namespace ane {

platform::Platform& macPlatform();

}  // namespace ane
