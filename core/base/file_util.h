// Small file helpers with Status errors that name the path.
#ifndef SIGRELAY_CORE_BASE_FILE_UTIL_H_
#define SIGRELAY_CORE_BASE_FILE_UTIL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/byte_sink.h"

namespace sigrelay {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes via a temporary file, fsync and rename, so readers see the old
// content or the new, never part; `mode` applies from creation on.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content,
                                 int mode = 0644);

// mkdir -p; FailedPrecondition naming the path when it cannot be made.
absl::Status MakeDirs(const std::string& path);

bool FileExists(const std::string& path);

// The values of a repeated flag `--FLAG COMPONENT=NAME` (agent --file,
// --http-tree-name): component -> NAME, a plain file name (no path
// separator, no "..", not hidden). InvalidArgument naming the flag, the
// value and the remedy for a malformed value, a bad name, a component given
// twice or a name given to two components.
absl::StatusOr<std::map<std::string, std::string>> ParseFileNames(
    absl::string_view flag, const std::vector<std::string>& values);

// fsync of a directory, so the renames in it survive a power loss (best
// effort: a directory that cannot be opened is left as it is).
void SyncDir(const std::string& dir);

// Makes `path` (mkdir -p) and removes every file directly in it: a scratch
// directory whose leftovers from a crash are of no use. The number removed.
absl::StatusOr<int> EmptyDir(const std::string& path);

// The error of a failed system call `what` on `path`, from errno:
// NotFound, PermissionDenied, ResourceExhausted for a full disk or quota
// ("... : No space left on device"), FailedPrecondition otherwise.
absl::Status ErrnoError(absl::string_view what, const std::string& path);

// A file written under a hidden temporary name beside its final one
// ("DIR/.NAME.tmp.PID.N": a scanner loading every file of DIR never takes
// it), then synced and renamed into place, so a reader sees the old file or
// the new one, never a part. Removed unless committed. Not thread-safe.
//
//   absl::StatusOr<std::unique_ptr<StagedFile>> f = StagedFile::Create(path);
//   (*f)->Write(bytes); ...
//   absl::Status s = (*f)->Commit();
class StagedFile final : public ByteSink {
 public:
  static absl::StatusOr<std::unique_ptr<StagedFile>> Create(const std::string& final_path,
                                                            int mode = 0644);
  ~StagedFile() override;
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;

  absl::Status Write(absl::string_view data) override;
  // fsync, rename onto the final name, fsync the directory.
  absl::Status Commit() { return CommitAs(final_path_); }
  // The same onto another name (in the same file system).
  absl::Status CommitAs(const std::string& path);

  int fd() const { return fd_; }
  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  uint64_t written() const { return written_; }

 private:
  StagedFile(std::string final_path, std::string temp_path, int fd, int mode)
      : final_path_(std::move(final_path)),
        temp_path_(std::move(temp_path)),
        fd_(fd),
        mode_(mode) {}
  const std::string final_path_;
  const std::string temp_path_;
  int fd_;
  const int mode_;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_FILE_UTIL_H_
