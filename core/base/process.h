// What every sigrelay daemon does first.
#ifndef SIGRELAY_CORE_BASE_PROCESS_H_
#define SIGRELAY_CORE_BASE_PROCESS_H_

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

#include <algorithm>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace sigrelay {

// Debian's Abseil is built with mutex deadlock detection on: a global graph
// of every mutex, updated on each lock. With one mutex per stream and ten
// thousand streams it took the largest share of a relay's CPU (perf, during
// bench/fanout.sh), so daemons turn it off. Tests keep it.
//
// Every agent is a connection and a descriptor: the soft open-file limit
// (often 1024) is raised to the hard limit, so a node runs out of
// descriptors far later (and a descriptor flood needs far more sockets).
//
// glibc gives each thread that contends an arena of its own (up to 8 per
// core). A chunk (1 MiB) freed in one arena is no use to a thread allocating
// in another, so a relay's gRPC and RocksDB threads each kept their own
// few megabytes of freed chunks. One arena per 4 cores (one here): a
// relay's peak taking a 150 MB pattern's incremental fell 70-78 -> 60-65
// MiB, and its CPU serving ten whole downloads fell too (fewer fresh pages
// faulted); bench/RESULTS.md. Call before any thread starts.
inline void InitDaemonProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mallopt(M_ARENA_MAX, std::max(1, get_nprocs() / 4));
  rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);  // best effort: the old limit still works
  }
}

// Blocks SIGINT and SIGTERM in this thread and every thread started after,
// so WaitForStopSignal takes them instead of a handler in a random thread.
// Call before starting threads.
inline sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Waits for SIGINT or SIGTERM; returns which.
inline int WaitForStopSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

// Chunks (1 MiB) and messages come and go by the thousand and glibc keeps
// what is freed in its arenas (a relay's RSS grew 20 MB per big transfer
// and stayed). Daemons hand free arena pages back now and then (cheap: a
// walk of the arenas). A fixed mmap threshold would return them at once
// but doubled a sync's CPU (measured: bench/RESULTS.md).
inline void ReturnFreeMemory() { malloc_trim(0); }

// Waits for SIGINT or SIGTERM, or for `done` to be notified (then 0).
inline int WaitForStopSignalOr(const sigset_t& set, const absl::Notification& done) {
  const timespec tick{0, 100 * 1000 * 1000};
  while (!done.HasBeenNotified()) {
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig > 0) return sig;
  }
  return 0;
}

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_PROCESS_H_
