// Small file helpers with Status errors that name the path.
#ifndef SIGRELAY_CORE_BASE_FILE_UTIL_H_
#define SIGRELAY_CORE_BASE_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes via a temporary file, fsync and rename, so readers see the old
// content or the new, never part; `mode` applies from creation on.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content,
                                 int mode = 0644);

// mkdir -p; FailedPrecondition naming the path when it cannot be made.
absl::Status MakeDirs(const std::string& path);

bool FileExists(const std::string& path);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_FILE_UTIL_H_
