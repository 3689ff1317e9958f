// The one logging path of every sigrelay binary: one line per event on
// stderr, prefixed with the UTC time and the level.
//
//   Log(LogLevel::kWarning, absl::StrCat("upstream ", addr, " unreachable"));
#ifndef SIGRELAY_CORE_BASE_LOG_H_
#define SIGRELAY_CORE_BASE_LOG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Thread-safe; a line is written with one write(2) so lines never interleave.
// Lines below the level set by SetLogOptions are dropped.
void Log(LogLevel level, absl::string_view message);

// An event with its fields: in json format they are keys of the line's
// object beside "event" (the message stays in "msg"); text shows the
// message only, which says the same in words.
//
//   Log(LogLevel::kInfo, "published virus 5 ...",
//       {{"event", "publish"}, {"component", "virus"}, {"version", "5"}});
using LogFields = std::vector<std::pair<std::string, std::string>>;
void Log(LogLevel level, absl::string_view message, const LogFields& fields);

// --log-format text|json and --log-level debug|info|warning|error. Text:
// "2026-01-02T03:04:05.678Z I message"; json: one object per line,
// {"ts":"...","level":"info","msg":"..."}. InvalidArgument naming the
// accepted values otherwise (nothing changed).
absl::Status SetLogOptions(const std::string& format, const std::string& level);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_LOG_H_
