// The ANE bridge: compiles a MIL program with AppleNeuralEngine's in-memory model, binds one
// IOSurface per input and output, evaluates, and frees everything it made. It reaches the platform
// only through platform::Platform (platform.h), so Linux tests drive this exact code through a fake.
//
// The sequence is the one of ../shared/reference/maderix-ane.md §1.3–§1.6 (§8 ranks what matters):
//   compile: descriptor (MIL as NSData, weights dict, nil options) → in-memory model →
//            hexStringIdentifier → stage NSTemporaryDirectory()/<hex>/{model.mil,weights/…} →
//            compileWithQoS → loadWithQoS (one retry after 100 ms) → surfaces → wrappers → request
//   run:     lock/copy/unlock inputs → evaluateWithQoS → lock read-only/copy/unlock outputs
//   free:    unloadWithQoS → release surfaces → remove the staging directory → release objects
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "platform.h"

namespace ane {

// What went wrong, as the TypeScript side maps it to a typed error.
enum class ErrorKind {
  kUnavailable,  // the framework or a class is missing: DeviceUnavailableError
  kCompile,      // the program was refused (nil descriptor, compileWithQoS NO): CompileError
  kBudget,       // the per-process compile budget is spent: CompileBudgetError
  kDevice,       // load, surfaces, request, evaluate or unload failed: DeviceError
  kInput,        // the caller passed something malformed: KernelInputError / CompileError
};

// "ANE_UNAVAILABLE", "ANE_COMPILE", "ANE_BUDGET", "ANE_DEVICE", "ANE_INPUT".
const char* errorCode(ErrorKind kind);

class BridgeError : public std::runtime_error {
 public:
  BridgeError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

enum class DType { kFp16, kFp32 };

struct TensorSpec {
  std::string name;
  DType dtype = DType::kFp16;
  std::vector<int64_t> shape;
};

// Dense byte size of a tensor (§4.2: element size 2 for fp16, 4 for fp32, no padding). Throws
// kInput for an empty name, a non-positive dimension or an overflow.
size_t tensorBytes(const TensorSpec& spec);

// One weights-dictionary entry: the BLOBFILE path (`@model_path/weights/x.bin`) and the whole blob
// file. The bytes are borrowed for the duration of compile().
struct WeightBlob {
  std::string path;
  const uint8_t* bytes = nullptr;
  size_t size = 0;
};

struct ProgramSource {
  std::string mil;                  // UTF-8 MIL text
  std::vector<WeightBlob> weights;  // in any order; paths unique
  std::vector<TensorSpec> inputs;   // function parameters, declaration order (§1.4)
  std::vector<TensorSpec> outputs;  // returned values, return order (§1.4)
  // Smallest surface to allocate (rule io-min-surface of the rule table; 0 = none).
  size_t minSurfaceBytes = 0;
};

struct ConstBytes {
  const uint8_t* data;
  size_t size;
};
struct MutableBytes {
  uint8_t* data;
  size_t size;
};

// Rule rt-compile-budget: the framework fails past about 119 compiles in one process.
inline constexpr unsigned int kDefaultCompileLimit = 119;
// §1.3 step 8: the reference bridge retries a failed load once after 100 ms.
inline constexpr unsigned int kLoadRetryDelayMs = 100;
// §1.3 step 2: the weights-dict key prefix, stripped to find the staged file.
inline constexpr const char* kModelPathPrefix = "@model_path/";

class AneRuntime;

// A compiled and loaded program with its surfaces and request. Thread-safe: evaluate() may run on
// any thread; calls on one model are serialized.
class AneModel {
 public:
  AneModel(const AneModel&) = delete;
  AneModel& operator=(const AneModel&) = delete;
  ~AneModel();  // free(), errors ignored

  const std::string& hexIdentifier() const { return hex_; }
  const std::string& stagingDirectory() const { return stagingDirectory_; }
  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  // Allocation size of every input (output) surface: uniform within each group.
  size_t inputSurfaceBytes() const { return inputSurfaceBytes_; }
  size_t outputSurfaceBytes() const { return outputSurfaceBytes_; }

  // Copies inputs into the surfaces, evaluates synchronously, copies outputs out. `inputs[i]` and
  // `outputs[j]` must hold exactly tensorBytes of spec i / j. Throws kInput or kDevice.
  void evaluate(const std::vector<ConstBytes>& inputs, const std::vector<MutableBytes>& outputs);

  // Unloads, releases every surface and object, and removes the staging directory (when no other
  // live model shares it). Idempotent. Everything is released even when a step fails; then the
  // first failure is thrown (kDevice).
  void free();
  bool isFreed() const;

 private:
  friend class AneRuntime;
  explicit AneModel(AneRuntime* runtime);
  void freeLocked(std::string* firstError);

  AneRuntime* runtime_;
  mutable std::mutex mutex_;
  bool freed_ = false;
  bool staged_ = false;
  bool loaded_ = false;
  std::string hex_;
  std::string stagingDirectory_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  std::vector<size_t> inputBytes_;
  std::vector<size_t> outputBytes_;
  size_t inputSurfaceBytes_ = 0;
  size_t outputSurfaceBytes_ = 0;
  // Owned references (+1), released by free().
  platform::Id model_ = nullptr;    // _ANEInMemoryModel
  platform::Id options_ = nullptr;  // @{} for compile, load and evaluate
  platform::Id request_ = nullptr;  // _ANERequest
  std::vector<platform::SurfaceRef> inputSurfaces_;
  std::vector<platform::SurfaceRef> outputSurfaces_;
  std::vector<platform::Id> wrappers_;  // _ANEIOSurfaceObject, inputs then outputs
};

// The process-wide side of the bridge: the framework, its classes and selectors, the compile
// counter and the staging directories shared by models of identical content.
class AneRuntime {
 public:
  explicit AneRuntime(platform::Platform& platform, unsigned int compileLimit = kDefaultCompileLimit);
  AneRuntime(const AneRuntime&) = delete;
  AneRuntime& operator=(const AneRuntime&) = delete;

  // dlopen the framework and resolve classes and selectors (once). Throws kUnavailable.
  void open();
  // The whole compile sequence. Throws kInput, kBudget, kUnavailable, kCompile or kDevice; on any
  // failure everything made so far is released and the staging directory removed.
  std::shared_ptr<AneModel> compile(const ProgramSource& source);

  // compileWithQoS calls made by this process (each one counts, failed or not: the leak behind the
  // limit is in the compile itself, reference §1.3 and §1.8).
  unsigned int compileCount() const { return compileCount_.load(); }
  unsigned int compileLimit() const { return compileLimit_.load(); }
  void setCompileLimit(unsigned int limit) { compileLimit_.store(limit); }
  size_t liveModelCount() const;
  // Frees every live model (environment teardown). Returns the failures, one per line; never throws.
  std::string freeAll();
  // Removes the staging directory of every live model without calling the framework: for process
  // exit, when the framework may already be torn down. Never throws.
  void removeAllStagingDirectories();

  platform::Platform& platform() { return platform_; }

 private:
  friend class AneModel;
  struct Classes {
    platform::Id descriptor = nullptr;
    platform::Id model = nullptr;
    platform::Id request = nullptr;
    platform::Id surfaceObject = nullptr;
  };
  struct Selectors {
    platform::Sel modelWithMilText = nullptr;
    platform::Sel inMemoryModelWithDescriptor = nullptr;
    platform::Sel hexStringIdentifier = nullptr;
    platform::Sel compile = nullptr;
    platform::Sel load = nullptr;
    platform::Sel objectWithIoSurface = nullptr;
    platform::Sel requestWithInputs = nullptr;
    platform::Sel evaluate = nullptr;
    platform::Sel unload = nullptr;
    platform::Sel description = nullptr;
  };

  void stage(AneModel& model, const ProgramSource& source);
  void unstage(const std::string& hex, const std::string& directory, std::string* error);
  void createSurfacesAndRequest(AneModel& model);
  platform::SurfaceRef createSurface(size_t bytes);
  // An NSError's description (§1.7), or why there is none.
  std::string describeError(platform::Id error);
  void forget(AneModel* model);

  platform::Platform& platform_;
  // Held around every framework call sequence (compile…request, evaluate, unload). The reference is
  // silent on the framework's thread safety and maderix/ANE calls it from one thread at a time, so
  // the bridge never calls it concurrently. Lock order: a model's mutex, then this one.
  std::mutex frameworkMutex_;
  std::atomic<unsigned int> compileCount_{0};
  std::atomic<unsigned int> compileLimit_;
  mutable std::mutex mutex_;  // guards everything below
  bool opened_ = false;
  std::string openError_;
  Classes classes_;
  Selectors selectors_;
  struct Staging {
    int users = 0;  // live models staged there
    std::string directory;
  };
  std::map<std::string, Staging> staging_;  // by hex identifier
  std::vector<std::weak_ptr<AneModel>> live_;
};

}  // namespace ane
