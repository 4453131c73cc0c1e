// The host thread pool the kernels share: `threads()` threads in all, the calling thread being one
// of them, so a pool of 2 starts 1 worker. Sized to the CPUs this process may run on, unless the
// environment variable ANE_BRIDGE_THREADS or setThreads() says otherwise.
//
// One parallel job runs at a time. A caller that finds the pool busy (another JS async kernel,
// or a kernel called from inside a task) runs its tasks itself, one after another, instead of
// waiting: the JS thread is never blocked behind a long asynchronous GEMM.
#pragma once

#include <cstddef>
#include <functional>

namespace ane {
namespace kernels {

int hostThreads();
// 0 restores the default. Waits for a running job to finish.
void setHostThreads(int threads);
int defaultHostThreads();

// Calls task(i) for every i in [0, tasks), spread over the pool; returns when all are done.
void runTasks(int tasks, const std::function<void(int)>& task);

// Splits [0, n) into at most hostThreads() contiguous ranges of at least minChunk elements whose
// boundaries are multiples of `align`, and calls body(begin, end) for each, in parallel.
void parallelFor(std::ptrdiff_t n, std::ptrdiff_t minChunk, std::ptrdiff_t align,
                 const std::function<void(std::ptrdiff_t, std::ptrdiff_t)>& body);

}  // namespace kernels
}  // namespace ane
