#include "ane_addon.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ane {

namespace {

AneRuntime* runtime = nullptr;  // process-wide; intentionally never destroyed
std::once_flag exitHookOnce;

Napi::Error bridgeError(Napi::Env env, ErrorKind kind, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, errorCode(kind)));
  return error;
}

[[noreturn]] void throwInput(Napi::Env env, const std::string& message) {
  throw bridgeError(env, ErrorKind::kInput, message);
}

// At exit nothing may call into the framework any more, but the staging directories of models
// never freed are still ours to remove (the issue: process exit leaves no staging directories).
void removeStagingAtExit() {
  if (runtime != nullptr) runtime->removeAllStagingDirectories();
}

std::vector<TensorSpec> parseSpecs(Napi::Env env, const Napi::Value& value, const char* role) {
  if (!value.IsArray()) throwInput(env, std::string(role) + " must be an array of {name, dtype, shape}");
  const auto array = value.As<Napi::Array>();
  std::vector<TensorSpec> specs;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const Napi::Value item = array.Get(i);
    if (!item.IsObject()) throwInput(env, std::string(role) + "[" + std::to_string(i) + "] is not an object");
    const auto object = item.As<Napi::Object>();
    TensorSpec spec;
    const Napi::Value name = object.Get("name");
    const Napi::Value dtype = object.Get("dtype");
    const Napi::Value shape = object.Get("shape");
    if (!name.IsString() || !dtype.IsString() || !shape.IsArray()) {
      throwInput(env, std::string(role) + "[" + std::to_string(i) + "] must be {name: string, dtype, shape: number[]}");
    }
    spec.name = name.As<Napi::String>().Utf8Value();
    const std::string type = dtype.As<Napi::String>().Utf8Value();
    if (type == "fp16") {
      spec.dtype = DType::kFp16;
    } else if (type == "fp32") {
      spec.dtype = DType::kFp32;
    } else {
      throwInput(env, std::string(role) + " '" + spec.name + "' has dtype '" + type + "'; the ANE does I/O in fp16 or fp32");
    }
    const auto dims = shape.As<Napi::Array>();
    for (uint32_t d = 0; d < dims.Length(); ++d) {
      const Napi::Value dim = dims.Get(d);
      const double extent = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
      if (!(extent >= 1 && extent <= 9007199254740991.0) || extent != static_cast<double>(static_cast<int64_t>(extent))) {
        throwInput(env, std::string(role) + " '" + spec.name + "' has a dimension that is not a whole number ≥ 1");
      }
      spec.shape.push_back(static_cast<int64_t>(extent));
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

Napi::Uint8Array asBytes(Napi::Env env, const Napi::Value& value, const std::string& what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throwInput(env, what + " must be a Uint8Array");
  }
  return value.As<Napi::Uint8Array>();
}

// The buffers of one run, kept alive (by reference) while a worker thread reads and writes them.
struct RunBuffers {
  std::vector<ConstBytes> inputs;
  std::vector<MutableBytes> outputs;
  std::vector<Napi::Reference<Napi::Uint8Array>> references;
};

RunBuffers parseBuffers(Napi::Env env, const Napi::Value& inputs, const Napi::Value& outputs, bool keep) {
  if (!inputs.IsArray() || !outputs.IsArray()) throwInput(env, "run(inputs, outputs) takes two arrays of Uint8Array");
  RunBuffers buffers;
  const auto in = inputs.As<Napi::Array>();
  const auto out = outputs.As<Napi::Array>();
  for (uint32_t i = 0; i < in.Length(); ++i) {
    const Napi::Uint8Array bytes = asBytes(env, in.Get(i), "input " + std::to_string(i));
    buffers.inputs.push_back({bytes.Data(), bytes.ByteLength()});
    if (keep) buffers.references.push_back(Napi::Persistent(bytes));
  }
  for (uint32_t j = 0; j < out.Length(); ++j) {
    Napi::Uint8Array bytes = asBytes(env, out.Get(j), "output " + std::to_string(j));
    buffers.outputs.push_back({bytes.Data(), bytes.ByteLength()});
    if (keep) buffers.references.push_back(Napi::Persistent(bytes));
  }
  return buffers;
}

// Models created in one environment, freed when that environment is torn down.
struct EnvironmentModels {
  std::vector<std::weak_ptr<AneModel>> models;
};

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AneModel",
                       {
                           InstanceMethod<&ModelHandle::Run>("run"),
                           InstanceMethod<&ModelHandle::RunAsync>("runAsync"),
                           InstanceMethod<&ModelHandle::Free>("free"),
                           InstanceAccessor<&ModelHandle::IsFreed>("isFreed"),
                           InstanceAccessor<&ModelHandle::HexIdentifier>("hexIdentifier"),
                           InstanceAccessor<&ModelHandle::StagingDirectory>("stagingDirectory"),
                           InstanceAccessor<&ModelHandle::InputSurfaceBytes>("inputSurfaceBytes"),
                           InstanceAccessor<&ModelHandle::OutputSurfaceBytes>("outputSurfaceBytes"),
                       });
  }

  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "AneModel objects come from ane.compile()");
    }
    model_ = *info[0].As<Napi::External<std::shared_ptr<AneModel>>>().Data();
  }

  // Garbage collection of an unfreed handle frees its model (a safety net: dispose explicitly).
  ~ModelHandle() override {
    if (model_ != nullptr) {
      try {
        model_->free();
      } catch (...) {
      }
    }
  }

 private:
  class RunWorker : public Napi::AsyncWorker {
   public:
    RunWorker(Napi::Env env, std::shared_ptr<AneModel> model, RunBuffers buffers, Napi::Object handle)
        : Napi::AsyncWorker(env, "ane-bridge:evaluate"),
          deferred_(Napi::Promise::Deferred::New(env)),
          model_(std::move(model)),
          buffers_(std::move(buffers)),
          handle_(Napi::Persistent(handle)) {}
    Napi::Promise Promise() const { return deferred_.Promise(); }

   protected:
    void Execute() override {
      try {
        model_->evaluate(buffers_.inputs, buffers_.outputs);
      } catch (const BridgeError& error) {
        kind_ = error.kind();
        SetError(error.what());
      } catch (const std::exception& error) {
        SetError(error.what());
      }
    }
    void OnOK() override { deferred_.Resolve(Env().Undefined()); }
    void OnError(const Napi::Error& error) override {
      deferred_.Reject(bridgeError(Env(), kind_, error.Message()).Value());
    }

   private:
    Napi::Promise::Deferred deferred_;
    std::shared_ptr<AneModel> model_;
    RunBuffers buffers_;
    Napi::ObjectReference handle_;
    ErrorKind kind_ = ErrorKind::kDevice;
  };

  AneModel& model(Napi::Env env) {
    if (model_ == nullptr) throw bridgeError(env, ErrorKind::kDevice, "this ANE program was freed");
    return *model_;
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    AneModel& target = model(env);
    RunBuffers buffers = parseBuffers(env, info[0], info[1], false);
    try {
      target.evaluate(buffers.inputs, buffers.outputs);
    } catch (const BridgeError& error) {
      throw bridgeError(env, error.kind(), error.what());
    }
    return env.Undefined();
  }

  Napi::Value RunAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    model(env);
    auto* worker = new RunWorker(env, model_, parseBuffers(env, info[0], info[1], true), info.This().As<Napi::Object>());
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    if (model_ != nullptr) {
      std::shared_ptr<AneModel> model = std::move(model_);
      model_ = nullptr;
      try {
        model->free();
      } catch (const BridgeError& error) {
        throw bridgeError(info.Env(), error.kind(), error.what());
      }
    }
    return info.Env().Undefined();
  }

  Napi::Value IsFreed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), model_ == nullptr || model_->isFreed());
  }
  Napi::Value HexIdentifier(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), model(info.Env()).hexIdentifier());
  }
  Napi::Value StagingDirectory(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), model(info.Env()).stagingDirectory());
  }
  Napi::Value InputSurfaceBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model(info.Env()).inputSurfaceBytes()));
  }
  Napi::Value OutputSurfaceBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model(info.Env()).outputSurfaceBytes()));
  }

  std::shared_ptr<AneModel> model_;
};

struct AneInstance {
  Napi::FunctionReference modelClass;
  EnvironmentModels models;
};

Napi::Value Compile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* instance = static_cast<AneInstance*>(info.Data());
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsObject()) {
    throwInput(env, "compile(mil: string, weights: Map<string, Uint8Array>, inputs, outputs, options?)");
  }
  ProgramSource source;
  source.mil = info[0].As<Napi::String>().Utf8Value();
  // weights: a Map, read through its iterator.
  const auto weights = info[1].As<Napi::Object>();
  const Napi::Value entriesFunction = weights.Get("entries");
  if (!entriesFunction.IsFunction()) throwInput(env, "weights must be a Map<string, Uint8Array>");
  const auto iterator = entriesFunction.As<Napi::Function>().Call(weights, {}).As<Napi::Object>();
  const auto next = iterator.Get("next").As<Napi::Function>();
  std::vector<Napi::Uint8Array> keepAlive;
  for (;;) {
    const auto step = next.Call(iterator, {}).As<Napi::Object>();
    if (step.Get("done").ToBoolean()) break;
    const auto pair = step.Get("value").As<Napi::Array>();
    const Napi::Value key = pair.Get(0u);
    if (!key.IsString()) throwInput(env, "weights keys must be strings (BLOBFILE paths)");
    const std::string path = key.As<Napi::String>().Utf8Value();
    const Napi::Uint8Array bytes = asBytes(env, pair.Get(1u), "weights['" + path + "']");
    keepAlive.push_back(bytes);
    source.weights.push_back({path, bytes.Data(), bytes.ByteLength()});
  }
  source.inputs = parseSpecs(env, info[2], "inputs");
  source.outputs = parseSpecs(env, info[3], "outputs");
  if (info.Length() > 4 && info[4].IsObject()) {
    const Napi::Value minimum = info[4].As<Napi::Object>().Get("minSurfaceBytes");
    if (minimum.IsNumber()) {
      const double bytes = minimum.As<Napi::Number>().DoubleValue();
      if (!(bytes >= 0 && bytes <= 1e12)) throwInput(env, "minSurfaceBytes must be a number of bytes ≥ 0");
      source.minSurfaceBytes = static_cast<size_t>(bytes);
    }
  }
  std::shared_ptr<AneModel> model;
  try {
    model = runtime->compile(source);
  } catch (const BridgeError& error) {
    throw bridgeError(env, error.kind(), error.what());
  }
  std::call_once(exitHookOnce, [] { std::atexit(removeStagingAtExit); });
  auto& models = instance->models.models;
  models.erase(std::remove_if(models.begin(), models.end(), [](const auto& weak) { return weak.expired(); }),
               models.end());
  models.push_back(model);
  return instance->modelClass.New({Napi::External<std::shared_ptr<AneModel>>::New(env, &model)});
}

}  // namespace

AneRuntime* aneRuntime() { return runtime; }

void addAneExports(Napi::Env env, Napi::Object exports, platform::Platform& platform) {
  if (runtime == nullptr) runtime = new AneRuntime(platform);
  auto* instance = new AneInstance();
  instance->modelClass = Napi::Persistent(ModelHandle::Define(env));
  env.AddCleanupHook([instance] {
    for (const auto& weak : instance->models.models) {
      if (auto model = weak.lock()) {
        try {
          model->free();
        } catch (...) {
        }
      }
    }
    delete instance;
  });
  Napi::Object ane = Napi::Object::New(env);
  ane.Set("compile", Napi::Function::New(env, Compile, "compile", instance));
  ane.Set("compileCount", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
            return Napi::Number::New(info.Env(), runtime->compileCount());
          }));
  ane.Set("compileLimit", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
            return Napi::Number::New(info.Env(), runtime->compileLimit());
          }));
  ane.Set("setCompileLimit", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
            const double limit = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
            if (!(limit >= 0 && limit <= 1e9)) throwInput(info.Env(), "setCompileLimit takes a whole number ≥ 0");
            runtime->setCompileLimit(static_cast<unsigned int>(limit));
            return info.Env().Undefined();
          }));
  ane.Set("liveModels", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
            return Napi::Number::New(info.Env(), static_cast<double>(runtime->liveModelCount()));
          }));
  exports.Set("ane", ane);
}

}  // namespace ane
