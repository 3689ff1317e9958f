// Admission control for transfers: at most `max_active` run at once, the rest
// wait in arrival order up to `max_queued`, beyond that they are refused. A
// burst of ten thousand agents then costs ten thousand queue entries, not ten
// thousand file buffers.
//
//   TransferGate gate(64, 100000);
//   switch (gate.Enter(&ticket, [this] { Begin(); })) { ... }
//   ... transfer ends ...  gate.Leave();
#ifndef SIGRELAY_CORE_SERVE_TRANSFER_GATE_H_
#define SIGRELAY_CORE_SERVE_TRANSFER_GATE_H_

#include <cstdint>
#include <deque>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace sigrelay {

class TransferGate {
 public:
  enum class Admit { kNow, kQueued, kRefused };
  struct Stats {
    uint64_t active = 0, queued = 0, peak_active = 0, peak_queued = 0, refused = 0, admitted = 0;
  };

  TransferGate(size_t max_active, size_t max_queued)
      : max_active_(max_active), max_queued_(max_queued) {}

  // kNow: the caller runs now (and must Leave when done). kQueued: `start`
  // is called later, on the thread of a Leave, and then the caller must
  // Leave when done; *ticket identifies the wait for Cancel. kRefused: full.
  Admit Enter(uint64_t* ticket, std::function<void()> start);

  // A running transfer ended: frees its slot and starts the longest waiting.
  void Leave();

  // Withdraws a waiting transfer; false when it has already been started.
  bool Cancel(uint64_t ticket);

  Stats stats() const;

 private:
  struct Waiting {
    uint64_t ticket;
    std::function<void()> start;
  };
  const size_t max_active_;
  const size_t max_queued_;
  mutable absl::Mutex mu_;
  std::deque<Waiting> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_TRANSFER_GATE_H_
