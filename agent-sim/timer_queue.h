// Runs closures at given times on one thread: pacing for thousands of
// simulated agents (ramp, jitter, backoff) without a thread per agent.
#ifndef SIGRELAY_AGENT_SIM_TIMER_QUEUE_H_
#define SIGRELAY_AGENT_SIM_TIMER_QUEUE_H_

#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace sigrelay {

class TimerQueue {
 public:
  TimerQueue() : thread_([this] { Run(); }) {}
  ~TimerQueue() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  // Runs `fn` on the timer thread once `delay` has passed. Closures still
  // pending at destruction are dropped.
  void After(absl::Duration delay, std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    queue_.push({absl::Now() + delay, seq_++, std::move(fn)});
  }

 private:
  struct Item {
    absl::Time when;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Item& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };

  void Run() {
    absl::MutexLock lock(&mu_);
    while (!stopping_) {
      if (queue_.empty()) {
        mu_.AwaitWithTimeout(absl::Condition(this, &TimerQueue::Wake), absl::Milliseconds(100));
        continue;
      }
      absl::Time now = absl::Now();
      if (queue_.top().when > now) {
        mu_.AwaitWithTimeout(absl::Condition(this, &TimerQueue::Wake),
                             std::min(queue_.top().when - now, absl::Milliseconds(20)));
        continue;
      }
      std::function<void()> fn = std::move(const_cast<Item&>(queue_.top()).fn);
      queue_.pop();
      mu_.Unlock();
      fn();
      mu_.Lock();
    }
  }
  bool Wake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; }

  absl::Mutex mu_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_AGENT_SIM_TIMER_QUEUE_H_
