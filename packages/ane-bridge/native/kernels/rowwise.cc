// Norms, softmax + cross-entropy, embeddings and causal softmax (see kernels.h). The loops live in
// rowwise_body.inc, compiled here once per SIMD path; this file picks the path and cuts the work
// into slices for the thread pool.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"
#include "simd.h"
#include "thread_pool.h"
#include "warnings.h"

namespace ane {
namespace kernels {

using Index = std::ptrdiff_t;

namespace portable {
#define ANE_ISA_ATTR
#include "rowwise_body.inc"
#undef ANE_ISA_ATTR
}  // namespace portable

#if ANE_X86
namespace avx2 {
#define ANE_ISA_ATTR ANE_TARGET_AVX2
#include "rowwise_body.inc"
#undef ANE_ISA_ATTR
}  // namespace avx2
namespace avx512 {
#define ANE_ISA_ATTR ANE_TARGET_AVX512
#include "rowwise_body.inc"
#undef ANE_ISA_ATTR
}  // namespace avx512
#endif

namespace {

struct RowwiseTable {
  decltype(&portable::rmsnormForwardSlice) rmsnormForward;
  decltype(&portable::rmsnormBackwardDxSlice) rmsnormBackwardDx;
  decltype(&portable::rmsnormBackwardDweightSlice) rmsnormBackwardDweight;
  decltype(&portable::crossEntropyBackwardSlice) crossEntropyBackward;
  decltype(&portable::crossEntropyRowMax) crossEntropyRowMax;
  decltype(&portable::crossEntropyRowSumExp) crossEntropyRowSumExp;
  decltype(&portable::crossEntropyRowProbs) crossEntropyRowProbs;
  decltype(&portable::crossEntropyRowGrad) crossEntropyRowGrad;
  decltype(&portable::embeddingForwardSlice) embeddingForward;
  decltype(&portable::embeddingBackwardSlice) embeddingBackward;
  decltype(&portable::causalSoftmaxForwardSlice) causalSoftmaxForward;
  decltype(&portable::causalSoftmaxBackwardSlice) causalSoftmaxBackward;
};

#define ANE_ROWWISE_TABLE(ns)                                                                               \
  RowwiseTable {                                                                                            \
    ns::rmsnormForwardSlice, ns::rmsnormBackwardDxSlice, ns::rmsnormBackwardDweightSlice,                   \
        ns::crossEntropyBackwardSlice, ns::crossEntropyRowMax, ns::crossEntropyRowSumExp,                   \
        ns::crossEntropyRowProbs, ns::crossEntropyRowGrad, ns::embeddingForwardSlice,                       \
        ns::embeddingBackwardSlice, ns::causalSoftmaxForwardSlice, ns::causalSoftmaxBackwardSlice           \
  }

RowwiseTable table() {
  switch (activeIsa()) {
#if ANE_X86
    case Isa::Avx512:
      return ANE_ROWWISE_TABLE(avx512);
    case Isa::Avx2:
      return ANE_ROWWISE_TABLE(avx2);
#endif
    default:
      // arm64 builds vectorize the portable loops for NEON (Advanced SIMD is the baseline there).
      return ANE_ROWWISE_TABLE(portable);
  }
}

// Elements touched per thread, at least, before a slice goes to another thread.
constexpr Index kMinParallelElements = Index{1} << 15;

Index minSlice(Index perUnit) { return std::max<Index>(1, kMinParallelElements / std::max<Index>(1, perUnit)); }

// The cross-entropy kernels' work unit: blocks of whole rows of the [V, S] logits, so each thread
// streams rows of its own (splitting the positions instead split every row, and two threads ran
// slower than one: 12.7 against 7.0 ms at V 32000, S 256).
constexpr Index kVocabBlock = 1024;

}  // namespace

void rmsnormForward(float* out, float* rstd, const float* x, const float* weight, Index C, Index S, float eps) {
  if (S <= 0) return;
  const auto fn = table().rmsnormForward;
  if (C <= 0) {
    for (Index s = 0; s < S; s++) rstd[s] = std::numeric_limits<float>::quiet_NaN();  // mean of nothing
    return;
  }
  parallelFor(S, minSlice(C), 16, [&](Index s0, Index s1) { fn(out, rstd, x, weight, C, S, eps, s0, s1); });
}

void rmsnormBackward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                     const float* rstd, Index C, Index S) {
  if (C <= 0 || S <= 0) return;
  const RowwiseTable t = table();
  std::vector<float> dot(static_cast<std::size_t>(S));
  parallelFor(S, minSlice(C), 16,
              [&](Index s0, Index s1) { t.rmsnormBackwardDx(dx, dot.data(), dout, x, weight, rstd, C, S, s0, s1); });
  parallelFor(C, minSlice(S), 1,
              [&](Index c0, Index c1) { t.rmsnormBackwardDweight(dweight, dout, x, rstd, S, c0, c1); });
}

void softmaxCrossEntropyBackward(float* dlogits, const float* probs, const std::int32_t* targets, const float* dlosses,
                                 Index V, Index S) {
  if (V <= 0 || S <= 0) return;
  const auto fn = table().crossEntropyBackward;
  parallelFor(V, minSlice(S), 1, [&](Index v0, Index v1) { fn(dlogits, probs, targets, dlosses, S, v0, v1); });
}

namespace {

// Rows of logits [V, S] given as fp32 or as fp16 bits (exactly one not null), read as fp32: an
// fp32 row in place, an fp16 row widened into a scratch row of the reader's own.
class LogitRows {
 public:
  LogitRows(const float* logits, const std::uint16_t* logits16, Index S)
      : f32_(logits), f16_(logits16), S_(S), scratch_(logits16 != nullptr ? static_cast<std::size_t>(S) : 0) {}

  const float* row(Index v) {
    if (f16_ == nullptr) return f32_ + v * S_;
    fp16ToFp32Run(f16_ + v * S_, scratch_.data(), S_);
    return scratch_.data();
  }

 private:
  const float* f32_;
  const std::uint16_t* f16_;
  Index S_;
  std::vector<float> scratch_;
};

}  // namespace

void softmaxCrossEntropyStats(float* losses, float* maxv, float* inverse, const float* logits,
                              const std::uint16_t* logits16, const std::int32_t* targets, Index V, Index S) {
  if (S <= 0) return;
  if (V <= 0) {
    for (Index s = 0; s < S; s++) {
      losses[s] = 0.0f;
      maxv[s] = -std::numeric_limits<float>::infinity();
      inverse[s] = std::numeric_limits<float>::infinity();
    }
    return;
  }
  const RowwiseTable t = table();
  // A block's partial max and sum are combined in block order, so the results are the same on any
  // number of threads.
  const Index blocks = (V + kVocabBlock - 1) / kVocabBlock;
  const std::size_t perBlock = static_cast<std::size_t>(S);
  std::vector<float> partial(static_cast<std::size_t>(blocks) * perBlock);
  const Index minBlocks = std::max<Index>(1, minSlice(kVocabBlock * S));
  // body(rows, block, row index) for every row of every block, in row order within a block.
  auto forEachRow = [&](const auto& body) {
    parallelFor(blocks, minBlocks, 1, [&](Index b0, Index b1) {
      LogitRows rows(logits, logits16, S);
      for (Index b = b0; b < b1; b++) {
        const Index v1 = std::min(V, (b + 1) * kVocabBlock);
        for (Index v = b * kVocabBlock; v < v1; v++) body(partial.data() + b * S, rows.row(v));
      }
    });
  };
  std::fill(partial.begin(), partial.end(), -std::numeric_limits<float>::infinity());
  forEachRow([&](float* blockMax, const float* row) { t.crossEntropyRowMax(blockMax, row, S); });
  for (Index s = 0; s < S; s++) maxv[s] = -std::numeric_limits<float>::infinity();
  for (Index b = 0; b < blocks; b++) {
    const float* blockMax = partial.data() + b * S;
    for (Index s = 0; s < S; s++) maxv[s] = blockMax[s] > maxv[s] ? blockMax[s] : maxv[s];
  }
  std::fill(partial.begin(), partial.end(), 0.0f);
  forEachRow([&](float* blockSum, const float* row) { t.crossEntropyRowSumExp(blockSum, row, maxv, S); });
  std::vector<float> sum(perBlock, 0.0f);
  for (Index b = 0; b < blocks; b++) {
    const float* blockSum = partial.data() + b * S;
    for (Index s = 0; s < S; s++) sum[s] += blockSum[s];
  }
  for (Index s = 0; s < S; s++) {
    const std::int32_t target = targets[s];
    const Index at = static_cast<Index>(target) * S + s;
    const float picked = target < 0 ? 0.0f : logits16 != nullptr ? fp16ToFp32Scalar(logits16[at]) : logits[at];
    losses[s] = target >= 0 ? (std::log(sum[s]) + maxv[s]) - picked : 0.0f;
    inverse[s] = 1.0f / sum[s];
  }
}

void softmaxCrossEntropyForward(float* losses, float* probs, const float* logits, const std::int32_t* targets, Index V,
                                Index S) {
  if (S <= 0) return;
  std::vector<float> maxv(static_cast<std::size_t>(S)), inverse(static_cast<std::size_t>(S));
  softmaxCrossEntropyStats(losses, maxv.data(), inverse.data(), logits, nullptr, targets, V, S);
  if (V <= 0) return;
  // After the statistics, which read the target logits: probs may be the logits array.
  const auto fn = table().crossEntropyRowProbs;
  parallelFor(V, minSlice(S), 1, [&](Index v0, Index v1) {
    for (Index v = v0; v < v1; v++) fn(probs + v * S, logits + v * S, maxv.data(), inverse.data(), S);
  });
}

void softmaxCrossEntropyGrad(float* dlogits, const float* logits, const std::uint16_t* logits16, const float* maxv,
                             const float* inverse, const std::int32_t* targets, const float* dlosses, Index V,
                             Index S) {
  if (V <= 0 || S <= 0) return;
  const auto fn = table().crossEntropyRowGrad;
  parallelFor(V, minSlice(S), 1, [&](Index v0, Index v1) {
    LogitRows rows(logits, logits16, S);
    for (Index v = v0; v < v1; v++)
      fn(dlogits + v * S, rows.row(v), maxv, inverse, targets, dlosses, static_cast<std::int32_t>(v), S);
  });
}

void embeddingForward(float* out, const float* table_, const std::int32_t* tokens, Index /*V*/, Index C, Index S) {
  if (C <= 0 || S <= 0) return;
  const auto fn = table().embeddingForward;
  parallelFor(C, minSlice(S), 16, [&](Index c0, Index c1) { fn(out, table_, tokens, C, S, c0, c1); });
}

void embeddingBackward(float* dtable, const float* dout, const std::int32_t* tokens, Index /*V*/, Index C, Index S) {
  if (C <= 0 || S <= 0) return;
  const auto fn = table().embeddingBackward;
  parallelFor(C, minSlice(S), 16, [&](Index c0, Index c1) { fn(dtable, dout, tokens, C, S, c0, c1); });
}

void causalSoftmaxForward(float* out, const float* scores, Index H, Index Tq, Index Tk, float scale) {
  if (H <= 0 || Tq <= 0 || Tk <= 0) return;
  const auto fn = table().causalSoftmaxForward;
  parallelFor(H * Tq, minSlice(Tk), 1, [&](Index r0, Index r1) { fn(out, scores, Tq, Tk, scale, r0, r1); });
}

void causalSoftmaxBackward(float* dscores, const float* probs, const float* dout, Index H, Index Tq, Index Tk,
                           float scale) {
  if (H <= 0 || Tq <= 0 || Tk <= 0) return;
  const auto fn = table().causalSoftmaxBackward;
  parallelFor(H * Tq, minSlice(Tk), 1, [&](Index r0, Index r1) { fn(dscores, probs, dout, Tq, Tk, scale, r0, r1); });
}

}  // namespace kernels
}  // namespace ane
