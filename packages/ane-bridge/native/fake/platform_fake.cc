#include "platform_fake.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "../ane/posix_files.h"

namespace ane::fake {

using platform::Id;
using platform::Sel;
using platform::SurfaceKey;
using platform::SurfaceRef;

namespace {

enum Kind {
  kClass,
  kConstant,  // a global constant string (an IOSurface property key)
  kString,
  kData,
  kNumber,
  kArray,
  kDictionary,
  kError,
  kDescriptor,     // _ANEInMemoryModelDescriptor: items = {MIL NSData, weights NSDictionary}
  kModel,          // _ANEInMemoryModel: items = {descriptor}
  kSurfaceObject,  // _ANEIOSurfaceObject: items = {surface}
  kRequest,        // _ANERequest: items = {inputs, inputIndices, outputs, outputIndices, procedureIndex}
  kSurface,        // IOSurfaceRef
};

// The reference's C signature of every selector of the working path (§1.2, §1.7). The fake checks
// each message against this table, independently of the bridge's own platform.h.
const std::map<std::string, std::string>& expectedSignatures() {
  static const std::map<std::string, std::string> table = {
      {"modelWithMILText:weights:optionsPlist:", "id(id,SEL,id,id,id)"},
      {"inMemoryModelWithDescriptor:", "id(id,SEL,id)"},
      {"hexStringIdentifier", "id(id,SEL)"},
      {"compileWithQoS:options:error:", "BOOL(id,SEL,unsigned int,id,NSError**)"},
      {"loadWithQoS:options:error:", "BOOL(id,SEL,unsigned int,id,NSError**)"},
      {"objectWithIOSurface:", "id(id,SEL,IOSurfaceRef)"},
      {"requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:",
       "id(id,SEL,id,id,id,id,id,id,id)"},
      {"evaluateWithQoS:options:request:error:", "BOOL(id,SEL,unsigned int,id,id,NSError**)"},
      {"unloadWithQoS:error:", "BOOL(id,SEL,unsigned int,NSError**)"},
      {"description", "id(id,SEL)"},
  };
  return table;
}

const char* surfaceKeyName(SurfaceKey key) {
  switch (key) {
    case SurfaceKey::kWidth:
      return "kIOSurfaceWidth";
    case SurfaceKey::kHeight:
      return "kIOSurfaceHeight";
    case SurfaceKey::kBytesPerElement:
      return "kIOSurfaceBytesPerElement";
    case SurfaceKey::kBytesPerRow:
      return "kIOSurfaceBytesPerRow";
    case SurfaceKey::kAllocSize:
      return "kIOSurfaceAllocSize";
    case SurfaceKey::kPixelFormat:
      return "kIOSurfacePixelFormat";
  }
  return "?";
}

uint64_t fnv1a(uint64_t hash, const uint8_t* bytes, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ULL;
  }
  return hash;
}

void listFiles(const std::string& root, const std::string& relative, std::vector<StagedFile>* files) {
  const std::string directory = relative.empty() ? root : root + "/" + relative;
  DIR* handle = ::opendir(directory.c_str());
  if (handle == nullptr) return;
  while (const dirent* entry = ::readdir(handle)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string child = relative.empty() ? name : relative + "/" + name;
    struct stat info;
    if (::lstat((root + "/" + child).c_str(), &info) != 0) continue;
    if (S_ISDIR(info.st_mode)) {
      files->push_back({child + "/", {}});
      listFiles(root, child, files);
    } else {
      std::ifstream in(root + "/" + child, std::ios::binary);
      files->push_back({child, std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {})});
    }
  }
  ::closedir(handle);
}

// Autorelease pools are per thread, as in Objective-C.
struct PoolFrame {
  const FakePlatform* owner;
  std::vector<FakePlatform::Object*> objects;
};
thread_local std::vector<PoolFrame> poolStack;

}  // namespace

struct FakePlatform::Object {
  int kind = kString;
  std::string className;
  uint64_t serial = 0;
  int refs = 1;
  bool dead = false;
  bool immortal = false;
  std::string text;
  std::vector<uint8_t> bytes;
  int64_t number = 0;
  std::vector<Object*> items;   // array elements, dictionary keys, retained children
  std::vector<Object*> values;  // dictionary values
  // _ANEInMemoryModel
  std::string hex;
  bool compiled = false;
  bool loaded = false;
  bool evaluating = false;
  // IOSurface
  bool locked = false;
  bool lockedReadOnly = false;
  std::vector<uint8_t> snapshot;
};

std::string deterministicEvaluator(Evaluation& evaluation) {
  const std::vector<uint8_t>* first = evaluation.inputs.empty() ? nullptr : &evaluation.inputs[0];
  for (size_t j = 0; j < evaluation.outputs.size(); ++j) {
    std::vector<uint8_t>& out = evaluation.outputs[j];
    for (size_t k = 0; k < out.size(); ++k) {
      const unsigned in = first == nullptr || first->empty() ? 0u : (*first)[k % first->size()];
      out[k] = static_cast<uint8_t>(in + 3u * static_cast<unsigned>(j + 1) + static_cast<unsigned>(k & 0xFF));
    }
  }
  return "";
}

FakePlatform::FakePlatform(std::string temporaryDirectory) : temporaryDirectory_(std::move(temporaryDirectory)) {
  while (temporaryDirectory_.size() > 1 && temporaryDirectory_.back() == '/') temporaryDirectory_.pop_back();
  for (const char* name : {platform::classes::kDescriptor, platform::classes::kModel, platform::classes::kRequest,
                           platform::classes::kSurfaceObject}) {
    Object* cls = make(kClass, name);
    cls->immortal = true;
    classes_[name] = cls;
  }
  for (SurfaceKey key : platform::kSurfaceKeys) {
    Object* constant = make(kConstant, "NSString");
    constant->immortal = true;
    constant->text = surfaceKeyName(key);
    surfaceKeys_[key] = constant;
  }
}

FakePlatform::~FakePlatform() {
  for (Object* object : objects_) delete object;
  for (auto& [name, interned] : selectors_) delete interned;
}

// ---- knobs and observations ----

void FakePlatform::setFrameworkMissing(bool missing) {
  std::lock_guard<std::mutex> lock(mutex_);
  frameworkMissing_ = missing;
}
void FakePlatform::setMissingClass(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  missingClass_ = name;
}
void FakePlatform::setFrameworkCompileLimit(int limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  frameworkCompileLimit_ = limit;
}
void FakePlatform::failNextLoads(int count) {
  std::lock_guard<std::mutex> lock(mutex_);
  failLoads_ = count;
}
void FakePlatform::failNextEvaluate(const std::string& description) {
  std::lock_guard<std::mutex> lock(mutex_);
  failEvaluate_ = description;
}
void FakePlatform::failNextUnload(const std::string& description) {
  std::lock_guard<std::mutex> lock(mutex_);
  failUnload_ = description;
}
void FakePlatform::failNextSurfaceCreate() {
  std::lock_guard<std::mutex> lock(mutex_);
  failSurfaceCreate_ = true;
}
void FakePlatform::failNextLock() {
  std::lock_guard<std::mutex> lock(mutex_);
  failLock_ = true;
}
void FakePlatform::failNextWrite() {
  std::lock_guard<std::mutex> lock(mutex_);
  failWrite_ = true;
}
void FakePlatform::setEvaluator(Evaluator evaluator) {
  std::lock_guard<std::mutex> lock(mutex_);
  evaluator_ = std::move(evaluator);
}

std::vector<std::string> FakePlatform::calls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return calls_;
}
std::vector<std::string> FakePlatform::violations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return violations_;
}
std::vector<std::string> FakePlatform::liveObjects() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> live;
  for (const Object* object : objects_) {
    if (object->dead || object->immortal) continue;
    live.push_back(typeName(object) + "#" + std::to_string(object->serial) + " (retain count " +
                   std::to_string(object->refs) + ")");
  }
  return live;
}
std::vector<CompileRecord> FakePlatform::compiles() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return compiles_;
}
std::vector<SurfaceRecord> FakePlatform::surfaces() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return surfaces_;
}
std::vector<unsigned int> FakePlatform::sleeps() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sleeps_;
}
std::vector<std::vector<uint8_t>> FakePlatform::lastEvaluationInputs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lastInputs_;
}
int FakePlatform::frameworkCompiles() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return frameworkCompiles_;
}
int FakePlatform::loadedModels() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int count = 0;
  for (const Object* object : objects_) count += object->kind == kModel && object->loaded ? 1 : 0;
  return count;
}
void FakePlatform::clearCalls() {
  std::lock_guard<std::mutex> lock(mutex_);
  calls_.clear();
}

// ---- the object model ----

FakePlatform::Object* FakePlatform::make(int kind, std::string className) {
  auto* object = new Object();
  object->kind = kind;
  object->className = std::move(className);
  object->serial = objects_.size();
  objects_.push_back(object);
  known_.insert(object);
  return object;
}

FakePlatform::Object* FakePlatform::resolve(const void* pointer, const std::string& context) {
  if (pointer == nullptr) return nullptr;
  if (known_.count(pointer) == 0) {
    violation(context + ": pointer " + std::to_string(reinterpret_cast<uintptr_t>(pointer)) +
              " is not an object the platform made");
    return nullptr;
  }
  auto* object = const_cast<Object*>(static_cast<const Object*>(pointer));
  if (object->dead) violation(context + ": " + typeName(object) + " was used after it was deallocated");
  return object;
}

void FakePlatform::retainLocked(Object* object) {
  if (object != nullptr && !object->immortal) ++object->refs;
}

void FakePlatform::releaseLocked(Object* object, const std::string& context) {
  if (object == nullptr || object->immortal) return;
  if (object->dead || object->refs <= 0) {
    violation(context + ": over-release of " + typeName(object) + "#" + std::to_string(object->serial));
    return;
  }
  if (--object->refs > 0) return;
  object->dead = true;
  for (Object* child : object->items) releaseLocked(child, "dealloc of " + typeName(object));
  for (Object* child : object->values) releaseLocked(child, "dealloc of " + typeName(object));
}

FakePlatform::Object* FakePlatform::autorelease(Object* object) {
  if (poolStack.empty() || poolStack.back().owner != this) {
    violation(typeName(object) + " was autoreleased with no autorelease pool in place (it leaks)");
    return object;
  }
  poolStack.back().objects.push_back(object);
  return object;
}

FakePlatform::Object* FakePlatform::makeError(const std::string& description) {
  Object* error = make(kError, "NSError");
  error->text = description;
  return autorelease(error);
}

std::string FakePlatform::typeName(const Object* object) const {
  if (object == nullptr) return "nil";
  switch (object->kind) {
    case kClass:
      return "class " + object->className;
    case kConstant:
      return object->text;
    case kString:
      return "NSString";
    case kData:
      return "NSData";
    case kNumber:
      return "NSNumber";
    case kArray:
      return "NSArray";
    case kDictionary:
      return "NSDictionary";
    case kError:
      return "NSError";
    case kSurface:
      return "IOSurfaceRef";
    default:
      return object->className;
  }
}

std::string FakePlatform::selectorName(Sel selector) const {
  for (const auto& [name, interned] : selectors_) {
    if (reinterpret_cast<Sel>(interned) == selector) return name;
  }
  return "<unregistered selector>";
}

bool FakePlatform::checkSelector(Sel selector, const char* signature, const std::string& receiverText) {
  const std::string name = selectorName(selector);
  const auto& table = expectedSignatures();
  const auto expected = table.find(name);
  if (expected == table.end()) {
    violation(receiverText + " does not respond to " + name);
    return false;
  }
  if (expected->second != signature) {
    violation(name + " must be sent as " + expected->second + ", was sent as " + signature);
    return false;
  }
  return true;
}

void FakePlatform::violation(const std::string& text) { violations_.push_back(text); }
void FakePlatform::log(const std::string& line) { calls_.push_back(line); }

bool FakePlatform::isEmptyDictionary(const Object* object) const {
  return object != nullptr && object->kind == kDictionary && object->items.empty();
}

bool FakePlatform::underTemporaryRoot(const std::string& path) const {
  return path.compare(0, temporaryDirectory_.size() + 1, temporaryDirectory_ + "/") == 0 &&
         path.find("/../") == std::string::npos;
}

namespace {
std::string receiverText(const FakePlatform::Object* receiver, const std::string& selector) {
  if (receiver == nullptr) return "[nil " + selector + "]";
  return (receiver->kind == kClass ? "+[" : "-[") + receiver->className + " " + selector + "]";
}
bool hasMarker(const std::vector<uint8_t>& mil, const std::string& marker, std::string* rest) {
  const std::string text(mil.begin(), mil.end());
  const size_t at = text.find(marker);
  if (at == std::string::npos) return false;
  if (rest != nullptr) {
    const size_t end = text.find('\n', at);
    *rest = text.substr(at + marker.size(), end == std::string::npos ? std::string::npos : end - at - marker.size());
  }
  return true;
}
}  // namespace

void FakePlatform::checkWeightsDictionary(const Object* weights) {
  for (size_t i = 0; i < weights->items.size(); ++i) {
    const Object* key = weights->items[i];
    const Object* value = weights->values[i];
    if (key->kind != kString || key->text.rfind("@model_path/", 0) != 0) {
      violation("weights key " + typeName(key) + " '" + key->text + "' is not an NSString starting with @model_path/");
    }
    bool offset = false;
    bool data = false;
    if (value->kind == kDictionary && value->items.size() == 2) {
      for (size_t k = 0; k < 2; ++k) {
        offset |= value->items[k]->text == "offset" && value->values[k]->kind == kNumber;
        data |= value->items[k]->text == "data" && value->values[k]->kind == kData;
      }
    }
    if (!offset || !data) {
      violation("weights entry '" + key->text + "' must be {\"offset\": NSNumber, \"data\": NSData} (§1.3 step 2)");
    }
  }
}

// ---- dynamic loading and runtime ----

bool FakePlatform::openFramework(const char* path, std::string* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  log(std::string("dlopen(") + path + ", RTLD_NOW)");
  if (std::string(path) != platform::kFrameworkPath) violation(std::string("dlopen of an unexpected path ") + path);
  if (frameworkMissing_) {
    *error = std::string("dlopen(") + path + ", 0x0002): image not found";
    return false;
  }
  frameworkOpened_ = true;
  return true;
}

Id FakePlatform::getClass(const char* name) {
  std::lock_guard<std::mutex> lock(mutex_);
  log(std::string("objc_getClass(") + name + ")");
  if (!frameworkOpened_ || missingClass_ == name) return nullptr;
  auto found = classes_.find(name);
  return found == classes_.end() ? nullptr : reinterpret_cast<Id>(found->second);
}

Sel FakePlatform::registerSelector(const char* name) {
  std::lock_guard<std::mutex> lock(mutex_);
  log(std::string("sel_registerName(") + name + ")");
  std::string*& interned = selectors_[name];
  if (interned == nullptr) interned = new std::string(name);
  return reinterpret_cast<Sel>(interned);
}

// ---- messages ----

Id FakePlatform::sendId0(Id receiverId, Sel selector) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* receiver = resolve(receiverId, name);
  const std::string text = receiverText(receiver, name);
  Object* result = nullptr;
  if (checkSelector(selector, "id(id,SEL)", text)) {
    if (name == platform::selectors::kHexStringIdentifier && receiver != nullptr && receiver->kind == kModel) {
      result = autorelease(make(kString, "NSString"));
      result->text = receiver->hex;
    } else if (name == platform::selectors::kDescription && receiver != nullptr && receiver->kind == kError) {
      result = autorelease(make(kString, "NSString"));
      result->text = receiver->text;
    } else {
      violation(text + " sent to " + typeName(receiver));
    }
  }
  log(text + "() -> " + typeName(result));
  return reinterpret_cast<Id>(result);
}

Id FakePlatform::sendId1(Id receiverId, Sel selector, Id aId) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* receiver = resolve(receiverId, name);
  Object* a = resolve(aId, name);
  const std::string text = receiverText(receiver, name);
  Object* result = nullptr;
  if (checkSelector(selector, "id(id,SEL,id)", text)) {
    if (receiver != classes_[platform::classes::kModel]) violation(text + ": receiver must be class _ANEInMemoryModel");
    if (a == nullptr || a->kind != kDescriptor) {
      violation(text + ": the descriptor argument is " + typeName(a));
    } else {
      result = autorelease(make(kModel, platform::classes::kModel));
      retainLocked(a);
      result->items = {a};
      // §1.3: the identifier is derived from the content (MIL and weights).
      uint64_t h1 = 14695981039346656037ULL;
      uint64_t h2 = 0x9e3779b97f4a7c15ULL;
      const Object* mil = a->items[0];
      const Object* weights = a->items[1];
      h1 = fnv1a(h1, mil->bytes.data(), mil->bytes.size());
      h2 = fnv1a(h2, mil->bytes.data(), mil->bytes.size());
      std::vector<std::pair<std::string, const Object*>> entries;
      for (size_t i = 0; i < weights->items.size(); ++i) entries.emplace_back(weights->items[i]->text, weights->values[i]);
      std::sort(entries.begin(), entries.end(),
                [](const auto& x, const auto& y) { return x.first < y.first; });
      for (const auto& [key, value] : entries) {
        h1 = fnv1a(h1, reinterpret_cast<const uint8_t*>(key.data()), key.size() + 1);
        h2 = fnv1a(h2, reinterpret_cast<const uint8_t*>(key.data()), key.size() + 1);
        for (size_t k = 0; k < value->items.size(); ++k) {
          if (value->items[k]->text != "data") continue;
          h1 = fnv1a(h1, value->values[k]->bytes.data(), value->values[k]->bytes.size());
          h2 = fnv1a(h2, value->values[k]->bytes.data(), value->values[k]->bytes.size());
        }
      }
      char hex[33];
      std::snprintf(hex, sizeof hex, "%016llX%016llX", static_cast<unsigned long long>(h1),
                    static_cast<unsigned long long>(h2));
      result->hex = hex;
    }
  }
  log(text + "(" + typeName(a) + ") -> " + typeName(result));
  return reinterpret_cast<Id>(result);
}

Id FakePlatform::sendId3(Id receiverId, Sel selector, Id aId, Id bId, Id cId) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* receiver = resolve(receiverId, name);
  Object* a = resolve(aId, name);
  Object* b = resolve(bId, name);
  Object* c = resolve(cId, name);
  const std::string text = receiverText(receiver, name);
  Object* result = nullptr;
  if (checkSelector(selector, "id(id,SEL,id,id,id)", text)) {
    bool ok = true;
    if (receiver != classes_[platform::classes::kDescriptor]) {
      violation(text + ": receiver must be class _ANEInMemoryModelDescriptor");
      ok = false;
    }
    if (a == nullptr || a->kind != kData) {
      violation(text + ": the MIL text must be NSData (UTF-8), got " + typeName(a) + " (§1.2)");
      ok = false;
    }
    if (b == nullptr) {
      violation(text + ": the weights dictionary is nil; pass @{} when there are no weights (§1.3 step 2)");
      ok = false;
    } else if (b->kind != kDictionary) {
      violation(text + ": the weights argument must be NSDictionary, got " + typeName(b));
      ok = false;
    } else {
      checkWeightsDictionary(b);
    }
    if (c != nullptr) {
      violation(text + ": optionsPlist must be nil, got " + typeName(c));
      ok = false;
    }
    if (ok && !hasMarker(a->bytes, "FAKE_DESCRIPTOR_NIL", nullptr)) {
      result = autorelease(make(kDescriptor, platform::classes::kDescriptor));
      retainLocked(a);
      retainLocked(b);
      result->items = {a, b};
    }
  }
  log(text + "(" + typeName(a) + ", " + typeName(b) + ", " + typeName(c) + ") -> " + typeName(result));
  return reinterpret_cast<Id>(result);
}

Id FakePlatform::sendIdSurface(Id receiverId, Sel selector, SurfaceRef surfaceRef) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* receiver = resolve(receiverId, name);
  Object* surface = resolve(surfaceRef, name);
  const std::string text = receiverText(receiver, name);
  Object* result = nullptr;
  if (checkSelector(selector, "id(id,SEL,IOSurfaceRef)", text)) {
    if (receiver != classes_[platform::classes::kSurfaceObject]) {
      violation(text + ": receiver must be class _ANEIOSurfaceObject");
    }
    if (surface == nullptr || surface->kind != kSurface) {
      violation(text + ": the argument must be an IOSurfaceRef, got " + typeName(surface));
    } else {
      result = autorelease(make(kSurfaceObject, platform::classes::kSurfaceObject));
      retainLocked(surface);
      result->items = {surface};
    }
  }
  log(text + "(" + typeName(surface) + ") -> " + typeName(result));
  return reinterpret_cast<Id>(result);
}

Id FakePlatform::sendId7(Id receiverId, Sel selector, Id aId, Id bId, Id cId, Id dId, Id eId, Id fId, Id gId) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* receiver = resolve(receiverId, name);
  Object* args[7];
  const Id ids[7] = {aId, bId, cId, dId, eId, fId, gId};
  for (int i = 0; i < 7; ++i) args[i] = resolve(ids[i], name);
  const std::string text = receiverText(receiver, name);
  Object* result = nullptr;
  if (checkSelector(selector, "id(id,SEL,id,id,id,id,id,id,id)", text)) {
    bool ok = receiver == classes_[platform::classes::kRequest];
    if (!ok) violation(text + ": receiver must be class _ANERequest");
    // §1.4: arrays of wrappers with positional NSNumber indices 0..n-1.
    for (int group = 0; group < 2; ++group) {
      const char* role = group == 0 ? "inputs" : "outputs";
      const Object* surfaces = args[group * 2];
      const Object* indices = args[group * 2 + 1];
      if (surfaces == nullptr || surfaces->kind != kArray || surfaces->items.empty()) {
        violation(text + ": " + role + " must be a non-empty NSArray, got " + typeName(surfaces));
        ok = false;
        continue;
      }
      for (const Object* wrapper : surfaces->items) {
        if (wrapper->kind != kSurfaceObject) {
          violation(text + ": " + role + " holds " + typeName(wrapper) + ", not _ANEIOSurfaceObject");
          ok = false;
        }
      }
      if (indices == nullptr || indices->kind != kArray || indices->items.size() != surfaces->items.size()) {
        violation(text + ": " + role + " indices must be an NSArray as long as " + role);
        ok = false;
        continue;
      }
      for (size_t i = 0; i < indices->items.size(); ++i) {
        const Object* index = indices->items[i];
        if (index->kind != kNumber || index->number != static_cast<int64_t>(i)) {
          violation(text + ": " + role + " index " + std::to_string(i) + " must be @(" + std::to_string(i) + ")");
          ok = false;
        }
      }
    }
    if (args[4] != nullptr) violation(text + ": weightsBuffer must be nil (§1.4)");
    if (args[5] != nullptr) violation(text + ": perfStats must be nil (§1.4)");
    if (args[6] == nullptr || args[6]->kind != kNumber || args[6]->number != 0) {
      violation(text + ": procedureIndex must be the object @0, got " + typeName(args[6]) + " (§1.2)");
      ok = false;
    }
    if (ok) {
      result = autorelease(make(kRequest, platform::classes::kRequest));
      for (int i : {0, 1, 2, 3, 6}) {
        retainLocked(args[i]);
        result->items.push_back(args[i]);
      }
    }
  }
  std::string argText;
  for (int i = 0; i < 7; ++i) argText += (i > 0 ? ", " : "") + typeName(args[i]);
  log(text + "(" + argText + ") -> " + typeName(result));
  return reinterpret_cast<Id>(result);
}

bool FakePlatform::sendBoolQosOptionsError(Id receiverId, Sel selector, unsigned int qos, Id optionsId,
                                           Id* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* model = resolve(receiverId, name);
  Object* options = resolve(optionsId, name);
  const std::string text = receiverText(model, name);
  const std::string call = text + "(" + std::to_string(qos) + ", " + typeName(options) +
                           (isEmptyDictionary(options) ? "{}" : "") + ", " + (error ? "NSError**" : "NULL") + ")";
  const auto finish = [&](bool ok, const std::string& description) {
    if (!ok && error != nullptr) *error = reinterpret_cast<Id>(makeError(description));
    log(call + " -> " + (ok ? "YES" : "NO"));
    return ok;
  };
  if (!checkSelector(selector, "BOOL(id,SEL,unsigned int,id,NSError**)", text)) return finish(false, "unknown selector");
  if (model == nullptr || model->kind != kModel) {
    violation(text + ": receiver must be an _ANEInMemoryModel");
    return finish(false, "not a model");
  }
  if (qos != platform::kQoS) violation(text + ": QoS " + std::to_string(qos) + ", the working path uses 21 (§1.2)");
  if (!isEmptyDictionary(options)) violation(text + ": options must be the empty dictionary @{}, got " + typeName(options));
  if (error == nullptr) violation(text + ": the NSError** argument is NULL, so failures would be silent");
  const Object* descriptor = model->items[0];
  const Object* mil = descriptor->items[0];
  const Object* weights = descriptor->items[1];

  if (name == platform::selectors::kCompile) {
    if (model->compiled) violation(text + ": compiled twice");
    ++frameworkCompiles_;
    CompileRecord record;
    record.hex = model->hex;
    record.directory = temporaryDirectory_ + "/" + model->hex;
    listFiles(record.directory, "", &record.files);
    std::sort(record.files.begin(), record.files.end(),
              [](const StagedFile& x, const StagedFile& y) { return x.path < y.path; });
    const auto staged = [&](const std::string& path) -> const StagedFile* {
      for (const StagedFile& file : record.files) {
        if (file.path == path) return &file;
      }
      return nullptr;
    };
    std::string problem;
    std::string marker;
    if (hasMarker(mil->bytes, "FAKE_COMPILE_ERROR:", &marker)) {
      problem = marker;
    } else if (frameworkCompiles_ > frameworkCompileLimit_) {
      // §1.8: past ~119 compiles in one process further compiles fail.
      problem =
          "Error Domain=com.apple.appleneuralengine.compiler Code=1 \"_ANECompiler : ANECCompile() FAILED\" "
          "(fake: compile " + std::to_string(frameworkCompiles_) + " of this process)";
    } else {
      const StagedFile* staged_mil = staged("model.mil");
      if (staged_mil == nullptr || staged_mil->bytes != mil->bytes) {
        problem = "Error Domain=com.apple.appleneuralengine.compiler Code=1 \"_ANECompiler : ANECCompile() FAILED\" "
                  "(fake: model.mil is missing or differs in " + record.directory + ")";
      }
      for (size_t i = 0; i < weights->items.size() && problem.empty(); ++i) {
        const std::string& key = weights->items[i]->text;
        const Object* value = weights->values[i];
        const std::string relative = key.substr(std::string("@model_path/").size());
        const StagedFile* file = staged(relative);
        for (size_t k = 0; k < value->items.size(); ++k) {
          if (value->items[k]->text == "data" && (file == nullptr || file->bytes != value->values[k]->bytes)) {
            problem = "Error Domain=com.apple.appleneuralengine.compiler Code=1 \"_ANECompiler : ANECCompile() FAILED\" "
                      "(fake: " + relative + " is missing or differs in " + record.directory + ")";
          }
        }
      }
    }
    record.succeeded = problem.empty();
    compiles_.push_back(record);
    if (!problem.empty()) return finish(false, problem);
    // PR #22: a compile leaves net.plist in the directory; removal must take it too.
    std::string ignored;
    const char plist[] = "<plist/>";
    posix::writeFile(record.directory + "/net.plist", reinterpret_cast<const uint8_t*>(plist), sizeof plist - 1,
                     &ignored);
    model->compiled = true;
    return finish(true, "");
  }
  if (name == platform::selectors::kLoad) {
    if (!model->compiled) violation(text + ": load before a successful compile");
    if (model->loaded) violation(text + ": loaded twice");
    if (failLoads_ > 0) {
      --failLoads_;
      return finish(false,
                    "Error Domain=com.apple.appleneuralengine Code=4 \"loadWithQoS:options:error:: "
                    "ANEProgramLoad() Failed (fake: no free ANE program slot)\"");
    }
    model->loaded = true;
    return finish(true, "");
  }
  violation(text + ": not a compile or load selector");
  return finish(false, "unexpected selector");
}

bool FakePlatform::sendBoolQosOptionsRequestError(Id receiverId, Sel selector, unsigned int qos, Id optionsId,
                                                  Id requestId, Id* error) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* model = resolve(receiverId, name);
  Object* options = resolve(optionsId, name);
  Object* request = resolve(requestId, name);
  const std::string text = receiverText(model, name);
  const std::string call = text + "(" + std::to_string(qos) + ", " + typeName(options) +
                           (isEmptyDictionary(options) ? "{}" : "") + ", " + typeName(request) + ", " +
                           (error ? "NSError**" : "NULL") + ")";
  const auto finish = [&](bool ok, const std::string& description) {
    if (!ok && error != nullptr) *error = reinterpret_cast<Id>(makeError(description));
    log(call + " -> " + (ok ? "YES" : "NO"));
    return ok;
  };
  if (!checkSelector(selector, "BOOL(id,SEL,unsigned int,id,id,NSError**)", text)) return finish(false, "unknown selector");
  if (model == nullptr || model->kind != kModel || request == nullptr || request->kind != kRequest) {
    violation(text + ": needs an _ANEInMemoryModel receiver and an _ANERequest");
    return finish(false, "bad receiver or request");
  }
  if (qos != platform::kQoS) violation(text + ": QoS " + std::to_string(qos) + ", the working path uses 21 (§1.2)");
  if (!isEmptyDictionary(options)) violation(text + ": options must be the empty dictionary @{}");
  if (error == nullptr) violation(text + ": the NSError** argument is NULL, so failures would be silent");
  if (!model->loaded) {
    violation(text + ": evaluate of a model that is not loaded");
    return finish(false, "Error Domain=com.apple.appleneuralengine Code=8 \"model not loaded (fake)\"");
  }
  if (model->evaluating) violation(text + ": two evaluations of one model at the same time");
  if (evaluating_ > 0) violation(text + ": two evaluations in one process at the same time (the bridge serializes them)");
  std::vector<Object*> inputs;
  std::vector<Object*> outputs;
  for (Object* wrapper : request->items[0]->items) inputs.push_back(wrapper->items[0]);
  for (Object* wrapper : request->items[2]->items) outputs.push_back(wrapper->items[0]);
  for (Object* surface : inputs) {
    if (surface->locked) violation(text + ": an input surface is still locked during evaluation");
  }
  for (Object* surface : outputs) {
    if (surface->locked) violation(text + ": an output surface is still locked during evaluation");
  }
  if (!failEvaluate_.empty()) {
    const std::string description = failEvaluate_;
    failEvaluate_.clear();
    return finish(false, description);
  }
  Evaluation evaluation;
  const Object* descriptor = model->items[0];
  evaluation.mil.assign(descriptor->items[0]->bytes.begin(), descriptor->items[0]->bytes.end());
  const Object* weights = descriptor->items[1];
  for (size_t i = 0; i < weights->items.size(); ++i) {
    const Object* value = weights->values[i];
    for (size_t k = 0; k < value->items.size(); ++k) {
      if (value->items[k]->text == "data") evaluation.weights[weights->items[i]->text] = value->values[k]->bytes;
    }
  }
  for (Object* surface : inputs) evaluation.inputs.push_back(surface->bytes);
  for (Object* surface : outputs) evaluation.outputs.emplace_back(surface->bytes.size(), 0);
  lastInputs_ = evaluation.inputs;
  Evaluator evaluator = evaluator_ ? evaluator_ : Evaluator(deterministicEvaluator);
  model->evaluating = true;
  ++evaluating_;
  lock.unlock();  // the evaluator may call into JavaScript
  const std::string failure = evaluator(evaluation);
  lock.lock();
  --evaluating_;
  model->evaluating = false;
  if (!failure.empty()) return finish(false, failure);
  for (size_t j = 0; j < outputs.size(); ++j) {
    if (evaluation.outputs[j].size() == outputs[j]->bytes.size()) outputs[j]->bytes = evaluation.outputs[j];
  }
  return finish(true, "");
}

bool FakePlatform::sendBoolQosError(Id receiverId, Sel selector, unsigned int qos, Id* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string name = selectorName(selector);
  Object* model = resolve(receiverId, name);
  const std::string text = receiverText(model, name);
  const std::string call = text + "(" + std::to_string(qos) + ", " + (error ? "NSError**" : "NULL") + ")";
  const auto finish = [&](bool ok, const std::string& description) {
    if (!ok && error != nullptr) *error = reinterpret_cast<Id>(makeError(description));
    log(call + " -> " + (ok ? "YES" : "NO"));
    return ok;
  };
  if (!checkSelector(selector, "BOOL(id,SEL,unsigned int,NSError**)", text)) return finish(false, "unknown selector");
  if (model == nullptr || model->kind != kModel) {
    violation(text + ": receiver must be an _ANEInMemoryModel");
    return finish(false, "not a model");
  }
  if (qos != platform::kQoS) violation(text + ": QoS " + std::to_string(qos) + ", the working path uses 21 (§1.2)");
  if (error == nullptr) violation(text + ": the NSError** argument is NULL, so failures would be silent");
  if (!model->loaded) violation(text + ": unload of a model that is not loaded");
  model->loaded = false;
  if (!failUnload_.empty()) {
    const std::string description = failUnload_;
    failUnload_.clear();
    return finish(false, description);
  }
  return finish(true, "");
}

// ---- ownership ----

Id FakePlatform::retain(Id objectId) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* object = resolve(objectId, "CFRetain");
  if (object == nullptr) {
    violation("CFRetain(NULL)");
    return objectId;
  }
  if (object->immortal) violation("CFRetain of " + typeName(object) + ", which the bridge does not own");
  if (!object->dead) retainLocked(object);
  return objectId;
}

void FakePlatform::release(Id objectId) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* object = resolve(objectId, "CFRelease");
  if (object == nullptr) {
    violation("CFRelease(NULL)");
    return;
  }
  if (object->immortal) {
    violation("CFRelease of " + typeName(object) + ", which the bridge does not own");
    return;
  }
  releaseLocked(object, "CFRelease");
}

void* FakePlatform::autoreleasePoolPush() {
  poolStack.push_back({this, {}});
  return reinterpret_cast<void*>(static_cast<uintptr_t>(poolStack.size()));
}

void FakePlatform::autoreleasePoolPop(void* token) {
  const auto depth = static_cast<size_t>(reinterpret_cast<uintptr_t>(token));
  std::lock_guard<std::mutex> lock(mutex_);
  if (depth == 0 || depth != poolStack.size() || poolStack.back().owner != this) {
    violation("objc_autoreleasePoolPop of a pool that is not the innermost one");
    return;
  }
  for (Object* object : poolStack.back().objects) releaseLocked(object, "autorelease pool drain");
  poolStack.pop_back();
}

// ---- Foundation objects ----

Id FakePlatform::createString(const std::string& utf8) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* object = make(kString, "NSString");
  object->text = utf8;
  log("CFStringCreateWithBytes(\"" + utf8 + "\")");
  return reinterpret_cast<Id>(object);
}

Id FakePlatform::createData(const uint8_t* bytes, size_t size) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* object = make(kData, "NSData");
  if (size > 0) object->bytes.assign(bytes, bytes + size);
  log("CFDataCreate(" + std::to_string(size) + " bytes)");
  return reinterpret_cast<Id>(object);
}

Id FakePlatform::createNumber(int64_t value) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* object = make(kNumber, "NSNumber");
  object->number = value;
  log("CFNumberCreate(" + std::to_string(value) + ")");
  return reinterpret_cast<Id>(object);
}

Id FakePlatform::createArray(const Id* values, size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* array = make(kArray, "NSArray");
  std::string types;
  for (size_t i = 0; i < count; ++i) {
    Object* element = resolve(values[i], "CFArrayCreate");
    if (element == nullptr) {
      violation("CFArrayCreate with a NULL element");
      continue;
    }
    retainLocked(element);
    array->items.push_back(element);
    types += (i > 0 ? ", " : "") + typeName(element);
  }
  log("CFArrayCreate([" + types + "])");
  return reinterpret_cast<Id>(array);
}

Id FakePlatform::createDictionary(const Id* keys, const Id* values, size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* dictionary = make(kDictionary, "NSDictionary");
  std::string entries;
  for (size_t i = 0; i < count; ++i) {
    Object* key = resolve(keys[i], "CFDictionaryCreate");
    Object* value = resolve(values[i], "CFDictionaryCreate");
    if (key == nullptr || value == nullptr) {
      violation("CFDictionaryCreate with a NULL key or value");
      continue;
    }
    retainLocked(key);
    retainLocked(value);
    dictionary->items.push_back(key);
    dictionary->values.push_back(value);
    entries += (i > 0 ? ", " : "") + (key->text.empty() ? typeName(key) : key->text) + ": " + typeName(value);
  }
  log("CFDictionaryCreate({" + entries + "})");
  return reinterpret_cast<Id>(dictionary);
}

bool FakePlatform::copyUtf8(Id stringId, std::string* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* object = resolve(stringId, "CFStringGetCString");
  if (object == nullptr || (object->kind != kString && object->kind != kConstant)) {
    violation("CFStringGetCString of " + typeName(object));
    return false;
  }
  *out = object->text;
  return true;
}

std::string FakePlatform::temporaryDirectory() {
  std::lock_guard<std::mutex> lock(mutex_);
  log("NSTemporaryDirectory()");
  return temporaryDirectory_ + "/";
}

// ---- IOSurface ----

Id FakePlatform::surfacePropertyKey(SurfaceKey key) {
  std::lock_guard<std::mutex> lock(mutex_);
  return reinterpret_cast<Id>(surfaceKeys_.at(key));
}

SurfaceRef FakePlatform::createSurface(Id propertiesId) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* properties = resolve(propertiesId, "IOSurfaceCreate");
  SurfaceRecord record;
  if (properties == nullptr || properties->kind != kDictionary) {
    violation("IOSurfaceCreate needs a properties dictionary");
  } else {
    for (size_t i = 0; i < properties->items.size(); ++i) {
      const Object* key = properties->items[i];
      const Object* value = properties->values[i];
      bool known = false;
      for (const auto& [surfaceKey, constant] : surfaceKeys_) known |= constant == key;
      if (!known) violation("IOSurfaceCreate: unexpected property key " + typeName(key) + " '" + key->text + "'");
      if (value->kind != kNumber) violation("IOSurfaceCreate: property " + key->text + " is not an NSNumber");
      record.properties[key->text] = value->number;
    }
  }
  // §4.1: exactly six keys; width = bytesPerRow = allocSize = bytes, height 1, 1 byte/element, format 0.
  const auto& p = record.properties;
  const auto get = [&](const char* key) { return p.count(key) ? p.at(key) : -1; };
  const int64_t bytes = get("kIOSurfaceAllocSize");
  if (p.size() != 6 || bytes <= 0 || get("kIOSurfaceWidth") != bytes || get("kIOSurfaceBytesPerRow") != bytes ||
      get("kIOSurfaceHeight") != 1 || get("kIOSurfaceBytesPerElement") != 1 || get("kIOSurfacePixelFormat") != 0) {
    violation("IOSurfaceCreate: properties differ from the six of §4.1");
  }
  record.allocSize = bytes > 0 ? static_cast<size_t>(bytes) : 0;
  surfaces_.push_back(record);
  if (failSurfaceCreate_) {
    failSurfaceCreate_ = false;
    log("IOSurfaceCreate(" + std::to_string(bytes) + " bytes) -> NULL");
    return nullptr;
  }
  Object* surface = make(kSurface, "IOSurface");
  // Fresh surfaces hold garbage, so a bridge that forgot to copy an input is caught.
  surface->bytes.assign(record.allocSize, 0xA5);
  log("IOSurfaceCreate(" + std::to_string(bytes) + " bytes) -> IOSurfaceRef#" + std::to_string(surface->serial));
  return reinterpret_cast<SurfaceRef>(surface);
}

bool FakePlatform::lockSurface(SurfaceRef surfaceRef, bool readOnly) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* surface = resolve(surfaceRef, "IOSurfaceLock");
  const std::string text = "IOSurfaceLock(IOSurfaceRef#" + std::to_string(surface ? surface->serial : 0) + ", " +
                           (readOnly ? "kIOSurfaceLockReadOnly" : "0") + ")";
  if (surface == nullptr || surface->kind != kSurface) {
    violation("IOSurfaceLock of " + typeName(surface));
    log(text + " -> error");
    return false;
  }
  if (failLock_) {
    failLock_ = false;
    log(text + " -> error");
    return false;
  }
  if (surface->locked) violation(text + ": the surface is already locked");
  surface->locked = true;
  surface->lockedReadOnly = readOnly;
  if (readOnly) surface->snapshot = surface->bytes;
  log(text + " -> kIOReturnSuccess");
  return true;
}

bool FakePlatform::unlockSurface(SurfaceRef surfaceRef, bool readOnly) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* surface = resolve(surfaceRef, "IOSurfaceUnlock");
  const std::string text = "IOSurfaceUnlock(IOSurfaceRef#" + std::to_string(surface ? surface->serial : 0) + ", " +
                           (readOnly ? "kIOSurfaceLockReadOnly" : "0") + ")";
  log(text);
  if (surface == nullptr || surface->kind != kSurface) {
    violation("IOSurfaceUnlock of " + typeName(surface));
    return false;
  }
  if (!surface->locked) violation(text + ": the surface is not locked");
  if (surface->locked && surface->lockedReadOnly != readOnly) violation(text + ": options differ from the lock's");
  if (surface->locked && surface->lockedReadOnly && surface->bytes != surface->snapshot) {
    violation(text + ": the surface was written while locked read-only");
  }
  surface->locked = false;
  return true;
}

void* FakePlatform::surfaceBaseAddress(SurfaceRef surfaceRef) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* surface = resolve(surfaceRef, "IOSurfaceGetBaseAddress");
  if (surface == nullptr || surface->kind != kSurface) return nullptr;
  if (!surface->locked) violation("IOSurfaceGetBaseAddress of a surface that is not locked");
  return surface->bytes.data();
}

size_t FakePlatform::surfaceAllocSize(SurfaceRef surfaceRef) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* surface = resolve(surfaceRef, "IOSurfaceGetAllocSize");
  return surface == nullptr ? 0 : surface->bytes.size();
}

void FakePlatform::releaseSurface(SurfaceRef surfaceRef) {
  std::lock_guard<std::mutex> lock(mutex_);
  Object* surface = resolve(surfaceRef, "CFRelease(IOSurfaceRef)");
  if (surface == nullptr) {
    violation("CFRelease(NULL IOSurfaceRef)");
    return;
  }
  if (surface->locked) violation("an IOSurface was released while locked");
  log("CFRelease(IOSurfaceRef#" + std::to_string(surface->serial) + ")");
  releaseLocked(surface, "CFRelease(IOSurfaceRef)");
}

// ---- files ----

bool FakePlatform::makeDirectories(const std::string& path, std::string* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  log("mkdir -p " + path);
  if (!underTemporaryRoot(path)) violation("mkdir outside NSTemporaryDirectory(): " + path);
  return posix::makeDirectories(path, error);
}

bool FakePlatform::writeFile(const std::string& path, const uint8_t* bytes, size_t size, std::string* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  log("write " + path + " (" + std::to_string(size) + " bytes)");
  if (!underTemporaryRoot(path)) violation("write outside NSTemporaryDirectory(): " + path);
  if (failWrite_) {
    failWrite_ = false;
    *error = "write " + path + ": No space left on device (fake)";
    return false;
  }
  return posix::writeFile(path, bytes, size, error);
}

bool FakePlatform::removeTree(const std::string& path, std::string* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  log("rm -r " + path);
  if (!underTemporaryRoot(path)) {
    violation("rm -r outside NSTemporaryDirectory(): " + path);
    *error = "refused to remove " + path;
    return false;
  }
  return posix::removeTree(path, error);
}

void FakePlatform::sleepMilliseconds(unsigned int milliseconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  log("usleep(" + std::to_string(milliseconds) + " ms)");
  sleeps_.push_back(milliseconds);
}

}  // namespace ane::fake
