// The real platform seam (native/ane/platform.h) on macOS arm64: the only file of the ANE bridge
// that touches Apple symbols. Each function is one call of the C API the seam names; the bridge
// logic, and everything tested on Linux, is in native/ane/ane_device.cc.
// Compiled only under binding.gyp's OS=="mac" and target_arch=="arm64" condition.
#include "platform_mac.h"

#include <CoreFoundation/CoreFoundation.h>
#include <IOSurface/IOSurfaceRef.h>
#include <dlfcn.h>
#include <mach/kern_return.h>
#include <objc/message.h>
#include <objc/runtime.h>

#include <string>
#include <vector>

#include "../ane/posix_files.h"

// Foundation's C functions and the runtime's pool entry points, declared here because their
// headers are Objective-C: NSTemporaryDirectory returns an NSString* (toll-free a CFStringRef);
// objc_autoreleasePoolPush/Pop are what @autoreleasepool compiles to.
extern "C" CFStringRef NSTemporaryDirectory(void);
extern "C" void* objc_autoreleasePoolPush(void);
extern "C" void objc_autoreleasePoolPop(void* pool);

namespace ane {

namespace {

using platform::Id;
using platform::Sel;
using platform::SurfaceRef;

id toObjc(Id object) { return reinterpret_cast<id>(object); }
Id fromObjc(const void* object) { return reinterpret_cast<Id>(const_cast<void*>(object)); }
SEL toSel(Sel selector) { return reinterpret_cast<SEL>(selector); }
IOSurfaceRef toSurface(SurfaceRef surface) { return reinterpret_cast<IOSurfaceRef>(surface); }
// Reference §4.1: 0 to write, kIOSurfaceLockReadOnly to read.
IOSurfaceLockOptions lockOptions(bool readOnly) {
  return readOnly ? static_cast<IOSurfaceLockOptions>(kIOSurfaceLockReadOnly) : static_cast<IOSurfaceLockOptions>(0);
}

class MacPlatform final : public platform::Platform {
 public:
  bool openFramework(const char* path, std::string* error) override {
    if (dlopen(path, RTLD_NOW) != nullptr) return true;
    const char* text = dlerror();
    *error = text != nullptr ? text : "dlopen failed";
    return false;
  }
  Id getClass(const char* name) override { return fromObjc(reinterpret_cast<const void*>(objc_getClass(name))); }
  Sel registerSelector(const char* name) override { return reinterpret_cast<Sel>(sel_registerName(name)); }

  // objc_msgSend cast to each selector's exact signature (reference §1.2). BOOL is bool on arm64.
  Id sendId0(Id receiver, Sel selector) override {
    using Send = id (*)(id, SEL);
    return fromObjc(reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector)));
  }
  Id sendId1(Id receiver, Sel selector, Id a) override {
    using Send = id (*)(id, SEL, id);
    return fromObjc(reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector), toObjc(a)));
  }
  Id sendId3(Id receiver, Sel selector, Id a, Id b, Id c) override {
    using Send = id (*)(id, SEL, id, id, id);
    return fromObjc(
        reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector), toObjc(a), toObjc(b), toObjc(c)));
  }
  Id sendIdSurface(Id receiver, Sel selector, SurfaceRef surface) override {
    using Send = id (*)(id, SEL, IOSurfaceRef);
    return fromObjc(reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector), toSurface(surface)));
  }
  Id sendId7(Id receiver, Sel selector, Id a, Id b, Id c, Id d, Id e, Id f, Id g) override {
    using Send = id (*)(id, SEL, id, id, id, id, id, id, id);
    return fromObjc(reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector), toObjc(a), toObjc(b),
                                                         toObjc(c), toObjc(d), toObjc(e), toObjc(f), toObjc(g)));
  }
  bool sendBoolQosOptionsError(Id receiver, Sel selector, unsigned int qos, Id options, Id* error) override {
    using Send = BOOL (*)(id, SEL, unsigned int, id, id*);
    return reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector), qos, toObjc(options),
                                                reinterpret_cast<id*>(error));
  }
  bool sendBoolQosOptionsRequestError(Id receiver, Sel selector, unsigned int qos, Id options, Id request,
                                      Id* error) override {
    using Send = BOOL (*)(id, SEL, unsigned int, id, id, id*);
    return reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector), qos, toObjc(options),
                                                toObjc(request), reinterpret_cast<id*>(error));
  }
  bool sendBoolQosError(Id receiver, Sel selector, unsigned int qos, Id* error) override {
    using Send = BOOL (*)(id, SEL, unsigned int, id*);
    return reinterpret_cast<Send>(objc_msgSend)(toObjc(receiver), toSel(selector), qos, reinterpret_cast<id*>(error));
  }

  Id retain(Id object) override { return fromObjc(CFRetain(reinterpret_cast<CFTypeRef>(object))); }
  void release(Id object) override { CFRelease(reinterpret_cast<CFTypeRef>(object)); }
  void* autoreleasePoolPush() override { return objc_autoreleasePoolPush(); }
  void autoreleasePoolPop(void* pool) override { objc_autoreleasePoolPop(pool); }

  Id createString(const std::string& utf8) override {
    return fromObjc(CFStringCreateWithBytes(kCFAllocatorDefault, reinterpret_cast<const UInt8*>(utf8.data()),
                                            static_cast<CFIndex>(utf8.size()), kCFStringEncodingUTF8, false));
  }
  Id createData(const uint8_t* bytes, size_t size) override {
    return fromObjc(CFDataCreate(kCFAllocatorDefault, bytes, static_cast<CFIndex>(size)));
  }
  Id createNumber(int64_t value) override {
    return fromObjc(CFNumberCreate(kCFAllocatorDefault, kCFNumberSInt64Type, &value));
  }
  Id createArray(const Id* values, size_t count) override {
    std::vector<const void*> items(values, values + count);
    return fromObjc(CFArrayCreate(kCFAllocatorDefault, items.data(), static_cast<CFIndex>(count), &kCFTypeArrayCallBacks));
  }
  Id createDictionary(const Id* keys, const Id* values, size_t count) override {
    std::vector<const void*> keyItems(keys, keys + count);
    std::vector<const void*> valueItems(values, values + count);
    return fromObjc(CFDictionaryCreate(kCFAllocatorDefault, keyItems.data(), valueItems.data(),
                                       static_cast<CFIndex>(count), &kCFTypeDictionaryKeyCallBacks,
                                       &kCFTypeDictionaryValueCallBacks));
  }
  bool copyUtf8(Id string, std::string* out) override {
    const auto text = reinterpret_cast<CFStringRef>(string);
    if (text == nullptr) return false;
    const CFIndex capacity = CFStringGetMaximumSizeForEncoding(CFStringGetLength(text), kCFStringEncodingUTF8) + 1;
    std::string buffer(static_cast<size_t>(capacity), '\0');
    if (!CFStringGetCString(text, buffer.data(), capacity, kCFStringEncodingUTF8)) return false;
    buffer.resize(std::char_traits<char>::length(buffer.c_str()));
    *out = buffer;
    return true;
  }
  std::string temporaryDirectory() override {
    std::string path;
    copyUtf8(fromObjc(NSTemporaryDirectory()), &path);  // +0, autoreleased
    return path;
  }

  Id surfacePropertyKey(platform::SurfaceKey key) override {
    switch (key) {
      case platform::SurfaceKey::kWidth:
        return fromObjc(kIOSurfaceWidth);
      case platform::SurfaceKey::kHeight:
        return fromObjc(kIOSurfaceHeight);
      case platform::SurfaceKey::kBytesPerElement:
        return fromObjc(kIOSurfaceBytesPerElement);
      case platform::SurfaceKey::kBytesPerRow:
        return fromObjc(kIOSurfaceBytesPerRow);
      case platform::SurfaceKey::kAllocSize:
        return fromObjc(kIOSurfaceAllocSize);
      case platform::SurfaceKey::kPixelFormat:
        return fromObjc(kIOSurfacePixelFormat);
    }
    return nullptr;
  }
  SurfaceRef createSurface(Id properties) override {
    return reinterpret_cast<SurfaceRef>(IOSurfaceCreate(reinterpret_cast<CFDictionaryRef>(properties)));
  }
  bool lockSurface(SurfaceRef surface, bool readOnly) override {
    return IOSurfaceLock(toSurface(surface), lockOptions(readOnly), nullptr) == KERN_SUCCESS;
  }
  bool unlockSurface(SurfaceRef surface, bool readOnly) override {
    return IOSurfaceUnlock(toSurface(surface), lockOptions(readOnly), nullptr) == KERN_SUCCESS;
  }
  void* surfaceBaseAddress(SurfaceRef surface) override { return IOSurfaceGetBaseAddress(toSurface(surface)); }
  size_t surfaceAllocSize(SurfaceRef surface) override { return IOSurfaceGetAllocSize(toSurface(surface)); }
  void releaseSurface(SurfaceRef surface) override { CFRelease(toSurface(surface)); }

  bool makeDirectories(const std::string& path, std::string* error) override {
    return posix::makeDirectories(path, error);
  }
  bool writeFile(const std::string& path, const uint8_t* bytes, size_t size, std::string* error) override {
    return posix::writeFile(path, bytes, size, error);
  }
  bool removeTree(const std::string& path, std::string* error) override { return posix::removeTree(path, error); }
  void sleepMilliseconds(unsigned int milliseconds) override { posix::sleepMilliseconds(milliseconds); }
};

}  // namespace

platform::Platform& macPlatform() {
  static MacPlatform* instance = new MacPlatform();  // never destroyed: used until process exit
  return *instance;
}

}  // namespace ane
