#include "ane_framework_probe.h"

#include <dlfcn.h>

namespace ane {

// Paths and class names: ../shared/reference/maderix-ane.md §1.
static const char* const kFrameworkPath =
    "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine";
static const char* const kRequiredClasses[] = {
    "_ANEInMemoryModelDescriptor",
    "_ANEInMemoryModel",
    "_ANERequest",
    "_ANEIOSurfaceObject",
};

FrameworkProbe probeAneFramework() {
  FrameworkProbe probe;
  void* framework = dlopen(kFrameworkPath, RTLD_NOW);
  if (framework == nullptr) {
    const char* error = dlerror();
    probe.detail = std::string("dlopen failed: ") + (error != nullptr ? error : "unknown error");
    return probe;
  }
  probe.frameworkLoaded = true;
  // objc_getClass is looked up rather than linked so this file needs no Objective-C headers.
  using GetClass = void* (*)(const char*);
  auto getClass = reinterpret_cast<GetClass>(dlsym(RTLD_DEFAULT, "objc_getClass"));
  if (getClass == nullptr) {
    probe.detail = "objc_getClass not found in the process";
    return probe;
  }
  for (const char* name : kRequiredClasses) {
    if (getClass(name) == nullptr) {
      probe.detail = std::string("class ") + name + " not found in the framework";
      return probe;
    }
  }
  probe.classesFound = true;
  probe.detail = "framework loaded; required classes present";
  return probe;
}

}  // namespace ane
