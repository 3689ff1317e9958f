#include "core/base/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/base/json.h"

namespace sigrelay {

namespace {

// Indexed by LogLevel.
constexpr const char* kLevelNames[] = {"debug", "info", "warning", "error"};
constexpr const char* kLevelTags[] = {"D", "I", "W", "E"};

std::atomic<bool> json_format{false};
std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

std::string JsonFields(const LogFields* fields) {
  std::string out;
  if (fields == nullptr) return out;
  for (const auto& [key, value] : *fields) {
    absl::StrAppend(&out, ",", JsonQuote(key), ":", JsonQuote(value));
  }
  return out;
}

void Write(LogLevel level, absl::Time now, absl::string_view message,
           const LogFields* fields = nullptr) {
  const int l = static_cast<int>(level);
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", now, absl::UTCTimeZone());
  std::string line =
      json_format.load()
          ? absl::StrCat("{\"ts\":\"", ts, "\",\"level\":\"", kLevelNames[l],
                         "\",\"msg\":", JsonQuote(message), JsonFields(fields), "}\n")
          : absl::StrCat(ts, " ", kLevelTags[l], " ", message, "\n");
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

absl::Status SetLogOptions(const std::string& format, const std::string& level) {
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(absl::StrCat("--log-format ", format, ": give text or json"));
  }
  int l = 0;
  while (l < 4 && level != kLevelNames[l]) ++l;
  if (l == 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-level ", level, ": give debug, info, warning or error"));
  }
  json_format = format == "json";
  min_level = l;
  return absl::OkStatus();
}

void Log(LogLevel level, absl::string_view message, const LogFields& fields) {
  if (static_cast<int>(level) < min_level.load()) return;
  const absl::Time now = absl::Now();
  Repeats& r = LastLine();
  absl::MutexLock lock(&r.mu);
  if (message == r.last && now - r.first_at < absl::Minutes(1)) {
    ++r.suppressed;
    return;
  }
  if (r.suppressed > 0) {
    Write(LogLevel::kInfo, now,
          absl::StrCat("(the line before was repeated ", r.suppressed, " more times)"));
  }
  r.last = std::string(message);
  r.first_at = now;
  r.suppressed = 0;
  Write(level, now, message, &fields);
}

void Log(LogLevel level, absl::string_view message) { Log(level, message, {}); }

}  // namespace sigrelay
