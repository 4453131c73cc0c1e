#include "ane_device.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

namespace ane {

using platform::Id;
using platform::Platform;
using platform::SurfaceRef;

const char* errorCode(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUnavailable:
      return "ANE_UNAVAILABLE";
    case ErrorKind::kCompile:
      return "ANE_COMPILE";
    case ErrorKind::kBudget:
      return "ANE_BUDGET";
    case ErrorKind::kDevice:
      return "ANE_DEVICE";
    case ErrorKind::kInput:
      return "ANE_INPUT";
  }
  return "ANE_DEVICE";
}

namespace {

// Pushes an autorelease pool for the lifetime of one bridge operation, so every autoreleased
// object the framework hands back (+0 results, NSError, NSString) is released when it ends.
class AutoreleasePool {
 public:
  explicit AutoreleasePool(Platform& platform) : platform_(platform), token_(platform.autoreleasePoolPush()) {}
  ~AutoreleasePool() { platform_.autoreleasePoolPop(token_); }
  AutoreleasePool(const AutoreleasePool&) = delete;
  AutoreleasePool& operator=(const AutoreleasePool&) = delete;

 private:
  Platform& platform_;
  void* token_;
};

// A +1 reference released at scope end.
class Owned {
 public:
  Owned(Platform& platform, Id object) : platform_(&platform), object_(object) {}
  ~Owned() { reset(); }
  Owned(Owned&& other) noexcept : platform_(other.platform_), object_(other.object_) { other.object_ = nullptr; }
  Owned& operator=(Owned&&) = delete;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Id get() const { return object_; }
  void reset() {
    if (object_ != nullptr) platform_->release(object_);
    object_ = nullptr;
  }

 private:
  Platform* platform_;
  Id object_;
};

[[noreturn]] void fail(ErrorKind kind, const std::string& message) { throw BridgeError(kind, message); }

// The part of a weights-dict key after `@model_path/`, checked to stay inside the staging
// directory: relative, no empty, "." or ".." component.
std::string stagedRelativePath(const std::string& key) {
  const size_t prefix = std::strlen(kModelPathPrefix);
  if (key.compare(0, prefix, kModelPathPrefix) != 0) {
    fail(ErrorKind::kInput, "weights key '" + key + "' must start with '" + kModelPathPrefix +
                                "' (it is the BLOBFILE path, e.g. @model_path/weights/w.bin)");
  }
  const std::string relative = key.substr(prefix);
  size_t start = 0;
  for (;;) {
    const size_t slash = relative.find('/', start);
    const std::string part = relative.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos) {
      fail(ErrorKind::kInput, "weights key '" + key +
                                  "' is not a plain relative path under @model_path/ (empty, '.' or '..' component)");
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return relative;
}

std::string joinPath(std::string directory, const std::string& name) {
  while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
  return directory + "/" + name;
}

std::string parentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string describeSpec(const TensorSpec& spec) {
  std::string text = spec.name + " (" + (spec.dtype == DType::kFp16 ? "fp16" : "fp32") + " [";
  for (size_t i = 0; i < spec.shape.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(spec.shape[i]);
  return text + "])";
}

}  // namespace

size_t tensorBytes(const TensorSpec& spec) {
  if (spec.name.empty()) fail(ErrorKind::kInput, "a tensor spec has an empty name");
  if (spec.shape.empty()) fail(ErrorKind::kInput, "tensor " + spec.name + " has an empty shape");
  size_t bytes = spec.dtype == DType::kFp16 ? 2 : 4;
  for (int64_t dim : spec.shape) {
    if (dim <= 0) fail(ErrorKind::kInput, "tensor " + describeSpec(spec) + " has a dimension ≤ 0");
    const auto extent = static_cast<size_t>(dim);
    if (bytes > std::numeric_limits<size_t>::max() / extent ||
        bytes * extent > static_cast<size_t>(std::numeric_limits<int64_t>::max())) {
      fail(ErrorKind::kInput, "tensor " + describeSpec(spec) + " is too large");
    }
    bytes *= extent;
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// AneRuntime

AneRuntime::AneRuntime(Platform& platform, unsigned int compileLimit)
    : platform_(platform), compileLimit_(compileLimit) {}

void AneRuntime::open() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (opened_) return;
  if (!openError_.empty()) fail(ErrorKind::kUnavailable, openError_);
  std::string error;
  // §1.1: dlopen(RTLD_NOW); a nil handle or any nil class means the framework is unusable.
  if (!platform_.openFramework(platform::kFrameworkPath, &error)) {
    openError_ = "could not load the AppleNeuralEngine framework (" + std::string(platform::kFrameworkPath) +
                 "): " + (error.empty() ? "dlopen failed" : error);
    fail(ErrorKind::kUnavailable, openError_);
  }
  const std::pair<Id*, const char*> classes[] = {
      {&classes_.descriptor, platform::classes::kDescriptor},
      {&classes_.model, platform::classes::kModel},
      {&classes_.request, platform::classes::kRequest},
      {&classes_.surfaceObject, platform::classes::kSurfaceObject},
  };
  for (const auto& [slot, name] : classes) {
    *slot = platform_.getClass(name);
    if (*slot == nullptr) {
      openError_ = std::string("the AppleNeuralEngine framework loaded but has no class ") + name +
                   " (this macOS version changed the private API)";
      fail(ErrorKind::kUnavailable, openError_);
    }
  }
  namespace sel = platform::selectors;
  const std::pair<platform::Sel*, const char*> selectors[] = {
      {&selectors_.modelWithMilText, sel::kModelWithMilText},
      {&selectors_.inMemoryModelWithDescriptor, sel::kInMemoryModelWithDescriptor},
      {&selectors_.hexStringIdentifier, sel::kHexStringIdentifier},
      {&selectors_.compile, sel::kCompile},
      {&selectors_.load, sel::kLoad},
      {&selectors_.objectWithIoSurface, sel::kObjectWithIoSurface},
      {&selectors_.requestWithInputs, sel::kRequestWithInputs},
      {&selectors_.evaluate, sel::kEvaluate},
      {&selectors_.unload, sel::kUnload},
      {&selectors_.description, sel::kDescription},
  };
  for (const auto& [slot, name] : selectors) *slot = platform_.registerSelector(name);
  opened_ = true;
}

size_t AneRuntime::liveModelCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_.size();
}

std::string AneRuntime::freeAll() {
  std::vector<std::shared_ptr<AneModel>> models;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& weak : live_) {
      if (auto model = weak.lock()) models.push_back(std::move(model));
    }
  }
  std::string failures;
  for (const auto& model : models) {
    try {
      model->free();
    } catch (const std::exception& error) {
      failures += std::string(failures.empty() ? "" : "\n") + error.what();
    }
  }
  return failures;
}

void AneRuntime::removeAllStagingDirectories() {
  std::vector<std::string> directories;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& entry : staging_) directories.push_back(entry.second.directory);
  }
  std::string ignored;
  for (const std::string& directory : directories) platform_.removeTree(directory, &ignored);
}

void AneRuntime::forget(AneModel* model) {
  std::lock_guard<std::mutex> lock(mutex_);
  live_.erase(std::remove_if(live_.begin(), live_.end(),
                             [model](const std::weak_ptr<AneModel>& weak) {
                               auto alive = weak.lock();
                               return alive == nullptr || alive.get() == model;
                             }),
              live_.end());
}

std::string AneRuntime::describeError(Id error) {
  if (error == nullptr) return "the framework returned NO without an NSError";
  std::string text;
  const Id description = platform_.sendId0(error, selectors_.description);  // +0, autoreleased
  if (description == nullptr || !platform_.copyUtf8(description, &text) || text.empty()) {
    return "the framework returned an NSError without a description";
  }
  return text;
}

// §1.3 step 6: NSTemporaryDirectory()/<hex>/ holds model.mil and every blob at its key's relative
// path (`@model_path/layer0/wq.bin` -> <hex>/layer0/wq.bin, folders created; the `weights/` folder
// maderix uses is always created, nothing requires it) before compileWithQoS. Programs of identical content share one directory (their hex
// identifiers are equal, §1.3): it is written by each compile and removed with its last user.
void AneRuntime::stage(AneModel& model, const ProgramSource& source) {
  const std::string& hex = model.hex_;
  if (hex.empty() || hex == "." || hex == ".." || hex.find('/') != std::string::npos ||
      hex.find('\0') != std::string::npos) {
    fail(ErrorKind::kCompile, "the framework gave the model an unusable hexStringIdentifier '" + hex + "'");
  }
  const std::string root = platform_.temporaryDirectory();
  if (root.empty() || root[0] != '/') {
    fail(ErrorKind::kDevice, "NSTemporaryDirectory() gave no absolute path ('" + root + "') to stage the program in");
  }
  const std::string directory = joinPath(root, hex);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Staging& staging = staging_[hex];
    ++staging.users;
    staging.directory = directory;
  }
  model.stagingDirectory_ = directory;
  model.staged_ = true;
  std::string error;
  const auto require = [&](bool ok) {
    if (!ok) fail(ErrorKind::kDevice, "could not stage the program in " + directory + ": " + error);
  };
  require(platform_.makeDirectories(joinPath(directory, "weights"), &error));
  require(platform_.writeFile(joinPath(directory, "model.mil"),
                              reinterpret_cast<const uint8_t*>(source.mil.data()), source.mil.size(), &error));
  for (const WeightBlob& blob : source.weights) {
    const std::string file = joinPath(directory, stagedRelativePath(blob.path));
    require(platform_.makeDirectories(parentOf(file), &error));
    require(platform_.writeFile(file, blob.bytes, blob.size, &error));
  }
}

void AneRuntime::unstage(const std::string& hex, const std::string& directory, std::string* error) {
  bool last = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto staging = staging_.find(hex);
    if (staging != staging_.end() && --staging->second.users <= 0) {
      staging_.erase(staging);
      last = true;
    }
  }
  std::string why;
  if (last && !platform_.removeTree(directory, &why) && error->empty()) {
    *error = "could not remove the staging directory: " + why;
  }
}

// §4.1: a 1-row, `bytes`-wide, 1-byte-per-element linear surface.
SurfaceRef AneRuntime::createSurface(size_t bytes) {
  const auto size = static_cast<int64_t>(bytes);
  const std::pair<platform::SurfaceKey, int64_t> properties[] = {
      {platform::SurfaceKey::kWidth, size},          {platform::SurfaceKey::kHeight, 1},
      {platform::SurfaceKey::kBytesPerElement, 1},   {platform::SurfaceKey::kBytesPerRow, size},
      {platform::SurfaceKey::kAllocSize, size},      {platform::SurfaceKey::kPixelFormat, 0},
  };
  std::vector<Id> keys;
  std::vector<Owned> values;
  std::vector<Id> valueIds;
  for (const auto& [key, value] : properties) {
    keys.push_back(platform_.surfacePropertyKey(key));
    values.emplace_back(platform_, platform_.createNumber(value));
    valueIds.push_back(values.back().get());
  }
  Owned dictionary(platform_, platform_.createDictionary(keys.data(), valueIds.data(), keys.size()));
  const SurfaceRef surface = platform_.createSurface(dictionary.get());
  if (surface == nullptr) fail(ErrorKind::kDevice, "IOSurfaceCreate failed for a " + std::to_string(bytes) + "-byte surface");
  if (platform_.surfaceAllocSize(surface) < bytes) {
    platform_.releaseSurface(surface);
    fail(ErrorKind::kDevice, "IOSurfaceCreate returned a surface smaller than " + std::to_string(bytes) + " bytes");
  }
  return surface;
}

// §1.3 step 10 and §1.4: one surface per input and output, each wrapped, and one request binding
// input i to parameter i and output j to returned value j.
void AneRuntime::createSurfacesAndRequest(AneModel& model) {
  const auto wrap = [&](SurfaceRef surface) {
    const Id wrapper = platform_.sendIdSurface(classes_.surfaceObject, selectors_.objectWithIoSurface, surface);
    if (wrapper == nullptr) fail(ErrorKind::kDevice, "objectWithIOSurface: returned nil");
    model.wrappers_.push_back(platform_.retain(wrapper));
    return wrapper;
  };
  std::vector<Id> inputWrappers;
  std::vector<Id> outputWrappers;
  for (size_t i = 0; i < model.inputs_.size(); ++i) {
    model.inputSurfaces_.push_back(createSurface(model.inputSurfaceBytes_));
    inputWrappers.push_back(wrap(model.inputSurfaces_.back()));
  }
  for (size_t j = 0; j < model.outputs_.size(); ++j) {
    model.outputSurfaces_.push_back(createSurface(model.outputSurfaceBytes_));
    outputWrappers.push_back(wrap(model.outputSurfaces_.back()));
  }
  const auto indices = [&](size_t count) {
    std::vector<Owned> numbers;
    std::vector<Id> ids;
    for (size_t i = 0; i < count; ++i) {
      numbers.emplace_back(platform_, platform_.createNumber(static_cast<int64_t>(i)));
      ids.push_back(numbers.back().get());
    }
    return Owned(platform_, platform_.createArray(ids.data(), ids.size()));
  };
  Owned inputs(platform_, platform_.createArray(inputWrappers.data(), inputWrappers.size()));
  Owned inputIndices = indices(inputWrappers.size());
  Owned outputs(platform_, platform_.createArray(outputWrappers.data(), outputWrappers.size()));
  Owned outputIndices = indices(outputWrappers.size());
  Owned procedureIndex(platform_, platform_.createNumber(0));
  // weightsBuffer and perfStats are nil, procedureIndex is the object @0 (§1.4, §8 item 1).
  const Id request = platform_.sendId7(classes_.request, selectors_.requestWithInputs, inputs.get(),
                                       inputIndices.get(), outputs.get(), outputIndices.get(), nullptr, nullptr,
                                       procedureIndex.get());
  if (request == nullptr) fail(ErrorKind::kDevice, "requestWithInputs:…procedureIndex: returned nil");
  model.request_ = platform_.retain(request);
}

std::shared_ptr<AneModel> AneRuntime::compile(const ProgramSource& source) {
  if (source.inputs.empty() || source.outputs.empty()) {
    fail(ErrorKind::kInput, "a program for the ANE needs at least one input and one output");
  }
  std::shared_ptr<AneModel> model(new AneModel(this));
  model->inputs_ = source.inputs;
  model->outputs_ = source.outputs;
  for (const TensorSpec& spec : source.inputs) model->inputBytes_.push_back(tensorBytes(spec));
  for (const TensorSpec& spec : source.outputs) model->outputBytes_.push_back(tensorBytes(spec));
  // Rule io-uniform-alloc: every input surface at one size, every output surface likewise, data
  // packed from byte 0 (rule io-packed-read); never below minSurfaceBytes (rule io-min-surface).
  // For one input and one output this is §4.1's exact tensor size whenever it is ≥ the minimum.
  model->inputSurfaceBytes_ = std::max(source.minSurfaceBytes,
                                       *std::max_element(model->inputBytes_.begin(), model->inputBytes_.end()));
  model->outputSurfaceBytes_ = std::max(source.minSurfaceBytes,
                                        *std::max_element(model->outputBytes_.begin(), model->outputBytes_.end()));
  std::vector<std::string> seen;
  for (const WeightBlob& blob : source.weights) {
    stagedRelativePath(blob.path);
    if (std::find(seen.begin(), seen.end(), blob.path) != seen.end()) {
      fail(ErrorKind::kInput, "weights key '" + blob.path + "' appears twice");
    }
    seen.push_back(blob.path);
  }
  if (compileCount_.load() >= compileLimit_.load()) {
    fail(ErrorKind::kBudget, "compile budget exhausted: this process has made " + std::to_string(compileCount_.load()) +
                                 " ANE compiles (limit " + std::to_string(compileLimit_.load()) +
                                 "); the framework fails past about 119 compiles per process");
  }
  open();

  AutoreleasePool pool(platform_);
  try {
    std::lock_guard<std::mutex> framework(frameworkMutex_);  // released before the handler runs
    // §1.3 steps 1-2: MIL as UTF-8 NSData; weights as {key: {"offset": @0, "data": NSData}}, and
    // the empty dictionary (never nil) when there are none. Both stay alive until compile ends.
    Owned milData(platform_, platform_.createData(reinterpret_cast<const uint8_t*>(source.mil.data()), source.mil.size()));
    std::vector<Owned> keepAlive;
    std::vector<Id> weightKeys;
    std::vector<Id> weightValues;
    Owned offsetKey(platform_, platform_.createString("offset"));
    Owned dataKey(platform_, platform_.createString("data"));
    for (const WeightBlob& blob : source.weights) {
      Owned offset(platform_, platform_.createNumber(0));
      Owned data(platform_, platform_.createData(blob.bytes, blob.size));
      const Id entryKeys[] = {offsetKey.get(), dataKey.get()};
      const Id entryValues[] = {offset.get(), data.get()};
      keepAlive.emplace_back(platform_, platform_.createString(blob.path));
      weightKeys.push_back(keepAlive.back().get());
      keepAlive.emplace_back(platform_, platform_.createDictionary(entryKeys, entryValues, 2));
      weightValues.push_back(keepAlive.back().get());
    }
    Owned weights(platform_, platform_.createDictionary(weightKeys.data(), weightValues.data(), weightKeys.size()));

    // §1.3 steps 3-4. The descriptor's only failure signal is nil (§1.7).
    const Id descriptor =
        platform_.sendId3(classes_.descriptor, selectors_.modelWithMilText, milData.get(), weights.get(), nullptr);
    if (descriptor == nullptr) {
      fail(ErrorKind::kCompile,
           "the ANE framework refused the program: modelWithMILText:weights:optionsPlist: returned nil "
           "(malformed MIL text or weights dictionary)");
    }
    const Id inMemoryModel = platform_.sendId1(classes_.model, selectors_.inMemoryModelWithDescriptor, descriptor);
    if (inMemoryModel == nullptr) {
      fail(ErrorKind::kCompile, "the ANE framework refused the program: inMemoryModelWithDescriptor: returned nil");
    }
    model->model_ = platform_.retain(inMemoryModel);

    // §1.3 step 5-6.
    const Id hex = platform_.sendId0(model->model_, selectors_.hexStringIdentifier);
    if (hex == nullptr || !platform_.copyUtf8(hex, &model->hex_)) {
      fail(ErrorKind::kCompile, "the ANE model has no hexStringIdentifier, so it cannot be staged");
    }
    stage(*model, source);

    // §1.3 step 7: every compile counts against the budget, before the call.
    model->options_ = platform_.createDictionary(nullptr, nullptr, 0);
    compileCount_.fetch_add(1);
    Id error = nullptr;
    if (!platform_.sendBoolQosOptionsError(model->model_, selectors_.compile, platform::kQoS, model->options_, &error)) {
      fail(ErrorKind::kCompile, "the ANE compiler refused the program (compileWithQoS:options:error:): " +
                                    describeError(error));
    }

    // §1.3 step 8: one retry after 100 ms "for ANE slot reclamation".
    error = nullptr;
    if (!platform_.sendBoolQosOptionsError(model->model_, selectors_.load, platform::kQoS, model->options_, &error)) {
      const std::string first = describeError(error);
      platform_.sleepMilliseconds(kLoadRetryDelayMs);
      error = nullptr;
      if (!platform_.sendBoolQosOptionsError(model->model_, selectors_.load, platform::kQoS, model->options_, &error)) {
        fail(ErrorKind::kDevice, "the ANE could not load the compiled program (loadWithQoS:options:error:, retried once after " +
                                     std::to_string(kLoadRetryDelayMs) + " ms): " + describeError(error) +
                                     " (first attempt: " + first + ")");
      }
    }
    model->loaded_ = true;

    createSurfacesAndRequest(*model);
  } catch (...) {
    std::string ignored;
    std::lock_guard<std::mutex> lock(model->mutex_);
    model->freeLocked(&ignored);
    throw;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  live_.push_back(model);
  return model;
}

// ---------------------------------------------------------------------------------------------
// AneModel

AneModel::AneModel(AneRuntime* runtime) : runtime_(runtime) {}

AneModel::~AneModel() {
  try {
    free();
  } catch (...) {
    // A destructor cannot report: free() already released everything it could.
  }
}

bool AneModel::isFreed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return freed_;
}

void AneModel::evaluate(const std::vector<ConstBytes>& inputs, const std::vector<MutableBytes>& outputs) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (freed_) fail(ErrorKind::kDevice, "this ANE program was freed; compile it again to run it");
  if (inputs.size() != inputs_.size() || outputs.size() != outputs_.size()) {
    fail(ErrorKind::kInput, "the program takes " + std::to_string(inputs_.size()) + " inputs and " +
                                std::to_string(outputs_.size()) + " outputs, got " + std::to_string(inputs.size()) +
                                " and " + std::to_string(outputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].size != inputBytes_[i] || (inputs[i].data == nullptr && inputs[i].size > 0)) {
      fail(ErrorKind::kInput, "input " + describeSpec(inputs_[i]) + " takes " + std::to_string(inputBytes_[i]) +
                                  " bytes, got " + std::to_string(inputs[i].size));
    }
  }
  for (size_t j = 0; j < outputs.size(); ++j) {
    if (outputs[j].size != outputBytes_[j] || (outputs[j].data == nullptr && outputs[j].size > 0)) {
      fail(ErrorKind::kInput, "output " + describeSpec(outputs_[j]) + " takes " + std::to_string(outputBytes_[j]) +
                                  " bytes, got " + std::to_string(outputs[j].size));
    }
  }
  Platform& platform = runtime_->platform_;
  AutoreleasePool pool(platform);
  // §4.1: lock with 0 to write; dense data from byte 0 (§4.2, rule io-packed-read).
  for (size_t i = 0; i < inputs.size(); ++i) {
    SurfaceRef surface = inputSurfaces_[i];
    if (!platform.lockSurface(surface, false)) fail(ErrorKind::kDevice, "IOSurfaceLock failed on input " + inputs_[i].name);
    void* base = platform.surfaceBaseAddress(surface);
    if (base != nullptr && inputs[i].size > 0) std::memcpy(base, inputs[i].data, inputs[i].size);
    const bool unlocked = platform.unlockSurface(surface, false);
    if (base == nullptr) fail(ErrorKind::kDevice, "IOSurfaceGetBaseAddress returned NULL for input " + inputs_[i].name);
    if (!unlocked) fail(ErrorKind::kDevice, "IOSurfaceUnlock failed on input " + inputs_[i].name);
  }
  // §1.5: synchronous; returns after the hardware finishes. The BOOL is checked (§8 item 8).
  Id error = nullptr;
  bool evaluated;
  {
    std::lock_guard<std::mutex> framework(runtime_->frameworkMutex_);
    evaluated = platform.sendBoolQosOptionsRequestError(model_, runtime_->selectors_.evaluate, platform::kQoS,
                                                        options_, request_, &error);
  }
  if (!evaluated) {
    fail(ErrorKind::kDevice, "the ANE failed to evaluate the program (evaluateWithQoS:options:request:error:): " +
                                 runtime_->describeError(error));
  }
  // §4.1: reads lock with kIOSurfaceLockReadOnly for both lock and unlock.
  for (size_t j = 0; j < outputs.size(); ++j) {
    SurfaceRef surface = outputSurfaces_[j];
    if (!platform.lockSurface(surface, true)) fail(ErrorKind::kDevice, "IOSurfaceLock failed on output " + outputs_[j].name);
    const void* base = platform.surfaceBaseAddress(surface);
    if (base != nullptr && outputs[j].size > 0) std::memcpy(outputs[j].data, base, outputs[j].size);
    const bool unlocked = platform.unlockSurface(surface, true);
    if (base == nullptr) fail(ErrorKind::kDevice, "IOSurfaceGetBaseAddress returned NULL for output " + outputs_[j].name);
    if (!unlocked) fail(ErrorKind::kDevice, "IOSurfaceUnlock failed on output " + outputs_[j].name);
  }
}

void AneModel::free() {
  std::string firstError;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    freeLocked(&firstError);
  }
  if (!firstError.empty()) fail(ErrorKind::kDevice, firstError);
}

// §1.6: unload → release every surface → remove the staging directory → release the objects.
void AneModel::freeLocked(std::string* firstError) {
  if (freed_) return;
  freed_ = true;
  Platform& platform = runtime_->platform_;
  {
    AutoreleasePool pool(platform);
    if (loaded_) {
      Id error = nullptr;
      bool unloaded;
      {
        std::lock_guard<std::mutex> framework(runtime_->frameworkMutex_);
        unloaded = platform.sendBoolQosError(model_, runtime_->selectors_.unload, platform::kQoS, &error);
      }
      if (!unloaded) {
        *firstError = "the ANE could not unload the program (unloadWithQoS:error:): " + runtime_->describeError(error);
      }
      loaded_ = false;
    }
  }
  for (SurfaceRef surface : inputSurfaces_) platform.releaseSurface(surface);
  for (SurfaceRef surface : outputSurfaces_) platform.releaseSurface(surface);
  inputSurfaces_.clear();
  outputSurfaces_.clear();
  if (staged_) {
    runtime_->unstage(hex_, stagingDirectory_, firstError);
    staged_ = false;
  }
  if (request_ != nullptr) platform.release(request_);
  for (Id wrapper : wrappers_) platform.release(wrapper);
  if (options_ != nullptr) platform.release(options_);
  if (model_ != nullptr) platform.release(model_);
  request_ = nullptr;
  wrappers_.clear();
  options_ = nullptr;
  model_ = nullptr;
  runtime_->forget(this);
}

}  // namespace ane
