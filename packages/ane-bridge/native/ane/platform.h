// The platform seam of the ANE bridge: every Apple function, class, selector and property key the
// bridge uses, and nothing else. ane_device.cc talks to the Neural Engine only through this
// interface, so the same bridge source compiles and is tested on Linux against a fake platform
// (native/fake/platform_fake.cc); native/mac/platform_mac.cc is the real one (macOS arm64 only).
//
// Facts come from ../shared/reference/maderix-ane.md; each entry names its section. Where the
// reference is silent, the entry says so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ane::platform {

// Opaque handles. On macOS an `Id` is an Objective-C `id` (Core Foundation objects are toll-free
// bridged, so a CFDataRef is an NSData*, a CFDictionaryRef an NSDictionary*, …), a class object is
// an `Id` too, a `Sel` is a `SEL` and a `SurfaceRef` is an `IOSurfaceRef`.
struct ObjcObject;
using Id = ObjcObject*;
struct ObjcSelector;
using Sel = ObjcSelector*;
struct IoSurface;
using SurfaceRef = IoSurface*;

// §1.1: the framework is loaded at run time, never linked.
inline constexpr const char* kFrameworkPath =
    "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine";

// §1.1: the four classes of the working in-memory path.
namespace classes {
inline constexpr const char* kDescriptor = "_ANEInMemoryModelDescriptor";
inline constexpr const char* kModel = "_ANEInMemoryModel";
inline constexpr const char* kRequest = "_ANERequest";
inline constexpr const char* kSurfaceObject = "_ANEIOSurfaceObject";
}  // namespace classes

// Every selector the bridge sends, with the typed send below that carries it.
namespace selectors {
// §1.2 + §1.3 step 3: +[_ANEInMemoryModelDescriptor modelWithMILText:(NSData*) weights:(NSDictionary*)
// optionsPlist:(id, always nil)] -> descriptor or nil.                           send: sendId3
inline constexpr const char* kModelWithMilText = "modelWithMILText:weights:optionsPlist:";
// §1.2 + §1.3 step 4: +[_ANEInMemoryModel inMemoryModelWithDescriptor:(id)] -> model.  send: sendId1
inline constexpr const char* kInMemoryModelWithDescriptor = "inMemoryModelWithDescriptor:";
// §1.2 + §1.3 step 5: -[model hexStringIdentifier] -> NSString*.                    send: sendId0
inline constexpr const char* kHexStringIdentifier = "hexStringIdentifier";
// §1.2 + §1.3 step 7: -[model compileWithQoS:(unsigned int) options:(NSDictionary*)
// error:(NSError**)] -> BOOL.                                                    send: sendBoolQosOptionsError
inline constexpr const char* kCompile = "compileWithQoS:options:error:";
// §1.2 + §1.3 step 8: -[model loadWithQoS:(unsigned int) options:(NSDictionary*) error:(NSError**)]
// -> BOOL.                                                                       send: sendBoolQosOptionsError
inline constexpr const char* kLoad = "loadWithQoS:options:error:";
// §1.2 + §1.3 step 10: +[_ANEIOSurfaceObject objectWithIOSurface:(IOSurfaceRef)] -> wrapper.
//                                                                                send: sendIdSurface
inline constexpr const char* kObjectWithIoSurface = "objectWithIOSurface:";
// §1.2 + §1.4: +[_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:
// perfStats:procedureIndex:], all seven arguments object pointers -> request.     send: sendId7
inline constexpr const char* kRequestWithInputs =
    "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:";
// §1.2 + §1.5: -[model evaluateWithQoS:(unsigned int) options:(NSDictionary*) request:(id)
// error:(NSError**)] -> BOOL, synchronous.                                       send: sendBoolQosOptionsRequestError
inline constexpr const char* kEvaluate = "evaluateWithQoS:options:request:error:";
// §1.2 + §1.6: -[model unloadWithQoS:(unsigned int) error:(NSError**)] -> BOOL.    send: sendBoolQosError
inline constexpr const char* kUnload = "unloadWithQoS:error:";
// §1.7: -[NSError description] -> NSString* (domain, code and the framework's text).  send: sendId0
inline constexpr const char* kDescription = "description";
}  // namespace selectors

// §1.2: every working file passes QoS 21 to compile, load, evaluate and unload.
inline constexpr unsigned int kQoS = 21;

// §4.1: the six IOSurface properties (kIOSurfaceWidth, kIOSurfaceHeight,
// kIOSurfaceBytesPerElement, kIOSurfaceBytesPerRow, kIOSurfaceAllocSize, kIOSurfacePixelFormat).
enum class SurfaceKey { kWidth, kHeight, kBytesPerElement, kBytesPerRow, kAllocSize, kPixelFormat };
inline constexpr SurfaceKey kSurfaceKeys[] = {
    SurfaceKey::kWidth,     SurfaceKey::kHeight,    SurfaceKey::kBytesPerElement,
    SurfaceKey::kBytesPerRow, SurfaceKey::kAllocSize, SurfaceKey::kPixelFormat,
};

class Platform {
 public:
  virtual ~Platform() = default;

  // ---- dynamic loading and the Objective-C runtime (§1.1) ----
  // dlopen(path, RTLD_NOW); on failure false and dlerror()'s text. The handle is never closed: an
  // image with Objective-C classes cannot be unloaded.
  virtual bool openFramework(const char* path, std::string* error) = 0;
  // objc_getClass(name) (the reference resolves classes with NSClassFromString, the Foundation
  // wrapper of the same lookup). nullptr when absent.
  virtual Id getClass(const char* name) = 0;
  // sel_registerName(name).
  virtual Sel registerSelector(const char* name) = 0;

  // ---- objc_msgSend, cast to the exact signature of each selector (§1.2, §8 item 1) ----
  // id (id self, SEL): hexStringIdentifier, description.
  virtual Id sendId0(Id receiver, Sel selector) = 0;
  // id (id self, SEL, id): inMemoryModelWithDescriptor:.
  virtual Id sendId1(Id receiver, Sel selector, Id a) = 0;
  // id (id self, SEL, id, id, id): modelWithMILText:weights:optionsPlist:.
  virtual Id sendId3(Id receiver, Sel selector, Id a, Id b, Id c) = 0;
  // id (id self, SEL, IOSurfaceRef): objectWithIOSurface:.
  virtual Id sendIdSurface(Id receiver, Sel selector, SurfaceRef surface) = 0;
  // id (id self, SEL, id, id, id, id, id, id, id): requestWithInputs:…procedureIndex:.
  virtual Id sendId7(Id receiver, Sel selector, Id a, Id b, Id c, Id d, Id e, Id f, Id g) = 0;
  // BOOL (id self, SEL, unsigned int, id, NSError**): compileWithQoS:options:error:,
  // loadWithQoS:options:error:.
  virtual bool sendBoolQosOptionsError(Id receiver, Sel selector, unsigned int qos, Id options,
                                       Id* error) = 0;
  // BOOL (id self, SEL, unsigned int, id, id, NSError**): evaluateWithQoS:options:request:error:.
  virtual bool sendBoolQosOptionsRequestError(Id receiver, Sel selector, unsigned int qos,
                                              Id options, Id request, Id* error) = 0;
  // BOOL (id self, SEL, unsigned int, NSError**): unloadWithQoS:error:.
  virtual bool sendBoolQosError(Id receiver, Sel selector, unsigned int qos, Id* error) = 0;

  // ---- ownership ----
  // CFRetain / CFRelease, which work on every Objective-C object (§1.6: the trainers keep models
  // and requests as retained void* and CFRelease them).
  virtual Id retain(Id object) = 0;
  virtual void release(Id object) = 0;
  // objc_autoreleasePoolPush / objc_autoreleasePoolPop. The reference is silent: it is compiled with
  // ARC inside @autoreleasepool blocks. Without a pool, the autoreleased results of factory methods
  // (descriptor, model, wrappers, request, NSError, NSString) would leak on Node's threads.
  virtual void* autoreleasePoolPush() = 0;
  virtual void autoreleasePoolPop(void* pool) = 0;

  // ---- Foundation objects, built as their toll-free bridged Core Foundation twins ----
  // Every create* returns a +1 reference (Core Foundation's Create rule); release it.
  // NSString from UTF-8 (CFStringCreateWithBytes, kCFStringEncodingUTF8): weights-dict keys.
  virtual Id createString(const std::string& utf8) = 0;
  // NSData copying `size` bytes (CFDataCreate): the MIL text (§1.2: NSData, not NSString) and blobs.
  virtual Id createData(const uint8_t* bytes, size_t size) = 0;
  // NSNumber holding a signed 64-bit integer (CFNumberCreate, kCFNumberSInt64Type): indices,
  // procedureIndex, weights "offset", surface properties. The reference writes `@(i)`/`@0` and
  // does not name the number type; any integer NSNumber reads back the same value.
  virtual Id createNumber(int64_t value) = 0;
  // NSArray (CFArrayCreate with kCFTypeArrayCallBacks: elements retained).
  virtual Id createArray(const Id* values, size_t count) = 0;
  // NSDictionary (CFDictionaryCreate with the kCFType callbacks). count 0 is `@{}`.
  virtual Id createDictionary(const Id* keys, const Id* values, size_t count) = 0;
  // An NSString's UTF-8 text (CFStringGetCString). false when `string` is not a string.
  virtual bool copyUtf8(Id string, std::string* out) = 0;
  // NSTemporaryDirectory() as UTF-8 (§1.3 step 5: the staging root the framework itself uses).
  virtual std::string temporaryDirectory() = 0;

  // ---- IOSurface (§4.1) ----
  // The global key constant for `key` (not owned: never release it).
  virtual Id surfacePropertyKey(SurfaceKey key) = 0;
  // IOSurfaceCreate(properties): +1, release with releaseSurface. nullptr on failure.
  virtual SurfaceRef createSurface(Id properties) = 0;
  // IOSurfaceLock / IOSurfaceUnlock with options 0 (write) or kIOSurfaceLockReadOnly (read) and
  // no seed; true on kIOReturnSuccess.
  virtual bool lockSurface(SurfaceRef surface, bool readOnly) = 0;
  virtual bool unlockSurface(SurfaceRef surface, bool readOnly) = 0;
  // IOSurfaceGetBaseAddress / IOSurfaceGetAllocSize.
  virtual void* surfaceBaseAddress(SurfaceRef surface) = 0;
  virtual size_t surfaceAllocSize(SurfaceRef surface) = 0;
  // CFRelease of the surface (§1.6).
  virtual void releaseSurface(SurfaceRef surface) = 0;

  // ---- files: staging the model directory (§1.3 step 6, §1.6) ----
  // mkdir -p.
  virtual bool makeDirectories(const std::string& path, std::string* error) = 0;
  // Creates or truncates `path` and writes `size` bytes.
  virtual bool writeFile(const std::string& path, const uint8_t* bytes, size_t size,
                         std::string* error) = 0;
  // rm -r (a missing path is success).
  virtual bool removeTree(const std::string& path, std::string* error) = 0;

  // usleep: the 100 ms pause before the one load retry (§1.3 step 8).
  virtual void sleepMilliseconds(unsigned int milliseconds) = 0;
};

}  // namespace ane::platform
