// The references of `pnpm bench kernels`, measured natively in the same run as ane-bridge's
// kernels: memcpy and STREAM-triad bandwidth (what the memory system gives), and OpenBLAS sgemm
// when Debian's libopenblas-dev is installed (compiled in with -DHAVE_OPENBLAS; without it the
// bench reports "reference unavailable"). Independent of ane-bridge: none of its code is linked.
//
//   reference info
//   reference memcpy <bytes> <threads> <minSeconds>
//   reference triad <elements> <threads> <minSeconds>
//   reference adamw <params> <threads> <minSeconds>      (a plain fused AdamW loop, as one writes it in C)
//   reference sgemm <transA 0|1> <transB 0|1> <M> <N> <K> <threads> <minSeconds>
//
// Each prints one JSON object: the median seconds per run and how many runs were timed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#ifdef HAVE_OPENBLAS
#include <cblas.h>
extern "C" {
void openblas_set_num_threads(int);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}
#endif

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of fn() over runs lasting at least minSeconds (and at least 5 runs), after 2
// warm-up runs.
double medianSeconds(const std::function<void()>& fn, double minSeconds, int* runsOut) {
  fn();
  fn();
  std::vector<double> times;
  const double start = now();
  while (times.size() < 5 || now() - start < minSeconds) {
    const double t0 = now();
    fn();
    times.push_back(now() - t0);
  }
  std::sort(times.begin(), times.end());
  *runsOut = static_cast<int>(times.size());
  return times[times.size() / 2];
}

// Runs body(part, parts) on `threads` threads (the caller is one of them) and waits.
void parallel(int threads, const std::function<void(int, int)>& body) {
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; t++) workers.emplace_back(body, t, threads);
  body(0, threads);
  for (std::thread& w : workers) w.join();
}

void range(std::size_t n, int part, int parts, std::size_t* begin, std::size_t* end) {
  const std::size_t chunk = (n + parts - 1) / parts;
  *begin = std::min(n, chunk * part);
  *end = std::min(n, *begin + chunk);
}

void report(double seconds, int runs, const std::string& extra = "") {
  std::printf("{\"seconds\": %.9g, \"runs\": %d%s}\n", seconds, runs, extra.c_str());
}

int commandMemcpy(std::size_t bytes, int threads, double minSeconds) {
  std::vector<char> src(bytes), dst(bytes);
  parallel(threads, [&](int part, int parts) {  // first touch by the thread that copies
    std::size_t b, e;
    range(bytes, part, parts, &b, &e);
    std::memset(src.data() + b, 1, e - b);
    std::memset(dst.data() + b, 0, e - b);
  });
  int runs = 0;
  const double seconds = medianSeconds(
      [&] {
        parallel(threads, [&](int part, int parts) {
          std::size_t b, e;
          range(bytes, part, parts, &b, &e);
          std::memcpy(dst.data() + b, src.data() + b, e - b);
        });
      },
      minSeconds, &runs);
  report(seconds, runs);
  return 0;
}

// STREAM triad, a[i] = b[i] + q*c[i], a plain loop as STREAM compiles it.
void triadRange(float* a, const float* b, const float* c, float q, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; i++) a[i] = b[i] + q * c[i];
}

int commandTriad(std::size_t n, int threads, double minSeconds) {
  std::vector<float> a(n), b(n), c(n);
  parallel(threads, [&](int part, int parts) {
    std::size_t lo, hi;
    range(n, part, parts, &lo, &hi);
    for (std::size_t i = lo; i < hi; i++) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
  });
  int runs = 0;
  const double seconds = medianSeconds(
      [&] {
        parallel(threads, [&](int part, int parts) {
          std::size_t lo, hi;
          range(n, part, parts, &lo, &hi);
          triadRange(a.data(), b.data(), c.data(), 3.0f, lo, hi);
        });
      },
      minSeconds, &runs);
  report(seconds, runs);
  return 0;
}

// One AdamW step as a plain fused C loop (no intrinsics, no blocking): what a straightforward
// native implementation reaches, for comparison with the tuned kernel.
void adamwRange(float* p, const float* g, float* m, float* v, std::size_t begin, std::size_t end) {
  const float lr = 1e-4f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  const float bc1 = 1.0f - 0.3486784401f, bc2Sqrt = 0.0998f;  // step 10
  for (std::size_t i = begin; i < end; i++) {
    const float mi = beta1 * m[i] + (1.0f - beta1) * g[i];
    const float vi = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * (1.0f - lr * wd) - (lr / bc1) * mi / (std::sqrt(vi) / bc2Sqrt + eps);
  }
}

int commandAdamw(std::size_t n, int threads, double minSeconds) {
  std::vector<float> p(n), g(n), m(n), v(n);
  parallel(threads, [&](int part, int parts) {
    std::size_t lo, hi;
    range(n, part, parts, &lo, &hi);
    for (std::size_t i = lo; i < hi; i++) p[i] = 0.5f, g[i] = static_cast<float>(i % 1013) * 1e-4f, m[i] = 0, v[i] = 0;
  });
  int runs = 0;
  const double seconds = medianSeconds(
      [&] {
        parallel(threads, [&](int part, int parts) {
          std::size_t lo, hi;
          range(n, part, parts, &lo, &hi);
          adamwRange(p.data(), g.data(), m.data(), v.data(), lo, hi);
        });
      },
      minSeconds, &runs);
  report(seconds, runs);
  return 0;
}

#ifdef HAVE_OPENBLAS
int commandSgemm(bool transA, bool transB, int M, int N, int K, int threads, double minSeconds) {
  openblas_set_num_threads(threads);
  std::vector<float> A(static_cast<std::size_t>(M) * K), B(static_cast<std::size_t>(K) * N),
      C(static_cast<std::size_t>(M) * N);
  unsigned state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f - 0.5f;
  };
  for (float& x : A) x = next();
  for (float& x : B) x = next();
  const int lda = transA ? M : K, ldb = transB ? K : N;
  int runs = 0;
  const double seconds = medianSeconds(
      [&] {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
                    1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
      },
      minSeconds, &runs);
  report(seconds, runs);
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "info") {
#ifdef HAVE_OPENBLAS
    std::printf("{\"openblas\": true, \"config\": \"%s\", \"core\": \"%s\"}\n", openblas_get_config(),
                openblas_get_corename());
#else
    std::printf("{\"openblas\": false}\n");
#endif
    return 0;
  }
  if (command == "memcpy" && argc == 5) return commandMemcpy(std::strtoull(argv[2], nullptr, 10), std::atoi(argv[3]), std::atof(argv[4]));
  if (command == "adamw" && argc == 5) return commandAdamw(std::strtoull(argv[2], nullptr, 10), std::atoi(argv[3]), std::atof(argv[4]));
  if (command == "triad" && argc == 5) return commandTriad(std::strtoull(argv[2], nullptr, 10), std::atoi(argv[3]), std::atof(argv[4]));
#ifdef HAVE_OPENBLAS
  if (command == "sgemm" && argc == 9) {
    return commandSgemm(std::atoi(argv[2]) != 0, std::atoi(argv[3]) != 0, std::atoi(argv[4]), std::atoi(argv[5]),
                        std::atoi(argv[6]), std::atoi(argv[7]), std::atof(argv[8]));
  }
#endif
  std::fprintf(stderr, "usage: reference info | memcpy <bytes> <threads> <minSeconds> | triad <n> <threads> <minSeconds>"
                       " | adamw <params> <threads> <minSeconds> | sgemm <tA> <tB> <M> <N> <K> <threads> <minSeconds> (sgemm needs OpenBLAS)\n");
  return 2;
}
