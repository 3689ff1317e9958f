// Time enters sigrelay through this interface so that expiry, schedules and
// backoff are testable without sleeping.
#ifndef SIGRELAY_CORE_BASE_CLOCK_H_
#define SIGRELAY_CORE_BASE_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sigrelay {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The wall clock. Thread-safe.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static RealClock* Get() {
    static RealClock clock;
    return &clock;
  }
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_CLOCK_H_
