// Stub for a Linux syntax check: the public declarations platform_mac.cc uses.
#pragma once
#include <stdbool.h>
typedef struct objc_object* id;
typedef struct objc_class* Class;
typedef struct objc_selector* SEL;
typedef bool BOOL;  // arm64
extern "C" id objc_getClass(const char* name);
extern "C" SEL sel_registerName(const char* str);
