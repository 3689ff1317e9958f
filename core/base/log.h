// The one logging path of every sigrelay binary: one line per event on
// stderr, prefixed with the UTC time and the level.
//
//   Log(LogLevel::kWarning, absl::StrCat("upstream ", addr, " unreachable"));
#ifndef SIGRELAY_CORE_BASE_LOG_H_
#define SIGRELAY_CORE_BASE_LOG_H_

#include "absl/strings/string_view.h"

namespace sigrelay {

enum class LogLevel { kInfo, kWarning, kError };

// Thread-safe; a line is written with one write(2) so lines never interleave.
void Log(LogLevel level, absl::string_view message);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_LOG_H_
