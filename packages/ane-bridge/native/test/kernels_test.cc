// Standalone test of the host kernels (native/kernels/), built without Node and run under
// AddressSanitizer + UndefinedBehaviorSanitizer by run-asan.cjs. Every kernel runs on every SIMD
// path this CPU supports, at 1 and 3 threads, over edge sizes (0, 1, 1..67 vector tails, past the
// cache blocks), strided views, NaN/inf/subnormals, against naive double-precision references.
// Arrays are allocated at their exact sizes so any read or write past an end is reported.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "../kernels/fp16_rows.h"
#include "../kernels/kernels.h"
#include "../kernels/sim_ops.h"
#include "../kernels/simd.h"
#include "../kernels/thread_pool.h"

using namespace ane::kernels;
using Index = std::ptrdiff_t;

namespace {

int failures = 0;
int checks = 0;
std::string context;

#define EXPECT(condition, ...)                                                      \
  do {                                                                              \
    checks++;                                                                       \
    if (!(condition)) {                                                             \
      if (failures < 40) {                                                          \
        std::printf("FAIL [%s] %s:%d: %s: ", context.c_str(), __FILE__, __LINE__, #condition); \
        std::printf(__VA_ARGS__);                                                   \
        std::printf("\n");                                                          \
      }                                                                             \
      failures++;                                                                   \
    }                                                                               \
  } while (0)

struct Random {
  std::uint64_t state;
  explicit Random(std::uint64_t seed) : state(seed * 0x9e3779b97f4a7c15ull + 1) {}
  std::uint32_t bits() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<std::uint32_t>(state >> 16);
  }
  float uniform(float scale = 1.0f) { return (static_cast<float>(bits() % 2000001) / 1000000.0f - 1.0f) * scale; }
};

std::vector<float> randomVector(Index n, Random& r, float scale = 1.0f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = r.uniform(scale);
  return v;
}

const float kSpecials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(), 0.0f, -0.0f, 1e-40f, -3e-42f, 65504.0f,
                           65520.0f, -1e6f, 3.4e38f};

void sprinkleSpecials(std::vector<float>& v, Random& r, int count) {
  if (v.empty()) return;
  for (int k = 0; k < count; k++) v[r.bits() % v.size()] = kSpecials[r.bits() % (sizeof kSpecials / sizeof(float))];
}

bool sameBytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool sameFloat(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

bool close(double got, double expected, double rtol, double atol) {
  if (std::isnan(expected) || std::isnan(got)) return std::isnan(expected) && std::isnan(got);
  if (std::isinf(expected) || std::isinf(got)) return got == expected;
  return std::fabs(got - expected) <= atol + rtol * std::fabs(expected);
}

std::vector<Index> tailSizes() {
  std::vector<Index> sizes;
  for (Index n = 0; n <= 67; n++) sizes.push_back(n);
  for (Index n : {127, 128, 129, 1023, 1025, 4097, 70001}) sizes.push_back(n);
  return sizes;
}

// ---- fp16 ------------------------------------------------------------------------------------

// An independent reference: round |x| to the nearest multiple of its fp16 quantum, ties to even.
std::uint16_t referenceHalf(float x, bool saturate) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (std::isinf(a)) return sign | 0x7c00;
  if (a >= 65520.0) return sign | (saturate ? 0x7bff : 0x7c00);
  int e = a == 0 ? -14 : std::ilogb(a);
  if (e < -14) e = -14;
  const double quantum = std::ldexp(1.0, e - 10);
  double n = std::floor(a / quantum);
  const double fraction = a / quantum - n;
  if (fraction > 0.5 || (fraction == 0.5 && std::fmod(n, 2.0) == 1.0)) n += 1;
  const double value = n * quantum;
  if (value >= 65520.0) return sign | (saturate ? 0x7bff : 0x7c00);
  if (value < std::ldexp(1.0, -14)) return static_cast<std::uint16_t>(sign | static_cast<int>(value / std::ldexp(1.0, -24)));
  const int ve = std::ilogb(value);
  return static_cast<std::uint16_t>(sign | ((ve + 15) << 10) | static_cast<int>(value / std::ldexp(1.0, ve - 10) - 1024));
}

void testFp16Scalar() {
  context = "fp16 scalar";
  Random r(1);
  for (int i = 0; i < 300000; i++) {
    const std::uint32_t bits = r.bits() ^ (r.bits() << 16);
    float x;
    std::memcpy(&x, &bits, sizeof x);
    if (std::isnan(x)) {
      const std::uint16_t h = fp32ToFp16Scalar(x, false);
      EXPECT((h & 0x7e00) == 0x7e00, "NaN 0x%08x -> 0x%04x", bits, h);
      continue;
    }
    for (bool saturate : {false, true}) {
      const std::uint16_t h = fp32ToFp16Scalar(x, saturate), expected = referenceHalf(x, saturate);
      EXPECT(h == expected, "x = %a (0x%08x) saturate %d: 0x%04x, expected 0x%04x", x, bits, saturate, h, expected);
    }
  }
  for (std::uint32_t h = 0; h < 65536; h++) {
    const float x = fp16ToFp32Scalar(static_cast<std::uint16_t>(h));
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) {
      EXPECT(std::isnan(x), "half 0x%04x", h);
    } else {
      EXPECT(fp32ToFp16Scalar(x, false) == h, "roundtrip of half 0x%04x", h);
    }
  }
}

void testFp16Kernels() {
  Random r(2);
  for (Index n : tailSizes()) {
    std::vector<float> src = randomVector(n, r, 70000.0f);
    sprinkleSpecials(src, r, 8);
    for (bool saturate : {false, true}) {
      std::vector<std::uint16_t> dst(static_cast<std::size_t>(n));
      fp32ToFp16(src.data(), n, dst.data(), n, n == 0 ? 0 : 1, n, saturate);
      for (Index i = 0; i < n; i++) {
        const std::uint16_t expected = fp32ToFp16Scalar(src[i], saturate);
        EXPECT(dst[i] == expected, "n=%td [%td] x=%a: 0x%04x vs 0x%04x", n, i, src[i], dst[i], expected);
      }
      std::vector<float> back(static_cast<std::size_t>(n));
      fp16ToFp32(dst.data(), n, back.data(), n, 1, n);
      for (Index i = 0; i < n; i++) {
        EXPECT(sameFloat(back[i], fp16ToFp32Scalar(dst[i])), "back n=%td [%td]", n, i);
      }
    }
  }
  // The streaming path (outputs over 8 MiB), from an unaligned start.
  const Index big = (Index{9} << 20) / 2 + 37;
  std::vector<float> src = randomVector(big + 1, r, 1000.0f);
  std::vector<std::uint16_t> dst(static_cast<std::size_t>(big));
  fp32ToFp16(src.data() + 1, big, dst.data(), big, 1, big, false);
  int bad = 0;
  for (Index i = 0; i < big; i++) bad += dst[i] != fp32ToFp16Scalar(src[i + 1], false);
  EXPECT(bad == 0, "%d mismatches in the streamed conversion", bad);
  std::vector<float> back(static_cast<std::size_t>(big) + 1);
  fp16ToFp32(dst.data(), big, back.data() + 1, big, 1, big);
  bad = 0;
  for (Index i = 0; i < big; i++) bad += !sameFloat(back[i + 1], fp16ToFp32Scalar(dst[i]));
  EXPECT(bad == 0, "%d mismatches in the streamed widening", bad);
  // Strided blocks: a [rows, cols] block into a wider buffer at an offset; the rest is untouched.
  for (Index rows : {1, 2, 7, 33}) {
    for (Index cols : {1, 5, 16, 67}) {
      const Index srcStride = cols + 3, dstStride = cols + 9, dstOffset = 4;
      std::vector<float> s = randomVector((rows - 1) * srcStride + cols, r, 100.0f);
      std::vector<std::uint16_t> d(static_cast<std::size_t>(dstOffset + (rows - 1) * dstStride + cols), 0xbeef);
      fp32ToFp16(s.data(), srcStride, d.data() + dstOffset, dstStride, rows, cols, false);
      for (Index i = 0; i < static_cast<Index>(d.size()); i++) {
        const Index rel = i - dstOffset, row = rel >= 0 ? rel / dstStride : -1, col = rel - row * dstStride;
        const bool inside = rel >= 0 && row < rows && col < cols;
        const std::uint16_t expected = inside ? fp32ToFp16Scalar(s[row * srcStride + col], false) : 0xbeef;
        EXPECT(d[i] == expected, "strided %tdx%td at %td", rows, cols, i);
      }
      std::vector<float> w(static_cast<std::size_t>((rows - 1) * srcStride + cols), -7.0f);
      fp16ToFp32(d.data() + dstOffset, dstStride, w.data(), srcStride, rows, cols);
      for (Index row = 0; row < rows; row++) {
        for (Index col = 0; col < cols; col++) {
          EXPECT(sameFloat(w[row * srcStride + col], fp16ToFp32Scalar(d[dstOffset + row * dstStride + col])),
                 "strided back");
        }
        if (row + 1 < rows) EXPECT(w[row * srcStride + cols] == -7.0f, "strided back padding");
      }
    }
  }
}

// Transposed blocks: dst[dstOffset + c*dstStride + r] = fp16(src[srcOffset + r*srcStride + c]),
// exact-size buffers, everything outside the block untouched; edge shapes, every tile size's
// tails, several cache blocks and a parallel split.
void testFp16Transposed() {
  const std::string base = context;
  context = base + " transposed";
  // Hand-computed: a 2x3 block [[1, -2, 65520], [0.5, NaN, 1e-7]] -> 3x2 halves.
  {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> s = {1.0f, -2.0f, 65520.0f, 0.5f, nan, 1e-7f};
    std::vector<std::uint16_t> d(6, 0);
    fp32ToFp16Transposed(s.data(), 3, d.data(), 2, 2, 3, false);
    const std::uint16_t expected[6] = {0x3c00, 0x3800, 0xc000, 0x7e00, 0x7c00, 0x0002};
    for (int i = 0; i < 6; i++) EXPECT(d[i] == expected[i], "hand [%d]: 0x%04x vs 0x%04x", i, d[i], expected[i]);
    fp32ToFp16Transposed(s.data(), 3, d.data(), 2, 2, 3, true);
    EXPECT(d[4] == 0x7bff, "hand saturate: 0x%04x", d[4]);
    std::vector<float> back(6, -1.0f);
    fp16ToFp32Transposed(d.data(), 2, back.data(), 3, 3, 2);  // transposing back gives the 2x3 layout
    const float backExpected[6] = {1.0f, -2.0f, 65504.0f, 0.5f, nan, 1.1920928955078125e-07f};
    for (int i = 0; i < 6; i++) EXPECT(sameFloat(back[i], backExpected[i]), "hand back [%d]: %a", i, back[i]);
  }
  Random r(3);
  const Index shapes[][2] = {{1, 1},   {1, 67},  {67, 1},  {17, 33}, {33, 17},  {8, 8},    {16, 16},
                             {15, 17}, {64, 64}, {65, 63}, {4, 130}, {130, 5},  {200, 300}, {300, 700}};
  for (const auto& shape : shapes) {
    const Index rows = shape[0], cols = shape[1];
    for (Index pad : {0, 3}) {
      const Index srcStride = cols + pad, dstStride = rows + 2 * pad, srcOffset = pad, dstOffset = 2 * pad + 1;
      std::vector<float> s = randomVector(srcOffset + (rows - 1) * srcStride + cols, r, 70000.0f);
      sprinkleSpecials(s, r, 16);
      const Index dstSize = dstOffset + (cols - 1) * dstStride + rows;
      for (bool saturate : {false, true}) {
        std::vector<std::uint16_t> d(static_cast<std::size_t>(dstSize), 0xbeef);
        fp32ToFp16Transposed(s.data() + srcOffset, srcStride, d.data() + dstOffset, dstStride, rows, cols, saturate);
        int bad = 0;
        for (Index i = 0; i < dstSize; i++) {
          const Index rel = i - dstOffset, c = rel >= 0 ? rel / dstStride : -1, row = rel - c * dstStride;
          const bool inside = rel >= 0 && c < cols && row < rows;
          const std::uint16_t expected =
              inside ? fp32ToFp16Scalar(s[srcOffset + row * srcStride + c], saturate) : std::uint16_t{0xbeef};
          if (d[i] != expected && bad++ < 3) {
            EXPECT(false, "%tdx%td pad %td saturate %d at %td: 0x%04x vs 0x%04x", rows, cols, pad, saturate, i, d[i],
                   expected);
          }
        }
        EXPECT(bad == 0, "%tdx%td pad %td saturate %d: %d mismatches", rows, cols, pad, saturate, bad);
        // Back: the cols x rows halves, transposed again, into an fp32 rows x cols block.
        std::vector<float> w(s.size(), -7.0f);
        fp16ToFp32Transposed(d.data() + dstOffset, dstStride, w.data() + srcOffset, srcStride, cols, rows);
        bad = 0;
        for (Index i = 0; i < static_cast<Index>(w.size()); i++) {
          const Index rel = i - srcOffset, row = rel >= 0 ? rel / srcStride : -1, c = rel - row * srcStride;
          const bool inside = rel >= 0 && row < rows && c < cols;
          const float expected = inside ? fp16ToFp32Scalar(d[dstOffset + c * dstStride + row]) : -7.0f;
          if (!sameFloat(w[i], expected) && bad++ < 3) {
            EXPECT(false, "back %tdx%td pad %td at %td: %a vs %a", rows, cols, pad, i, w[i], expected);
          }
        }
        EXPECT(bad == 0, "back %tdx%td pad %td: %d mismatches", rows, cols, pad, bad);
      }
    }
  }
  // Destination rows 4 KiB apart (2048 halves, 1024 floats; staged when a multiple of 1 KiB), with
  // partial 128 x 128 blocks on both sides.
  for (const auto& shape : {std::array<Index, 2>{130, 300}, std::array<Index, 2>{1, 129}, std::array<Index, 2>{257, 3}}) {
    const Index rows = shape[0], cols = shape[1], srcStride = cols + 1;
    std::vector<float> s = randomVector((rows - 1) * srcStride + cols, r, 70000.0f);
    sprinkleSpecials(s, r, 16);
    // d: [cols, 2048] halves, d[c*2048 + row] = fp16(s[row, c]).
    std::vector<std::uint16_t> d(static_cast<std::size_t>((cols - 1) * 2048 + rows), 0xbeef);
    fp32ToFp16Transposed(s.data(), srcStride, d.data(), 2048, rows, cols, false);
    int bad = 0;
    for (Index i = 0; i < static_cast<Index>(d.size()); i++) {
      const Index c = i / 2048, row = i - c * 2048;
      const std::uint16_t expected = row < rows ? fp32ToFp16Scalar(s[row * srcStride + c], false) : std::uint16_t{0xbeef};
      bad += d[i] != expected;
    }
    EXPECT(bad == 0, "staged %tdx%td: %d mismatches", rows, cols, bad);
    // w: [rows, 1024] floats, w[row*1024 + c] = fp32(d[c*2048 + row]).
    std::vector<float> w(static_cast<std::size_t>((rows - 1) * 1024 + cols), -7.0f);
    fp16ToFp32Transposed(d.data(), 2048, w.data(), 1024, cols, rows);
    bad = 0;
    for (Index i = 0; i < static_cast<Index>(w.size()); i++) {
      const Index row = i / 1024, c = i - row * 1024;
      const float expected = c < cols ? fp16ToFp32Scalar(d[c * 2048 + row]) : -7.0f;
      bad += !sameFloat(w[i], expected);
    }
    EXPECT(bad == 0, "staged back %tdx%td: %d mismatches", rows, cols, bad);
  }

  // 32-bit patterns copied transposed (the simulator's transposes): every bit, signalling NaNs
  // included, and nothing outside the block; the same shapes and both staged and direct strides.
  for (const auto& shape : shapes) {
    const Index rows = shape[0], cols = shape[1];
    for (Index dstStride : {rows + 3, Index{256}}) {
      if (dstStride < rows) continue;
      const Index srcStride = cols + 2;
      std::vector<std::uint32_t> s(static_cast<std::size_t>((rows - 1) * srcStride + cols));
      for (auto& v : s) v = static_cast<std::uint32_t>(r.bits());
      s[0] = 0x7fa00001u;  // a signalling NaN
      const Index dstSize = (cols - 1) * dstStride + rows;
      std::vector<std::uint32_t> d(static_cast<std::size_t>(dstSize), 0xdeadbeefu);
      transposed32OnThisThread(s.data(), srcStride, d.data(), dstStride, rows, cols);
      int bad = 0;
      for (Index i = 0; i < dstSize; i++) {
        const Index c = i / dstStride, row = i - c * dstStride;
        const std::uint32_t expected = row < rows ? s[static_cast<std::size_t>(row * srcStride + c)] : 0xdeadbeefu;
        bad += d[static_cast<std::size_t>(i)] != expected;
      }
      EXPECT(bad == 0, "32-bit %tdx%td dstStride %td: %d mismatches", rows, cols, dstStride, bad);
    }
  }

  // Empty blocks touch nothing (null pointers are fine).
  fp32ToFp16Transposed(nullptr, 0, nullptr, 0, 0, 5, false);
  fp16ToFp32Transposed(nullptr, 0, nullptr, 0, 5, 0);
  transposed32OnThisThread(nullptr, 0, nullptr, 0, 0, 5);
  context = base;
}

// ---- optimizers --------------------------------------------------------------------------------

// Double-precision reference of one update; the kernels are compared with it on finite data and
// with the portable path bit for bit on everything (all paths compute the same fp32 operations).
struct OptimizerCase {
  const char* name;
  int kind;  // 0 sgd, 1 adam, 2 lion
  SgdScalars sgd;
  AdamScalars adam;
  LionScalars lion;
};

std::vector<OptimizerCase> optimizerCases() {
  std::vector<OptimizerCase> cases;
  OptimizerCase c{};
  c.name = "sgd plain";
  c.kind = 0;
  c.sgd = {-0.1f, 0.5f, 0.0f, 1.0f, false, false};
  cases.push_back(c);
  c.name = "sgd momentum";
  c.sgd = {-0.1f, 1e-4f, 0.9f, 0.9f, false, false};
  cases.push_back(c);
  c.name = "sgd nesterov first";
  c.sgd = {-0.1f, 0.0f, 0.9f, 1.0f, true, true};
  cases.push_back(c);
  c.name = "adamw";
  c.kind = 1;
  c.adam = {-0.0036f, 0.0547f, 0.1f, 0.999f, 0.001f, 1e-8f, 0.0f, 0.99999f};
  cases.push_back(c);
  c.name = "adam l2";
  c.adam = {-0.001f, 1.0f, 0.1f, 0.999f, 0.001f, 1e-8f, 0.02f, 1.0f};
  cases.push_back(c);
  c.name = "lion";
  c.kind = 2;
  c.lion = {0.99997f, -3e-4f, 0.9f, 0.1f, 0.99f, 0.01f};
  cases.push_back(c);
  return cases;
}

struct OptimizerState {
  std::vector<float> p, g, s1, s2;
  std::vector<std::uint16_t> half;
};

void runOptimizer(const OptimizerCase& c, OptimizerState& st, bool withHalf) {
  const Index n = static_cast<Index>(st.p.size());
  std::uint16_t* half = withHalf ? st.half.data() : nullptr;
  if (c.kind == 0) sgdUpdate(st.p.data(), st.g.data(), c.sgd.momentum != 0.0f ? st.s1.data() : nullptr, n, c.sgd, half);
  if (c.kind == 1) adamUpdate(st.p.data(), st.g.data(), st.s1.data(), st.s2.data(), n, c.adam, half);
  if (c.kind == 2) lionUpdate(st.p.data(), st.g.data(), st.s1.data(), n, c.lion, half);
}

void referenceOptimizer(const OptimizerCase& c, std::vector<double>& p, const std::vector<float>& g,
                        std::vector<double>& s1, std::vector<double>& s2) {
  for (std::size_t i = 0; i < p.size(); i++) {
    if (c.kind == 0) {
      double d = g[i] + static_cast<double>(c.sgd.weightDecay) * p[i];
      if (c.sgd.momentum != 0.0f) {
        s1[i] = c.sgd.firstStep ? d : c.sgd.momentum * s1[i] + static_cast<double>(c.sgd.oneMinusDampening) * d;
        d = c.sgd.nesterov ? d + c.sgd.momentum * s1[i] : s1[i];
      }
      p[i] += static_cast<double>(c.sgd.negLr) * d;
    } else if (c.kind == 1) {
      const AdamScalars& s = c.adam;
      double q = p[i] * s.decay;
      const double grad = g[i] + static_cast<double>(s.l2) * q;
      s1[i] += static_cast<double>(s.oneMinusBeta1) * (grad - s1[i]);
      s2[i] = s2[i] * s.beta2 + static_cast<double>(s.oneMinusBeta2) * grad * grad;
      q += static_cast<double>(s.negStepSize) * s1[i] / (std::sqrt(s2[i]) / s.biasCorrection2Sqrt + s.eps);
      p[i] = q;
    } else {
      const LionScalars& s = c.lion;
      const double blend = s.beta1 * s1[i] + static_cast<double>(s.oneMinusBeta1) * g[i];
      const double sign = blend > 0 ? 1 : blend < 0 ? -1 : 0;
      p[i] = p[i] * s.decay + static_cast<double>(s.negLr) * sign;
      s1[i] = s.beta2 * s1[i] + static_cast<double>(s.oneMinusBeta2) * g[i];
    }
  }
}

OptimizerState makeState(Index n, Random& r, bool specials) {
  OptimizerState st;
  st.p = randomVector(n, r);
  st.g = randomVector(n, r, 0.1f);
  st.s1 = randomVector(n, r, 0.01f);
  st.s2 = randomVector(n, r, 1e-4f);
  for (float& v : st.s2) v = std::fabs(v);
  if (specials) {
    sprinkleSpecials(st.p, r, 4);
    sprinkleSpecials(st.g, r, 4);
  }
  st.half.assign(static_cast<std::size_t>(n), 0);
  return st;
}

void testOptimizers(Isa isa) {
  for (const OptimizerCase& c : optimizerCases()) {
    context = std::string(c.name) + " " + isaName(isa);
    Random r(3);
    for (Index n : tailSizes()) {
      for (bool specials : {false, true}) {
        const OptimizerState start = makeState(n, r, specials);
        OptimizerState fast = start, portable = start;
        const bool withHalf = n % 2 == 0;
        runOptimizer(c, fast, withHalf);
        setIsa(Isa::Scalar);
        runOptimizer(c, portable, withHalf);
        setIsa(isa);
        for (Index i = 0; i < n; i++) {
          EXPECT(sameFloat(fast.p[i], portable.p[i]) && sameFloat(fast.s1[i], portable.s1[i]) &&
                     sameFloat(fast.s2[i], portable.s2[i]),
                 "n=%td [%td]: %a vs portable %a", n, i, fast.p[i], portable.p[i]);
          if (withHalf) {
            const std::uint16_t expected = fp32ToFp16Scalar(fast.p[i], false);
            EXPECT(fast.half[i] == expected || (std::isnan(fast.p[i]) && (fast.half[i] & 0x7e00) == 0x7e00),
                   "fp16Out n=%td [%td]", n, i);
          }
        }
        if (specials) continue;
        std::vector<double> p(start.p.begin(), start.p.end()), s1(start.s1.begin(), start.s1.end()),
            s2(start.s2.begin(), start.s2.end());
        referenceOptimizer(c, p, start.g, s1, s2);
        for (Index i = 0; i < n; i++) {
          EXPECT(close(fast.p[i], p[i], 1e-6, 1e-7), "n=%td params[%td] %.9g vs %.9g", n, i, fast.p[i], p[i]);
          EXPECT(close(fast.s1[i], s1[i], 1e-5, 1e-7), "n=%td state[%td] %.9g vs %.9g", n, i, fast.s1[i], s1[i]);
        }
      }
    }
  }
  // gradScale: the bits of the same update on gradients scaled first (each g * gradScale rounded
  // once), and the gradients left as they were.
  for (OptimizerCase c : optimizerCases()) {
    context = std::string(c.name) + " gradScale " + isaName(isa);
    const float scale = 0.37f / 1024.0f;
    Random rs(5);
    for (Index n : tailSizes()) {
      const OptimizerState start = makeState(n, rs, false);
      OptimizerState folded = start, scaledFirst = start;
      for (float& g : scaledFirst.g) g *= scale;
      c.sgd.gradScale = c.adam.gradScale = c.lion.gradScale = scale;
      runOptimizer(c, folded, n % 2 == 0);
      c.sgd.gradScale = c.adam.gradScale = c.lion.gradScale = 1.0f;
      runOptimizer(c, scaledFirst, n % 2 == 0);
      EXPECT(folded.g == start.g, "n=%td: the gradients changed", n);
      for (Index i = 0; i < n; i++) {
        EXPECT(sameFloat(folded.p[i], scaledFirst.p[i]) && sameFloat(folded.s1[i], scaledFirst.s1[i]) &&
                   sameFloat(folded.s2[i], scaledFirst.s2[i]),
               "n=%td [%td]: %a vs scaled first %a", n, i, folded.p[i], scaledFirst.p[i]);
      }
    }
  }
  context = std::string("sumOfSquares ") + isaName(isa);
  Random r(4);
  for (Index n : tailSizes()) {
    std::vector<float> x = randomVector(n, r, 100.0f);
    double exact = 0;
    for (float v : x) exact += static_cast<double>(v) * v;
    EXPECT(close(sumOfSquares(x.data(), n), exact, 1e-12, 0), "n=%td", n);
  }
  std::vector<float> x = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT(std::isnan(sumOfSquares(x.data(), 2)), "NaN");
}

// ---- GEMM ----------------------------------------------------------------------------------------

void testGemmCase(bool transA, bool transB, Index M, Index N, Index K, float alpha, float beta, Index pad, Random& r) {
  const Index aRows = transA ? K : M, aCols = transA ? M : K, bRows = transB ? N : K, bCols = transB ? K : N;
  const Index lda = std::max<Index>(1, aCols + pad), ldb = std::max<Index>(1, bCols + pad),
              ldc = std::max<Index>(1, N + pad);
  // Exact extents: the last row has no padding, so reading past it is an ASan report.
  auto extent = [](Index rows, Index cols, Index ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; };
  std::vector<float> A(static_cast<std::size_t>(extent(aRows, aCols, lda)), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> B(static_cast<std::size_t>(extent(bRows, bCols, ldb)), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> C(static_cast<std::size_t>(extent(M, N, ldc)), -12345.5f);
  for (Index i = 0; i < aRows; i++)
    for (Index j = 0; j < aCols; j++) A[i * lda + j] = r.uniform();
  for (Index i = 0; i < bRows; i++)
    for (Index j = 0; j < bCols; j++) B[i * ldb + j] = r.uniform();
  for (Index i = 0; i < M; i++)
    for (Index j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? std::numeric_limits<float>::quiet_NaN() : r.uniform();
  const std::vector<float> C0 = C;
  sgemm(transA, transB, M, N, K, alpha, A.empty() ? nullptr : A.data(), lda, B.empty() ? nullptr : B.data(), ldb, beta,
        C.empty() ? nullptr : C.data(), ldc);
  for (Index i = 0; i < M; i++) {
    for (Index j = 0; j < ldc && i * ldc + j < static_cast<Index>(C.size()); j++) {
      if (j >= N) {
        EXPECT(C[i * ldc + j] == -12345.5f, "%c%c %tdx%tdx%td wrote padding", transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K);
        continue;
      }
      double sum = 0, magnitude = 0;
      for (Index k = 0; k < K; k++) {
        const double a = A[transA ? k * lda + i : i * lda + k], b = B[transB ? j * ldb + k : k * ldb + j];
        sum += a * b;
        magnitude += std::fabs(a * b);
      }
      const double scaled = beta == 0 ? 0 : static_cast<double>(beta) * C0[i * ldc + j];
      const double expected = alpha * sum + scaled;
      const double bound = (K + 4) * std::ldexp(1.0, -23) * std::fabs(alpha) * magnitude + std::ldexp(1.0, -22) * std::fabs(scaled) + 1e-30;
      EXPECT(std::fabs(C[i * ldc + j] - expected) <= bound, "%c%c %tdx%tdx%td C[%td][%td] = %g, expected %g",
             transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, i, j, C[i * ldc + j], expected);
    }
  }
}

void testGemm(Isa isa) {
  context = std::string("sgemm ") + isaName(isa);
  Random r(5);
  for (int t = 0; t < 4; t++) {
    const bool transA = t & 1, transB = t & 2;
    testGemmCase(transA, transB, 0, 5, 5, 1, 0, 0, r);
    testGemmCase(transA, transB, 5, 0, 5, 1, 0, 0, r);
    testGemmCase(transA, transB, 5, 5, 0, 1, 0.5f, 0, r);
    testGemmCase(transA, transB, 1, 1, 1, 1, 0, 0, r);
    for (Index size = 1; size <= 67; size++) {
      testGemmCase(transA, transB, size, 13, 9, 1, 0, 1, r);
      testGemmCase(transA, transB, 7, size, 5, -0.5f, 0.25f, 2, r);
      testGemmCase(transA, transB, 6, 17, size, 2, 1, 0, r);
    }
    testGemmCase(transA, transB, 203, 97, 801, 1, 0, 3, r);
    testGemmCase(transA, transB, 3, 4133, 5, 1.5f, -1, 1, r);
    testGemmCase(transA, transB, 131, 300, 77, 0.5f, 1, 0, r);
    // Whole micro-tiles in M and N with K a multiple of the 8-wide packing transposes and not.
    testGemmCase(transA, transB, 24, 64, 16, 1, 0, 1, r);
    testGemmCase(transA, transB, 12, 96, 19, 1, 0.5f, 0, r);
    // Parallel, split across M: 43 row panels share out more evenly than 9 column panels.
    testGemmCase(transA, transB, 256, 288, 64, 1, 0, 2, r);
  }
}

// sgemm as background work (its C cut into more strips, claimed by whichever background thread is
// free) gives the bits it gives in the foreground: split along M and along N, tiles ragged or whole.
void testGemmInBackground(Random& r) {
  const Index shapes[][3] = {{256, 288, 64}, {3000, 40, 70}, {40, 2000, 70}, {6, 32, 300}, {31, 700, 5}};
  for (const auto& shape : shapes) {
    const Index M = shape[0], N = shape[1], K = shape[2];
    for (int t = 0; t < 4; t++) {
      const bool transA = t & 1, transB = t & 2;
      std::vector<float> A(static_cast<std::size_t>(M * K)), B(static_cast<std::size_t>(K * N));
      for (float& v : A) v = r.uniform();
      for (float& v : B) v = r.uniform();
      std::vector<float> foreground(static_cast<std::size_t>(M * N), 0.5f), background = foreground;
      const Index lda = transA ? M : K, ldb = transB ? K : N;
      sgemm(transA, transB, M, N, K, 1.5f, A.data(), lda, B.data(), ldb, 0.25f, foreground.data(), N);
      runInBackground([&] {
        sgemm(transA, transB, M, N, K, 1.5f, A.data(), lda, B.data(), ldb, 0.25f, background.data(), N);
      });
      EXPECT(std::memcmp(foreground.data(), background.data(), foreground.size() * sizeof(float)) == 0,
             "%c%c %tdx%tdx%td: background sgemm differs from the foreground's", transA ? 'T' : 'N',
             transB ? 'T' : 'N', M, N, K);
    }
  }
}

// sgemmHalfOperands with A, B or both as fp16 bits against sgemm on the same operands widened
// first: bit for bit (the widening is exact, and the packed panels hold the same values), special
// values included; the operands are exactly as long as their extents, so an overread is an ASan report.
void testGemmHalfCase(bool transA, bool transB, Index M, Index N, Index K, Index pad, Random& r) {
  const Index aRows = transA ? K : M, aCols = transA ? M : K, bRows = transB ? N : K, bCols = transB ? K : N;
  const Index lda = std::max<Index>(1, aCols + pad), ldb = std::max<Index>(1, bCols + pad), ldc = std::max<Index>(1, N);
  auto extent = [](Index rows, Index cols, Index ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; };
  static const std::uint16_t kHalfSpecials[] = {0x7c00, 0xfc00, 0x7e00, 0x7c01, 0x0000, 0x8000, 0x0001, 0x83ff, 0x7bff, 0x0400};
  auto halves = [&](Index count) {
    std::vector<std::uint16_t> h(static_cast<std::size_t>(count));
    for (std::uint16_t& x : h) x = fp32ToFp16Scalar(r.uniform(4.0f), false);
    for (int k = 0; k < 3 && count > 0; k++) h[r.bits() % h.size()] = kHalfSpecials[r.bits() % (sizeof kHalfSpecials / 2)];
    return h;
  };
  const std::vector<std::uint16_t> A16 = halves(extent(aRows, aCols, lda)), B16 = halves(extent(bRows, bCols, ldb));
  std::vector<float> A(A16.size()), B(B16.size());
  for (std::size_t i = 0; i < A16.size(); i++) A[i] = fp16ToFp32Scalar(A16[i]);
  for (std::size_t i = 0; i < B16.size(); i++) B[i] = fp16ToFp32Scalar(B16[i]);
  std::vector<float> expected(static_cast<std::size_t>(extent(M, N, ldc)), 0.0f);
  sgemm(transA, transB, M, N, K, 1.0f, A.empty() ? nullptr : A.data(), lda, B.empty() ? nullptr : B.data(), ldb, 0.0f,
        expected.empty() ? nullptr : expected.data(), ldc);
  for (int which = 1; which <= 3; which++) {
    std::vector<float> got(expected.size(), -7.0f);
    const bool aHalf = which & 1, bHalf = which & 2;
    sgemmHalfOperands(transA, transB, M, N, K, 1.0f, aHalf || A.empty() ? nullptr : A.data(),
                      aHalf && !A16.empty() ? A16.data() : nullptr, lda, bHalf || B.empty() ? nullptr : B.data(),
                      bHalf && !B16.empty() ? B16.data() : nullptr, ldb, 0.0f, got.empty() ? nullptr : got.data(), ldc);
    bool same = true;
    for (std::size_t i = 0; i < got.size(); i++) same = same && sameFloat(got[i], expected[i]);
    EXPECT(same, "%c%c %tdx%tdx%td pad %td, fp16 %s: differs from sgemm on the widened operands", transA ? 'T' : 'N',
           transB ? 'T' : 'N', M, N, K, pad, which == 1 ? "A" : which == 2 ? "B" : "A and B");
  }
}

void testGemmHalfOperands(Isa isa) {
  context = std::string("sgemmHalfOperands ") + isaName(isa);
  Random r(11);
  for (int t = 0; t < 4; t++) {
    const bool transA = t & 1, transB = t & 2;
    testGemmHalfCase(transA, transB, 0, 5, 5, 0, r);
    testGemmHalfCase(transA, transB, 5, 5, 0, 0, r);
    for (Index size : {1, 5, 6, 7, 8, 9, 13, 31, 32, 33, 67}) {
      testGemmHalfCase(transA, transB, size, 13, 9, 1, r);
      testGemmHalfCase(transA, transB, 7, size, 5, 2, r);
      testGemmHalfCase(transA, transB, 6, 17, size, 0, r);
    }
    // Parallel, both splits, and K past one packing block (384).
    testGemmHalfCase(transA, transB, 256, 288, 64, 3, r);
    testGemmHalfCase(transA, transB, 40, 70, 900, 1, r);
    testGemmHalfCase(transA, transB, 203, 97, 801, 0, r);
  }
}

// A GEMM finished as the simulator finishes a matmul (sim::matmulEpilogue: fp16 rounding and
// saturation, on the AVX-512 micro-kernel's registers or on each stored block) against sgemm and
// then one pass of sim::roundToFp16 / saturateToInfinity over C: bit for bit. Sums past 65504 and
// past the limit, NaN and inf operands, edge tiles, K past a packing block, both splits, a C row
// stride wider than N (whose padding must stay as it was).
void testGemmFinishCase(bool transA, bool transB, Index M, Index N, Index K, const ane::sim::MatmulFinish& finish,
                        Random& r) {
  const Index lda = transA ? M : K, ldb = transB ? K : N, ldc = N + 3;
  std::vector<float> A(static_cast<std::size_t>((transA ? K : M) * lda)), B(static_cast<std::size_t>((transB ? N : K) * ldb));
  for (float& x : A) x = r.uniform(24.0f);
  for (float& x : B) x = r.uniform(24.0f);
  if (A.size() > 2) A[r.bits() % A.size()] = std::numeric_limits<float>::quiet_NaN();
  if (B.size() > 2) B[r.bits() % B.size()] = std::numeric_limits<float>::infinity();
  std::vector<float> expected(static_cast<std::size_t>(M * ldc), -7.0f), got(expected);
  sgemm(transA, transB, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, expected.data(), ldc);
  for (Index i = 0; i < M; i++) {
    float* row = expected.data() + i * ldc;
    if (finish.roundFp16) ane::sim::roundToFp16(row, N, finish.saturateAt);
    else if (std::isfinite(finish.saturateAt)) ane::sim::saturateToInfinity(row, N, finish.saturateAt, true);
  }
  sgemmHalfOperands(transA, transB, M, N, K, 1.0f, A.data(), nullptr, lda, B.data(), nullptr, ldb, 0.0f, got.data(),
                    ldc, ane::sim::matmulEpilogue(finish));
  bool same = true;
  for (std::size_t i = 0; i < got.size(); i++) same = same && sameFloat(got[i], expected[i]);
  EXPECT(same, "%c%c %tdx%tdx%td, roundFp16 %d, saturateAt %g: differs from sgemm and one pass of the finish",
         transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, finish.roundFp16 ? 1 : 0, finish.saturateAt);
}

void testGemmFinish(Isa isa) {
  context = std::string("sgemm with the simulator's finish ") + isaName(isa);
  Random r(17);
  const double inf = std::numeric_limits<double>::infinity();
  for (const ane::sim::MatmulFinish finish : {ane::sim::MatmulFinish{true, inf}, ane::sim::MatmulFinish{true, 32752.0},
                                              ane::sim::MatmulFinish{true, 1000.1}, ane::sim::MatmulFinish{false, 2000.0},
                                              ane::sim::MatmulFinish{false, inf}}) {
    for (int t = 0; t < 4; t++) {
      const bool transA = t & 1, transB = t & 2;
      for (Index size : {1, 6, 7, 31, 33}) testGemmFinishCase(transA, transB, size, 40, 9, finish, r);
      testGemmFinishCase(transA, transB, 203, 97, 401, finish, r);  // K past 384, rows past 192
      testGemmFinishCase(transA, transB, 64, 300, 48, finish, r);
    }
  }
  // Sums exactly at the limit saturate (>=), the fp16 below it does not: whole tiles and edges.
  const Index M = 13, N = 70;
  std::vector<float> A(static_cast<std::size_t>(M)), B(static_cast<std::size_t>(N), 1.0f), got(static_cast<std::size_t>(M * N));
  const float values[] = {32752.0f, 32736.0f, -32752.0f, 32760.0f, 1.0f};
  for (Index i = 0; i < M; i++) A[static_cast<std::size_t>(i)] = values[i % 5];
  sgemmHalfOperands(false, false, M, N, 1, 1.0f, A.data(), nullptr, 1, B.data(), nullptr, N, 0.0f, got.data(), N,
                    ane::sim::matmulEpilogue({true, 32752.0}));
  for (Index i = 0; i < M; i++) {
    const float a = A[static_cast<std::size_t>(i)];
    const float want = std::fabs(a) >= 32744.0f ? std::copysign(INFINITY, a) : a;  // 32760 rounds to 32768
    bool same = true;
    for (Index j = 0; j < N; j++) same = same && sameFloat(got[static_cast<std::size_t>(i * N + j)], want);
    EXPECT(same, "row %td (%g): a sum at the limit saturates, one below does not", i, static_cast<double>(a));
  }
}

// ---- norms, losses, embeddings, causal softmax -----------------------------------------------------

void testRowwise(Isa isa) {
  Random r(6);
  context = std::string("rmsnorm ") + isaName(isa);
  for (Index C : {1, 3, 8, 33}) {
    for (Index S : std::vector<Index>{0, 1, 2, 15, 16, 17, 31, 33, 67, 130}) {
      std::vector<float> x = randomVector(C * S, r, 3), w = randomVector(C, r), out(static_cast<std::size_t>(C * S)),
                         rstd(static_cast<std::size_t>(S)), g = randomVector(C * S, r),
                         dx(static_cast<std::size_t>(C * S), 0.5f), dw(static_cast<std::size_t>(C), 0.0f);
      rmsnormForward(out.data(), rstd.data(), x.data(), w.data(), C, S, 1e-5f);
      rmsnormBackward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), C, S);
      std::vector<double> dwRef(static_cast<std::size_t>(C), 0.0);
      for (Index s = 0; s < S; s++) {
        double ss = 0, dot = 0;
        for (Index c = 0; c < C; c++) ss += static_cast<double>(x[c * S + s]) * x[c * S + s];
        const double rs = 1 / std::sqrt(ss / C + 1e-5);
        for (Index c = 0; c < C; c++) dot += static_cast<double>(w[c]) * g[c * S + s] * x[c * S + s];
        EXPECT(close(rstd[s], rs, 2e-6, 0), "rstd %tdx%td [%td]", C, S, s);
        for (Index c = 0; c < C; c++) {
          EXPECT(close(out[c * S + s], x[c * S + s] * rs * w[c], 2e-6, 1e-7), "out %tdx%td", C, S);
          const double d = 0.5 + rs * w[c] * g[c * S + s] - x[c * S + s] * rs * rs * rs / C * dot;
          EXPECT(close(dx[c * S + s], d, 1e-5, 1e-5), "dx %tdx%td", C, S);
          dwRef[c] += static_cast<double>(g[c * S + s]) * x[c * S + s] * rs;
        }
      }
      for (Index c = 0; c < C; c++) EXPECT(close(dw[c], dwRef[c], 1e-5, 1e-5), "dweight %tdx%td", C, S);
    }
  }
  context = std::string("cross-entropy ") + isaName(isa);
  for (Index V : {1, 2, 7, 100}) {
    // 4101 positions: the forward splits them between threads only from 2048 per thread (V = 100).
    for (Index S : std::vector<Index>{0, 1, 5, 16, 17, 33, 67, 4101}) {
      std::vector<float> logits = randomVector(V * S, r, 8), probs(static_cast<std::size_t>(V * S)),
                         losses(static_cast<std::size_t>(S)), dl(static_cast<std::size_t>(S), 0.5f),
                         dlogits(static_cast<std::size_t>(V * S));
      std::vector<std::int32_t> targets(static_cast<std::size_t>(S));
      for (Index s = 0; s < S; s++) targets[s] = s % 5 == 2 ? -100 : static_cast<std::int32_t>(r.bits() % V);
      if (S > 3) logits[3] = -std::numeric_limits<float>::infinity();
      softmaxCrossEntropyForward(losses.data(), probs.data(), logits.data(), targets.data(), V, S);
      softmaxCrossEntropyBackward(dlogits.data(), probs.data(), targets.data(), dl.data(), V, S);
      for (Index s = 0; s < S; s++) {
        double mx = -INFINITY, sum = 0;
        for (Index v = 0; v < V; v++) mx = std::max(mx, static_cast<double>(logits[v * S + s]));
        for (Index v = 0; v < V; v++) sum += std::exp(logits[v * S + s] - mx);
        const double lse = std::log(sum) + mx;
        const std::int32_t t = targets[s];
        EXPECT(close(losses[s], t < 0 ? 0 : lse - logits[t * S + s], 1e-5, 1e-5), "loss %tdx%td", V, S);
        for (Index v = 0; v < V; v++) {
          const double p = std::exp(logits[v * S + s] - lse);
          EXPECT(close(probs[v * S + s], p, 5e-6, 1e-9), "prob %tdx%td", V, S);
          EXPECT(close(dlogits[v * S + s], t < 0 ? 0 : (p - (v == t)) * 0.5, 1e-5, 1e-7), "dlogit %tdx%td", V, S);
        }
      }
      std::vector<float> inPlace = logits, losses2(static_cast<std::size_t>(S));
      softmaxCrossEntropyForward(losses2.data(), inPlace.data(), inPlace.data(), targets.data(), V, S);
      EXPECT(sameBytes(inPlace, probs), "in place probs");
      softmaxCrossEntropyBackward(inPlace.data(), inPlace.data(), targets.data(), dl.data(), V, S);
      EXPECT(sameBytes(inPlace, dlogits), "in place dlogits");
    }
  }
  context = std::string("cross-entropy from statistics ") + isaName(isa);
  // V 2500: three vocabulary blocks, combined in order. The logits are fp16 values, so the fp32 and
  // the fp16-bits calls read the same numbers: every result must have the bits of forward + backward.
  for (Index V : {1, 7, 2500}) {
    for (Index S : std::vector<Index>{0, 1, 17, 67}) {
      std::vector<float> logits = randomVector(V * S, r, 8);
      std::vector<std::uint16_t> bits(logits.size());
      for (std::size_t i = 0; i < logits.size(); i++) {
        bits[i] = fp32ToFp16Scalar(logits[i], false);
        logits[i] = fp16ToFp32Scalar(bits[i]);
      }
      if (S > 3) {
        logits[3] = -std::numeric_limits<float>::infinity();
        bits[3] = 0xfc00;
      }
      std::vector<std::int32_t> targets(static_cast<std::size_t>(S));
      for (Index s = 0; s < S; s++) targets[s] = s % 5 == 2 ? -100 : static_cast<std::int32_t>(r.bits() % V);
      const std::size_t n = static_cast<std::size_t>(V * S), ns = static_cast<std::size_t>(S);
      std::vector<float> probs(n), losses(ns), dlosses = randomVector(S, r), dlogits(n);
      softmaxCrossEntropyForward(losses.data(), probs.data(), logits.data(), targets.data(), V, S);
      softmaxCrossEntropyBackward(dlogits.data(), probs.data(), targets.data(), dlosses.data(), V, S);
      for (bool half : {false, true}) {
        std::vector<float> losses2(ns, 7.0f), maxv(ns), inverse(ns), dlogits2(n, 7.0f);
        const float* f32 = half ? nullptr : logits.data();
        const std::uint16_t* f16 = half ? bits.data() : nullptr;
        softmaxCrossEntropyStats(losses2.data(), maxv.data(), inverse.data(), f32, f16, targets.data(), V, S);
        softmaxCrossEntropyGrad(dlogits2.data(), f32, f16, maxv.data(), inverse.data(), targets.data(), dlosses.data(),
                                V, S);
        EXPECT(sameBytes(losses2, losses), "stats losses %tdx%td half %d", V, S, half);
        EXPECT(sameBytes(dlogits2, dlogits), "grad %tdx%td half %d", V, S, half);
        for (Index s = 0; s < S; s++) {
          float mx = -INFINITY;
          for (Index v = 0; v < V; v++) mx = std::max(mx, logits[v * S + s]);
          EXPECT(maxv[s] == mx, "max %tdx%td", V, S);
        }
      }
      std::vector<float> inPlace = logits, maxv(ns), inverse(ns), losses3(ns);
      softmaxCrossEntropyStats(losses3.data(), maxv.data(), inverse.data(), inPlace.data(), nullptr, targets.data(), V, S);
      softmaxCrossEntropyGrad(inPlace.data(), inPlace.data(), nullptr, maxv.data(), inverse.data(), targets.data(),
                              dlosses.data(), V, S);
      EXPECT(sameBytes(inPlace, dlogits), "grad in place %tdx%td", V, S);
    }
  }
  {
    std::vector<float> losses(3, 1.0f), maxv(3), inverse(3);
    const std::int32_t targets[3] = {-1, -1, -1};
    softmaxCrossEntropyStats(losses.data(), maxv.data(), inverse.data(), nullptr, nullptr, targets, 0, 3);
    EXPECT(losses[0] == 0.0f && maxv[1] == -INFINITY && inverse[2] == INFINITY, "stats V 0");
  }
  context = std::string("embedding ") + isaName(isa);
  for (Index C : {1, 5, 16, 17, 67}) {
    for (Index S : std::vector<Index>{0, 1, 9, 33}) {
      const Index V = 6;
      std::vector<float> table = randomVector(V * C, r), out(static_cast<std::size_t>(C * S)), dout = randomVector(C * S, r),
                         dtable(static_cast<std::size_t>(V * C), 1.0f);
      std::vector<std::int32_t> tokens(static_cast<std::size_t>(S));
      for (auto& t : tokens) t = static_cast<std::int32_t>(r.bits() % 3);  // repeats
      embeddingForward(out.data(), table.data(), tokens.data(), V, C, S);
      embeddingBackward(dtable.data(), dout.data(), tokens.data(), V, C, S);
      std::vector<double> ref(static_cast<std::size_t>(V * C), 1.0);
      for (Index s = 0; s < S; s++) {
        for (Index c = 0; c < C; c++) {
          EXPECT(out[c * S + s] == table[tokens[s] * C + c], "gather");
          ref[tokens[s] * C + c] += dout[c * S + s];
        }
      }
      for (Index i = 0; i < V * C; i++) EXPECT(close(dtable[i], ref[i], 1e-6, 1e-6), "scatter-add");
    }
  }
  context = std::string("causal softmax ") + isaName(isa);
  for (Index H : {1, 2}) {
    for (auto [Tq, Tk] : std::vector<std::pair<Index, Index>>{{1, 1}, {3, 3}, {1, 67}, {17, 17}, {5, 40}, {64, 130}}) {
      const Index n = H * Tq * Tk;
      std::vector<float> scores = randomVector(n, r, 10), out(static_cast<std::size_t>(n)), g = randomVector(n, r),
                         ds(static_cast<std::size_t>(n));
      causalSoftmaxForward(out.data(), scores.data(), H, Tq, Tk, 0.125f);
      causalSoftmaxBackward(ds.data(), out.data(), g.data(), H, Tq, Tk, 0.125f);
      for (Index row = 0; row < H * Tq; row++) {
        const Index visible = row % Tq + (Tk - Tq) + 1;
        double mx = -INFINITY, sum = 0, dot = 0;
        for (Index j = 0; j < visible; j++) mx = std::max(mx, 0.125 * scores[row * Tk + j]);
        for (Index j = 0; j < visible; j++) sum += std::exp(0.125 * scores[row * Tk + j] - mx);
        for (Index j = 0; j < Tk; j++) {
          const double p = j < visible ? std::exp(0.125 * scores[row * Tk + j] - mx) / sum : 0.0;
          EXPECT(close(out[row * Tk + j], p, 5e-6, 1e-9), "forward %td/%td/%td", H, Tq, Tk);
          dot += p * g[row * Tk + j];
        }
        for (Index j = 0; j < Tk; j++) {
          const double p = out[row * Tk + j];
          EXPECT(close(ds[row * Tk + j], 0.125 * p * (g[row * Tk + j] - dot), 1e-5, 1e-7), "backward");
        }
      }
      std::vector<float> inPlace = scores;
      causalSoftmaxForward(inPlace.data(), inPlace.data(), H, Tq, Tk, 0.125f);
      EXPECT(sameBytes(inPlace, out), "in place forward");
    }
  }
}

// Thread-spawn failure (issue 10, defect 5): a pool whose worker threads fail to start must shrink to
// the threads that did start, keep running every job correctly, and let a later resize proceed.
// Before the fix, a failed spawn left the pool marked busy forever: every later job ran on the
// calling thread only and setHostThreads() waited for ever (this harness would hang, then time out).
void testThreadSpawnFailure() {
  context = "thread spawn failure";
  // Distinct threads that ran tasks of one 64-task job.
  auto threadsUsed = [] {
    std::mutex m;
    std::vector<std::thread::id> ids;
    runTasks(64, [&](int) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::lock_guard<std::mutex> lock(m);
      if (std::find(ids.begin(), ids.end(), std::this_thread::get_id()) == ids.end())
        ids.push_back(std::this_thread::get_id());
    });
    return static_cast<int>(ids.size());
  };
  auto sumOfIndices = [] {
    std::atomic<long> sum{0};
    runTasks(1000, [&](int i) { sum += i; });
    return sum.load();
  };

  // Worker 3 of 3 fails: the pool keeps the calling thread and workers 1 and 2.
  setThreadSpawnHookForTesting([](int i) { return i < 3; });
  setHostThreads(4);
  EXPECT(hostThreads() == 3, "hostThreads() = %d after worker 3 failed, expected 3", hostThreads());
  EXPECT(lastThreadSpawnError().find("did not start") != std::string::npos, "spawn error '%s'",
         lastThreadSpawnError().c_str());
  EXPECT(sumOfIndices() == 999L * 1000 / 2, "a job on the shrunk pool summed wrong");

  // Every worker fails: one thread, and jobs still finish (on the calling thread).
  setThreadSpawnHookForTesting([](int) { return false; });
  setHostThreads(3);
  EXPECT(hostThreads() == 1, "hostThreads() = %d after every worker failed, expected 1", hostThreads());
  EXPECT(sumOfIndices() == 999L * 1000 / 2, "a job on a pool without workers summed wrong");

  // The system allows threads again: a resize returns (no stuck 'busy' flag) and jobs spread again.
  setThreadSpawnHookForTesting({});
  setHostThreads(2);
  EXPECT(hostThreads() == 2, "hostThreads() = %d after a resize to 2, expected 2", hostThreads());
  EXPECT(lastThreadSpawnError().empty(), "stale spawn error '%s'", lastThreadSpawnError().c_str());
  EXPECT(sumOfIndices() == 999L * 1000 / 2, "a job after recovery summed wrong");
  EXPECT(threadsUsed() == 2, "a 64-task job ran on %d thread(s) after recovery, expected 2", threadsUsed());

  // Thread counts are bounded: a request past kMaxHostThreads is clamped (JS refuses it first).
  setThreadSpawnHookForTesting([](int) { return false; });  // do not really start 255 threads
  setHostThreads(100000);
  EXPECT(hostThreads() == 1, "hostThreads() = %d", hostThreads());
  EXPECT(lastThreadSpawnError().find("of " + std::to_string(kMaxHostThreads - 1)) != std::string::npos,
         "a request for 100000 threads was not clamped to %d: '%s'", kMaxHostThreads,
         lastThreadSpawnError().c_str());
  setThreadSpawnHookForTesting({});
  setHostThreads(0);
}


// Jobs back to back from two threads at once, with nested calls: every task runs exactly once and
// a task's exception reaches its caller. The caller returns when its tasks are done, while workers
// that woke too late for a job claim nothing of it (nor of the next job under the old job's task).
void testPoolJobsBackToBack() {
  context = "pool jobs back to back";
  setHostThreads(3);
  std::atomic<int> wrong{0};
  auto jobs = [&](int seed) {
    for (int j = 0; j < 2000; j++) {
      const int tasks = 1 + (j + seed) % 5;
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(tasks));
      runTasks(tasks, [&](int i) {
        runs[static_cast<std::size_t>(i)]++;
        if ((j & 63) == 0) runTasks(2, [](int) {});
      });
      for (auto& count : runs)
        if (count.load() != 1) wrong++;
    }
  };
  std::thread other([&] { jobs(1); });
  jobs(0);
  other.join();
  EXPECT(wrong.load() == 0, "%d tasks ran other than once", wrong.load());
  bool caught = false;
  try {
    runTasks(4, [](int i) {
      if (i == 2) throw std::runtime_error("task 2");
    });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  EXPECT(caught, "a task's exception did not reach the caller");
  EXPECT(hostThreads() == 3, "hostThreads() = %d", hostThreads());
  setHostThreads(0);
}

// runInBackground: on Linux the work runs on a thread of its own at the caller's scheduling policy,
// its parallel jobs stay on background threads (an idle one helps), exceptions reach the caller,
// callers beyond hostThreads() share that many threads, and a nested call runs inline. Elsewhere:
// inline.
// Background work takes its share of the CPUs when other threads keep them busy (other processes,
// in real use: parallel test runs, a compiler): a run that awaits it must not stall. At the lowest
// scheduling priority (SCHED_IDLE, as the background threads once were) 20 ms of work took about
// 14 s beside two spinning threads per core, and a Stories15M forward on a loaded CI machine timed out.
void testBackgroundUnderLoad() {
  context = "background work under load";
  setHostThreads(2);
  std::atomic<bool> stop{false};
  std::vector<std::thread> spinners;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i < 2 * cores; i++) {
    spinners.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  }
  // About 20 ms of arithmetic on one core, spread over the background threads' tasks.
  std::atomic<double> sink{0};
  const auto start = std::chrono::steady_clock::now();
  runInBackground([&] {
    runTasks(8, [&](int task) {
      double x = task;
      for (int i = 0; i < 5000000; i++) x = x * 0.999999 + 1e-9;
      double expected = sink.load();
      while (!sink.compare_exchange_weak(expected, expected + x)) {
      }
    });
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stop = true;
  for (std::thread& spinner : spinners) spinner.join();
  // A fair share is well under a second even under a sanitizer; starvation is tens of seconds.
  EXPECT(seconds < 5.0, "background work took %.1f s beside %d busy threads (starved)", seconds, 2 * cores);
  EXPECT(sink.load() != 0, "the work did not run");

  // A background GEMM yields to the pool's jobs between row blocks (yieldToForeground) but never
  // waits for them: beside a thread keeping the pool busy with job after job it ends, with the
  // bits of the same GEMM run in the foreground.
  context = "background GEMM beside foreground jobs";
  Random r(5);
  const Index M = 700, N = 300, K = 200;
  std::vector<float> A = randomVector(M * K, r, 1.0f), B = randomVector(K * N, r, 1.0f);
  std::vector<float> want(static_cast<std::size_t>(M * N)), got(static_cast<std::size_t>(M * N));
  sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, want.data(), N);
  std::atomic<bool> done{false};
  std::atomic<long> jobs{0};
  std::thread foreground([&] {
    while (!done.load()) {
      runTasks(2, [](int) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
        while (std::chrono::steady_clock::now() < until) {
        }
      });
      jobs++;
    }
  });
  // The pool is busy before the GEMM starts (on a loaded machine the thread may start late).
  while (jobs.load() == 0) std::this_thread::yield();
  const auto gemmStart = std::chrono::steady_clock::now();
  runInBackground([&] { sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, got.data(), N); });
  const double gemmSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - gemmStart).count();
  done = true;
  foreground.join();
  EXPECT(gemmSeconds < 5.0, "the background GEMM took %.1f s beside foreground jobs", gemmSeconds);
  EXPECT(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0,
         "the background GEMM's bits differ from the foreground one's");
  yieldToForeground();  // on a foreground thread: returns at once
  setHostThreads(0);
}

void testRunInBackground() {
  context = "runInBackground";
  setHostThreads(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran;
  bool flagged = false;
  int policy = -1;
  std::vector<std::thread::id> taskThreads(6);
  std::vector<int> taskPolicies(6, -1);
  runInBackground([&] {
    ran = std::this_thread::get_id();
    flagged = inBackground();
#if defined(__linux__)
    policy = sched_getscheduler(0);
#endif
    runTasks(6, [&](int i) {
      taskThreads[static_cast<std::size_t>(i)] = std::this_thread::get_id();
#if defined(__linux__)
      taskPolicies[static_cast<std::size_t>(i)] = sched_getscheduler(0);
#endif
    });
  });
  EXPECT(!inBackground(), "the caller was left marked as background");
#if defined(__linux__)
  EXPECT(ran != caller, "the work ran on the calling thread");
  EXPECT(flagged, "inBackground() was false inside the work");
  EXPECT(policy == sched_getscheduler(0), "the work ran under scheduling policy %d, the caller's is %d", policy,
         sched_getscheduler(0));
  for (std::size_t i = 0; i < taskThreads.size(); i++) {
    EXPECT(taskThreads[i] != caller, "a task of background work ran on the caller");
    EXPECT(taskPolicies[i] == policy, "a task of background work ran under policy %d, not %d", taskPolicies[i],
           policy);
  }
  // An idle background thread helps: the first task waits (up to 10 s) for another to start
  // elsewhere. Three jobs of 64 tasks each from one background caller, so a second thread exists.
  std::atomic<int> helped{0};
  for (int job = 0; job < 3; job++) {
    std::atomic<bool> othersStarted{false};
    std::thread::id owner;
    runInBackground([&] {
      owner = std::this_thread::get_id();
      runTasks(64, [&](int i) {
        if (std::this_thread::get_id() != owner) othersStarted = true;
        if (i != 0) return;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!othersStarted && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      });
    });
    if (othersStarted) helped++;
  }
  EXPECT(helped.load() > 0, "no background job was helped by another background thread");
  std::thread::id nested;
  runInBackground([&] { runInBackground([&] { nested = std::this_thread::get_id(); }); });
  EXPECT(nested != caller, "a nested call ran on the original caller");
#else
  EXPECT(ran == caller, "the work did not run inline");
#endif
  bool caught = false;
  try {
    runInBackground([] { throw std::runtime_error("background"); });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  EXPECT(caught, "the work's exception did not reach the caller");
  // Six callers at once, 200 calls each: every call runs once, on at most hostThreads() threads.
  std::mutex mutex;
  std::vector<std::thread::id> seen;
  std::atomic<int> runs{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 6; c++) {
    callers.emplace_back([&] {
      for (int j = 0; j < 200; j++) {
        runInBackground([&] {
          runs++;
          std::atomic<int> tasksRun{0};
          runTasks(5, [&](int) { tasksRun++; });
          if (tasksRun.load() != 5) runs += 10000;  // a shared job returned before all its tasks ran
          std::lock_guard<std::mutex> lock(mutex);
          if (std::find(seen.begin(), seen.end(), std::this_thread::get_id()) == seen.end())
            seen.push_back(std::this_thread::get_id());
        });
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT(runs.load() == 1200, "%d of 1200 calls ran", runs.load());
#if defined(__linux__)
  EXPECT(seen.size() <= 2, "%zu background threads for a pool of 2", seen.size());
#endif
  setHostThreads(0);
}

// ---- the simulator's native ops (sim_ops.h): every SIMD path against plain scalar references ----

std::uint32_t bitsOf(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// The fp16 rounding of ane-ir/mil roundToFp16InPlace, through the scalar conversions.
float referenceRound(float v) {
  if (std::isnan(v)) return v;
  return fp16ToFp32Scalar(fp32ToFp16Scalar(v, false));
}

// A fused chain: in-place row reads (rows of 256), row and scalar broadcasts, a strided and a
// row-crossing gather, results computed into their outputs and one stored by copy; long enough to
// split over the pool. Each value against the per-element formula of its ops.
void testFusedChain(Random& r) {
  using ane::sim::FusedInstruction;
  using ane::sim::FusedKind;
  const Index rows = 520, inner = 256, length = rows * inner, zInner = 40, wStride = 3;
  std::vector<float> x = randomVector(length, r, 300.0f), y = randomVector(rows, r, 4.0f);
  std::vector<float> z = randomVector(length, r, 300.0f), w = randomVector(length * wStride, r, 300.0f);
  const float scalar = 1.5f;
  std::vector<std::int32_t> xRows(rows), yRows(rows), zRows(length / zInner), wRows(rows), zero(1, 0);
  for (Index i = 0; i < rows; i++) {
    xRows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i * inner);
    yRows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
    wRows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i * inner * wStride);
  }
  for (Index i = 0; i < length / zInner; i++) zRows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i * zInner);
  const ane::sim::FusedOperand operands[] = {
      {x.data(), inner, 1, xRows.data()},
      {y.data(), inner, 0, yRows.data()},
      {z.data(), zInner, 1, zRows.data()},
      {w.data(), inner, wStride, wRows.data()},
      {&scalar, length, 0, zero.data()},
  };
  const auto op = [](FusedKind kind, int code, int dst, int a, int b, bool round) {
    FusedInstruction in;
    in.kind = kind;
    in.op = code;
    in.dst = dst;
    in.a = a;
    in.b = b;
    in.round = round;
    return in;
  };
  const int add = static_cast<int>(ane::sim::BinaryOp::Add), sub = static_cast<int>(ane::sim::BinaryOp::Sub),
            mul = static_cast<int>(ane::sim::BinaryOp::Mul), relu = static_cast<int>(ane::sim::UnaryOp::Relu);
  const FusedInstruction code[] = {
      op(FusedKind::Load, 0, 0, 0, 0, false),  op(FusedKind::Load, 0, 1, 1, 0, false),
      op(FusedKind::Binary, mul, 2, 0, 1, true), op(FusedKind::Store, 0, 0, 2, 0, false),
      op(FusedKind::Load, 0, 1, 2, 0, false),  op(FusedKind::Binary, add, 0, 2, 1, false),
      op(FusedKind::Load, 0, 1, 3, 0, false),  op(FusedKind::Binary, sub, 2, 0, 1, true),
      op(FusedKind::Load, 0, 1, 4, 0, false),  op(FusedKind::Unary, relu, 0, 1, 0, false),
      op(FusedKind::Binary, mul, 1, 2, 0, false), op(FusedKind::Store, 0, 1, 1, 0, false),
      op(FusedKind::Store, 0, 2, 2, 0, false),
  };
  std::vector<float> out0(static_cast<std::size_t>(length)), out1(out0.size()), out2(out0.size());
  float* outputs[] = {out0.data(), out1.data(), out2.data()};
  ane::sim::FusedChain chain;
  chain.code = code;
  chain.count = sizeof code / sizeof code[0];
  chain.operands = operands;
  chain.operandCount = sizeof operands / sizeof operands[0];
  chain.outputs = outputs;
  chain.registers = 3;
  chain.length = length;
  ane::sim::fusedElementwise(chain);
  for (Index i = 0; i < length; i++) {
    const std::size_t k = static_cast<std::size_t>(i);
    const Index row = i / inner, col = i % inner;
    const float product = referenceRound(static_cast<float>(static_cast<double>(x[k]) * y[static_cast<std::size_t>(row)]));
    const float sum = static_cast<float>(static_cast<double>(product) + z[k]);
    const float difference =
        referenceRound(static_cast<float>(static_cast<double>(sum) - w[static_cast<std::size_t>((row * inner + col) * wStride)]));
    const float scaled = static_cast<float>(static_cast<double>(difference) * scalar);
    EXPECT(bitsOf(out0[k]) == bitsOf(product), "fused mul %ld", static_cast<long>(i));
    EXPECT(bitsOf(out2[k]) == bitsOf(difference), "fused sub %ld", static_cast<long>(i));
    EXPECT(bitsOf(out1[k]) == bitsOf(scaled), "fused scale %ld", static_cast<long>(i));
  }
}

void testSimOps() {
  // Rounding: a stride through every binary32 pattern, plus the boundaries, on this path.
  std::vector<float> values;
  for (std::uint64_t u = 0; u < (1ull << 32); u += 65521) {
    float v;
    const std::uint32_t bits = static_cast<std::uint32_t>(u);
    std::memcpy(&v, &bits, sizeof v);
    values.push_back(v);
  }
  for (std::uint32_t bits : {0x477fefffu, 0x477ff000u, 0x477ff001u, 0x33000000u, 0x33000001u, 0x387fe000u,
                             0x387ff000u, 0x7f800000u, 0x7fc00123u, 0xffa00001u}) {
    float v;
    std::memcpy(&v, &bits, sizeof v);
    values.push_back(v);
  }
  std::vector<float> rounded = values;
  ane::sim::roundToFp16(rounded.data(), static_cast<Index>(rounded.size()), std::numeric_limits<double>::infinity());
  for (std::size_t i = 0; i < values.size(); i++) {
    const float want = referenceRound(values[i]);
    EXPECT(bitsOf(rounded[i]) == bitsOf(want), "round %08x: got %08x want %08x", bitsOf(values[i]), bitsOf(rounded[i]),
           bitsOf(want));
  }
  // add with a broadcast row operand, fp16 result: (float)(double a + double b), then rounded.
  Random r(7);
  const Index rows = 37, inner = 301;
  std::vector<float> x = randomVector(rows * inner, r, 300.0f), y = randomVector(inner, r, 300.0f);
  std::vector<std::int32_t> xOffsets(rows), yOffsets(rows, 0);
  for (Index i = 0; i < rows; i++) xOffsets[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i * inner);
  ane::sim::Walk walk;
  walk.rows = rows;
  walk.inner = inner;
  walk.strides[0] = 1;
  walk.strides[1] = 1;
  walk.rowOffsets[0] = xOffsets.data();
  walk.rowOffsets[1] = yOffsets.data();
  std::vector<float> out(static_cast<std::size_t>(rows * inner));
  ane::sim::binary(ane::sim::BinaryOp::Add, out.data(), x.data(), y.data(), walk, true);
  for (Index i = 0; i < rows * inner; i++) {
    const float want = referenceRound(static_cast<float>(static_cast<double>(x[static_cast<std::size_t>(i)]) +
                                                         static_cast<double>(y[static_cast<std::size_t>(i % inner)])));
    EXPECT(bitsOf(out[static_cast<std::size_t>(i)]) == bitsOf(want), "add %ld", static_cast<long>(i));
  }
  // +, -, *, / on float vectors: the float64 result rounded to float, then (when asked) to fp16, bit
  // for bit, over dense and single-value operands, every length of a vector body and tail, and the
  // special values (NaNs of both signs and payloads, signalling ones, infinities, signed zeros,
  // fp32 and fp16 subnormals, the largest floats, values far apart in magnitude).
  {
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                              ane::kernels::bitsFloat(0x7fa00001u), ane::kernels::bitsFloat(0xffc01234u), INFINITY, -INFINITY, 0.0f, -0.0f,
                              1e-40f, -3e-42f, 6e-8f, -5.9604645e-8f, 3.4e38f, -3.4e38f, 65504.0f, 65520.0f,
                              1.0f, -1.0f, 1e-30f, 3e30f, 0.1f, 7.0f};
    const std::size_t specialCount = sizeof specials / sizeof specials[0];
    const Index lengths[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 47, 67, 530, 2100};
    for (int op = 0; op < 4; op++) {
      for (int mode = 0; mode < 3; mode++) {  // 0: both dense, 1: y one value, 2: x one value
        for (const Index n : lengths) {
          for (bool round : {false, true}) {
            std::vector<float> x = randomVector(n + 1, r, 70000.0f), y = randomVector(n + 1, r, 3.0f);
            for (Index i = 0; i < n; i++) {
              if (i % 5 == 1) x[static_cast<std::size_t>(i)] = specials[static_cast<std::size_t>(i * 7) % specialCount];
              if (i % 3 == 2) y[static_cast<std::size_t>(i)] = specials[static_cast<std::size_t>(i * 11) % specialCount];
            }
            if (mode != 0 && n > 0) (mode == 1 ? y : x)[0] = specials[static_cast<std::size_t>(n) % specialCount];
            const std::int32_t zero[1] = {0};
            ane::sim::Walk w;
            w.rows = 1;
            w.inner = n;
            w.strides[0] = mode == 2 ? 0 : 1;
            w.strides[1] = mode == 1 ? 0 : 1;
            w.rowOffsets[0] = w.rowOffsets[1] = zero;
            std::vector<float> got(static_cast<std::size_t>(n) + 1, 12345.0f);
            const auto code = static_cast<ane::sim::BinaryOp>(op);
            ane::sim::binary(code, got.data(), x.data(), y.data(), w, round);
            for (Index i = 0; i < n; i++) {
              const double a = x[static_cast<std::size_t>(w.strides[0] * i)];
              const double b = y[static_cast<std::size_t>(w.strides[1] * i)];
              const double exact = op == 0 ? a + b : op == 1 ? a - b : op == 2 ? a * b : a / b;
              float want = static_cast<float>(exact);
              if (round) want = referenceRound(want);
              const float value = got[static_cast<std::size_t>(i)];
              // Two NaN operands: either one may come back (IEEE leaves it open, compilers commute).
              const bool bothNaN = std::isnan(a) && std::isnan(b);
              EXPECT(bothNaN ? std::isnan(value) : bitsOf(value) == bitsOf(want),
                     "binary op %d mode %d n %ld round %d [%ld]: %08x . %08x gave %08x want %08x", op, mode,
                     static_cast<long>(n), round, static_cast<long>(i), bitsOf(static_cast<float>(a)),
                     bitsOf(static_cast<float>(b)), bitsOf(value), bitsOf(want));
            }
            EXPECT(got[static_cast<std::size_t>(n)] == 12345.0f, "binary op %d wrote past n = %ld", op, static_cast<long>(n));
          }
        }
      }
    }
  }
  // Saturation past a float limit, inclusive and not: the vector body and the scalar tail.
  for (bool inclusive : {true, false}) {
    std::vector<float> v = randomVector(1003, r, 9000.0f);
    const float edges[] = {4094.0f, -4094.0f, std::nextafter(4094.0f, 1e9f), -std::nextafter(4094.0f, 1e9f),
                           -0.0f, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()};
    for (std::size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) {
      v[k * 13] = edges[k];
      v[v.size() - 1 - k] = edges[k];
    }
    std::vector<float> got = v;
    ane::sim::saturateToInfinity(got.data(), static_cast<Index>(got.size()), 4094.0, inclusive);
    for (std::size_t i = 0; i < v.size(); i++) {
      const float m = std::fabs(v[i]);
      const bool past = inclusive ? m >= 4094.0f : m > 4094.0f;
      const float want = past ? (v[i] > 0 ? INFINITY : -INFINITY) : v[i];
      EXPECT(bitsOf(got[i]) == bitsOf(want), "saturate %zu (%g, inclusive %d)", i, static_cast<double>(v[i]), inclusive);
    }
  }
  // Batched matmul: each entry equals its own sgemm, then rounded to fp16, whether entries run
  // side by side or not.
  for (const Index M : {Index{7}, Index{96}}) {
    const Index N = 80, K = M == 7 ? 5 : 120, batch = 6;
    std::vector<float> a = randomVector(batch * M * K, r, 1.0f), b = randomVector(batch * K * N, r, 1.0f);
    std::vector<std::int32_t> aOff(batch), bOff(batch);
    for (Index e = 0; e < batch; e++) {
      aOff[static_cast<std::size_t>(e)] = static_cast<std::int32_t>(e * M * K);
      bOff[static_cast<std::size_t>(e)] = static_cast<std::int32_t>((batch - 1 - e) * K * N);
    }
    std::vector<float> got(static_cast<std::size_t>(batch * M * N)), want(got.size());
    ane::sim::batchedMatmul(got.data(), a.data(), b.data(), false, true, M, N, K, 1.0f, aOff.data(), bOff.data(), batch,
                            {true, std::numeric_limits<double>::infinity()});
    for (Index e = 0; e < batch; e++) {
      sgemm(false, true, M, N, K, 1.0f, a.data() + aOff[static_cast<std::size_t>(e)], K,
            b.data() + bOff[static_cast<std::size_t>(e)], K, 0.0f, want.data() + e * M * N, N);
    }
    ane::sim::roundToFp16(want.data(), static_cast<Index>(want.size()), std::numeric_limits<double>::infinity());
    for (std::size_t i = 0; i < got.size(); i++) EXPECT(bitsOf(got[i]) == bitsOf(want[i]), "batched matmul %zu", i);
  }
  // softmax rows: each sums to ~1 and matches a double reference within fp16 rounding.
  std::vector<float> logits = randomVector(64 * 100, r, 8.0f), probs(64 * 100);
  ane::sim::softmax(probs.data(), logits.data(), 64, 100, 1, true);
  for (Index row = 0; row < 64; row++) {
    double max = -1e300, sum = 0;
    for (Index j = 0; j < 100; j++) max = std::max(max, static_cast<double>(logits[static_cast<std::size_t>(row * 100 + j)]));
    for (Index j = 0; j < 100; j++) sum += std::exp(logits[static_cast<std::size_t>(row * 100 + j)] - max);
    for (Index j = 0; j < 100; j++) {
      const double want = std::exp(logits[static_cast<std::size_t>(row * 100 + j)] - max) / sum;
      EXPECT(std::fabs(probs[static_cast<std::size_t>(row * 100 + j)] - want) <= 1e-3 * want + 1e-7, "softmax %ld", static_cast<long>(row));
    }
  }
  testFusedChain(r);
}

}  // namespace

int main() {
  testFp16Scalar();
  testThreadSpawnFailure();
  testPoolJobsBackToBack();
  testRunInBackground();
  testBackgroundUnderLoad();
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (!setIsa(isa)) {
      std::printf("kernels_test: %s path not supported by this CPU, skipped\n", isaName(isa));
      continue;
    }
    for (int threads : {1, 3}) {
      setHostThreads(threads);
      std::printf("kernels_test: %s, %d thread(s)\n", isaName(isa), threads);
      context = std::string("fp16 ") + isaName(isa);
      testFp16Kernels();
      testFp16Transposed();
      testOptimizers(isa);
      testGemm(isa);
      {
        Random r(11);
        testGemmInBackground(r);
      }
      testGemmHalfOperands(isa);
      testGemmFinish(isa);
      testRowwise(isa);
      context = std::string("sim ops ") + isaName(isa);
      testSimOps();
    }
  }
  setHostThreads(0);
  std::printf("kernels_test: %d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
