// What every sigrelay daemon does first.
#ifndef SIGRELAY_CORE_PROCESS_H_
#define SIGRELAY_CORE_PROCESS_H_

#include "absl/synchronization/mutex.h"

namespace sigrelay {

// Debian's Abseil is built with mutex deadlock detection on: a global graph
// of every mutex, updated on each lock. With one mutex per stream and ten
// thousand streams it took the largest share of a relay's CPU (perf, during
// bench/fanout.sh), so daemons turn it off. Tests keep it.
inline void InitDaemonProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_PROCESS_H_
