// The simulator's hot ops (src/sim/ops/*.ts are their readable TS twins). Each one reproduces its
// twin's arithmetic exactly: evaluate in float64 as the JS numbers do, store binary32 (one rounding),
// then round an fp16 result to fp16 (nearest even; overflow to +-inf; NaN kept). Identical bits to
// the twins, NaN payloads aside (a NaN stays a NaN); src/sim/native-ops.test.ts and the `compare`
// mode of the simulator hold them to it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace ane {
namespace sim {

using Index = std::ptrdiff_t;

// A strided walk of `operands` operands in step with a dense output (src/sim/layout.ts): the output
// is `rows` runs of `inner` elements; operand k's run r starts at rowOffsets[k][r] and advances by
// strides[k] per element (0 = broadcast).
struct Walk {
  Index rows = 0;
  Index inner = 0;
  Index strides[3] = {0, 0, 0};
  const std::int32_t* rowOffsets[3] = {nullptr, nullptr, nullptr};
};

// The op codes are the index of the op in the TS lists (src/sim/native-ops.ts).
enum class BinaryOp : int { Add, Sub, Mul, RealDiv, Pow, Maximum, Minimum };
enum class UnaryOp : int { Exp, Log, Sqrt, Rsqrt, Inverse, Tanh, Sigmoid, Silu, Relu };
enum class ReduceKind : int { Sum, Mean, SumSquare, L1Norm, L2Norm, Max, Min, Prod };

//   out: [rows * inner]; x, y: read through the walk
void binary(BinaryOp op, float* out, const float* x, const float* y, const Walk& walk, bool roundFp16);
//   out, x: [n]; epsilon: log/rsqrt/inverse add it first (as the twin does)
void unary(UnaryOp op, float* out, const float* x, Index n, double epsilon, bool roundFp16);
// In place: every value to its nearest fp16 (as ane-ir/mil roundToFp16InPlace), then, when
// saturateAt is finite, every rounded |v| >= saturateAt to +-inf (matmul's output saturation, in
// the same pass).  data: [n]
void roundToFp16(float* data, Index n, double saturateAt);
// In place: |v| past threshold (>= when inclusive) becomes +-inf (src/sim/behaviours.ts).  data: [n]
void saturateToInfinity(float* data, Index n, double threshold, bool inclusive);
// out[dense] = src[walk] with operand 0 of the walk (transpose, slice, broadcast moves), for
// 4-byte and 1-byte elements.  out: [rows * inner]
void gather32(std::uint32_t* out, const std::uint32_t* src, const Walk& walk);
void gather8(std::uint8_t* out, const std::uint8_t* src, const Walk& walk);
// out[outer, inner] = reduce over x[outer, reduced, inner]: each output accumulated in float64 in
// index order (max/min: a NaN wins), mean divides and l2_norm takes the square root in float64, one
// binary32 store, one fp16 rounding.  out: [outer*inner], x: [outer*reduced*inner]
void reduce(ReduceKind kind, float* out, const float* x, Index outer, Index reduced, Index inner, bool roundFp16);
// A rows x cols block copy between row-strided arrays (concat, split), 4- or 1-byte elements.
void copyRows32(std::uint32_t* dst, Index dstStride, const std::uint32_t* src, Index srcStride, Index rows, Index cols);
void copyRows8(std::uint8_t* dst, Index dstStride, const std::uint8_t* src, Index srcStride, Index rows, Index cols);
// softmax over the middle axis of x[outer, reduced, inner] (max-shifted, each exp stored as
// binary32 and summed in float64 in order, the quotient rounded once).  out, x: [outer*reduced*inner]
void softmax(float* out, const float* x, Index outer, Index reduced, Index inner, bool roundFp16);

// How a matmul's output is finished (the twin's finishSaturated): when roundFp16, rounded to fp16
// (then saturated at saturateAt, as roundToFp16); otherwise, when saturateAt is finite, saturated
// (saturateToInfinity, inclusive).
struct MatmulFinish {
  bool roundFp16;
  double saturateAt;
};

// matmul over a batch: out[b] [M, N] = alpha * op(x at xOffsets[b]) * op(y at yOffsets[b]) for b in
// [0, batch), dense matrices (op(x) [M, K], op(y) [K, N]), each entry one sgemm as the twin calls it.
// Entries too small for sgemm to share among threads run side by side on the pool instead.
//   out: [batch * M * N]
//   Each entry is finished as `finish` says, block by block as its GEMM completes them.
void batchedMatmul(float* out, const float* x, const float* y, bool transX, bool transY, Index M, Index N, Index K,
                   float alpha, const std::int32_t* xOffsets, const std::int32_t* yOffsets, Index batch,
                   const MatmulFinish& finish);
// A matmul's finish in place on a rows x cols block of row stride ld, on the calling thread.
void finishMatmul(float* c, Index ld, Index rows, Index cols, const MatmulFinish& finish);
// finishMatmul as a GEMM epilogue, block by block as the GEMM completes them (`finish` must outlive
// the GEMM).
kernels::GemmEpilogue matmulEpilogue(const MatmulFinish& finish);

// A chain of elementwise ops run block by block (fusion): every op computes and rounds exactly as
// binary()/unary() do on its own, so each stored value has the bits of the op run alone; values
// only the chain reads live in per-thread registers of a block's length and never reach memory.
// Operand k's element i of the chain's index space [0, length) is
//   data[rowOffsets[i / inner] + (i % inner) * stride]   (stride 0 = broadcast).
struct FusedOperand {
  const float* data = nullptr;
  Index inner = 1;
  Index stride = 1;
  const std::int32_t* rowOffsets = nullptr;
};
enum class FusedKind : int { Load, Binary, Unary, Store };
// Load: reg dst = operand a.  Binary: reg dst = reg a OP reg b.  Unary: reg dst = OP(reg a) (with
// epsilon).  Store: outputs[dst][block] = reg a.  round: round the op's result to fp16.
struct FusedInstruction {
  FusedKind kind = FusedKind::Load;
  int op = 0;
  int dst = 0;
  int a = 0;
  int b = 0;
  bool round = false;
  double epsilon = 0;
};
struct FusedChain {
  const FusedInstruction* code = nullptr;
  Index count = 0;
  const FusedOperand* operands = nullptr;
  Index operandCount = 0;
  float* const* outputs = nullptr;  // each [length]
  Index registers = 0;
  Index length = 0;
};
void fusedElementwise(const FusedChain& chain);

}  // namespace sim
}  // namespace ane
