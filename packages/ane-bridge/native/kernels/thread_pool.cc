#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <exception>
#include <string>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#endif

namespace ane {
namespace kernels {

namespace {

int cpusAvailable() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
#endif
  const unsigned count = std::thread::hardware_concurrency();
  return count > 0 ? static_cast<int>(count) : 1;
}

// True on runInBackground's threads: their parallel jobs run on them alone.
thread_local bool background = false;

// How long an idle worker watches for the next job, and the caller for its job's last tasks,
// before it sleeps.
constexpr int kSpinMicroseconds = 50;

class Pool {
 public:
  ~Pool() { stopWorkers(); }

  int size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return size_;
  }

  void resize(int threads) {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return !busy_; });
    busy_ = true;  // keeps jobs out while the workers change
    lock.unlock();
    stopWorkers();
    lock.lock();
    size_ = std::max(1, threads);
    // Start the workers now, so the size the caller reads back is the number that really started.
    startWorkersLocked();
    busy_ = false;
    lock.unlock();
    idle_.notify_all();
  }

  std::string lastSpawnError() {
    std::lock_guard<std::mutex> lock(mutex_);
    return spawnError_;
  }

  void setSpawnHook(std::function<bool(int)> hook) {
    std::lock_guard<std::mutex> lock(mutex_);
    spawnHook_ = std::move(hook);
  }

  // Whether a parallel job is running (read without the lock by yieldToForeground).
  bool jobRunning() const { return jobRunning_.load(std::memory_order_relaxed); }

  void run(int tasks, const std::function<void(int)>& task) {
    if (tasks <= 0) return;
    if (background) {
      for (int i = 0; i < tasks; i++) task(i);
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (busy_ || tasks == 1 || size_ == 1) {
      lock.unlock();
      for (int i = 0; i < tasks; i++) task(i);
      return;
    }
    error_ = nullptr;
    busy_ = true;
    startWorkersLocked();  // never throws; may shrink size_ when a thread cannot start
    if (workers_.empty()) {
      busy_ = false;
      lock.unlock();
      idle_.notify_all();
      for (int i = 0; i < tasks; i++) task(i);
      return;
    }
    jobRunning_.store(true, std::memory_order_relaxed);
    task_ = &task;
    tasks_ = tasks;
    generation_++;
    const std::uint64_t generation = generation_;
    finished_.store(0, std::memory_order_relaxed);
    work_.store(claimWord(generation, 0), std::memory_order_release);
    lock.unlock();
    wake_.notify_all();
    drain(generation, &task, tasks);
    spinForLastTasks(tasks);
    lock.lock();
    // Every task done is enough: a worker that wakes after its job ended claims nothing (the
    // claim word carries the job's generation), so the caller never waits for a wake-up.
    done_.wait(lock, [this, tasks] { return finished_.load(std::memory_order_acquire) == tasks; });
    task_ = nullptr;
    busy_ = false;
    jobRunning_.store(false, std::memory_order_relaxed);
    const std::exception_ptr error = error_;
    error_ = nullptr;
    lock.unlock();
    idle_.notify_all();
    // A task's exception (say, std::bad_alloc) surfaces in the caller, after every task finished.
    if (error) std::rethrow_exception(error);
  }

 private:
  // The claim word: the job's generation (low 32 bits) above the next task index.
  static std::uint64_t claimWord(std::uint64_t generation, std::uint64_t index) {
    return (generation << 32) | index;
  }

  // Runs tasks of job `generation` until none is left unclaimed. A claim succeeds only while that
  // job is the current one, so `task` is alive whenever it is called (a worker that woke late may
  // hold the pointer of a job that has ended: it claims nothing and never dereferences it).
  void drain(std::uint64_t generation, const std::function<void(int)>* task, int tasks) {
    const std::uint64_t tag = generation & 0xffffffffu;
    for (;;) {
      std::uint64_t word = work_.load(std::memory_order_acquire);
      int index = -1;
      while ((word >> 32) == tag && static_cast<int>(word & 0xffffffffu) < tasks) {
        if (work_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          index = static_cast<int>(word & 0xffffffffu);
          break;
        }
      }
      if (index < 0) return;
      try {
        (*task)(index);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == tasks) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_all();
      }
    }
  }

  // Starts size_ - 1 workers. A thread that cannot start (std::thread throws std::system_error when
  // the system refuses a thread: RLIMIT_NPROC, memory, cgroup pids.max) ends the attempt: the pool
  // shrinks to the threads that did start, the reason is kept for lastSpawnError(), and every job
  // still runs (on fewer threads). Nothing is left half-set, so later jobs and resizes proceed.
  void startWorkersLocked() {
    if (!workers_.empty() || stopping_) return;
    // A new worker starts from the current generation, so it takes part in the job about to start.
    const std::uint64_t start = generation_;
    for (int i = 1; i < size_; i++) {
      try {
        if (spawnHook_ && !spawnHook_(i)) {
          throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                  "thread spawn refused by the test hook");
        }
        workers_.emplace_back([this, start] { workerLoop(start); });
      } catch (const std::system_error& error) {
        spawnError_ = std::string("worker thread ") + std::to_string(i) + " of " + std::to_string(size_ - 1) +
                      " did not start (" + error.what() + "); the pool runs " +
                      std::to_string(workers_.size() + 1) + " thread(s)";
        size_ = static_cast<int>(workers_.size()) + 1;
        return;
      } catch (const std::bad_alloc&) {
        spawnError_ = std::string("worker thread ") + std::to_string(i) + " did not start (out of memory)";
        size_ = static_cast<int>(workers_.size()) + 1;
        return;
      }
    }
    spawnError_.clear();
  }

  void stopWorkers() {
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      workers.swap(workers_);
    }
    wake_.notify_all();
    for (std::thread& worker : workers) worker.join();
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = false;
  }

  // Watches for the next job for a little while before sleeping: the simulator's ops come back to
  // back, each a parallel job of tens to hundreds of microseconds, and a sleeping worker's wake-up
  // (a futex round trip and a reschedule) is as long, so it would miss most of them. 50 us made a
  // stories15M training step 3-5% faster in paired runs on 2 cores (20 us about as much, 200 less).
  void spinForNextJob(std::uint64_t seen) const {
    // The claim word carries the current job's generation: it changes when the next job starts.
    const std::uint64_t tag = seen & 0xffffffffu;
    spinWhile([&] { return (work_.load(std::memory_order_acquire) >> 32) == tag; });
  }

  // Watches the caller's job for a little while before sleeping until it is done: the other
  // threads' last tasks usually end within microseconds of the caller's, and sleeping then costs a
  // futex round trip and a reschedule on the critical path. Paired through Trainer (stories15M,
  // steps alternating with and without it in one process): 0.96-0.99 of the time, batch 1 and 4.
  void spinForLastTasks(int tasks) const {
    spinWhile([&] { return finished_.load(std::memory_order_acquire) != tasks; });
  }

  // Spins (pausing between looks) while `pending()` holds, for at most kSpinMicroseconds.
  template <typename Pending>
  static void spinWhile(Pending pending) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicroseconds);
    while (pending() && std::chrono::steady_clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      __asm__ __volatile__("yield");
#endif
    }
  }

  void workerLoop(std::uint64_t seen) {
#if defined(__linux__)
    prctl(PR_SET_NAME, "ane-pool");
#endif
    for (;;) {
      const std::function<void(int)>* task = nullptr;
      int tasks = 0;
      spinForNextJob(seen);
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        task = task_;
        tasks = tasks_;
      }
      if (task != nullptr) drain(seen, task, tasks);
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_, idle_;
  std::vector<std::thread> workers_;
  int size_ = defaultHostThreads();
  bool busy_ = false;
  bool stopping_ = false;
  std::uint64_t generation_ = 0;
  const std::function<void(int)>* task_ = nullptr;
  int tasks_ = 0;
  std::exception_ptr error_;
  std::atomic<std::uint64_t> work_{0};
  std::atomic<int> finished_{0};
  std::atomic<bool> jobRunning_{false};
  std::string spawnError_;
  std::function<bool(int)> spawnHook_;
};

Pool& pool() {
  // Never destroyed: worker threads must not be joined during static destruction at exit.
  static Pool* instance = new Pool();
  return *instance;
}

#if defined(__linux__)
// runInBackground's threads: started on demand up to hostThreads(), at the usual priority. (They
// once ran at SCHED_IDLE, 6% faster stories15M steps on an idle machine; but a thread at that
// priority gets almost no CPU while other processes keep the cores busy, and a run awaiting its
// work stalled for minutes: unprivileged, it could not be raised back once it held the work.)
class BackgroundThreads {
 public:
  // Runs work on a background thread; false when none could start (the caller then runs it).
  bool run(const std::function<void()>& work) {
    Request request{&work, false, nullptr};
    std::unique_lock<std::mutex> lock(mutex_);
    // No idle thread will take it: start one, up to hostThreads(); past that (or when none starts
    // but some run) it waits its turn.
    const bool wantThread = queue_.size() >= idle_ && static_cast<int>(threads_) < hostThreads();
    if (wantThread && !startThread() && threads_ == 0) return false;
    queue_.push_back(&request);
    wake_.notify_one();
    done_.wait(lock, [&] { return request.done; });
    lock.unlock();
    if (request.error) std::rethrow_exception(request.error);
    return true;
  }

  // Runs task(i) for every i in [0, tasks) on the calling background thread and on any idle
  // background thread that joins, each claiming the next unclaimed task. Returns when all are done
  // (rethrowing the first exception). One such job is shared at a time: a second one runs on its
  // caller alone.
  void runTasks(int tasks, const std::function<void(int)>& task) {
    SharedJob job(&task, tasks);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (shared_ != nullptr) {
        job.helpers = -1;  // not shared: runs below on this thread alone
      } else {
        shared_ = &job;
        // A helper: an idle thread, or a new one while fewer than hostThreads() run.
        if (idle_ == 0 && static_cast<int>(threads_) < hostThreads()) startThread();
        wake_.notify_all();
      }
    }
    job.drain();
    if (job.helpers >= 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      shared_ = nullptr;  // every task is claimed: no thread joins from here on
      done_.wait(lock, [&] { return job.helpers == 0; });
    }
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  struct Request {
    const std::function<void()>* work;
    bool done = false;
    std::exception_ptr error;
  };

  struct SharedJob {
    SharedJob(const std::function<void(int)>* work, int count) : task(work), tasks(count) {}
    const std::function<void(int)>* task;
    const int tasks;
    std::atomic<int> next{0};
    int helpers = 0;  // threads inside drain() besides the owner, under mutex_
    std::mutex errorMutex;
    std::exception_ptr error;

    bool unclaimed() const { return next.load(std::memory_order_relaxed) < tasks; }

    void drain() {
      for (int i = next.fetch_add(1); i < tasks; i = next.fetch_add(1)) {
        try {
          (*task)(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(errorMutex);
          if (!error) error = std::current_exception();
        }
      }
    }
  };

  bool startThread() {
    try {
      std::thread([this] { loop(); }).detach();
    } catch (const std::system_error&) {
      return false;
    } catch (const std::bad_alloc&) {
      return false;
    }
    threads_++;
    return true;
  }

  void loop() {
    background = true;
    prctl(PR_SET_NAME, "ane-background");  // (pthread_setname_np would need glibc 2.34 in prebuilds)
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      idle_++;
      wake_.wait(lock, [this] { return !queue_.empty() || (shared_ != nullptr && shared_->unclaimed()); });
      idle_--;
      if (queue_.empty()) {
        // Helps the shared job: its owner waits for helpers to leave before the job goes away.
        SharedJob* job = shared_;
        job->helpers++;
        lock.unlock();
        job->drain();
        lock.lock();
        if (--job->helpers == 0) done_.notify_all();
        continue;
      }
      Request* request = queue_.front();
      queue_.pop_front();
      lock.unlock();
      try {
        (*request->work)();
      } catch (...) {
        request->error = std::current_exception();
      }
      lock.lock();
      request->done = true;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::deque<Request*> queue_;
  SharedJob* shared_ = nullptr;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
};

BackgroundThreads& backgroundThreads() {
  // Never destroyed, like the pool: its threads are detached and sleep until the process ends.
  static BackgroundThreads* instance = new BackgroundThreads();
  return *instance;
}
#endif

}  // namespace

void runInBackground(const std::function<void()>& work) {
#if defined(__linux__)
  if (!background && backgroundThreads().run(work)) return;
#endif
  work();
}

bool inBackground() { return background; }

void yieldToForeground() {
  if (background && pool().jobRunning()) std::this_thread::yield();
}

int defaultHostThreads() {
  if (const char* env = std::getenv("ANE_BRIDGE_THREADS")) {
    const int value = std::atoi(env);
    if (value > 0) return std::min(value, kMaxHostThreads);
  }
  return std::min(cpusAvailable(), kMaxHostThreads);
}

int hostThreads() { return pool().size(); }

void setHostThreads(int threads) {
  pool().resize(threads <= 0 ? defaultHostThreads() : std::min(threads, kMaxHostThreads));
}

std::string lastThreadSpawnError() { return pool().lastSpawnError(); }

void setThreadSpawnHookForTesting(std::function<bool(int)> hook) { pool().setSpawnHook(std::move(hook)); }

void runTasks(int tasks, const std::function<void(int)>& task) {
#if defined(__linux__)
  // Background work spreads over idle background threads only, never onto the pool's.
  if (background && tasks > 1) return backgroundThreads().runTasks(tasks, task);
#endif
  pool().run(tasks, task);
}

void parallelFor(std::ptrdiff_t n, std::ptrdiff_t minChunk, std::ptrdiff_t align,
                 const std::function<void(std::ptrdiff_t, std::ptrdiff_t)>& body) {
  if (n <= 0) return;
  align = std::max<std::ptrdiff_t>(1, align);
  const std::ptrdiff_t byWork = std::max<std::ptrdiff_t>(1, n / std::max<std::ptrdiff_t>(1, minChunk));
  const int parts = static_cast<int>(std::min<std::ptrdiff_t>(hostThreads(), byWork));
  if (parts <= 1) {
    body(0, n);
    return;
  }
  std::ptrdiff_t chunk = (n + parts - 1) / parts;
  chunk = (chunk + align - 1) / align * align;
  runTasks(parts, [&](int part) {
    const std::ptrdiff_t begin = std::min(n, part * chunk);
    const std::ptrdiff_t end = std::min(n, begin + chunk);
    if (begin < end) body(begin, end);
  });
}

}  // namespace kernels
}  // namespace ane
