#include "core/base/log.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sigrelay {

namespace {

void Write(const char* tag, absl::Time now, absl::string_view message) {
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ ", now, absl::UTCTimeZone()), tag, " ", message, "\n");
  // One write per line; a short write on stderr is not worth a retry loop.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

// The same line again within a minute is counted, not written: a peer
// repeating a failure cannot flood the log.
struct Repeats {
  absl::Mutex mu;
  std::string last ABSL_GUARDED_BY(mu);
  absl::Time first_at ABSL_GUARDED_BY(mu);
  uint64_t suppressed ABSL_GUARDED_BY(mu) = 0;
};

Repeats& LastLine() {
  static Repeats* repeats = new Repeats;
  return *repeats;
}

}  // namespace

void Log(LogLevel level, absl::string_view message) {
  const char* tag = level == LogLevel::kInfo ? "I" : level == LogLevel::kWarning ? "W" : "E";
  const absl::Time now = absl::Now();
  Repeats& r = LastLine();
  absl::MutexLock lock(&r.mu);
  if (message == r.last && now - r.first_at < absl::Minutes(1)) {
    ++r.suppressed;
    return;
  }
  if (r.suppressed > 0) {
    Write("I", now, absl::StrCat("(the line before was repeated ", r.suppressed, " more times)"));
  }
  r.last = std::string(message);
  r.first_at = now;
  r.suppressed = 0;
  Write(tag, now, message);
}

}  // namespace sigrelay
