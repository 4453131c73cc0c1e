// A test-only addon: the real ANE bridge (native/ane/) over the fake platform, plus `fake`, the
// controls and observations of platform_fake.h. Built by native/ane-test/build.cjs, never shipped.
//
//   exports.ane   exactly what the macOS addon exports (ane_addon.h)
//   exports.fake  calls(), clearCalls(), violations(), liveObjects(), compiles(), surfaces(),
//                 sleeps(), lastEvaluationInputs(), frameworkCompiles(), loadedModels(),
//                 temporaryDirectory, failNextLoads(n), failNextEvaluate(text), failNextUnload(text),
//                 failNextSurfaceCreate(), failNextLock(), failNextWrite(),
//                 setFrameworkCompileLimit(n), setEvaluator(fn | null)
//
// setEvaluator(fn): every evaluation calls fn(mil, weights: Map, inputs: Uint8Array[],
// outputs: Uint8Array[]) on the JS thread (directly when evaluating on it, else through a
// thread-safe function while the worker waits); fn fills outputs or throws (an eval failure).
// While a worker waits for fn, it holds the bridge's framework lock: the JS thread must not compile
// or free a model until that run settles (await it), or the two would wait for each other.
#include <napi.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../ane/ane_addon.h"
#include "platform_fake.h"

namespace {

using ane::fake::Evaluation;
using ane::fake::FakePlatform;

FakePlatform* fake = nullptr;  // process-wide, like the runtime it backs

struct JsEvaluator {
  Napi::FunctionReference function;
  Napi::ThreadSafeFunction threadSafe;
  std::thread::id jsThread;
};
std::shared_ptr<JsEvaluator> jsEvaluator;

Napi::Uint8Array bytesToJs(Napi::Env env, const std::vector<uint8_t>& bytes) {
  Napi::Uint8Array array = Napi::Uint8Array::New(env, bytes.size());
  if (!bytes.empty()) std::copy(bytes.begin(), bytes.end(), array.Data());
  return array;
}

Napi::Array strings(Napi::Env env, const std::vector<std::string>& values) {
  Napi::Array array = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), values[i]);
  return array;
}

std::string callEvaluator(Napi::Env env, Napi::Function function, Evaluation& evaluation) {
  Napi::HandleScope scope(env);
  Napi::Object weights = env.Global().Get("Map").As<Napi::Function>().New({});
  const Napi::Function set = weights.Get("set").As<Napi::Function>();
  for (const auto& [path, bytes] : evaluation.weights) set.Call(weights, {Napi::String::New(env, path), bytesToJs(env, bytes)});
  Napi::Array inputs = Napi::Array::New(env, evaluation.inputs.size());
  for (size_t i = 0; i < evaluation.inputs.size(); ++i) inputs.Set(static_cast<uint32_t>(i), bytesToJs(env, evaluation.inputs[i]));
  Napi::Array outputs = Napi::Array::New(env, evaluation.outputs.size());
  for (size_t j = 0; j < evaluation.outputs.size(); ++j) outputs.Set(static_cast<uint32_t>(j), bytesToJs(env, evaluation.outputs[j]));
  try {
    function.Call({Napi::String::New(env, evaluation.mil), weights, inputs, outputs});
  } catch (const Napi::Error& error) {
    return "fake evaluator threw: " + error.Message();
  }
  for (size_t j = 0; j < evaluation.outputs.size(); ++j) {
    const Napi::Uint8Array out = outputs.Get(static_cast<uint32_t>(j)).As<Napi::Uint8Array>();
    std::copy(out.Data(), out.Data() + std::min(out.ByteLength(), evaluation.outputs[j].size()), evaluation.outputs[j].begin());
  }
  return "";
}

std::string evaluateThroughJs(const std::shared_ptr<JsEvaluator>& evaluator, Evaluation& evaluation) {
  if (std::this_thread::get_id() == evaluator->jsThread) {
    return callEvaluator(evaluator->function.Env(), evaluator->function.Value(), evaluation);
  }
  std::promise<std::string> done;
  std::future<std::string> result = done.get_future();
  const napi_status status = evaluator->threadSafe.BlockingCall(
      [&](Napi::Env env, Napi::Function function) { done.set_value(callEvaluator(env, function, evaluation)); });
  if (status != napi_ok) return "fake evaluator: the JS thread is gone";
  return result.get();
}

void releaseEvaluator() {
  if (jsEvaluator != nullptr) {
    jsEvaluator->threadSafe.Release();
    jsEvaluator.reset();
  }
}

Napi::Value SetEvaluator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  releaseEvaluator();
  if (info[0].IsFunction()) {
    auto evaluator = std::make_shared<JsEvaluator>();
    evaluator->function = Napi::Persistent(info[0].As<Napi::Function>());
    evaluator->threadSafe = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "fake-evaluator", 0, 1);
    evaluator->threadSafe.Unref(env);
    evaluator->jsThread = std::this_thread::get_id();
    jsEvaluator = evaluator;
    fake->setEvaluator([evaluator](Evaluation& evaluation) { return evaluateThroughJs(evaluator, evaluation); });
  } else {
    fake->setEvaluator(nullptr);
  }
  return env.Undefined();
}

Napi::Value Compiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto records = fake->compiles();
  Napi::Array array = Napi::Array::New(env, records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    Napi::Object record = Napi::Object::New(env);
    record.Set("hex", records[i].hex);
    record.Set("directory", records[i].directory);
    record.Set("succeeded", records[i].succeeded);
    Napi::Array files = Napi::Array::New(env, records[i].files.size());
    for (size_t k = 0; k < records[i].files.size(); ++k) {
      Napi::Object file = Napi::Object::New(env);
      file.Set("path", records[i].files[k].path);
      file.Set("bytes", bytesToJs(env, records[i].files[k].bytes));
      files.Set(static_cast<uint32_t>(k), file);
    }
    record.Set("files", files);
    array.Set(static_cast<uint32_t>(i), record);
  }
  return array;
}

Napi::Value Surfaces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto records = fake->surfaces();
  Napi::Array array = Napi::Array::New(env, records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    Napi::Object record = Napi::Object::New(env);
    Napi::Object properties = Napi::Object::New(env);
    for (const auto& [key, value] : records[i].properties) properties.Set(key, static_cast<double>(value));
    record.Set("properties", properties);
    record.Set("allocSize", static_cast<double>(records[i].allocSize));
    array.Set(static_cast<uint32_t>(i), record);
  }
  return array;
}

char* createdRoot = nullptr;  // the directory this process made, removed at exit when empty

void removeCreatedRoot() {
  if (createdRoot != nullptr) ::rmdir(createdRoot);
}

// ANE_FAKE_TMPDIR, or a fresh directory under $TMPDIR (removed at exit once the bridge has removed
// its staging directories: that exit handler is registered later, so it runs first).
std::string makeTemporaryRoot() {
  const char* configured = std::getenv("ANE_FAKE_TMPDIR");
  if (configured != nullptr && *configured != '\0') return configured;
  const char* tmp = std::getenv("TMPDIR");
  const std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/ane-fake-XXXXXX";
  createdRoot = new char[templ.size() + 1];
  std::copy(templ.begin(), templ.end(), createdRoot);
  createdRoot[templ.size()] = '\0';
  if (::mkdtemp(createdRoot) == nullptr) return "/tmp";
  std::atexit(removeCreatedRoot);
  return createdRoot;
}

template <typename Action>
Napi::Function knob(Napi::Env env, Action action) {
  return Napi::Function::New(env, [action](const Napi::CallbackInfo& info) {
    action(info);
    return info.Env().Undefined();
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (fake == nullptr) fake = new FakePlatform(makeTemporaryRoot());
  ane::addAneExports(env, exports, *fake);
  env.AddCleanupHook(releaseEvaluator);
  Napi::Object controls = Napi::Object::New(env);
  controls.Set("temporaryDirectory", fake->temporaryRoot());
  controls.Set("calls", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return strings(info.Env(), fake->calls()); }));
  controls.Set("clearCalls", knob(env, [](const Napi::CallbackInfo&) { fake->clearCalls(); }));
  controls.Set("violations",
               Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return strings(info.Env(), fake->violations()); }));
  controls.Set("liveObjects",
               Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return strings(info.Env(), fake->liveObjects()); }));
  controls.Set("compiles", Napi::Function::New(env, Compiles));
  controls.Set("surfaces", Napi::Function::New(env, Surfaces));
  controls.Set("sleeps", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                 const auto sleeps = fake->sleeps();
                 Napi::Array array = Napi::Array::New(info.Env(), sleeps.size());
                 for (size_t i = 0; i < sleeps.size(); ++i) array.Set(static_cast<uint32_t>(i), sleeps[i]);
                 return array;
               }));
  controls.Set("lastEvaluationInputs", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                 const auto inputs = fake->lastEvaluationInputs();
                 Napi::Array array = Napi::Array::New(info.Env(), inputs.size());
                 for (size_t i = 0; i < inputs.size(); ++i) array.Set(static_cast<uint32_t>(i), bytesToJs(info.Env(), inputs[i]));
                 return array;
               }));
  controls.Set("frameworkCompiles", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                 return Napi::Number::New(info.Env(), fake->frameworkCompiles());
               }));
  controls.Set("loadedModels", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                 return Napi::Number::New(info.Env(), fake->loadedModels());
               }));
  controls.Set("failNextLoads",
               knob(env, [](const Napi::CallbackInfo& info) { fake->failNextLoads(info[0].As<Napi::Number>().Int32Value()); }));
  controls.Set("failNextEvaluate", knob(env, [](const Napi::CallbackInfo& info) {
                 fake->failNextEvaluate(info[0].As<Napi::String>().Utf8Value());
               }));
  controls.Set("failNextUnload", knob(env, [](const Napi::CallbackInfo& info) {
                 fake->failNextUnload(info[0].As<Napi::String>().Utf8Value());
               }));
  controls.Set("failNextSurfaceCreate", knob(env, [](const Napi::CallbackInfo&) { fake->failNextSurfaceCreate(); }));
  controls.Set("failNextLock", knob(env, [](const Napi::CallbackInfo&) { fake->failNextLock(); }));
  controls.Set("failNextWrite", knob(env, [](const Napi::CallbackInfo&) { fake->failNextWrite(); }));
  controls.Set("setFrameworkCompileLimit", knob(env, [](const Napi::CallbackInfo& info) {
                 fake->setFrameworkCompileLimit(info[0].As<Napi::Number>().Int32Value());
               }));
  controls.Set("setEvaluator", Napi::Function::New(env, SetEvaluator));
  exports.Set("fake", controls);
  return exports;
}

}  // namespace

NODE_API_MODULE(ane_bridge_fake, Init)
