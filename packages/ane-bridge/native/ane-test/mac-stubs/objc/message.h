// Stub for a Linux syntax check. With OBJC_OLD_DISPATCH_PROTOTYPES=0 (the default on arm64)
// objc_msgSend has no prototype and must be cast to each call's exact signature.
#pragma once
#include "runtime.h"
extern "C" void objc_msgSend(void);
