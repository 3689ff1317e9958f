#include "core/base/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sigrelay {
absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  int err = errno;
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat(msg, " (free some space)"));
  }
  return absl::FailedPreconditionError(msg);
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = ErrnoError("cannot read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::StatusOr<std::unique_ptr<StagedFile>> StagedFile::Create(const std::string& final_path,
                                                               int mode) {
  static std::atomic<uint64_t> counter{0};
  const size_t slash = final_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : final_path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? final_path : final_path.substr(slash + 1);
  const std::string temp = absl::StrCat(dir, ".", name, ".tmp.", getpid(), ".", ++counter);
  int fd = open(temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("cannot create", temp);
  return std::unique_ptr<StagedFile>(new StagedFile(final_path, temp, fd, mode));
}

StagedFile::~StagedFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(temp_path_.c_str());
}

absl::Status StagedFile::Write(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(temp_path_, " is closed"));
  while (!data.empty()) {
    ssize_t n = write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot write", temp_path_);
    data.remove_prefix(static_cast<size_t>(n));
    written_ += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status StagedFile::CommitAs(const std::string& final_path) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(temp_path_, " is closed"));
  if (fchmod(fd_, mode_) != 0 || fsync(fd_) != 0) return ErrnoError("cannot sync", temp_path_);
  if (close(fd_) != 0) {
    fd_ = -1;
    return ErrnoError("cannot close", temp_path_);
  }
  fd_ = -1;
  if (rename(temp_path_.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("cannot rename into", final_path);
  }
  committed_ = true;
  // The rename itself survives a power loss once the directory is synced.
  const size_t slash = final_path.rfind('/');
  SyncDir(slash == std::string::npos ? "." : final_path.substr(0, slash + 1));
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ParseFileNames(
    absl::string_view flag, const std::vector<std::string>& values) {
  std::map<std::string, std::string> out;
  std::map<std::string, std::string> owner;
  for (const std::string& v : values) {
    const size_t eq = v.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " ", v, ": give COMPONENT=NAME, e.g. company-sigs=company.ndb"));
    }
    const std::string component = v.substr(0, eq), name = v.substr(eq + 1);
    if (name.empty() || absl::StartsWith(name, ".") || absl::StrContains(name, "/") ||
        absl::StrContains(name, "..") || name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " ", v,
                       ": give a plain file name (no path separator, no \"..\", not hidden), e.g. ",
                       component, "=", component, ".ndb"));
    }
    if (!out.emplace(component, name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " names ", component, " twice; give one name per component"));
    }
    if (auto [it, fresh] = owner.emplace(name, component); !fresh) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", it->second, " and ",
                                                     component, " both have the name ", name,
                                                     "; give each component its own"));
    }
  }
  return out;
}

void SyncDir(const std::string& dir) {
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view content, int mode) {
  absl::StatusOr<std::unique_ptr<StagedFile>> file = StagedFile::Create(path, mode);
  if (!file.ok()) return file.status();
  if (absl::Status s = (*file)->Write(content); !s.ok()) return s;
  return (*file)->Commit();
}

absl::Status MakeDirs(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    absl::Status s = MakeDirs(path.substr(0, slash));
    if (!s.ok()) return s;
  }
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("cannot create directory", path);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> EmptyDir(const std::string& path) {
  if (absl::Status s = MakeDirs(path); !s.ok()) return s;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return ErrnoError("cannot list", path);
  int removed = 0;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (unlink(absl::StrCat(path, "/", name).c_str()) == 0) ++removed;
  }
  closedir(dir);
  return removed;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace sigrelay
