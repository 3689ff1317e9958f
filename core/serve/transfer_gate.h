// Admission control for transfers: at most `max_active` run at once and at
// most `max_per_peer` of them for one peer (one client connection); the rest
// wait, up to `max_queued` in all, and a freed slot goes to the waiting peers
// in turn (round robin), not in arrival order, so one connection that opens
// a thousand transfers cannot hold every slot nor queue ahead of everyone.
// Beyond the queue they are refused. A burst of ten thousand agents costs
// ten thousand queue entries, not ten thousand file buffers.
//
//   TransferGate gate(64, 100000, 8);
//   switch (gate.Enter(peer, &ticket, [this] { Begin(); })) { ... }
//   ... transfer ends ...  gate.Leave(peer);
#ifndef SIGRELAY_CORE_SERVE_TRANSFER_GATE_H_
#define SIGRELAY_CORE_SERVE_TRANSFER_GATE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace sigrelay {

// Thread-safe.
class TransferGate {
 public:
  enum class Admit { kNow, kQueued, kRefused };
  struct Stats {
    uint64_t active = 0, queued = 0, peak_active = 0, peak_queued = 0, refused = 0, admitted = 0;
  };

  TransferGate(size_t max_active, size_t max_queued, size_t max_per_peer = SIZE_MAX)
      : max_active_(max_active), max_queued_(max_queued), max_per_peer_(max_per_peer) {}

  // kNow: the caller runs now (and must Leave when done). kQueued: `start`
  // is called later, on the thread of a Leave, and then the caller must
  // Leave when done; *ticket identifies the wait for Cancel. kRefused: full.
  Admit Enter(const std::string& peer, uint64_t* ticket, std::function<void()> start);

  // A running transfer of `peer` ended: frees its slot and starts the next
  // waiting transfer of the next peer in turn that may run one.
  void Leave(const std::string& peer);

  // Withdraws a waiting transfer; false when it has already been started.
  bool Cancel(uint64_t ticket);

  Stats stats() const;

 private:
  struct Waiting {
    uint64_t ticket;
    std::function<void()> start;
  };
  struct Peer {
    size_t active = 0;
    std::deque<Waiting> waiting;
  };
  // The next waiting transfer that may run, taken off its queue, or false.
  bool TakeNextLocked(std::string* peer, Waiting* next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetIfIdleLocked(const std::string& peer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_active_;
  const size_t max_queued_;
  const size_t max_per_peer_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> turn_ ABSL_GUARDED_BY(mu_);  // peers with waiting transfers, in turn
  absl::flat_hash_map<uint64_t, std::string> ticket_peer_ ABSL_GUARDED_BY(mu_);
  size_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_TRANSFER_GATE_H_
