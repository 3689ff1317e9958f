// A clock tests move by hand: expiry, schedules and backoff without sleeping.
#ifndef SIGRELAY_TESTS_TESTUTIL_FAKE_CLOCK_H_
#define SIGRELAY_TESTS_TESTUTIL_FAKE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "core/base/clock.h"

namespace sigrelay::testing {

// Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_FAKE_CLOCK_H_
