// The JS face of the simulator's native ops (sim_ops.h). They are synchronous: the simulator calls
// them from its planned run closures (src/sim/native-ops.ts, which also picks the op codes). The
// arrays are the simulator's own planned buffers, but every pointer a kernel follows is checked
// here first, so a direct caller cannot make one read or write outside its arrays.
#include "napi_sim_ops.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"
#include "sim_ops.h"

namespace ane {
namespace sim {

namespace {

template <typename T>
struct Array {
  T* data = nullptr;
  Index length = 0;
};

[[noreturn]] void fail(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

template <typename T>
Array<T> arrayOf(Napi::Env env, const Napi::Value& value, napi_typedarray_type type, const std::string& name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw Napi::TypeError::New(env, "simOps: " + name + " has the wrong array type");
  }
  void* data = nullptr;
  std::size_t length = 0;
  if (napi_get_typedarray_info(env, value, nullptr, &length, &data, nullptr, nullptr) != napi_ok) {
    throw Napi::TypeError::New(env, "simOps: cannot read " + name);
  }
  return {static_cast<T*>(data), static_cast<Index>(length)};
}

template <typename T>
Array<T> array(const Napi::CallbackInfo& info, std::size_t i, napi_typedarray_type type, const char* name) {
  return arrayOf<T>(info.Env(), info[i], type, name);
}

Array<float> f32(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return array<float>(info, i, napi_float32_array, name);
}

Index whole(const Napi::CallbackInfo& info, std::size_t i, const char* name, bool allowNegative = false) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("simOps: ") + name + " must be a number");
  const double value = info[i].As<Napi::Number>().DoubleValue();
  if (value != std::floor(value) || std::fabs(value) > 2147483647.0 || (!allowNegative && value < 0)) {
    fail(info.Env(), std::string("simOps: ") + name + " must be a whole number in range");
  }
  return static_cast<Index>(value);
}

// Reads operands [first, first + count) of a walk: strides then row-offset arrays, and checks that
// every element each operand's runs touch lies inside that operand's array.
Walk walk(const Napi::CallbackInfo& info, std::size_t at, int count, const Index* lengths) {
  Walk w;
  w.rows = whole(info, at, "rows");
  w.inner = whole(info, at + 1, "inner");
  if (w.rows * w.inner > (Index(1) << 40)) fail(info.Env(), "simOps: walk too large");
  for (int k = 0; k < count; k++) {
    w.strides[k] = whole(info, at + 2 + k, "stride", true);
    const Array<std::int32_t> offsets = array<std::int32_t>(info, at + 2 + count + k, napi_int32_array, "rowOffsets");
    if (offsets.length < w.rows) fail(info.Env(), "simOps: rowOffsets is shorter than rows");
    w.rowOffsets[k] = offsets.data;
    if (w.inner == 0) continue;
    const Index reach = (w.inner - 1) * w.strides[k];
    for (Index r = 0; r < w.rows; r++) {
      const Index start = offsets.data[r];
      const Index end = start + reach;
      if (start < 0 || end < 0 || start >= lengths[k] || end >= lengths[k]) {
        fail(info.Env(), "simOps: walk reads outside operand " + std::to_string(k) + " (row " + std::to_string(r) + ")");
      }
    }
  }
  return w;
}

void needLength(const Napi::CallbackInfo& info, Index have, Index need, const char* name) {
  if (have < need) fail(info.Env(), std::string("simOps: ") + name + " is too short");
}

// binary(op, out, x, y, rows, inner, xStride, yStride, xRowOffsets, yRowOffsets, roundFp16)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const Index op = whole(info, 0, "op");
  if (op > static_cast<Index>(BinaryOp::Minimum)) fail(info.Env(), "simOps: unknown binary op");
  const Array<float> out = f32(info, 1, "out"), x = f32(info, 2, "x"), y = f32(info, 3, "y");
  const Index lengths[2] = {x.length, y.length};
  const Walk w = walk(info, 4, 2, lengths);
  needLength(info, out.length, w.rows * w.inner, "out");
  binary(static_cast<BinaryOp>(op), out.data, x.data, y.data, w, info[10].ToBoolean().Value());
  return info.Env().Undefined();
}

// unary(op, out, x, epsilon, roundFp16)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  const Index op = whole(info, 0, "op");
  if (op > static_cast<Index>(UnaryOp::Relu)) fail(info.Env(), "simOps: unknown unary op");
  const Array<float> out = f32(info, 1, "out"), x = f32(info, 2, "x");
  needLength(info, x.length, out.length, "x");
  if (!info[3].IsNumber()) throw Napi::TypeError::New(info.Env(), "simOps: epsilon must be a number");
  const double epsilon = info[3].As<Napi::Number>().DoubleValue();
  unary(static_cast<UnaryOp>(op), out.data, x.data, out.length, epsilon, info[4].ToBoolean().Value());
  return info.Env().Undefined();
}

// roundToFp16(data, saturateAt): saturateAt Infinity for none
Napi::Value RoundToFp16(const Napi::CallbackInfo& info) {
  const Array<float> data = f32(info, 0, "data");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "simOps: saturateAt must be a number");
  roundToFp16(data.data, data.length, info[1].As<Napi::Number>().DoubleValue());
  return info.Env().Undefined();
}

// saturateToInfinity(data, threshold, inclusive)
Napi::Value SaturateToInfinity(const Napi::CallbackInfo& info) {
  const Array<float> data = f32(info, 0, "data");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "simOps: threshold must be a number");
  saturateToInfinity(data.data, data.length, info[1].As<Napi::Number>().DoubleValue(), info[2].ToBoolean().Value());
  return info.Env().Undefined();
}

// gather(out, src, rows, inner, stride, rowOffsets): out and src of one type, 4- or 1-byte elements.
Napi::Value Gather(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "simOps: gather needs typed arrays");
  const napi_typedarray_type type = info[0].As<Napi::TypedArray>().TypedArrayType();
  if (info[1].As<Napi::TypedArray>().TypedArrayType() != type) throw Napi::TypeError::New(info.Env(), "simOps: gather arrays differ in type");
  const bool wide = type == napi_float32_array || type == napi_int32_array || type == napi_uint32_array;
  const bool narrow = type == napi_int8_array || type == napi_uint8_array;
  if (!wide && !narrow) throw Napi::TypeError::New(info.Env(), "simOps: gather takes 4- or 1-byte elements");
  if (wide) {
    const Array<std::uint32_t> out = array<std::uint32_t>(info, 0, type, "out");
    const Array<std::uint32_t> src = array<std::uint32_t>(info, 1, type, "src");
    const Walk w = walk(info, 2, 1, &src.length);
    needLength(info, out.length, w.rows * w.inner, "out");
    gather32(out.data, src.data, w);
  } else {
    const Array<std::uint8_t> out = array<std::uint8_t>(info, 0, type, "out");
    const Array<std::uint8_t> src = array<std::uint8_t>(info, 1, type, "src");
    const Walk w = walk(info, 2, 1, &src.length);
    needLength(info, out.length, w.rows * w.inner, "out");
    gather8(out.data, src.data, w);
  }
  return info.Env().Undefined();
}

// reduce(kind, out, x, outer, reduced, inner, roundFp16)
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  const Index kind = whole(info, 0, "kind");
  if (kind > static_cast<Index>(ReduceKind::Prod)) fail(info.Env(), "simOps: unknown reduction");
  const Array<float> out = f32(info, 1, "out"), x = f32(info, 2, "x");
  const Index outer = whole(info, 3, "outer"), reduced = whole(info, 4, "reduced"), inner = whole(info, 5, "inner");
  const double columns = static_cast<double>(outer) * static_cast<double>(inner);
  if (columns > static_cast<double>(out.length) || columns * static_cast<double>(reduced) > static_cast<double>(x.length)) {
    fail(info.Env(), "simOps: reduce arrays are too short");
  }
  reduce(static_cast<ReduceKind>(kind), out.data, x.data, outer, reduced, inner, info[6].ToBoolean().Value());
  return info.Env().Undefined();
}

// Elements a rows x cols block with row stride `stride` spans from `offset`, or -1 when it does not fit
// in `length` elements.
Index blockEnd(Index offset, Index stride, Index rows, Index cols) {
  if (rows == 0 || cols == 0) return offset;
  if (stride < cols && rows > 1) return -1;
  return offset + (rows - 1) * stride + cols;
}

// copyRows(dst, dstOffset, dstStride, src, srcOffset, srcStride, rows, cols): one typed-array type,
// 4- or 1-byte elements.
Napi::Value CopyRows(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || !info[3].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "simOps: copyRows needs typed arrays");
  const napi_typedarray_type type = info[0].As<Napi::TypedArray>().TypedArrayType();
  if (info[3].As<Napi::TypedArray>().TypedArrayType() != type) throw Napi::TypeError::New(info.Env(), "simOps: copyRows arrays differ in type");
  const bool wide = type == napi_float32_array || type == napi_int32_array || type == napi_uint32_array;
  const bool narrow = type == napi_int8_array || type == napi_uint8_array;
  if (!wide && !narrow) throw Napi::TypeError::New(info.Env(), "simOps: copyRows takes 4- or 1-byte elements");
  const Index dstOffset = whole(info, 1, "dstOffset"), dstStride = whole(info, 2, "dstStride");
  const Index srcOffset = whole(info, 4, "srcOffset"), srcStride = whole(info, 5, "srcStride");
  const Index rows = whole(info, 6, "rows"), cols = whole(info, 7, "cols");
  const Index dstEnd = blockEnd(dstOffset, dstStride, rows, cols), srcEnd = blockEnd(srcOffset, srcStride, rows, cols);
  if (wide) {
    const Array<std::uint32_t> dst = array<std::uint32_t>(info, 0, type, "dst");
    const Array<std::uint32_t> src = array<std::uint32_t>(info, 3, type, "src");
    if (dstEnd < 0 || srcEnd < 0 || dstEnd > dst.length || srcEnd > src.length) fail(info.Env(), "simOps: copyRows block outside its arrays");
    copyRows32(dst.data + dstOffset, dstStride, src.data + srcOffset, srcStride, rows, cols);
  } else {
    const Array<std::uint8_t> dst = array<std::uint8_t>(info, 0, type, "dst");
    const Array<std::uint8_t> src = array<std::uint8_t>(info, 3, type, "src");
    if (dstEnd < 0 || srcEnd < 0 || dstEnd > dst.length || srcEnd > src.length) fail(info.Env(), "simOps: copyRows block outside its arrays");
    copyRows8(dst.data + dstOffset, dstStride, src.data + srcOffset, srcStride, rows, cols);
  }
  return info.Env().Undefined();
}

// softmax(out, x, outer, reduced, inner, roundFp16)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const Array<float> out = f32(info, 0, "out"), x = f32(info, 1, "x");
  const Index outer = whole(info, 2, "outer"), reduced = whole(info, 3, "reduced"), inner = whole(info, 4, "inner");
  const double total = static_cast<double>(outer) * static_cast<double>(reduced) * static_cast<double>(inner);
  if (total > static_cast<double>(out.length) || total > static_cast<double>(x.length)) fail(info.Env(), "simOps: softmax arrays are too short");
  softmax(out.data, x.data, outer, reduced, inner, info[5].ToBoolean().Value());
  return info.Env().Undefined();
}

// A matmul's finish from arguments i (roundFp16) and i + 1 (saturateAt, Infinity for none).
MatmulFinish matmulFinish(const Napi::CallbackInfo& info, std::size_t i) {
  if (!info[i + 1].IsNumber()) throw Napi::TypeError::New(info.Env(), "simOps: saturateAt must be a number");
  return {info[i].ToBoolean().Value(), info[i + 1].As<Napi::Number>().DoubleValue()};
}

// matmul(out, x, y, transX, transY, M, N, K, alpha, xOffsets, yOffsets, roundFp16, saturateAt):
// batch = xOffsets.length; each product finished as finishMatmul says.
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const Array<float> out = f32(info, 0, "out"), x = f32(info, 1, "x"), y = f32(info, 2, "y");
  const bool transX = info[3].ToBoolean().Value(), transY = info[4].ToBoolean().Value();
  const Index M = whole(info, 5, "M"), N = whole(info, 6, "N"), K = whole(info, 7, "K");
  if (!info[8].IsNumber()) throw Napi::TypeError::New(info.Env(), "simOps: alpha must be a number");
  const float alpha = static_cast<float>(info[8].As<Napi::Number>().DoubleValue());
  const Array<std::int32_t> xOffsets = array<std::int32_t>(info, 9, napi_int32_array, "xOffsets");
  const Array<std::int32_t> yOffsets = array<std::int32_t>(info, 10, napi_int32_array, "yOffsets");
  const Index batch = xOffsets.length;
  if (yOffsets.length != batch) fail(info.Env(), "simOps: matmul offsets differ in length");
  if (M == 0 || N == 0) return info.Env().Undefined();
  needLength(info, out.length / M / N, batch, "out");
  for (Index b = 0; b < batch; b++) {
    if (xOffsets.data[b] < 0 || x.length - xOffsets.data[b] < M * K) fail(info.Env(), "simOps: matmul reads outside x");
    if (yOffsets.data[b] < 0 || y.length - yOffsets.data[b] < K * N) fail(info.Env(), "simOps: matmul reads outside y");
  }
  const auto overlaps = [&](const Array<float>& a) { return out.data < a.data + a.length && a.data < out.data + batch * M * N; };
  if (overlaps(x) || overlaps(y)) fail(info.Env(), "simOps: matmul out overlaps an operand");
  const MatmulFinish finish = matmulFinish(info, 11);
  batchedMatmul(out.data, x.data, y.data, transX, transY, M, N, K, alpha, xOffsets.data, yOffsets.data, batch, finish);
  return info.Env().Undefined();
}

// One operand of gemm: a Float32Array or a Uint16Array of fp16 bits, read from element `offset` as
// a rows x cols matrix of row stride ld (checked to lie inside the array).
struct GemmOperandArg {
  const float* f32 = nullptr;
  const std::uint16_t* f16 = nullptr;
  const void* begin = nullptr;
  const void* end = nullptr;
};

GemmOperandArg gemmOperand(const Napi::CallbackInfo& info, std::size_t i, const char* name, Index rows, Index cols) {
  const Napi::Env env = info.Env();
  const Index offset = whole(info, i + 1, "offset"), ld = whole(info, i + 2, "ld");
  const bool half = info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
  Index length = 0;
  GemmOperandArg operand;
  if (half) {
    const Array<std::uint16_t> a = array<std::uint16_t>(info, i, napi_uint16_array, name);
    operand.f16 = a.data + offset;
    length = a.length;
    operand.begin = a.data;
    operand.end = a.data + a.length;
  } else {
    const Array<float> a = f32(info, i, name);
    operand.f32 = a.data + offset;
    length = a.length;
    operand.begin = a.data;
    operand.end = a.data + a.length;
  }
  if (rows > 0 && cols > 0) {
    if (ld < cols) fail(env, std::string("simOps: gemm ") + name + " has a row stride below its columns");
    if (offset > length || (rows - 1) * ld + cols > length - offset) fail(env, std::string("simOps: gemm reads outside ") + name);
  }
  return operand;
}

// gemm(out, a, aOffset, lda, transA, b, bOffset, ldb, transB, M, N, K, roundFp16, saturateAt):
// out [M, N] = op(a) op(b), each operand fp32 or fp16 bits (sgemmHalfOperands), finished as
// finishMatmul says block by block as the GEMM completes them.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const Array<float> out = f32(info, 0, "out");
  const bool transA = info[4].ToBoolean().Value(), transB = info[8].ToBoolean().Value();
  const Index M = whole(info, 9, "M"), N = whole(info, 10, "N"), K = whole(info, 11, "K");
  if (M * N > out.length) fail(info.Env(), "simOps: gemm out is shorter than M * N");
  const GemmOperandArg a = transA ? gemmOperand(info, 1, "a", K, M) : gemmOperand(info, 1, "a", M, K);
  const GemmOperandArg b = transB ? gemmOperand(info, 5, "b", N, K) : gemmOperand(info, 5, "b", K, N);
  const auto overlaps = [&](const GemmOperandArg& x) {
    return static_cast<const void*>(out.data) < x.end && x.begin < static_cast<const void*>(out.data + M * N);
  };
  if (M > 0 && N > 0 && (overlaps(a) || overlaps(b))) fail(info.Env(), "simOps: gemm out overlaps an operand");
  const MatmulFinish finish = matmulFinish(info, 12);
  kernels::sgemmHalfOperands(transA, transB, M, N, K, 1.0f, a.f32, a.f16, whole(info, 3, "lda"), b.f32, b.f16,
                             whole(info, 7, "ldb"), 0.0f, out.data, N, matmulEpilogue(finish));
  return info.Env().Undefined();
}

// fused(code, epsilons, registers, length, operands, walks, rowOffsets, outputs): code holds six
// int32 per instruction (kind, op, dst, a, b, round), epsilons one float64 per instruction;
// operands[k] (Float32Array) is read through walks[2k] (inner), walks[2k + 1] (stride) and
// rowOffsets[k] (Int32Array, one start per row of `inner`); outputs are Float32Arrays of `length`.
Napi::Value Fused(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Array<std::int32_t> code = array<std::int32_t>(info, 0, napi_int32_array, "code");
  const Array<double> epsilons = array<double>(info, 1, napi_float64_array, "epsilons");
  const Index registers = whole(info, 2, "registers"), length = whole(info, 3, "length");
  if (!info[4].IsArray() || !info[6].IsArray() || !info[7].IsArray()) {
    throw Napi::TypeError::New(env, "simOps: fused operands, rowOffsets and outputs must be arrays");
  }
  const Napi::Array operandValues = info[4].As<Napi::Array>();
  const Array<std::int32_t> walks = array<std::int32_t>(info, 5, napi_int32_array, "walks");
  const Napi::Array rowOffsetValues = info[6].As<Napi::Array>();
  const Napi::Array outputValues = info[7].As<Napi::Array>();
  if (code.length % 6 != 0 || epsilons.length < code.length / 6) fail(env, "simOps: fused code is malformed");
  if (registers < 1 || registers > 4096) fail(env, "simOps: fused registers out of range");
  const Index operandCount = operandValues.Length();
  if (walks.length < 2 * operandCount || rowOffsetValues.Length() < operandCount) {
    fail(env, "simOps: fused walks are shorter than the operands");
  }
  std::vector<FusedOperand> operands(static_cast<std::size_t>(operandCount));
  std::vector<Array<float>> operandArrays;
  for (Index k = 0; k < operandCount; k++) {
    const std::string name = "operand " + std::to_string(k);
    const Array<float> data = arrayOf<float>(env, operandValues.Get(static_cast<std::uint32_t>(k)), napi_float32_array, name);
    const Array<std::int32_t> offsets =
        arrayOf<std::int32_t>(env, rowOffsetValues.Get(static_cast<std::uint32_t>(k)), napi_int32_array, name + " rowOffsets");
    operandArrays.push_back(data);
    FusedOperand& operand = operands[static_cast<std::size_t>(k)];
    operand.data = data.data;
    operand.inner = walks.data[2 * k];
    operand.stride = walks.data[2 * k + 1];
    operand.rowOffsets = offsets.data;
    if (operand.inner < 1 || length % operand.inner != 0) fail(env, "simOps: fused " + name + " rows do not tile the length");
    const Index rows = length / operand.inner;
    if (offsets.length < rows) fail(env, "simOps: fused " + name + " rowOffsets is shorter than its rows");
    const Index reach = (operand.inner - 1) * operand.stride;
    for (Index r = 0; r < rows; r++) {
      const Index start = offsets.data[r];
      const Index last = start + reach;
      if (start < 0 || last < 0 || start >= data.length || last >= data.length) {
        fail(env, "simOps: fused reads outside " + name + " (row " + std::to_string(r) + ")");
      }
    }
  }
  const Index outputCount = outputValues.Length();
  std::vector<float*> outputs(static_cast<std::size_t>(outputCount));
  for (Index k = 0; k < outputCount; k++) {
    const Array<float> out =
        arrayOf<float>(env, outputValues.Get(static_cast<std::uint32_t>(k)), napi_float32_array, "output " + std::to_string(k));
    needLength(info, out.length, length, "fused output");
    // An output is written block by block while the chain still reads its operands and the other
    // outputs: any shared memory would change what is read.
    const auto overlaps = [&](const Array<float>& a) { return out.data < a.data + a.length && a.data < out.data + length; };
    for (const Array<float>& operand : operandArrays) {
      if (overlaps(operand)) fail(env, "simOps: fused output " + std::to_string(k) + " overlaps an operand");
    }
    for (Index j = 0; j < k; j++) {
      if (overlaps({outputs[static_cast<std::size_t>(j)], length})) {
        fail(env, "simOps: fused output " + std::to_string(k) + " overlaps output " + std::to_string(j));
      }
    }
    outputs[static_cast<std::size_t>(k)] = out.data;
  }
  const Index count = code.length / 6;
  std::vector<FusedInstruction> instructions(static_cast<std::size_t>(count));
  // A register is read only after an earlier instruction wrote it (the chain runs in code order
  // on every block).
  std::vector<bool> written(static_cast<std::size_t>(registers), false);
  const auto isRegister = [&](Index r) { return r >= 0 && r < registers; };
  const auto isWritten = [&](Index r) { return isRegister(r) && written[static_cast<std::size_t>(r)]; };
  for (Index k = 0; k < count; k++) {
    const std::int32_t* c = code.data + 6 * k;
    FusedInstruction& in = instructions[static_cast<std::size_t>(k)];
    in.op = c[1];
    in.dst = c[2];
    in.a = c[3];
    in.b = c[4];
    in.round = c[5] != 0;
    in.epsilon = epsilons.data[k];
    bool valid = false;
    switch (c[0]) {
      case 0:
        in.kind = FusedKind::Load;
        valid = isRegister(in.dst) && in.a >= 0 && in.a < operandCount;
        break;
      case 1:
        in.kind = FusedKind::Binary;
        valid = in.op >= 0 && in.op <= static_cast<int>(BinaryOp::Minimum) && isRegister(in.dst) && isWritten(in.a) &&
                isWritten(in.b);
        break;
      case 2:
        in.kind = FusedKind::Unary;
        valid = in.op >= 0 && in.op <= static_cast<int>(UnaryOp::Relu) && isRegister(in.dst) && isWritten(in.a);
        break;
      case 3:
        in.kind = FusedKind::Store;
        valid = in.dst >= 0 && in.dst < outputCount && isWritten(in.a);
        break;
      default:
        break;
    }
    if (!valid) fail(env, "simOps: fused instruction " + std::to_string(k) + " is invalid");
    if (in.kind != FusedKind::Store) written[static_cast<std::size_t>(in.dst)] = true;
  }
  FusedChain chain;
  chain.code = instructions.data();
  chain.count = count;
  chain.operands = operands.data();
  chain.operandCount = operandCount;
  chain.outputs = outputs.data();
  chain.registers = registers;
  chain.length = length;
  fusedElementwise(chain);
  return env.Undefined();
}

}  // namespace

void registerSimOps(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("binary", Napi::Function::New(env, Binary, "binary"));
  ops.Set("unary", Napi::Function::New(env, Unary, "unary"));
  ops.Set("roundToFp16", Napi::Function::New(env, RoundToFp16, "roundToFp16"));
  ops.Set("saturateToInfinity", Napi::Function::New(env, SaturateToInfinity, "saturateToInfinity"));
  ops.Set("gather", Napi::Function::New(env, Gather, "gather"));
  ops.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  ops.Set("reduce", Napi::Function::New(env, Reduce, "reduce"));
  ops.Set("copyRows", Napi::Function::New(env, CopyRows, "copyRows"));
  ops.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  ops.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  ops.Set("fused", Napi::Function::New(env, Fused, "fused"));
  exports.Set("simOps", ops);
}

}  // namespace sim
}  // namespace ane
