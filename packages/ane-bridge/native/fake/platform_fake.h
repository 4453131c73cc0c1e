// A fake AppleNeuralEngine platform for Linux tests (never shipped in the addon). It implements the
// seam of native/ane/platform.h with the observable behaviour ../shared/reference/maderix-ane.md
// documents for the private classes, and it checks the bridge the way the real framework cannot:
//
// - every message: the selector is known, sent through the typed send of its signature, to the
//   right receiver, with arguments of the right Objective-C types and values (§1.2, §1.4);
// - ownership: every object has a retain count; factory results are autoreleased into the current
//   pool (a missing pool is a violation), containers retain their elements, and an object whose
//   count reaches zero becomes a zombie, so over-release, use after free and leaks are all visible;
// - behaviour: compile requires the staged NSTemporaryDirectory()/<hex>/ files (§1.3) and leaves a
//   net.plist there; the 120th compile of the process fails (§1.8); loads, evaluations and unloads
//   can be told to fail with NSError descriptions shaped like §1.7's; surfaces must be created with
//   §4.1's six properties, locked to be touched, unlocked with the options they were locked with,
//   and never written under a read-only lock;
// - evaluation reads the input surfaces and fills the output surfaces through an Evaluator (a
//   deterministic function by default, or a callback into the simulator).
//
// Problems are recorded as violations (strings), never thrown, so a test can assert none happened.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../ane/platform.h"

namespace ane::fake {

// What an evaluation sees: the program the model was built from and every surface's whole
// allocation, inputs in request order; the evaluator fills `outputs` (sizes fixed).
struct Evaluation {
  std::string mil;
  std::map<std::string, std::vector<uint8_t>> weights;
  std::vector<std::vector<uint8_t>> inputs;
  std::vector<std::vector<uint8_t>> outputs;
};
// Returns "" on success, or the text of the NSError the evaluation fails with.
using Evaluator = std::function<std::string(Evaluation&)>;

// The default evaluator: output j byte k = in0[k % len0] + 3·(j+1) + (k mod 256), mod 256. A
// deterministic function of the input bytes a test can recompute.
std::string deterministicEvaluator(Evaluation& evaluation);

struct StagedFile {
  std::string path;  // relative to the staging directory
  std::vector<uint8_t> bytes;
};

// The staging directory as compileWithQoS found it.
struct CompileRecord {
  std::string hex;
  std::string directory;
  std::vector<StagedFile> files;  // sorted by path
  bool succeeded = false;
};

struct SurfaceRecord {
  std::map<std::string, int64_t> properties;  // key name (e.g. "kIOSurfaceWidth") → value
  size_t allocSize = 0;
};

class FakePlatform : public platform::Platform {
 public:
  // `temporaryDirectory` plays NSTemporaryDirectory() (returned with a trailing '/', as macOS does).
  explicit FakePlatform(std::string temporaryDirectory);
  ~FakePlatform() override;

  // ---- behaviour knobs ----
  void setFrameworkMissing(bool missing);
  void setMissingClass(const std::string& name);
  void setFrameworkCompileLimit(int limit);  // default 119 (§1.8)
  void failNextLoads(int count);
  void failNextEvaluate(const std::string& description);
  void failNextUnload(const std::string& description);
  void failNextSurfaceCreate();
  void failNextLock();
  void failNextWrite();
  void setEvaluator(Evaluator evaluator);
  // MIL markers: a line containing "FAKE_DESCRIPTOR_NIL" makes modelWithMILText:… return nil;
  // "FAKE_COMPILE_ERROR:<text>" makes compileWithQoS fail with <text> (to the end of the line).

  // ---- observations ----
  std::vector<std::string> calls() const;       // every platform call, in order
  std::vector<std::string> violations() const;  // empty when the bridge behaved
  std::vector<std::string> liveObjects() const;  // objects still retained (not classes/constants)
  std::vector<CompileRecord> compiles() const;
  std::vector<SurfaceRecord> surfaces() const;
  std::vector<unsigned int> sleeps() const;
  std::vector<std::vector<uint8_t>> lastEvaluationInputs() const;
  int frameworkCompiles() const;
  int loadedModels() const;
  std::string temporaryRoot() const { return temporaryDirectory_; }
  void clearCalls();

  // ---- the seam ----
  bool openFramework(const char* path, std::string* error) override;
  platform::Id getClass(const char* name) override;
  platform::Sel registerSelector(const char* name) override;
  platform::Id sendId0(platform::Id receiver, platform::Sel selector) override;
  platform::Id sendId1(platform::Id receiver, platform::Sel selector, platform::Id a) override;
  platform::Id sendId3(platform::Id receiver, platform::Sel selector, platform::Id a, platform::Id b,
                       platform::Id c) override;
  platform::Id sendIdSurface(platform::Id receiver, platform::Sel selector, platform::SurfaceRef surface) override;
  platform::Id sendId7(platform::Id receiver, platform::Sel selector, platform::Id a, platform::Id b, platform::Id c,
                       platform::Id d, platform::Id e, platform::Id f, platform::Id g) override;
  bool sendBoolQosOptionsError(platform::Id receiver, platform::Sel selector, unsigned int qos, platform::Id options,
                               platform::Id* error) override;
  bool sendBoolQosOptionsRequestError(platform::Id receiver, platform::Sel selector, unsigned int qos,
                                      platform::Id options, platform::Id request, platform::Id* error) override;
  bool sendBoolQosError(platform::Id receiver, platform::Sel selector, unsigned int qos, platform::Id* error) override;
  platform::Id retain(platform::Id object) override;
  void release(platform::Id object) override;
  void* autoreleasePoolPush() override;
  void autoreleasePoolPop(void* pool) override;
  platform::Id createString(const std::string& utf8) override;
  platform::Id createData(const uint8_t* bytes, size_t size) override;
  platform::Id createNumber(int64_t value) override;
  platform::Id createArray(const platform::Id* values, size_t count) override;
  platform::Id createDictionary(const platform::Id* keys, const platform::Id* values, size_t count) override;
  bool copyUtf8(platform::Id string, std::string* out) override;
  std::string temporaryDirectory() override;
  platform::Id surfacePropertyKey(platform::SurfaceKey key) override;
  platform::SurfaceRef createSurface(platform::Id properties) override;
  bool lockSurface(platform::SurfaceRef surface, bool readOnly) override;
  bool unlockSurface(platform::SurfaceRef surface, bool readOnly) override;
  void* surfaceBaseAddress(platform::SurfaceRef surface) override;
  size_t surfaceAllocSize(platform::SurfaceRef surface) override;
  void releaseSurface(platform::SurfaceRef surface) override;
  bool makeDirectories(const std::string& path, std::string* error) override;
  bool writeFile(const std::string& path, const uint8_t* bytes, size_t size, std::string* error) override;
  bool removeTree(const std::string& path, std::string* error) override;
  void sleepMilliseconds(unsigned int milliseconds) override;

  struct Object;  // the fake Objective-C object (defined in platform_fake.cc)

 private:
  // All private members are used with mutex_ held.
  Object* make(int kind, std::string className);
  Object* resolve(const void* pointer, const std::string& context);
  void retainLocked(Object* object);
  void releaseLocked(Object* object, const std::string& context);
  Object* autorelease(Object* object);
  Object* makeError(const std::string& description);
  std::string typeName(const Object* object) const;
  std::string selectorName(platform::Sel selector) const;
  bool checkSelector(platform::Sel selector, const char* signature, const std::string& receiverText);
  void violation(const std::string& text);
  void log(const std::string& line);
  bool isEmptyDictionary(const Object* object) const;
  bool underTemporaryRoot(const std::string& path) const;
  void checkWeightsDictionary(const Object* weights);

  mutable std::mutex mutex_;
  std::string temporaryDirectory_;
  std::vector<Object*> objects_;  // every object ever made (zombies stay, for diagnostics)
  std::set<const void*> known_;
  std::map<std::string, Object*> classes_;
  std::map<platform::SurfaceKey, Object*> surfaceKeys_;
  std::map<std::string, std::string*> selectors_;  // name → interned name (the Sel)
  std::vector<std::string> calls_;
  std::vector<std::string> violations_;
  std::vector<CompileRecord> compiles_;
  std::vector<SurfaceRecord> surfaces_;
  std::vector<unsigned int> sleeps_;
  std::vector<std::vector<uint8_t>> lastInputs_;
  bool frameworkOpened_ = false;
  bool frameworkMissing_ = false;
  std::string missingClass_;
  int frameworkCompileLimit_ = 119;
  int frameworkCompiles_ = 0;
  int evaluating_ = 0;  // evaluations in progress in this process
  int failLoads_ = 0;
  std::string failEvaluate_;
  std::string failUnload_;
  bool failSurfaceCreate_ = false;
  bool failLock_ = false;
  bool failWrite_ = false;
  Evaluator evaluator_;
};

}  // namespace ane::fake
