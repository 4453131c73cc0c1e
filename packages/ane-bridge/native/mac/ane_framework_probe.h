// Whether this Mac's AppleNeuralEngine private framework loads and exposes the classes the bridge
// needs. Only looks: compiles and runs nothing on the ANE.
#pragma once

#include <string>

namespace ane {

struct FrameworkProbe {
  bool frameworkLoaded = false;
  bool classesFound = false;
  std::string detail;
};

FrameworkProbe probeAneFramework();

}  // namespace ane
