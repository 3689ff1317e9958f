// Cancels a client call that makes no progress: a download over a slow but
// working link (a branch office at 256 kbit/s) goes on as long as bytes
// keep arriving; one whose bytes stop is cut after `limit` of silence, not
// judged by an average rate over the whole transfer.
//
//   grpc::ClientContext ctx;
//   StallWatch watch(&ctx, absl::Seconds(60));
//   while (reader->Read(&m)) { watch.Progress(); ... }
//   if (watch.fired()) ... "no bytes for 60s"
#ifndef SIGRELAY_CORE_CLIENT_STALL_WATCH_H_
#define SIGRELAY_CORE_CLIENT_STALL_WATCH_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sigrelay {

// Watches one call from its own thread; destroy it before `ctx`.
class StallWatch {
 public:
  StallWatch(grpc::ClientContext* ctx, absl::Duration limit)
      : ctx_(ctx), limit_(limit), last_(absl::ToUnixNanos(absl::Now())) {
    thread_ = std::thread([this] { Run(); });
  }
  ~StallWatch() {
    done_.Notify();
    thread_.join();
  }
  StallWatch(const StallWatch&) = delete;
  StallWatch& operator=(const StallWatch&) = delete;

  // Bytes arrived: the silence starts again.
  void Progress() { last_ = absl::ToUnixNanos(absl::Now()); }
  // True when the call was cancelled for silence.
  bool fired() const { return fired_; }
  absl::Duration limit() const { return limit_; }

 private:
  void Run() {
    const absl::Duration tick = std::min(limit_ / 4, absl::Seconds(1));
    while (!done_.WaitForNotificationWithTimeout(tick)) {
      if (absl::Now() - absl::FromUnixNanos(last_) > limit_) {
        fired_ = true;
        ctx_->TryCancel();
        return;
      }
    }
  }

  grpc::ClientContext* const ctx_;
  const absl::Duration limit_;
  std::atomic<int64_t> last_;
  std::atomic<bool> fired_{false};
  absl::Notification done_;
  std::thread thread_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_STALL_WATCH_H_
