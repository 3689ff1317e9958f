#include "core/serve/transfer_gate.h"

#include <algorithm>

namespace sigrelay {

TransferGate::Admit TransferGate::Enter(uint64_t* ticket, std::function<void()> start) {
  absl::MutexLock lock(&mu_);
  if (stats_.active < max_active_) {
    ++stats_.active;
    ++stats_.admitted;
    stats_.peak_active = std::max(stats_.peak_active, stats_.active);
    return Admit::kNow;
  }
  if (queue_.size() >= max_queued_) {
    ++stats_.refused;
    return Admit::kRefused;
  }
  *ticket = next_ticket_++;
  queue_.push_back({*ticket, std::move(start)});
  stats_.queued = queue_.size();
  stats_.peak_queued = std::max<uint64_t>(stats_.peak_queued, queue_.size());
  return Admit::kQueued;
}

void TransferGate::Leave() {
  std::function<void()> next;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.empty()) {
      --stats_.active;
      return;
    }
    // The slot passes straight to the longest waiting transfer.
    next = std::move(queue_.front().start);
    queue_.pop_front();
    stats_.queued = queue_.size();
    ++stats_.admitted;
  }
  next();
}

bool TransferGate::Cancel(uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const Waiting& w) { return w.ticket == ticket; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  stats_.queued = queue_.size();
  return true;
}

TransferGate::Stats TransferGate::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace sigrelay
