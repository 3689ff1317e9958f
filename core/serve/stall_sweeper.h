// Cancels transfers whose write makes no progress for a while (a peer that
// stopped reading but keeps its connection), so a stuck agent cannot hold a
// transfer slot, and with it everybody behind it, forever.
//
//   StallSweeper sweeper(absl::Seconds(60));
//   auto guard = sweeper.NewGuard(ctx);   // per transfer
//   sweeper.Track(guard);                 // while it holds a slot
//   guard->WriteStarted(); ... StartWrite(...);
//   ... OnWriteDone: guard->WriteEnded();
//   ... slot freed: sweeper.Untrack(guard);  OnDone: StallSweeper::Dead(*guard);
#ifndef SIGRELAY_CORE_SERVE_STALL_SWEEPER_H_
#define SIGRELAY_CORE_SERVE_STALL_SWEEPER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sigrelay {

class StallSweeper {
 public:
  class Guard {
   public:
    explicit Guard(grpc::CallbackServerContext* ctx) : ctx_(ctx) {}
    void WriteStarted() { writing_since_ns_ = absl::GetCurrentTimeNanos(); }
    void WriteEnded() { writing_since_ns_ = 0; }

   private:
    friend class StallSweeper;
    grpc::CallbackServerContext* const ctx_;
    std::atomic<int64_t> writing_since_ns_{0};  // 0: no write in flight
    absl::Mutex mu_;
    bool alive_ ABSL_GUARDED_BY(mu_) = true;
    bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  };

  // `timeout` zero or less: never cancels (and starts no thread).
  explicit StallSweeper(absl::Duration timeout);
  ~StallSweeper();

  static std::shared_ptr<Guard> NewGuard(grpc::CallbackServerContext* ctx) {
    return std::make_shared<Guard>(ctx);
  }
  void Track(const std::shared_ptr<Guard>& guard);
  void Untrack(const std::shared_ptr<Guard>& guard);
  // The reactor is done: its context must not be touched again.
  static void Dead(Guard& guard) {
    absl::MutexLock lock(&guard.mu_);
    guard.alive_ = false;
  }
  uint64_t cancelled() const { return cancelled_.load(); }

 private:
  void Loop();

  const absl::Duration timeout_;
  std::atomic<uint64_t> cancelled_{0};
  absl::Mutex mu_;
  absl::flat_hash_set<std::shared_ptr<Guard>> tracked_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_STALL_SWEEPER_H_
