// Drives the ANE bridge (native/ane/ane_device.cc) through the fake platform and checks what the
// real framework cannot tell us: the call sequence and argument types, the staged directory, the
// surfaces, error text propagation, the load retry, the compile budget, retain/release balance and
// staging cleanup. Built with -fsanitize=address,undefined by run.cjs; no Node involved.
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../ane/ane_device.h"
#include "../ane/posix_files.h"
#include "../fake/platform_fake.h"

using ane::AneRuntime;
using ane::BridgeError;
using ane::ConstBytes;
using ane::DType;
using ane::ErrorKind;
using ane::MutableBytes;
using ane::ProgramSource;
using ane::TensorSpec;
using ane::fake::FakePlatform;

namespace {

int failures = 0;
std::string currentTest;

#define CHECK(condition)                                                                       \
  do {                                                                                         \
    if (!(condition)) {                                                                        \
      ++failures;                                                                              \
      std::fprintf(stderr, "  FAIL %s (%s:%d): %s\n", currentTest.c_str(), __FILE__, __LINE__, \
                   #condition);                                                                \
    }                                                                                          \
  } while (0)

#define CHECK_EQ(actual, expected)                                                                          \
  do {                                                                                                      \
    const auto& actualValue = (actual);                                                                     \
    const auto& expectedValue = (expected);                                                                 \
    if (!(actualValue == expectedValue)) {                                                                  \
      ++failures;                                                                                           \
      std::fprintf(stderr, "  FAIL %s (%s:%d): %s\n    got:      %s\n    expected: %s\n", currentTest.c_str(), \
                   __FILE__, __LINE__, #actual, toText(actualValue).c_str(), toText(expectedValue).c_str());  \
    }                                                                                                       \
  } while (0)

std::string toText(const std::string& value) { return "\"" + value + "\""; }
template <typename T>
std::string toText(const T& value) {
  return std::to_string(value);
}
std::string toText(const std::vector<std::string>& values) {
  std::string text = "[";
  for (const auto& value : values) text += "\n      " + value;
  return text + "\n    ]";
}
std::string toText(const std::vector<unsigned int>& values) {
  std::string text = "[";
  for (unsigned value : values) text += std::to_string(value) + " ";
  return text + "]";
}

// Runs `body` and returns the BridgeError it throws (kind and message), or fails the check.
struct Thrown {
  bool thrown = false;
  ErrorKind kind = ErrorKind::kDevice;
  std::string message;
};
Thrown capture(const std::function<void()>& body) {
  Thrown result;
  try {
    body();
  } catch (const BridgeError& error) {
    result.thrown = true;
    result.kind = error.kind();
    result.message = error.what();
  }
  return result;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> messages(const std::vector<std::string>& calls) {
  std::vector<std::string> result;
  for (const auto& call : calls) {
    if (call.rfind("+[", 0) == 0 || call.rfind("-[", 0) == 0) result.push_back(call);
  }
  return result;
}

// Index of the first call starting with `prefix` at or after `from`, or -1.
long indexOf(const std::vector<std::string>& calls, const std::string& prefix, long from = 0) {
  for (long i = from; i < static_cast<long>(calls.size()); ++i) {
    if (calls[i].rfind(prefix, 0) == 0) return i;
  }
  return -1;
}

std::vector<std::string> entriesOf(const std::string& directory) {
  std::vector<std::string> names;
  if (DIR* handle = ::opendir(directory.c_str())) {
    while (const dirent* entry = ::readdir(handle)) {
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) names.push_back(entry->d_name);
    }
    ::closedir(handle);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<uint8_t> pattern(size_t size, unsigned seed) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed * 31u + i * 7u + (i >> 8));
  return bytes;
}

const char* const kMil =
    "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {\n"
    "        tensor<fp16, [1,2,1,8]> y = conv(...)[name=string(\"y\")];\n    } -> (y);\n}\n";

struct Fixture {
  std::string root;
  FakePlatform fake;
  AneRuntime runtime;
  std::vector<uint8_t> blobW = pattern(200, 1);
  std::vector<uint8_t> blobNested = pattern(130, 2);

  static std::string makeRoot() {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    std::string templ = base + "/ane-harness-XXXXXX";
    std::vector<char> buffer(templ.begin(), templ.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(2);
    }
    return buffer.data();
  }

  Fixture() : root(makeRoot()), fake(root), runtime(fake) {}
  ~Fixture() {
    std::string ignored;
    ane::posix::removeTree(root, &ignored);
  }

  ProgramSource program(const std::string& mil = kMil) const {
    ProgramSource source;
    source.mil = mil;
    source.weights = {{"@model_path/weights/w.bin", blobW.data(), blobW.size()}};
    source.inputs = {{"x", DType::kFp16, {1, 4, 1, 8}}};
    source.outputs = {{"y", DType::kFp16, {1, 2, 1, 8}}};
    return source;
  }

  // After every test: no violations, nothing retained, nothing loaded, nothing staged.
  void expectClean() {
    CHECK_EQ(fake.violations(), std::vector<std::string>{});
    CHECK_EQ(fake.liveObjects(), std::vector<std::string>{});
    CHECK_EQ(fake.loadedModels(), 0);
    CHECK_EQ(entriesOf(root), std::vector<std::string>{});
    CHECK_EQ(runtime.liveModelCount(), static_cast<size_t>(0));
  }
};

void run(const char* name, const std::function<void()>& body) {
  currentTest = name;
  const int before = failures;
  try {
    body();
  } catch (const std::exception& error) {
    ++failures;
    std::fprintf(stderr, "  FAIL %s: unexpected exception: %s\n", name, error.what());
  }
  std::printf("%s %s\n", failures == before ? "ok  " : "FAIL", name);
}

// ---------------------------------------------------------------------------------------------

void happyPath() {
  Fixture f;
  ProgramSource source = f.program();
  source.weights.push_back({"@model_path/weights/deep/er/v.bin", f.blobNested.data(), f.blobNested.size()});
  auto model = f.runtime.compile(source);

  // The message sequence and every argument's type (§1.2-§1.4, §8 item 1).
  const std::vector<std::string> compileMessages = {
      "+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:](NSData, NSDictionary, nil) -> "
      "_ANEInMemoryModelDescriptor",
      "+[_ANEInMemoryModel inMemoryModelWithDescriptor:](_ANEInMemoryModelDescriptor) -> _ANEInMemoryModel",
      "-[_ANEInMemoryModel hexStringIdentifier]() -> NSString",
      "-[_ANEInMemoryModel compileWithQoS:options:error:](21, NSDictionary{}, NSError**) -> YES",
      "-[_ANEInMemoryModel loadWithQoS:options:error:](21, NSDictionary{}, NSError**) -> YES",
      "+[_ANEIOSurfaceObject objectWithIOSurface:](IOSurfaceRef) -> _ANEIOSurfaceObject",
      "+[_ANEIOSurfaceObject objectWithIOSurface:](IOSurfaceRef) -> _ANEIOSurfaceObject",
      "+[_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:]"
      "(NSArray, NSArray, NSArray, NSArray, nil, nil, NSNumber) -> _ANERequest",
  };
  CHECK_EQ(messages(f.fake.calls()), compileMessages);

  const auto calls = f.fake.calls();
  // dlopen first, then the four classes; the MIL goes in as NSData of its exact bytes.
  CHECK_EQ(calls.front(), std::string("dlopen(") + ane::platform::kFrameworkPath + ", RTLD_NOW)");
  for (const char* cls : {"_ANEInMemoryModelDescriptor", "_ANEInMemoryModel", "_ANERequest", "_ANEIOSurfaceObject"}) {
    CHECK(indexOf(calls, std::string("objc_getClass(") + cls + ")") > 0);
  }
  CHECK(indexOf(calls, "CFDataCreate(" + std::to_string(std::strlen(kMil)) + " bytes)") >= 0);
  // The weights dictionary: key = BLOBFILE path, value = {offset: @0, data: NSData} (§1.3 step 2).
  CHECK(indexOf(calls, "CFDictionaryCreate({offset: NSNumber, data: NSData})") >= 0);
  CHECK(indexOf(calls, "CFDictionaryCreate({@model_path/weights/w.bin: NSDictionary, "
                       "@model_path/weights/deep/er/v.bin: NSDictionary})") >= 0);
  // The request's indices are @0 (one input, one output) and procedureIndex @0.
  const long request = indexOf(calls, "+[_ANERequest");
  CHECK(indexOf(calls, "CFNumberCreate(0)", indexOf(calls, "+[_ANEIOSurfaceObject")) < request);

  // Staging happens after hexStringIdentifier and before compile, under NSTemporaryDirectory()/<hex>.
  const auto compiles = f.fake.compiles();
  CHECK_EQ(compiles.size(), static_cast<size_t>(1));
  const std::string dir = f.root + "/" + compiles[0].hex;
  CHECK_EQ(model->stagingDirectory(), dir);
  CHECK_EQ(model->hexIdentifier(), compiles[0].hex);
  const long hex = indexOf(calls, "-[_ANEInMemoryModel hexStringIdentifier]");
  const long compile = indexOf(calls, "-[_ANEInMemoryModel compileWithQoS");
  const long mkdir = indexOf(calls, "mkdir -p " + dir + "/weights");
  const long writeMil = indexOf(calls, "write " + dir + "/model.mil (" + std::to_string(std::strlen(kMil)) + " bytes)");
  const long writeW = indexOf(calls, "write " + dir + "/weights/w.bin (200 bytes)");
  const long writeV = indexOf(calls, "write " + dir + "/weights/deep/er/v.bin (130 bytes)");
  CHECK(hex >= 0 && hex < mkdir && mkdir < writeMil && writeMil < compile);
  CHECK(writeW > mkdir && writeW < compile && writeV > mkdir && writeV < compile);

  // The directory's contents at compile time.
  std::vector<std::string> stagedPaths;
  for (const auto& file : compiles[0].files) stagedPaths.push_back(file.path);
  CHECK_EQ(stagedPaths, (std::vector<std::string>{"model.mil", "weights/", "weights/deep/", "weights/deep/er/",
                                                  "weights/deep/er/v.bin", "weights/w.bin"}));
  for (const auto& file : compiles[0].files) {
    if (file.path == "model.mil") CHECK_EQ(std::string(file.bytes.begin(), file.bytes.end()), std::string(kMil));
    if (file.path == "weights/w.bin") CHECK(file.bytes == f.blobW);
    if (file.path == "weights/deep/er/v.bin") CHECK(file.bytes == f.blobNested);
  }

  // Surfaces: §4.1's six properties, exact tensor sizes (64 B input, 32 B output).
  const auto surfaces = f.fake.surfaces();
  CHECK_EQ(surfaces.size(), static_cast<size_t>(2));
  CHECK_EQ(surfaces[0].allocSize, static_cast<size_t>(64));
  CHECK_EQ(surfaces[1].allocSize, static_cast<size_t>(32));
  CHECK_EQ(surfaces[0].properties.at("kIOSurfaceWidth"), static_cast<int64_t>(64));
  CHECK_EQ(surfaces[0].properties.at("kIOSurfaceBytesPerRow"), static_cast<int64_t>(64));
  CHECK_EQ(surfaces[0].properties.at("kIOSurfaceHeight"), static_cast<int64_t>(1));
  CHECK_EQ(surfaces[0].properties.at("kIOSurfaceBytesPerElement"), static_cast<int64_t>(1));
  CHECK_EQ(surfaces[0].properties.at("kIOSurfacePixelFormat"), static_cast<int64_t>(0));
  CHECK_EQ(model->inputSurfaceBytes(), static_cast<size_t>(64));
  CHECK_EQ(model->outputSurfaceBytes(), static_cast<size_t>(32));
  CHECK_EQ(f.runtime.compileCount(), 1u);

  // Evaluate: inputs land at byte 0, densely; outputs come back as the evaluator wrote them.
  f.fake.clearCalls();
  const std::vector<uint8_t> x = pattern(64, 9);
  std::vector<uint8_t> y(32, 0);
  model->evaluate({{x.data(), x.size()}}, {{y.data(), y.size()}});
  const auto inputs = f.fake.lastEvaluationInputs();
  CHECK_EQ(inputs.size(), static_cast<size_t>(1));
  if (inputs.size() != 1) return;
  CHECK(inputs[0] == x);
  ane::fake::Evaluation expected;
  expected.inputs = inputs;
  expected.outputs = {std::vector<uint8_t>(32)};
  ane::fake::deterministicEvaluator(expected);
  CHECK(y == expected.outputs[0]);
  const auto runCalls = f.fake.calls();
  CHECK_EQ(messages(runCalls), (std::vector<std::string>{
                                   "-[_ANEInMemoryModel evaluateWithQoS:options:request:error:](21, NSDictionary{}, "
                                   "_ANERequest, NSError**) -> YES"}));
  // §4.1: write under lock 0, read under kIOSurfaceLockReadOnly, both unlocked with the same flags.
  const long lockIn = indexOf(runCalls, "IOSurfaceLock(IOSurfaceRef#");
  const long evaluate = indexOf(runCalls, "-[_ANEInMemoryModel evaluateWithQoS");
  CHECK(lockIn >= 0 && contains(runCalls[lockIn], ", 0)") && lockIn < evaluate);
  CHECK(contains(runCalls[lockIn + 1], "IOSurfaceUnlock") && contains(runCalls[lockIn + 1], ", 0)"));
  const long lockOut = indexOf(runCalls, "IOSurfaceLock(IOSurfaceRef#", evaluate);
  CHECK(lockOut > evaluate && contains(runCalls[lockOut], "kIOSurfaceLockReadOnly"));
  CHECK(contains(runCalls[lockOut + 1], "IOSurfaceUnlock") && contains(runCalls[lockOut + 1], "kIOSurfaceLockReadOnly"));

  // A second run reuses the surfaces and request (§4.1: created once).
  const std::vector<uint8_t> x2 = pattern(64, 10);
  model->evaluate({{x2.data(), x2.size()}}, {{y.data(), y.size()}});
  CHECK(f.fake.lastEvaluationInputs()[0] == x2);
  CHECK_EQ(f.fake.surfaces().size(), static_cast<size_t>(2));

  // Free: unload → release surfaces → remove the staging directory → release objects (§1.6).
  f.fake.clearCalls();
  model->free();
  const auto freeCalls = f.fake.calls();
  const long unload = indexOf(freeCalls, "-[_ANEInMemoryModel unloadWithQoS:error:](21, NSError**) -> YES");
  const long releaseSurface = indexOf(freeCalls, "CFRelease(IOSurfaceRef#");
  const long remove = indexOf(freeCalls, "rm -r " + dir);
  CHECK(unload >= 0 && unload < releaseSurface && releaseSurface < remove);
  CHECK(model->isFreed());
  model->free();  // idempotent
  const Thrown afterFree = capture([&] { model->evaluate({{x.data(), x.size()}}, {{y.data(), y.size()}}); });
  CHECK(afterFree.thrown && afterFree.kind == ErrorKind::kDevice && contains(afterFree.message, "freed"));
  model.reset();
  f.expectClean();
}

void emptyWeightsDictionaryIsNotNil() {
  Fixture f;
  ProgramSource source = f.program();
  source.weights.clear();
  auto model = f.runtime.compile(source);
  const auto calls = f.fake.calls();
  // @{} rather than nil (§1.3 step 2, commit 20cd236): the descriptor got an NSDictionary.
  CHECK(indexOf(calls, "CFDictionaryCreate({})") >= 0);
  CHECK(indexOf(calls, "+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:](NSData, NSDictionary, nil)") >= 0);
  std::vector<std::string> staged;
  const auto compiles = f.fake.compiles();
  for (const auto& file : compiles[0].files) staged.push_back(file.path);
  CHECK_EQ(staged, (std::vector<std::string>{"model.mil", "weights/"}));
  model->free();
  model.reset();
  f.expectClean();
}

// Orion's layout (issue 16): blobs under @model_path/layer<N>/, @model_path/masks/ and at the root.
// Each is staged at its relative path, its folders created; the fake's compile fails on a missing
// or different file, so a successful compile proves the staging.
void orionStylePathsAreStagedWhereTheyPoint() {
  Fixture f;
  const std::vector<uint8_t> layer0 = pattern(96, 3);
  const std::vector<uint8_t> layer1 = pattern(97, 4);
  const std::vector<uint8_t> mask = pattern(64, 5);
  ProgramSource source = f.program();
  source.weights = {
      {"@model_path/layer0/wq.bin", layer0.data(), layer0.size()},
      {"@model_path/layer1/wq.bin", layer1.data(), layer1.size()},
      {"@model_path/masks/causal.bin", mask.data(), mask.size()},
      {"@model_path/embed.bin", f.blobW.data(), f.blobW.size()},
  };
  auto model = f.runtime.compile(source);
  const auto compiles = f.fake.compiles();
  CHECK_EQ(compiles.size(), static_cast<size_t>(1));
  CHECK(compiles[0].succeeded);
  std::vector<std::string> staged;
  for (const auto& file : compiles[0].files) staged.push_back(file.path);
  CHECK_EQ(staged, (std::vector<std::string>{"embed.bin", "layer0/", "layer0/wq.bin", "layer1/", "layer1/wq.bin",
                                              "masks/", "masks/causal.bin", "model.mil", "weights/"}));
  for (const auto& file : compiles[0].files) {
    if (file.path == "layer0/wq.bin") CHECK(file.bytes == layer0);
    if (file.path == "layer1/wq.bin") CHECK(file.bytes == layer1);
    if (file.path == "masks/causal.bin") CHECK(file.bytes == mask);
    if (file.path == "embed.bin") CHECK(file.bytes == f.blobW);
  }
  const std::string dir = f.root + "/" + compiles[0].hex;
  const auto calls = f.fake.calls();
  CHECK(indexOf(calls, "mkdir -p " + dir + "/layer0") >= 0);
  CHECK(indexOf(calls, "mkdir -p " + dir + "/masks") >= 0);
  CHECK(indexOf(calls, "write " + dir + "/masks/causal.bin (64 bytes)") >= 0);
  CHECK(indexOf(calls, "write " + dir + "/embed.bin (200 bytes)") >= 0);
  model->free();
  model.reset();
  f.expectClean();
}

void multipleInputsAndOutputs() {
  Fixture f;
  ProgramSource source = f.program();
  source.inputs = {{"a", DType::kFp16, {1, 4, 1, 8}}, {"b", DType::kFp32, {1, 2, 1, 16}}, {"c", DType::kFp16, {1, 1, 1, 32}}};
  source.outputs = {{"p", DType::kFp32, {1, 8, 1, 8}}, {"q", DType::kFp16, {1, 2, 1, 8}}};
  source.minSurfaceBytes = 100;
  auto model = f.runtime.compile(source);
  // Rule io-uniform-alloc: inputs 64/128/64 B all get 128; outputs 256/32 B all get 256.
  const auto surfaces = f.fake.surfaces();
  CHECK_EQ(surfaces.size(), static_cast<size_t>(5));
  for (size_t i = 0; i < 3; ++i) CHECK_EQ(surfaces[i].allocSize, static_cast<size_t>(128));
  for (size_t i = 3; i < 5; ++i) CHECK_EQ(surfaces[i].allocSize, static_cast<size_t>(256));
  const auto calls = f.fake.calls();
  CHECK(indexOf(calls, "CFArrayCreate([_ANEIOSurfaceObject, _ANEIOSurfaceObject, _ANEIOSurfaceObject])") >= 0);
  CHECK(indexOf(calls, "CFArrayCreate([NSNumber, NSNumber, NSNumber])") >= 0);
  CHECK(indexOf(calls, "CFArrayCreate([_ANEIOSurfaceObject, _ANEIOSurfaceObject])") >= 0);
  CHECK(indexOf(calls, "CFArrayCreate([NSNumber, NSNumber])") >= 0);

  // Inputs go to byte 0 of their own surface, in declaration order; padding is left alone.
  const auto a = pattern(64, 1), b = pattern(128, 2), c = pattern(64, 3);
  std::vector<uint8_t> p(256), q(32);
  model->evaluate({{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}},
                  {{p.data(), p.size()}, {q.data(), q.size()}});
  const auto inputs = f.fake.lastEvaluationInputs();
  CHECK_EQ(inputs.size(), static_cast<size_t>(3));
  CHECK(std::equal(a.begin(), a.end(), inputs[0].begin()));
  CHECK(std::equal(b.begin(), b.end(), inputs[1].begin()));
  CHECK(std::equal(c.begin(), c.end(), inputs[2].begin()));
  ane::fake::Evaluation expected;
  expected.inputs = inputs;
  expected.outputs = {std::vector<uint8_t>(256), std::vector<uint8_t>(256)};
  ane::fake::deterministicEvaluator(expected);
  CHECK(std::equal(p.begin(), p.end(), expected.outputs[0].begin()));
  CHECK(std::equal(q.begin(), q.end(), expected.outputs[1].begin()));

  // Wrong sizes or counts are refused before touching a surface.
  const Thrown wrongSize = capture([&] {
    model->evaluate({{a.data(), 10}, {b.data(), b.size()}, {c.data(), c.size()}}, {{p.data(), p.size()}, {q.data(), q.size()}});
  });
  CHECK(wrongSize.thrown && wrongSize.kind == ErrorKind::kInput && contains(wrongSize.message, "takes 64 bytes, got 10"));
  const Thrown wrongCount = capture([&] { model->evaluate({{a.data(), a.size()}}, {{p.data(), p.size()}}); });
  CHECK(wrongCount.thrown && wrongCount.kind == ErrorKind::kInput);
  model->free();
  model.reset();
  f.expectClean();
}

void badWeightKeysAreRefusedBeforeTheFramework() {
  Fixture f;
  for (const char* key : {"weights/w.bin", "@model_path/../escape.bin", "@model_path/weights//w.bin",
                          "@model_path/weights/./w.bin", "@model_path/", "@model_path/layer0/../../w.bin",
                          "@model_path//etc/w.bin", "@model_path/masks/"}) {
    ProgramSource source = f.program();
    source.weights[0].path = key;
    const Thrown thrown = capture([&] { f.runtime.compile(source); });
    CHECK(thrown.thrown && thrown.kind == ErrorKind::kInput && contains(thrown.message, key));
  }
  ProgramSource duplicate = f.program();
  duplicate.weights.push_back(duplicate.weights[0]);
  const Thrown dup = capture([&] { f.runtime.compile(duplicate); });
  CHECK(dup.thrown && dup.kind == ErrorKind::kInput && contains(dup.message, "twice"));
  ProgramSource badShape = f.program();
  badShape.inputs[0].shape = {1, 0, 1, 8};
  CHECK(capture([&] { f.runtime.compile(badShape); }).kind == ErrorKind::kInput);
  CHECK_EQ(messages(f.fake.calls()), std::vector<std::string>{});
  CHECK_EQ(f.runtime.compileCount(), 0u);
  f.expectClean();
}

void descriptorNilIsACompileError() {
  Fixture f;
  const Thrown thrown = capture([&] { f.runtime.compile(f.program(std::string(kMil) + "FAKE_DESCRIPTOR_NIL\n")); });
  CHECK(thrown.thrown && thrown.kind == ErrorKind::kCompile && contains(thrown.message, "returned nil"));
  CHECK_EQ(f.runtime.compileCount(), 0u);
  f.expectClean();
}

void compileErrorCarriesTheFrameworkText() {
  Fixture f;
  const std::string text =
      "Error Domain=com.apple.appleneuralengine.compiler Code=1 \"_ANECompiler : ANECCompile() FAILED\"";
  const Thrown thrown =
      capture([&] { f.runtime.compile(f.program(std::string(kMil) + "FAKE_COMPILE_ERROR:" + text + "\n")); });
  CHECK(thrown.thrown && thrown.kind == ErrorKind::kCompile);
  CHECK(contains(thrown.message, text));
  CHECK(contains(thrown.message, "compileWithQoS:options:error:"));
  // The failed compile was counted, nothing was loaded, and its staging directory is gone.
  CHECK_EQ(f.runtime.compileCount(), 1u);
  CHECK_EQ(indexOf(f.fake.calls(), "-[_ANEInMemoryModel loadWithQoS"), -1L);
  CHECK(indexOf(f.fake.calls(), "rm -r " + f.root + "/") >= 0);
  f.expectClean();
}

void loadIsRetriedOnceAfter100ms() {
  Fixture f;
  f.fake.failNextLoads(1);
  auto model = f.runtime.compile(f.program());
  const auto calls = f.fake.calls();
  const long first = indexOf(calls, "-[_ANEInMemoryModel loadWithQoS:options:error:](21, NSDictionary{}, NSError**) -> NO");
  const long pause = indexOf(calls, "usleep(100 ms)");
  const long second = indexOf(calls, "-[_ANEInMemoryModel loadWithQoS:options:error:](21, NSDictionary{}, NSError**) -> YES");
  CHECK(first >= 0 && first < pause && pause < second);
  CHECK_EQ(f.fake.sleeps(), std::vector<unsigned int>{100});
  CHECK_EQ(f.runtime.compileCount(), 1u);
  model->free();
  model.reset();
  f.expectClean();
}

void loadFailingTwiceIsADeviceError() {
  Fixture f;
  f.fake.failNextLoads(2);
  const Thrown thrown = capture([&] { f.runtime.compile(f.program()); });
  CHECK(thrown.thrown && thrown.kind == ErrorKind::kDevice);
  CHECK(contains(thrown.message, "ANEProgramLoad() Failed (fake: no free ANE program slot)"));
  CHECK(contains(thrown.message, "retried once after 100 ms"));
  CHECK_EQ(f.fake.sleeps(), std::vector<unsigned int>{100});
  // Not loaded, so no unload; everything released, directory removed.
  CHECK_EQ(indexOf(f.fake.calls(), "-[_ANEInMemoryModel unloadWithQoS"), -1L);
  f.expectClean();
}

void budgetIsEnforcedBeforeTheFramework() {
  Fixture f;
  f.runtime.setCompileLimit(3);
  std::vector<std::shared_ptr<ane::AneModel>> models;
  std::vector<std::string> mils;
  for (int i = 0; i < 3; ++i) mils.push_back(std::string(kMil) + "// program " + std::to_string(i) + "\n");
  for (const auto& mil : mils) models.push_back(f.runtime.compile(f.program(mil)));
  f.fake.clearCalls();
  const Thrown thrown = capture([&] { f.runtime.compile(f.program(std::string(kMil) + "// one more\n")); });
  CHECK(thrown.thrown && thrown.kind == ErrorKind::kBudget);
  CHECK(contains(thrown.message, "3 ANE compiles (limit 3)"));
  CHECK_EQ(f.fake.calls(), std::vector<std::string>{});
  CHECK_EQ(f.runtime.compileCount(), 3u);
  // Freeing does not give compiles back: the framework's leak is per compile (§1.8).
  for (auto& model : models) model->free();
  models.clear();
  CHECK(capture([&] { f.runtime.compile(f.program()); }).kind == ErrorKind::kBudget);
  f.expectClean();
}

void frameworkLimitSurfacesAsCompileError() {
  Fixture f;
  f.runtime.setCompileLimit(1000);
  for (int i = 0; i < 119; ++i) {
    auto model = f.runtime.compile(f.program(std::string(kMil) + "// " + std::to_string(i) + "\n"));
    model->free();
  }
  const Thrown thrown = capture([&] { f.runtime.compile(f.program(std::string(kMil) + "// 120\n")); });
  CHECK(thrown.thrown && thrown.kind == ErrorKind::kCompile && contains(thrown.message, "ANECCompile() FAILED"));
  CHECK_EQ(f.fake.frameworkCompiles(), 120);
  f.expectClean();
}

void evaluateErrorCarriesTheFrameworkText() {
  Fixture f;
  auto model = f.runtime.compile(f.program());
  const std::string text =
      "Error Domain=com.apple.appleneuralengine Code=8 \"processRequest:model:qos:qIndex:modelStringID:options:error:: "
      "ANEProgramProcessRequestDirect() Failed with status=0x1d : statusType=0x9: Program Inference error\"";
  f.fake.failNextEvaluate(text);
  const auto x = pattern(64, 4);
  std::vector<uint8_t> y(32, 0x11);
  const Thrown thrown = capture([&] { model->evaluate({{x.data(), x.size()}}, {{y.data(), y.size()}}); });
  CHECK(thrown.thrown && thrown.kind == ErrorKind::kDevice && contains(thrown.message, text));
  CHECK(std::all_of(y.begin(), y.end(), [](uint8_t v) { return v == 0x11; }));  // outputs untouched
  // The model stays usable.
  model->evaluate({{x.data(), x.size()}}, {{y.data(), y.size()}});
  CHECK(f.fake.lastEvaluationInputs()[0] == x);
  model->free();
  model.reset();
  f.expectClean();
}

void unloadErrorStillReleasesEverything() {
  Fixture f;
  auto model = f.runtime.compile(f.program());
  f.fake.failNextUnload("Error Domain=com.apple.appleneuralengine Code=9 \"unload failed (fake)\"");
  const Thrown thrown = capture([&] { model->free(); });
  CHECK(thrown.thrown && thrown.kind == ErrorKind::kDevice && contains(thrown.message, "unload failed (fake)"));
  CHECK(model->isFreed());
  model.reset();
  f.expectClean();
}

void surfaceFailuresCleanUp() {
  {
    Fixture f;
    f.fake.failNextSurfaceCreate();
    const Thrown thrown = capture([&] { f.runtime.compile(f.program()); });
    CHECK(thrown.thrown && thrown.kind == ErrorKind::kDevice && contains(thrown.message, "IOSurfaceCreate failed"));
    // It was loaded, so it is unloaded on the way out.
    CHECK(indexOf(f.fake.calls(), "-[_ANEInMemoryModel unloadWithQoS:error:](21, NSError**) -> YES") >= 0);
    f.expectClean();
  }
  {
    Fixture f;
    auto model = f.runtime.compile(f.program());
    f.fake.failNextLock();
    const auto x = pattern(64, 4);
    std::vector<uint8_t> y(32);
    const Thrown thrown = capture([&] { model->evaluate({{x.data(), x.size()}}, {{y.data(), y.size()}}); });
    CHECK(thrown.thrown && thrown.kind == ErrorKind::kDevice && contains(thrown.message, "IOSurfaceLock failed"));
    model->free();
    model.reset();
    f.expectClean();
  }
  {
    Fixture f;
    f.fake.failNextWrite();
    const Thrown thrown = capture([&] { f.runtime.compile(f.program()); });
    CHECK(thrown.thrown && thrown.kind == ErrorKind::kDevice && contains(thrown.message, "could not stage"));
    CHECK_EQ(f.runtime.compileCount(), 0u);
    CHECK_EQ(indexOf(f.fake.calls(), "-[_ANEInMemoryModel compileWithQoS"), -1L);
    f.expectClean();
  }
}

void identicalProgramsShareOneStagingDirectory() {
  Fixture f;
  auto first = f.runtime.compile(f.program());
  auto second = f.runtime.compile(f.program());
  CHECK_EQ(first->stagingDirectory(), second->stagingDirectory());
  CHECK_EQ(f.runtime.compileCount(), 2u);
  first->free();
  // The other model still uses the directory: it stays.
  CHECK_EQ(entriesOf(f.root).size(), static_cast<size_t>(1));
  const auto x = pattern(64, 5);
  std::vector<uint8_t> y(32);
  second->evaluate({{x.data(), x.size()}}, {{y.data(), y.size()}});
  second->free();
  first.reset();
  second.reset();
  f.expectClean();
}

void freeAllAtExit() {
  Fixture f;
  auto a = f.runtime.compile(f.program());
  auto b = f.runtime.compile(f.program(std::string(kMil) + "// b\n"));
  CHECK_EQ(f.runtime.liveModelCount(), static_cast<size_t>(2));
  CHECK_EQ(entriesOf(f.root).size(), static_cast<size_t>(2));
  CHECK_EQ(f.runtime.freeAll(), std::string());
  CHECK(a->isFreed() && b->isFreed());
  a.reset();
  b.reset();
  f.expectClean();
}

void exitRemovesStagingWithoutTheFramework() {
  Fixture f;
  auto a = f.runtime.compile(f.program());
  auto b = f.runtime.compile(f.program(std::string(kMil) + "// b\n"));
  f.fake.clearCalls();
  f.runtime.removeAllStagingDirectories();
  CHECK_EQ(entriesOf(f.root), std::vector<std::string>{});
  CHECK_EQ(messages(f.fake.calls()), std::vector<std::string>{});  // no framework call at exit
  a->free();
  b->free();
  a.reset();
  b.reset();
  f.expectClean();
}

void droppedModelFreesItself() {
  Fixture f;
  { auto model = f.runtime.compile(f.program()); }
  f.expectClean();
}

void unavailableFramework() {
  {
    Fixture f;
    f.fake.setFrameworkMissing(true);
    const Thrown thrown = capture([&] { f.runtime.compile(f.program()); });
    CHECK(thrown.thrown && thrown.kind == ErrorKind::kUnavailable && contains(thrown.message, "image not found"));
    // The verdict is remembered: no second dlopen.
    f.fake.setFrameworkMissing(false);
    CHECK(capture([&] { f.runtime.compile(f.program()); }).kind == ErrorKind::kUnavailable);
    CHECK_EQ(f.runtime.compileCount(), 0u);
    f.expectClean();
  }
  {
    Fixture f;
    f.fake.setMissingClass("_ANERequest");
    const Thrown thrown = capture([&] { f.runtime.compile(f.program()); });
    CHECK(thrown.thrown && thrown.kind == ErrorKind::kUnavailable && contains(thrown.message, "_ANERequest"));
    f.expectClean();
  }
}

void concurrentEvaluationsAreSerialized() {
  Fixture f;
  auto model = f.runtime.compile(f.program());
  auto other = f.runtime.compile(f.program(std::string(kMil) + "// other\n"));
  // A slow evaluation, so that unserialized calls would overlap and the fake would see it.
  f.fake.setEvaluator([](ane::fake::Evaluation& evaluation) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return ane::fake::deterministicEvaluator(evaluation);
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto& target = t % 2 == 0 ? model : other;
      const auto x = pattern(64, 20 + t);
      std::vector<uint8_t> y(32);
      for (int i = 0; i < 25; ++i) target->evaluate({{x.data(), x.size()}}, {{y.data(), y.size()}});
      ane::fake::Evaluation expected;
      expected.inputs = {x};
      expected.outputs = {std::vector<uint8_t>(32)};
      ane::fake::deterministicEvaluator(expected);
      CHECK(y == expected.outputs[0]);
    });
  }
  for (auto& thread : threads) thread.join();
  model->free();
  other->free();
  model.reset();
  other.reset();
  f.expectClean();
}

// The fake must catch what it claims to catch, or the tests above prove nothing.
void fakeDetectsMisuse() {
  Fixture f;
  auto& p = f.fake;
  void* pool = p.autoreleasePoolPush();
  p.openFramework(ane::platform::kFrameworkPath, nullptr);
  const auto model = p.getClass("_ANEInMemoryModel");
  const auto descriptor = p.getClass("_ANEInMemoryModelDescriptor");
  const auto selMil = p.registerSelector(ane::platform::selectors::kModelWithMilText);
  const auto selCompile = p.registerSelector(ane::platform::selectors::kCompile);
  const auto mil = p.createString("program");  // NSString, not NSData
  p.sendId3(descriptor, selMil, mil, nullptr, nullptr);  // nil weights
  p.sendId1(model, selCompile, nullptr);  // wrong signature
  p.release(mil);
  p.release(mil);  // over-release
  const auto leaked = p.createNumber(7);
  (void)leaked;
  p.autoreleasePoolPop(pool);
  const auto v = p.violations();
  const auto has = [&](const std::string& part) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return contains(s, part); });
  };
  CHECK(has("MIL text must be NSData"));
  CHECK(has("weights dictionary is nil"));
  CHECK(has("must be sent as BOOL(id,SEL,unsigned int,id,NSError**), was sent as id(id,SEL,id)"));
  CHECK(has("over-release of NSString"));
  CHECK_EQ(p.liveObjects().size(), static_cast<size_t>(1));
}

}  // namespace

int main() {
  std::printf("ANE bridge harness (fake platform)\n");
  run("happy path: call sequence, argument types, staging, surfaces, data path, free", happyPath);
  run("no weights: @{} not nil, weights/ still staged", emptyWeightsDictionaryIsNotNil);
  run("Orion-style weight paths are staged at their relative paths", orionStylePathsAreStagedWhereTheyPoint);
  run("several inputs and outputs: uniform surfaces, order, sizes", multipleInputsAndOutputs);
  run("bad weight keys are refused before the framework", badWeightKeysAreRefusedBeforeTheFramework);
  run("nil descriptor is a compile error", descriptorNilIsACompileError);
  run("compile error carries the framework's text", compileErrorCarriesTheFrameworkText);
  run("load is retried once after 100 ms", loadIsRetriedOnceAfter100ms);
  run("load failing twice is a device error", loadFailingTwiceIsADeviceError);
  run("compile budget is enforced before the framework", budgetIsEnforcedBeforeTheFramework);
  run("the framework's ~119 limit surfaces as a compile error", frameworkLimitSurfacesAsCompileError);
  run("evaluate error carries the framework's text", evaluateErrorCarriesTheFrameworkText);
  run("unload error still releases everything", unloadErrorStillReleasesEverything);
  run("surface, lock and staging failures clean up", surfaceFailuresCleanUp);
  run("identical programs share one staging directory", identicalProgramsShareOneStagingDirectory);
  run("freeAll (environment teardown) frees every live model", freeAllAtExit);
  run("process exit removes staging directories without calling the framework",
      exitRemovesStagingWithoutTheFramework);
  run("a dropped model frees itself", droppedModelFreesItself);
  run("missing framework or class is 'unavailable'", unavailableFramework);
  run("concurrent evaluations (one model or several) are serialized", concurrentEvaluationsAreSerialized);
  run("the fake detects misuse", fakeDetectsMisuse);
  if (failures > 0) {
    std::printf("%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}
