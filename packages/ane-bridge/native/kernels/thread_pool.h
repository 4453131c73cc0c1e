// The host thread pool the kernels share: `threads()` threads in all, the calling thread being one
// of them, so a pool of 2 starts 1 worker. Sized to the CPUs this process may run on, unless the
// environment variable ANE_BRIDGE_THREADS or setThreads() says otherwise.
//
// One parallel job runs at a time. A caller that finds the pool busy (another JS async kernel,
// or a kernel called from inside a task) runs its tasks itself, one after another, instead of
// waiting: the JS thread is never blocked behind a long asynchronous GEMM. The caller takes tasks
// too and returns once every task is done, without waiting for workers that woke too late to take
// one (a wake-up on a busy 2-core VM can take longer than a small job).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace ane {
namespace kernels {

// The most threads a pool may have (the JS setHostThreads refuses more with a RangeError; the
// environment variable ANE_BRIDGE_THREADS is clamped to it). A kernel never gains from more
// threads than cores, and each thread costs a stack and GEMM packing buffers.
constexpr int kMaxHostThreads = 256;

int hostThreads();
// 0 restores the default; larger than kMaxHostThreads is clamped. Waits for a running job to
// finish, then starts the workers; when the system refuses a thread, the pool keeps the threads
// that started (hostThreads() says how many) and lastThreadSpawnError() says why.
void setHostThreads(int threads);
int defaultHostThreads();
// Why the last worker failed to start ("" when every thread started).
std::string lastThreadSpawnError();
// Tests only: called before each worker thread is created with its index (1-based); returning false
// makes that spawn fail as if the system had refused the thread. An empty function removes it.
void setThreadSpawnHookForTesting(std::function<bool(int)> hook);

// Runs work() as background work and returns when it is done (rethrowing what it threw). On Linux
// it runs on one of hostThreads() dedicated threads (at the usual priority: see BackgroundThreads),
// and its parallel jobs run on background threads alone (the one running it, and any other that is
// idle and joins), leaving the pool to the foreground; more callers than threads wait their turn.
// Elsewhere (and when no background thread can start) it runs on the caller like any other work.
// Made for host work that overlaps a simulated device, itself CPU work on the same cores: a
// background job taking the pool would leave the device's ops one core, and two jobs each spread
// over every core oversubscribe them, a job cut in halves then waiting for whichever half was
// descheduled.
void runInBackground(const std::function<void()>& work);

// Whether the calling thread is one of runInBackground's.
bool inBackground();

// Called by background work between blocks (a GEMM's row blocks): while the pool runs a job, the
// calling background thread offers its CPU to any thread waiting for one (sched_yield) and then
// carries on. Background threads have the usual priority, so without it a pool thread woken for
// a job waits for the end of a background thread's time slice, and the job for that thread; while
// the pool is idle (the run may be awaiting this very work) nothing changes. No-op elsewhere.
void yieldToForeground();

// Calls task(i) for every i in [0, tasks), spread over the pool; returns when all are done.
void runTasks(int tasks, const std::function<void(int)>& task);

// Splits [0, n) into at most hostThreads() contiguous ranges of at least minChunk elements whose
// boundaries are multiples of `align`, and calls body(begin, end) for each, in parallel.
void parallelFor(std::ptrdiff_t n, std::ptrdiff_t minChunk, std::ptrdiff_t align,
                 const std::function<void(std::ptrdiff_t, std::ptrdiff_t)>& body);

}  // namespace kernels
}  // namespace ane
