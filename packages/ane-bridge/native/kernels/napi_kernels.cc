// The JS face of the host kernels. Every kernel has a synchronous export (runs on the calling
// thread, spreading over the pool when the work is large), an `...Async` export that returns a
// Promise and runs on a libuv worker thread (which then uses the pool), so the JS thread stays free
// to drive the device, and an `...AsyncBackground` export that runs as background work
// (runInBackground: on Linux a thread of its own, off the pool). Arguments were
// already checked by the TS wrapper (src/kernels/native.ts); the checks here repeat the ones that
// keep memory safe, so a direct caller cannot make a kernel read or write outside its arrays.
#include "napi_kernels.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "kernels.h"
#include "simd.h"
#include "thread_pool.h"

namespace ane {
namespace kernels {

namespace {

using Index = std::ptrdiff_t;

// Per-environment data every kernel function receives (Napi::Function data): the intrinsic
// ArrayBuffer.prototype.resizable getter, so a buffer's own properties cannot fake the answer.
struct KernelFunctionData;
struct KernelEnvData {
  Napi::FunctionReference resizableGetter;
  std::vector<std::unique_ptr<KernelFunctionData>> functions;
};
// What one kernel export receives: its name (for messages) and its environment's data.
struct KernelFunctionData {
  const KernelEnvData* env = nullptr;
  std::string name;
};

// An array of an asynchronous call over a plain (detachable) ArrayBuffer: the kernel works on this
// private copy, and the result is copied back on the JS thread when the work is done.
struct Copy {
  std::size_t arrayIndex = 0;  // into Job::arrays
  std::string name;
  void* original = nullptr;  // the array's memory at the call
  std::size_t length = 0;    // elements at the call
  std::size_t bytes = 0;
  std::unique_ptr<unsigned char[]> data;
  bool output = false;  // copied back when the kernel is done
};

// A parsed call: the work to run, and the typed arrays it touches (kept alive while it runs).
struct Job {
  bool async = false;
  bool background = false;
  std::string kernel;
  const KernelEnvData* envData = nullptr;
  std::function<double()> run;
  std::vector<Napi::Object> arrays;
  std::vector<Copy> copies;
  bool returnsNumber = false;
};

// Memory safety of the asynchronous kernels. The JS thread runs on while a kernel works, so the
// memory under the kernel's pointers must stay put for the whole run:
//  - a SharedArrayBuffer cannot be detached or shrunk (a growable one only grows, in place), and the
//    persistent reference to its view keeps it alive: the kernel uses its memory directly;
//  - a plain ArrayBuffer can be detached meanwhile (structuredClone/postMessage transfer lists,
//    ArrayBuffer.prototype.transfer on Node 22+), and its memory then freed by the GC or at once;
//    N-API offers no way to hold the memory itself, so the kernel works on private copies made at
//    the call, and the outputs are copied back on the JS thread after the run, only when every
//    output array is still attached with its length (otherwise the Promise rejects with a TypeError
//    whose code is ERR_ANE_BRIDGE_DETACHED, and the result is discarded);
//  - a resizable ArrayBuffer is refused (TypeError, code ERR_ANE_BRIDGE_RESIZABLE_BUFFER) by every
//    kernel, synchronous ones included: its memory can shrink under a view.
class KernelWorker : public Napi::AsyncWorker {
 public:
  KernelWorker(Napi::Env env, Job job)
      : Napi::AsyncWorker(env, "ane-bridge:kernel"),
        deferred_(Napi::Promise::Deferred::New(env)),
        run_(std::move(job.run)),
        returnsNumber_(job.returnsNumber),
        background_(job.background),
        kernel_(std::move(job.kernel)),
        copies_(std::move(job.copies)) {
    for (Napi::Object& array : job.arrays) keep_.push_back(Napi::Persistent(array));
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (background_) {
        runInBackground([this] { result_ = run_(); });
      } else {
        result_ = run_();
      }
    } catch (const std::exception& error) {
      SetError(std::string("ane-bridge kernel failed: ") + error.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    // Every output must still be the memory it was at the call before any result is written.
    std::vector<void*> targets(copies_.size(), nullptr);
    for (std::size_t i = 0; i < copies_.size(); i++) {
      const Copy& copy = copies_[i];
      if (!copy.output) continue;
      void* data = nullptr;
      std::size_t length = 0;
      const napi_status status = napi_get_typedarray_info(env, keep_[copy.arrayIndex].Value(), nullptr, &length,
                                                          &data, nullptr, nullptr);
      if (status != napi_ok || data != copy.original || length != copy.length) {
        Napi::Error error = Napi::TypeError::New(
            env, kernel_ + "Async: " + copy.name +
                     " was detached or resized while the kernel ran (an ArrayBuffer transfer, a "
                     "postMessage or structuredClone transfer list), so the result was discarded; leave "
                     "the arrays alone until the Promise settles, or use arrays over a SharedArrayBuffer");
        error.Set("code", Napi::String::New(env, "ERR_ANE_BRIDGE_DETACHED"));
        deferred_.Reject(error.Value());
        return;
      }
      targets[i] = data;
    }
    for (std::size_t i = 0; i < copies_.size(); i++) {
      if (targets[i] != nullptr) std::memcpy(targets[i], copies_[i].data.get(), copies_[i].bytes);
    }
    deferred_.Resolve(returnsNumber_ ? Napi::Number::New(env, result_) : env.Undefined());
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<double()> run_;
  bool returnsNumber_;
  bool background_;
  double result_ = 0.0;
  std::string kernel_;
  std::vector<Copy> copies_;
  std::vector<Napi::ObjectReference> keep_;
};

enum class Mode { Sync, Async, Background };

template <void (*Parse)(const Napi::CallbackInfo&, Job&), Mode How>
Napi::Value entry(const Napi::CallbackInfo& info) {
  constexpr bool Async = How != Mode::Sync;
  Job job;
  job.async = Async;
  job.background = How == Mode::Background;
  const auto* data = static_cast<const KernelFunctionData*>(info.Data());
  job.envData = data->env;
  job.kernel = data->name;
  Parse(info, job);
  if (!Async) {
    double result = 0.0;
    try {
      result = job.run();
    } catch (const std::exception& error) {
      throw Napi::Error::New(info.Env(), std::string("ane-bridge kernel failed: ") + error.what());
    }
    return job.returnsNumber ? Napi::Value(Napi::Number::New(info.Env(), result)) : info.Env().Undefined();
  }
  auto* worker = new KernelWorker(info.Env(), std::move(job));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// ---- argument readers ------------------------------------------------------------------------

[[noreturn]] void rangeError(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

[[noreturn]] void typeError(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

template <typename T>
struct View {
  T* data = nullptr;  // may be null for an empty array
  Index length = 0;
  bool present = false;  // false: the argument was null (nullable arguments only)
};

// Whether the kernel writes the array (an asynchronous call copies outputs back; see KernelWorker).
enum class Access { In, Out };

bool isResizable(napi_value buffer, const Job& job) {
  if (job.envData == nullptr || job.envData->resizableGetter.IsEmpty()) return false;
  return job.envData->resizableGetter.Call(buffer, {}).ToBoolean().Value();
}

template <typename T>
View<T> typedArray(const Napi::CallbackInfo& info, std::size_t index, napi_typedarray_type type, const char* name,
                   const char* typeName, Job& job, Access access, bool nullable = false) {
  const Napi::Value value = info[index];
  if (nullable && (value.IsNull() || value.IsUndefined())) return {};
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    typeError(info.Env(), std::string(name) + " must be a " + typeName);
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  job.arrays.push_back(array);
  View<T> view;
  view.present = true;
  // napi_get_typedarray_info gives the data pointer for any backing store, SharedArrayBuffer
  // included (array.ArrayBuffer() fails for shared memory).
  void* data = nullptr;
  std::size_t length = 0;
  napi_value buffer = nullptr;
  if (napi_get_typedarray_info(info.Env(), array, nullptr, &length, &data, &buffer, nullptr) != napi_ok) {
    typeError(info.Env(), std::string(name) + ": cannot read the typed array's memory");
  }
  bool plain = false;  // an ArrayBuffer (detachable), not a SharedArrayBuffer
  if (napi_is_arraybuffer(info.Env(), buffer, &plain) != napi_ok) plain = false;
  if (plain && isResizable(buffer, job)) {
    Napi::Error error = Napi::TypeError::New(
        info.Env(), job.kernel + ": " + name +
                        " is a view of a resizable ArrayBuffer, whose memory can shrink while a kernel uses it; "
                        "copy it into a fixed-length array first (new " +
                        typeName + "(view))");
    error.Set("code", Napi::String::New(info.Env(), "ERR_ANE_BRIDGE_RESIZABLE_BUFFER"));
    throw error;
  }
  view.data = static_cast<T*>(data);
  view.length = static_cast<Index>(length);
  if (job.async && plain && length > 0) {
    Copy copy;
    copy.arrayIndex = job.arrays.size() - 1;
    copy.name = name;
    copy.original = data;
    copy.length = length;
    copy.bytes = length * sizeof(T);
    copy.output = access == Access::Out;
    copy.data.reset(new (std::nothrow) unsigned char[copy.bytes]);
    if (!copy.data) {
      rangeError(info.Env(), job.kernel + "Async: out of memory copying " + name + " (" + std::to_string(copy.bytes) +
                                 " bytes); use arrays over a SharedArrayBuffer, which the kernel uses in place");
    }
    std::memcpy(copy.data.get(), data, copy.bytes);
    view.data = reinterpret_cast<T*>(copy.data.get());
    job.copies.push_back(std::move(copy));
  }
  return view;
}

View<float> f32(const Napi::CallbackInfo& info, std::size_t i, const char* name, Job& job, Access access,
                bool nullable = false) {
  return typedArray<float>(info, i, napi_float32_array, name, "Float32Array", job, access, nullable);
}
View<std::uint16_t> u16(const Napi::CallbackInfo& info, std::size_t i, const char* name, Job& job, Access access,
                        bool nullable = false) {
  return typedArray<std::uint16_t>(info, i, napi_uint16_array, name, "Uint16Array", job, access, nullable);
}
View<std::int32_t> i32(const Napi::CallbackInfo& info, std::size_t i, const char* name, Job& job) {
  return typedArray<std::int32_t>(info, i, napi_int32_array, name, "Int32Array", job, Access::In);
}

double number(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  if (!info[i].IsNumber()) typeError(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

float f32Scalar(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return static_cast<float>(number(info, i, name));
}

Index count(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  const double value = number(info, i, name);
  if (!(value >= 0) || value != std::floor(value) || value > 9.0e15) {
    rangeError(info.Env(), std::string(name) + " must be a non-negative integer");
  }
  return static_cast<Index>(value);
}

bool flag(const Napi::CallbackInfo& info, std::size_t i) { return info[i].ToBoolean().Value(); }

template <typename T>
void need(const Napi::CallbackInfo& info, const View<T>& view, Index elements, const char* name) {
  if (view.length < elements) {
    rangeError(info.Env(), std::string(name) + " has " + std::to_string(view.length) + " elements, needs " +
                               std::to_string(elements));
  }
}

// a * b, or a RangeError when the product does not fit (sizes from JS are untrusted).
Index mul(const Napi::CallbackInfo& info, Index a, Index b) {
  Index product;
  if (__builtin_mul_overflow(a, b, &product)) rangeError(info.Env(), "array sizes overflow");
  return product;
}

Index add(const Napi::CallbackInfo& info, Index a, Index b) {
  Index sum;
  if (__builtin_add_overflow(a, b, &sum)) rangeError(info.Env(), "array sizes overflow");
  return sum;
}

// Elements a rows x cols matrix with row stride `stride` spans (0 when empty).
Index span(const Napi::CallbackInfo& info, Index rows, Index cols, Index stride, const char* name) {
  if (rows == 0 || cols == 0) return 0;
  if (stride < cols && rows > 1) rangeError(info.Env(), std::string(name) + " row stride is smaller than its row");
  return add(info, mul(info, rows - 1, stride), cols);
}

void checkTokens(const Napi::CallbackInfo& info, const View<std::int32_t>& tokens, Index count, Index V, bool allowNegative,
                 const char* name) {
  for (Index s = 0; s < count; s++) {
    const std::int32_t t = tokens.data[s];
    if (t >= V || (t < 0 && !allowNegative)) {
      rangeError(info.Env(), std::string(name) + "[" + std::to_string(s) + "] = " + std::to_string(t) +
                                 " is outside [0, " + std::to_string(V) + ")");
    }
  }
}

// ---- kernels ---------------------------------------------------------------------------------

// An input given as a Float32Array or as fp16 bits in a Uint16Array: exactly one view is present.
struct FloatOrHalf {
  View<float> f32;
  View<std::uint16_t> f16;
  Index length() const { return f16.present ? f16.length : f32.length; }
};

FloatOrHalf floatOrHalf(const Napi::CallbackInfo& info, std::size_t i, const char* name, Job& job) {
  FloatOrHalf input;
  if (info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array)
    input.f16 = u16(info, i, name, job, Access::In);
  else
    input.f32 = f32(info, i, name, job, Access::In);
  return input;
}

void need(const Napi::CallbackInfo& info, const FloatOrHalf& input, Index elements, const char* name) {
  if (input.length() < elements) {
    rangeError(info.Env(), std::string(name) + " has " + std::to_string(input.length()) + " elements, needs " +
                               std::to_string(elements));
  }
}

// sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
void parseSgemm(const Napi::CallbackInfo& info, Job& job) {
  const bool transA = flag(info, 0), transB = flag(info, 1);
  const Index M = count(info, 2, "M"), N = count(info, 3, "N"), K = count(info, 4, "K");
  const float alpha = f32Scalar(info, 5, "alpha");
  const FloatOrHalf A = floatOrHalf(info, 6, "A", job);
  const Index lda = count(info, 7, "lda");
  const FloatOrHalf B = floatOrHalf(info, 8, "B", job);
  const Index ldb = count(info, 9, "ldb");
  const float beta = f32Scalar(info, 10, "beta");
  const View<float> C = f32(info, 11, "C", job, Access::Out);
  const Index ldc = count(info, 12, "ldc");
  if (M > 0 && N > 0 && K > 0) {
    need(info, A, transA ? span(info, K, M, lda, "A") : span(info, M, K, lda, "A"), "A");
    need(info, B, transB ? span(info, N, K, ldb, "B") : span(info, K, N, ldb, "B"), "B");
  }
  need(info, C, span(info, M, N, ldc, "C"), "C");
  job.run = [=] {
    sgemmHalfOperands(transA, transB, M, N, K, alpha, A.f32.data, A.f16.data, lda, B.f32.data, B.f16.data, ldb, beta,
                      C.data, ldc);
    return 0.0;
  };
}

// fp32ToFp16(src, srcOffset, srcStride, dst, dstOffset, dstStride, rows, cols, saturate)
void parseToHalf(const Napi::CallbackInfo& info, Job& job) {
  const View<float> src = f32(info, 0, "src", job, Access::In);
  const Index srcOffset = count(info, 1, "srcOffset"), srcStride = count(info, 2, "srcRowStride");
  const View<std::uint16_t> dst = u16(info, 3, "dst", job, Access::Out);
  const Index dstOffset = count(info, 4, "dstOffset"), dstStride = count(info, 5, "dstRowStride");
  const Index rows = count(info, 6, "rows"), cols = count(info, 7, "cols");
  const bool saturate = flag(info, 8);
  need(info, src, add(info, srcOffset, span(info, rows, cols, srcStride, "src")), "src");
  need(info, dst, add(info, dstOffset, span(info, rows, cols, dstStride, "dst")), "dst");
  job.run = [=] {
    fp32ToFp16(src.data + srcOffset, srcStride, dst.data + dstOffset, dstStride, rows, cols, saturate);
    return 0.0;
  };
}

// fp16ToFp32(src, srcOffset, srcStride, dst, dstOffset, dstStride, rows, cols)
void parseToFloat(const Napi::CallbackInfo& info, Job& job) {
  const View<std::uint16_t> src = u16(info, 0, "src", job, Access::In);
  const Index srcOffset = count(info, 1, "srcOffset"), srcStride = count(info, 2, "srcRowStride");
  const View<float> dst = f32(info, 3, "dst", job, Access::Out);
  const Index dstOffset = count(info, 4, "dstOffset"), dstStride = count(info, 5, "dstRowStride");
  const Index rows = count(info, 6, "rows"), cols = count(info, 7, "cols");
  need(info, src, add(info, srcOffset, span(info, rows, cols, srcStride, "src")), "src");
  need(info, dst, add(info, dstOffset, span(info, rows, cols, dstStride, "dst")), "dst");
  job.run = [=] {
    fp16ToFp32(src.data + srcOffset, srcStride, dst.data + dstOffset, dstStride, rows, cols);
    return 0.0;
  };
}

// fp32ToFp16Transposed(src, srcOffset, srcStride, dst, dstOffset, dstStride, rows, cols, saturate):
// dst[dstOffset + c*dstStride + r] = fp16(src[srcOffset + r*srcStride + c]); dst spans cols x rows.
void parseToHalfTransposed(const Napi::CallbackInfo& info, Job& job) {
  const View<float> src = f32(info, 0, "src", job, Access::In);
  const Index srcOffset = count(info, 1, "srcOffset"), srcStride = count(info, 2, "srcRowStride");
  const View<std::uint16_t> dst = u16(info, 3, "dst", job, Access::Out);
  const Index dstOffset = count(info, 4, "dstOffset"), dstStride = count(info, 5, "dstRowStride");
  const Index rows = count(info, 6, "rows"), cols = count(info, 7, "cols");
  const bool saturate = flag(info, 8);
  need(info, src, add(info, srcOffset, span(info, rows, cols, srcStride, "src")), "src");
  need(info, dst, add(info, dstOffset, span(info, cols, rows, dstStride, "dst")), "dst");
  job.run = [=] {
    fp32ToFp16Transposed(src.data + srcOffset, srcStride, dst.data + dstOffset, dstStride, rows, cols, saturate);
    return 0.0;
  };
}

// fp16ToFp32Transposed(src, srcOffset, srcStride, dst, dstOffset, dstStride, rows, cols):
// dst[dstOffset + c*dstStride + r] = fp32(src[srcOffset + r*srcStride + c]); dst spans cols x rows.
void parseToFloatTransposed(const Napi::CallbackInfo& info, Job& job) {
  const View<std::uint16_t> src = u16(info, 0, "src", job, Access::In);
  const Index srcOffset = count(info, 1, "srcOffset"), srcStride = count(info, 2, "srcRowStride");
  const View<float> dst = f32(info, 3, "dst", job, Access::Out);
  const Index dstOffset = count(info, 4, "dstOffset"), dstStride = count(info, 5, "dstRowStride");
  const Index rows = count(info, 6, "rows"), cols = count(info, 7, "cols");
  need(info, src, add(info, srcOffset, span(info, rows, cols, srcStride, "src")), "src");
  need(info, dst, add(info, dstOffset, span(info, cols, rows, dstStride, "dst")), "dst");
  job.run = [=] {
    fp16ToFp32Transposed(src.data + srcOffset, srcStride, dst.data + dstOffset, dstStride, rows, cols);
    return 0.0;
  };
}

// sgdUpdate(params, grads, momentumBuffer|null, negLr, weightDecay, momentum, oneMinusDampening,
//           nesterov, firstStep, gradScale, fp16Out|null)
void parseSgd(const Napi::CallbackInfo& info, Job& job) {
  const View<float> params = f32(info, 0, "params", job, Access::Out);
  const View<float> grads = f32(info, 1, "grads", job, Access::In);
  const View<float> buffer = f32(info, 2, "momentumBuffer", job, Access::Out, true);
  SgdScalars s;
  s.negLr = f32Scalar(info, 3, "negLr");
  s.weightDecay = f32Scalar(info, 4, "weightDecay");
  s.momentum = f32Scalar(info, 5, "momentum");
  s.oneMinusDampening = f32Scalar(info, 6, "oneMinusDampening");
  s.nesterov = flag(info, 7);
  s.firstStep = flag(info, 8);
  s.gradScale = f32Scalar(info, 9, "gradScale");
  const View<std::uint16_t> out = u16(info, 10, "fp16Out", job, Access::Out, true);
  const Index n = params.length;
  need(info, grads, n, "grads");
  if (s.momentum != 0.0f) {
    if (!buffer.present) rangeError(info.Env(), "momentumBuffer is required when momentum is not 0");
    need(info, buffer, n, "momentumBuffer");
  }
  if (out.present) need(info, out, n, "fp16Out");
  job.run = [=] {
    sgdUpdate(params.data, grads.data, s.momentum != 0.0f ? buffer.data : nullptr, n, s, out.data);
    return 0.0;
  };
}

// adamUpdate(params, grads, m, v, negStepSize, biasCorrection2Sqrt, oneMinusBeta1, beta2,
//            oneMinusBeta2, eps, l2, decay, gradScale, fp16Out|null)
void parseAdam(const Napi::CallbackInfo& info, Job& job) {
  const View<float> params = f32(info, 0, "params", job, Access::Out);
  const View<float> grads = f32(info, 1, "grads", job, Access::In);
  const View<float> m = f32(info, 2, "m", job, Access::Out);
  const View<float> v = f32(info, 3, "v", job, Access::Out);
  AdamScalars s;
  s.negStepSize = f32Scalar(info, 4, "negStepSize");
  s.biasCorrection2Sqrt = f32Scalar(info, 5, "biasCorrection2Sqrt");
  s.oneMinusBeta1 = f32Scalar(info, 6, "oneMinusBeta1");
  s.beta2 = f32Scalar(info, 7, "beta2");
  s.oneMinusBeta2 = f32Scalar(info, 8, "oneMinusBeta2");
  s.eps = f32Scalar(info, 9, "eps");
  s.l2 = f32Scalar(info, 10, "l2");
  s.decay = f32Scalar(info, 11, "decay");
  s.gradScale = f32Scalar(info, 12, "gradScale");
  const View<std::uint16_t> out = u16(info, 13, "fp16Out", job, Access::Out, true);
  const Index n = params.length;
  need(info, grads, n, "grads");
  need(info, m, n, "m");
  need(info, v, n, "v");
  if (out.present) need(info, out, n, "fp16Out");
  job.run = [=] {
    adamUpdate(params.data, grads.data, m.data, v.data, n, s, out.data);
    return 0.0;
  };
}

// lionUpdate(params, grads, m, decay, negLr, beta1, oneMinusBeta1, beta2, oneMinusBeta2, gradScale,
//            fp16Out|null)
void parseLion(const Napi::CallbackInfo& info, Job& job) {
  const View<float> params = f32(info, 0, "params", job, Access::Out);
  const View<float> grads = f32(info, 1, "grads", job, Access::In);
  const View<float> m = f32(info, 2, "m", job, Access::Out);
  LionScalars s;
  s.decay = f32Scalar(info, 3, "decay");
  s.negLr = f32Scalar(info, 4, "negLr");
  s.beta1 = f32Scalar(info, 5, "beta1");
  s.oneMinusBeta1 = f32Scalar(info, 6, "oneMinusBeta1");
  s.beta2 = f32Scalar(info, 7, "beta2");
  s.oneMinusBeta2 = f32Scalar(info, 8, "oneMinusBeta2");
  s.gradScale = f32Scalar(info, 9, "gradScale");
  const View<std::uint16_t> out = u16(info, 10, "fp16Out", job, Access::Out, true);
  const Index n = params.length;
  need(info, grads, n, "grads");
  need(info, m, n, "m");
  if (out.present) need(info, out, n, "fp16Out");
  job.run = [=] {
    lionUpdate(params.data, grads.data, m.data, n, s, out.data);
    return 0.0;
  };
}

// sumOfSquares(x)
void parseSumOfSquares(const Napi::CallbackInfo& info, Job& job) {
  const View<float> x = f32(info, 0, "x", job, Access::In);
  job.returnsNumber = true;
  job.run = [=] { return sumOfSquares(x.data, x.length); };
}

// rmsnormForward(out, rstd, x, weight, C, S, eps)
void parseRmsnormForward(const Napi::CallbackInfo& info, Job& job) {
  const View<float> out = f32(info, 0, "out", job, Access::Out), rstd = f32(info, 1, "rstd", job, Access::Out), x = f32(info, 2, "x", job, Access::In),
                    weight = f32(info, 3, "weight", job, Access::In);
  const Index C = count(info, 4, "C"), S = count(info, 5, "S");
  const float eps = f32Scalar(info, 6, "eps");
  need(info, out, mul(info, C, S), "out");
  need(info, rstd, S, "rstd");
  need(info, x, mul(info, C, S), "x");
  need(info, weight, C, "weight");
  job.run = [=] {
    rmsnormForward(out.data, rstd.data, x.data, weight.data, C, S, eps);
    return 0.0;
  };
}

// rmsnormBackward(dx, dweight, dout, x, weight, rstd, C, S)
void parseRmsnormBackward(const Napi::CallbackInfo& info, Job& job) {
  const View<float> dx = f32(info, 0, "dx", job, Access::Out), dweight = f32(info, 1, "dweight", job, Access::Out),
                    dout = f32(info, 2, "dout", job, Access::In), x = f32(info, 3, "x", job, Access::In), weight = f32(info, 4, "weight", job, Access::In),
                    rstd = f32(info, 5, "rstd", job, Access::In);
  const Index C = count(info, 6, "C"), S = count(info, 7, "S");
  need(info, dx, mul(info, C, S), "dx");
  need(info, dweight, C, "dweight");
  need(info, dout, mul(info, C, S), "dout");
  need(info, x, mul(info, C, S), "x");
  need(info, weight, C, "weight");
  need(info, rstd, S, "rstd");
  job.run = [=] {
    rmsnormBackward(dx.data, dweight.data, dout.data, x.data, weight.data, rstd.data, C, S);
    return 0.0;
  };
}

// softmaxCrossEntropyForward(losses, probs, logits, targets, V, S)
void parseCrossEntropyForward(const Napi::CallbackInfo& info, Job& job) {
  const View<float> losses = f32(info, 0, "losses", job, Access::Out), probs = f32(info, 1, "probs", job, Access::Out),
                    logits = f32(info, 2, "logits", job, Access::In);
  const View<std::int32_t> targets = i32(info, 3, "targets", job);
  const Index V = count(info, 4, "V"), S = count(info, 5, "S");
  need(info, losses, S, "losses");
  need(info, probs, mul(info, V, S), "probs");
  need(info, logits, mul(info, V, S), "logits");
  need(info, targets, S, "targets");
  checkTokens(info, targets, S, V, true, "targets");
  job.run = [=] {
    softmaxCrossEntropyForward(losses.data, probs.data, logits.data, targets.data, V, S);
    return 0.0;
  };
}

// softmaxCrossEntropyBackward(dlogits, probs, targets, dlosses, V, S)
void parseCrossEntropyBackward(const Napi::CallbackInfo& info, Job& job) {
  const View<float> dlogits = f32(info, 0, "dlogits", job, Access::Out), probs = f32(info, 1, "probs", job, Access::In);
  const View<std::int32_t> targets = i32(info, 2, "targets", job);
  const View<float> dlosses = f32(info, 3, "dlosses", job, Access::In);
  const Index V = count(info, 4, "V"), S = count(info, 5, "S");
  need(info, dlogits, mul(info, V, S), "dlogits");
  need(info, probs, mul(info, V, S), "probs");
  need(info, targets, S, "targets");
  need(info, dlosses, S, "dlosses");
  checkTokens(info, targets, S, V, true, "targets");
  job.run = [=] {
    softmaxCrossEntropyBackward(dlogits.data, probs.data, targets.data, dlosses.data, V, S);
    return 0.0;
  };
}

// softmaxCrossEntropyStats(losses, maxv, inverse, logits, targets, V, S)
void parseCrossEntropyStats(const Napi::CallbackInfo& info, Job& job) {
  const View<float> losses = f32(info, 0, "losses", job, Access::Out), maxv = f32(info, 1, "maxv", job, Access::Out),
                    inverse = f32(info, 2, "inverse", job, Access::Out);
  const FloatOrHalf logits = floatOrHalf(info, 3, "logits", job);
  const View<std::int32_t> targets = i32(info, 4, "targets", job);
  const Index V = count(info, 5, "V"), S = count(info, 6, "S");
  need(info, losses, S, "losses");
  need(info, maxv, S, "maxv");
  need(info, inverse, S, "inverse");
  need(info, logits, mul(info, V, S), "logits");
  need(info, targets, S, "targets");
  checkTokens(info, targets, S, V, true, "targets");
  job.run = [=] {
    softmaxCrossEntropyStats(losses.data, maxv.data, inverse.data, logits.f32.data, logits.f16.data, targets.data, V,
                             S);
    return 0.0;
  };
}

// softmaxCrossEntropyGrad(dlogits, logits, maxv, inverse, targets, dlosses, V, S)
void parseCrossEntropyGrad(const Napi::CallbackInfo& info, Job& job) {
  const View<float> dlogits = f32(info, 0, "dlogits", job, Access::Out);
  const FloatOrHalf logits = floatOrHalf(info, 1, "logits", job);
  const View<float> maxv = f32(info, 2, "maxv", job, Access::In), inverse = f32(info, 3, "inverse", job, Access::In);
  const View<std::int32_t> targets = i32(info, 4, "targets", job);
  const View<float> dlosses = f32(info, 5, "dlosses", job, Access::In);
  const Index V = count(info, 6, "V"), S = count(info, 7, "S");
  need(info, dlogits, mul(info, V, S), "dlogits");
  need(info, logits, mul(info, V, S), "logits");
  need(info, maxv, S, "maxv");
  need(info, inverse, S, "inverse");
  need(info, targets, S, "targets");
  need(info, dlosses, S, "dlosses");
  checkTokens(info, targets, S, V, true, "targets");
  job.run = [=] {
    softmaxCrossEntropyGrad(dlogits.data, logits.f32.data, logits.f16.data, maxv.data, inverse.data, targets.data,
                            dlosses.data, V, S);
    return 0.0;
  };
}

// embeddingForward(out, table, tokens, V, C, S) / embeddingBackward(dtable, dout, tokens, V, C, S)
template <bool Backward>
void parseEmbedding(const Napi::CallbackInfo& info, Job& job) {
  const View<float> first = f32(info, 0, Backward ? "dtable" : "out", job, Access::Out);
  const View<float> second = f32(info, 1, Backward ? "dout" : "table", job, Access::In);
  const View<std::int32_t> tokens = i32(info, 2, "tokens", job);
  const Index V = count(info, 3, "V"), C = count(info, 4, "C"), S = count(info, 5, "S");
  need(info, Backward ? first : second, mul(info, V, C), Backward ? "dtable" : "table");
  need(info, Backward ? second : first, mul(info, C, S), Backward ? "dout" : "out");
  need(info, tokens, S, "tokens");
  checkTokens(info, tokens, S, V, false, "tokens");
  job.run = [=] {
    if (Backward) embeddingBackward(first.data, second.data, tokens.data, V, C, S);
    else embeddingForward(first.data, second.data, tokens.data, V, C, S);
    return 0.0;
  };
}

// causalSoftmaxForward(out, scores, H, Tq, Tk, scale)
void parseCausalForward(const Napi::CallbackInfo& info, Job& job) {
  const View<float> out = f32(info, 0, "out", job, Access::Out), scores = f32(info, 1, "scores", job, Access::In);
  const Index H = count(info, 2, "H"), Tq = count(info, 3, "Tq"), Tk = count(info, 4, "Tk");
  const float scale = f32Scalar(info, 5, "scale");
  if (Tk < Tq) rangeError(info.Env(), "Tk must be >= Tq");
  need(info, out, mul(info, mul(info, H, Tq), Tk), "out");
  need(info, scores, mul(info, mul(info, H, Tq), Tk), "scores");
  job.run = [=] {
    causalSoftmaxForward(out.data, scores.data, H, Tq, Tk, scale);
    return 0.0;
  };
}

// causalSoftmaxBackward(dscores, probs, dout, H, Tq, Tk, scale)
void parseCausalBackward(const Napi::CallbackInfo& info, Job& job) {
  const View<float> dscores = f32(info, 0, "dscores", job, Access::Out), probs = f32(info, 1, "probs", job, Access::In),
                    dout = f32(info, 2, "dout", job, Access::In);
  const Index H = count(info, 3, "H"), Tq = count(info, 4, "Tq"), Tk = count(info, 5, "Tk");
  const float scale = f32Scalar(info, 6, "scale");
  if (Tk < Tq) rangeError(info.Env(), "Tk must be >= Tq");
  need(info, dscores, mul(info, mul(info, H, Tq), Tk), "dscores");
  need(info, probs, mul(info, mul(info, H, Tq), Tk), "probs");
  need(info, dout, mul(info, mul(info, H, Tq), Tk), "dout");
  job.run = [=] {
    causalSoftmaxBackward(dscores.data, probs.data, dout.data, H, Tq, Tk, scale);
    return 0.0;
  };
}

// ---- pool and SIMD controls ------------------------------------------------------------------

Napi::Value GetHostThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), hostThreads()); }

Napi::Value SetHostThreads(const Napi::CallbackInfo& info) {
  const Index threads = count(info, 0, "threads");
  if (threads > kMaxHostThreads) {
    rangeError(info.Env(), "setHostThreads: threads must be an integer in [0, " + std::to_string(kMaxHostThreads) +
                               "] (0 = default), got " + std::to_string(threads));
  }
  setHostThreads(static_cast<int>(threads));
  return Napi::Number::New(info.Env(), hostThreads());
}

Napi::Value GetSimdLevel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), isaName(activeIsa()));
}

Napi::Value GetBestSimdLevel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), isaName(bestIsa()));
}

Napi::Value SetSimdLevel(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) typeError(info.Env(), "level must be a string");
  Isa isa;
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!parseIsa(name.c_str(), &isa)) rangeError(info.Env(), "unknown SIMD level '" + name + "'");
  return Napi::Boolean::New(info.Env(), setIsa(isa));
}

template <void (*Parse)(const Napi::CallbackInfo&, Job&)>
void exportKernel(Napi::Env env, KernelEnvData* envData, Napi::Object target, const char* name) {
  envData->functions.push_back(std::make_unique<KernelFunctionData>(KernelFunctionData{envData, name}));
  void* data = envData->functions.back().get();
  target.Set(name, Napi::Function::New(env, entry<Parse, Mode::Sync>, name, data));
  const std::string async = std::string(name) + "Async";
  target.Set(async, Napi::Function::New(env, entry<Parse, Mode::Async>, async, data));
  const std::string background = async + "Background";
  target.Set(background, Napi::Function::New(env, entry<Parse, Mode::Background>, background, data));
}

// The intrinsic ArrayBuffer.prototype.resizable getter (empty when this Node has none).
Napi::FunctionReference resizableGetter(Napi::Env env) {
  Napi::Value arrayBuffer = env.Global().Get("ArrayBuffer");
  Napi::Value object = env.Global().Get("Object");
  if (!arrayBuffer.IsFunction() || !object.IsFunction()) return {};
  Napi::Value describe = object.As<Napi::Object>().Get("getOwnPropertyDescriptor");
  if (!describe.IsFunction()) return {};
  Napi::Value prototype = arrayBuffer.As<Napi::Object>().Get("prototype");
  Napi::Value descriptor =
      describe.As<Napi::Function>().Call(object, {prototype, Napi::String::New(env, "resizable")});
  if (!descriptor.IsObject()) return {};
  Napi::Value getter = descriptor.As<Napi::Object>().Get("get");
  if (!getter.IsFunction()) return {};
  return Napi::Persistent(getter.As<Napi::Function>());
}

}  // namespace

void registerKernels(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
  auto* envData = new KernelEnvData();
  envData->resizableGetter = resizableGetter(env);
  env.AddCleanupHook([envData] { delete envData; });
  exportKernel<parseSgemm>(env, envData, k, "sgemm");
  exportKernel<parseToHalf>(env, envData, k, "fp32ToFp16");
  exportKernel<parseToFloat>(env, envData, k, "fp16ToFp32");
  exportKernel<parseToHalfTransposed>(env, envData, k, "fp32ToFp16Transposed");
  exportKernel<parseToFloatTransposed>(env, envData, k, "fp16ToFp32Transposed");
  exportKernel<parseSgd>(env, envData, k, "sgdUpdate");
  exportKernel<parseAdam>(env, envData, k, "adamUpdate");
  exportKernel<parseLion>(env, envData, k, "lionUpdate");
  exportKernel<parseSumOfSquares>(env, envData, k, "sumOfSquares");
  exportKernel<parseRmsnormForward>(env, envData, k, "rmsnormForward");
  exportKernel<parseRmsnormBackward>(env, envData, k, "rmsnormBackward");
  exportKernel<parseCrossEntropyForward>(env, envData, k, "softmaxCrossEntropyForward");
  exportKernel<parseCrossEntropyBackward>(env, envData, k, "softmaxCrossEntropyBackward");
  exportKernel<parseCrossEntropyStats>(env, envData, k, "softmaxCrossEntropyStats");
  exportKernel<parseCrossEntropyGrad>(env, envData, k, "softmaxCrossEntropyGrad");
  exportKernel<parseEmbedding<false>>(env, envData, k, "embeddingForward");
  exportKernel<parseEmbedding<true>>(env, envData, k, "embeddingBackward");
  exportKernel<parseCausalForward>(env, envData, k, "causalSoftmaxForward");
  exportKernel<parseCausalBackward>(env, envData, k, "causalSoftmaxBackward");
  k.Set("hostThreads", Napi::Function::New(env, GetHostThreads, "hostThreads"));
  k.Set("setHostThreads", Napi::Function::New(env, SetHostThreads, "setHostThreads"));
  k.Set("simdLevel", Napi::Function::New(env, GetSimdLevel, "simdLevel"));
  k.Set("bestSimdLevel", Napi::Function::New(env, GetBestSimdLevel, "bestSimdLevel"));
  k.Set("setSimdLevel", Napi::Function::New(env, SetSimdLevel, "setSimdLevel"));
  exports.Set("kernels", k);
}

}  // namespace kernels
}  // namespace ane
