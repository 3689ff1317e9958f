#include "core/serve/stall_sweeper.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/log.h"

namespace sigrelay {

StallSweeper::StallSweeper(absl::Duration timeout) : timeout_(timeout) {
  if (timeout_ > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

StallSweeper::~StallSweeper() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void StallSweeper::Track(const std::shared_ptr<Guard>& guard) {
  if (timeout_ <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  tracked_.insert(guard);
}

void StallSweeper::Untrack(const std::shared_ptr<Guard>& guard) {
  if (timeout_ <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  tracked_.erase(guard);
}

void StallSweeper::Loop() {
  const absl::Duration period = std::clamp(timeout_ / 4, absl::Milliseconds(50), absl::Seconds(1));
  mu_.Lock();
  while (!stop_) {
    mu_.AwaitWithTimeout(absl::Condition(&stop_), period);
    if (stop_) break;
    std::vector<std::shared_ptr<Guard>> now(tracked_.begin(), tracked_.end());
    mu_.Unlock();
    const int64_t limit = absl::GetCurrentTimeNanos() - absl::ToInt64Nanoseconds(timeout_);
    for (const std::shared_ptr<Guard>& g : now) {
      const int64_t since = g->writing_since_ns_.load();
      if (since == 0 || since > limit) continue;
      // Under the guard's lock: the reactor cannot finish (and free the
      // context) while it is cancelled.
      absl::MutexLock lock(&g->mu_);
      if (!g->alive_ || g->cancelled_) continue;
      g->cancelled_ = true;
      Log(LogLevel::kWarning,
          absl::StrCat("cancelled a transfer to ", g->ctx_->peer(), ": no write progress for ",
                       absl::FormatDuration(timeout_),
                       " (the peer stopped reading); its slot goes to the next in line"));
      g->ctx_->TryCancel();
      ++cancelled_;
    }
    mu_.Lock();
  }
  mu_.Unlock();
}

}  // namespace sigrelay
