// Host kernels of ane-bridge: free functions over raw pointers, llm.c style. Every pointer carries
// its shape in a comment; tensors are dense row-major unless a leading dimension (ld*) or row
// stride says otherwise, and activations are channel-first ([C, S]: element (c, s) at c*S + s).
//
// The pure-TS twins in src/kernels/ are the readable references; the vitest suites and the
// standalone sanitizer harness (native/test/) compare these functions with them and with float64.
//
// Every kernel picks its SIMD path at run time (simd.h) and spreads large work over the host
// thread pool (thread_pool.h). None allocates per element or keeps state between calls except
// GEMM's per-thread packing buffers, which are grown once and reused.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ane {
namespace kernels {

// ---------------------------------------------------------------------------------------------
// GEMM (gemm.cc)

// C = alpha * op(A) * op(B) + beta * C, row-major (BLAS sgemm semantics):
//   A: [M, K] with row stride lda >= K   (transA: A is [K, M], lda >= M)
//   B: [K, N] with row stride ldb >= N   (transB: B is [N, K], ldb >= K)
//   C: [M, N] with row stride ldc >= N
// beta = 0 writes C without reading it (NaN in C does not leak); alpha = 0 or K = 0 only scales C.
void sgemm(bool transA, bool transB, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
           const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, float beta, float* C,
           std::ptrdiff_t ldc);

// sgemm with an operand given as fp16 bits: A16 (B16), when not null, replaces A (B) and is read
// with the same row stride, each block widened to fp32 as it is packed. fp16 -> fp32 is exact, so
// the result has the bits of sgemm on the widened operands, without widening them whole first.
void sgemmHalfOperands(bool transA, bool transB, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
                       const float* A, const std::uint16_t* A16, std::ptrdiff_t lda, const float* B,
                       const std::uint16_t* B16, std::ptrdiff_t ldb, float beta, float* C, std::ptrdiff_t ldc);

// Work done on each block of C as soon as its sum is final, while the block is still in cache: a
// rows x cols block at c (row stride ldc). Blocks are disjoint and cover C once; several threads
// finish blocks of one GEMM at the same time.
struct GemmEpilogue {
  void (*finish)(float* c, std::ptrdiff_t ldc, std::ptrdiff_t rows, std::ptrdiff_t cols, const void* context);
  const void* context;
  // Set when `finish` is exactly: each value to its nearest fp16 (ties to even; a NaN keeps its
  // bits), then |v| >= saturateLimit to +-inf with v's sign (ordered: a NaN never; +inf: nothing
  // changes). The AVX-512 micro-kernel then does it on its registers for the tiles it stores, and
  // `finish` runs on the other tiles only.
  bool fp16InRegisters = false;
  float saturateLimit = 0.0f;
};

// sgemmHalfOperands, then `epilogue` on every block of C (the same bits as one pass over C after it).
void sgemmHalfOperands(bool transA, bool transB, std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, float alpha,
                       const float* A, const std::uint16_t* A16, std::ptrdiff_t lda, const float* B,
                       const std::uint16_t* B16, std::ptrdiff_t ldb, float beta, float* C, std::ptrdiff_t ldc,
                       const GemmEpilogue& epilogue);

// Multiply-adds (M * N * K) below which sgemm runs on the calling thread alone: a second thread
// is not worth waking for less.
constexpr double kSgemmMinParallelWork = 4.0e6;

// ---------------------------------------------------------------------------------------------
// fp32 <-> fp16 (fp16.cc). Round to nearest even; overflow to +-inf (saturate: finite values
// clamp to +-65504, inf stays inf); NaN stays NaN in both directions (quieted, sign and the top
// payload bits kept, as F16C and fcvtn/fcvtl do); subnormal halves are produced and read exactly.

std::uint16_t fp32ToFp16Scalar(float x, bool saturate);
float fp16ToFp32Scalar(std::uint16_t h);
// n contiguous values on the calling thread (no pool: for use inside a parallel slice).
void fp16ToFp32Run(const std::uint16_t* src, float* dst, std::ptrdiff_t n);

// A rows x cols block: dst[r*dstStride + c] = fp16(src[r*srcStride + c]).
//   src: [rows, srcStride] fp32, dst: [rows, dstStride] fp16 bits
void fp32ToFp16(const float* src, std::ptrdiff_t srcStride, std::uint16_t* dst, std::ptrdiff_t dstStride,
                std::ptrdiff_t rows, std::ptrdiff_t cols, bool saturate);
//   src: [rows, srcStride] fp16 bits, dst: [rows, dstStride] fp32
void fp16ToFp32(const std::uint16_t* src, std::ptrdiff_t srcStride, float* dst, std::ptrdiff_t dstStride,
                std::ptrdiff_t rows, std::ptrdiff_t cols);

// The same conversions of a rows x cols block written transposed (staging W: [out, in] as
// Wᵀ: [in, out]): dst[c*dstStride + r] = fp16(src[r*srcStride + c]). Cache-blocked (64 x 64
// blocks, or 128 x 128 staged through a scratch block when dstStride is a multiple of 1 KiB, of
// register-transposed 16x16 / 8x8 / 4x4 tiles, per SIMD path). src and dst must not overlap.
//   src: [rows, srcStride] fp32, dst: [cols, dstStride] fp16 bits (dstStride >= rows)
void fp32ToFp16Transposed(const float* src, std::ptrdiff_t srcStride, std::uint16_t* dst, std::ptrdiff_t dstStride,
                          std::ptrdiff_t rows, std::ptrdiff_t cols, bool saturate);
//   src: [rows, srcStride] fp16 bits, dst: [cols, dstStride] fp32 (dstStride >= rows)
void fp16ToFp32Transposed(const std::uint16_t* src, std::ptrdiff_t srcStride, float* dst, std::ptrdiff_t dstStride,
                          std::ptrdiff_t rows, std::ptrdiff_t cols);
// The same tiles copying 32-bit patterns unchanged (the simulator's transposes), on the calling
// thread only: dst[c*dstStride + r] = src[r*srcStride + c].
void transposed32OnThisThread(const std::uint32_t* src, std::ptrdiff_t srcStride, std::uint32_t* dst,
                              std::ptrdiff_t dstStride, std::ptrdiff_t rows, std::ptrdiff_t cols);

// ---------------------------------------------------------------------------------------------
// Fused optimizer updates (optimizers.cc), torch.optim formulas in fp32, in place, one pass.
// The scalars are derived once by the caller (src/kernels/optimizers.ts does it for TS and native
// alike, so both see bit-identical constants). fp16Out, when not null, receives fp16(new params).

struct SgdScalars {
  float negLr;              // -lr
  float weightDecay;        // L2: g += wd * p
  float momentum;           // 0 disables the buffer
  float oneMinusDampening;  // 1 - dampening
  bool nesterov;
  bool firstStep;           // buf = g on the buffer's first step
  float gradScale = 1.0f;   // g = grad * gradScale as it is read (unscaling, clipping)
};
//   params, grads, momentumBuffer (null when momentum is 0), fp16Out (nullable): [n]
void sgdUpdate(float* params, const float* grads, float* momentumBuffer, std::ptrdiff_t n, const SgdScalars& s,
               std::uint16_t* fp16Out);

struct AdamScalars {
  float negStepSize;          // -lr / (1 - beta1^step)
  float biasCorrection2Sqrt;  // sqrt(1 - beta2^step)
  float oneMinusBeta1;
  float beta2;
  float oneMinusBeta2;
  float eps;
  float l2;     // Adam: g += l2 * p (0 for AdamW)
  float decay;  // AdamW: p *= decay = 1 - lr*wd (1 for Adam)
  float gradScale = 1.0f;  // g = grad * gradScale as it is read (unscaling, clipping)
};
//   params, grads, m, v, fp16Out (nullable): [n]
void adamUpdate(float* params, const float* grads, float* m, float* v, std::ptrdiff_t n, const AdamScalars& s,
                std::uint16_t* fp16Out);

struct LionScalars {
  float decay;  // 1 - lr*wd
  float negLr;
  float beta1;
  float oneMinusBeta1;
  float beta2;
  float oneMinusBeta2;
  float gradScale = 1.0f;  // g = grad * gradScale as it is read (unscaling, clipping)
};
//   params, grads, m, fp16Out (nullable): [n]
void lionUpdate(float* params, const float* grads, float* m, std::ptrdiff_t n, const LionScalars& s,
                std::uint16_t* fp16Out);

// sum x[i]^2 accumulated in float64.  x: [n]
double sumOfSquares(const float* x, std::ptrdiff_t n);

// ---------------------------------------------------------------------------------------------
// Norms, losses, embeddings, attention (rowwise.cc). Channel-first activations.

// rstd[s] = 1/sqrt(mean_c x[c,s]^2 + eps);  out[c,s] = x[c,s] * rstd[s] * weight[c]
//   out: [C, S], rstd: [S] (saved for backward), x: [C, S], weight: [C]
void rmsnormForward(float* out, float* rstd, const float* x, const float* weight, std::ptrdiff_t C,
                    std::ptrdiff_t S, float eps);
// Adds the gradients (llm.c convention: zero them first, fan-out accumulates):
//   dx[c,s] += rstd*w[c]*dout[c,s] - x[c,s] * rstd^3 / C * sum_c' w[c']*dout[c',s]*x[c',s]
//   dweight[c] += sum_s dout[c,s] * x[c,s] * rstd[s]
//   dx: [C, S], dweight: [C], dout: [C, S], x: [C, S], weight: [C], rstd: [S]
void rmsnormBackward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                     const float* rstd, std::ptrdiff_t C, std::ptrdiff_t S);

// Softmax over the vocabulary axis of channel-first logits, and the cross-entropy against targets:
//   probs[v,s] = softmax_v(logits[:,s]);  losses[s] = logsumexp(logits[:,s]) - logits[t_s, s]
// Targets < 0 are ignored (loss 0; PyTorch's ignore_index). probs may be the logits array.
//   losses: [S], probs: [V, S], logits: [V, S], targets: [S] int32 in [-inf, V)
void softmaxCrossEntropyForward(float* losses, float* probs, const float* logits, const std::int32_t* targets,
                                std::ptrdiff_t V, std::ptrdiff_t S);
// Writes (not adds) dlogits[v,s] = (probs[v,s] - [v == t_s]) * dlosses[s]; 0 for ignored s.
// dlogits may be the probs array.
//   dlogits: [V, S], probs: [V, S], targets: [S], dlosses: [S]
void softmaxCrossEntropyBackward(float* dlogits, const float* probs, const std::int32_t* targets,
                                 const float* dlosses, std::ptrdiff_t V, std::ptrdiff_t S);

// The same loss from two numbers per position instead of the probabilities: max[s] = max_v
// logits[v,s] and inverse[s] = 1 / sum_v exp(logits[v,s] - max[s]), and losses as above (the
// forward is these, then probs = exp(logits - max) * inverse). logits16, when not null, replaces logits: fp16 bits, read
// where a kernel left them (fp16 -> fp32 is exact, so the results are those of the widened logits).
// V = 0 gives losses 0, max -inf and inverse +inf.
//   losses, maxv, inverse: [S]; logits: [V, S]; targets: [S] int32 in [-inf, V)
void softmaxCrossEntropyStats(float* losses, float* maxv, float* inverse, const float* logits,
                              const std::uint16_t* logits16, const std::int32_t* targets, std::ptrdiff_t V,
                              std::ptrdiff_t S);
// Writes dlogits[v,s] = (exp(logits[v,s] - max[s]) * inverse[s] - [v == t_s]) * dlosses[s], 0 for
// ignored s: with softmaxCrossEntropyStats' max and inverse, the bits softmaxCrossEntropyBackward
// gives on softmaxCrossEntropyForward's probs. logits16 as above; dlogits may be the fp32 logits.
//   dlogits: [V, S], logits: [V, S], maxv, inverse, targets, dlosses: [S]
void softmaxCrossEntropyGrad(float* dlogits, const float* logits, const std::uint16_t* logits16, const float* maxv,
                             const float* inverse, const std::int32_t* targets, const float* dlosses,
                             std::ptrdiff_t V, std::ptrdiff_t S);

// out[c,s] = table[tokens[s], c].  out: [C, S], table: [V, C], tokens: [S] int32 in [0, V)
void embeddingForward(float* out, const float* table, const std::int32_t* tokens, std::ptrdiff_t V,
                      std::ptrdiff_t C, std::ptrdiff_t S);
// dtable[tokens[s], c] += dout[c,s] (repeated tokens accumulate).
//   dtable: [V, C], dout: [C, S], tokens: [S] int32 in [0, V)
void embeddingBackward(float* dtable, const float* dout, const std::int32_t* tokens, std::ptrdiff_t V,
                       std::ptrdiff_t C, std::ptrdiff_t S);

// Causal softmax over attention scores, one row per query. Query i (of Tq, the last Tq of Tk
// positions) sees keys j <= i + (Tk - Tq):
//   out[h,i,j] = softmax_{j visible}(scale * scores[h,i,j]), 0 for masked j.
//   out: [H, Tq, Tk], scores: [H, Tq, Tk] (out may be scores), Tk >= Tq
void causalSoftmaxForward(float* out, const float* scores, std::ptrdiff_t H, std::ptrdiff_t Tq,
                          std::ptrdiff_t Tk, float scale);
// Writes dscores[h,i,j] = scale * p[i,j] * (dout[i,j] - sum_j' p[i,j'] dout[i,j']).
//   dscores: [H, Tq, Tk] (may be dout), probs: [H, Tq, Tk] (the forward's out), dout: [H, Tq, Tk]
void causalSoftmaxBackward(float* dscores, const float* probs, const float* dout, std::ptrdiff_t H,
                           std::ptrdiff_t Tq, std::ptrdiff_t Tk, float scale);

}  // namespace kernels
}  // namespace ane
