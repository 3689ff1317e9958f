#include "core/base/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"

namespace sigrelay {

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status s = ErrnoError("cannot stat", path);
    close(fd);
    return s;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  void* p = nullptr;
  if (size > 0) {
    p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      absl::Status s = ErrnoError("cannot map", path);
      close(fd);
      return s;
    }
  }
  close(fd);  // the mapping keeps the file
  return std::unique_ptr<MappedFile>(new MappedFile(static_cast<char*>(p), size));
}

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Writable(int fd, const std::string& path,
                                                                 uint64_t size) {
  // Blocks reserved before the mapping is written: a disk that fills up
  // fails here with ENOSPC, not later with SIGBUS on a page fault.
  if (size > 0) {
    if (int err = posix_fallocate(fd, 0, static_cast<off_t>(size)); err != 0) {
      errno = err;
      return ErrnoError("cannot reserve space for", path);
    }
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) return ErrnoError("cannot size", path);
  void* p = nullptr;
  if (size > 0) {
    p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return ErrnoError("cannot map", path);
  }
  return std::unique_ptr<MappedFile>(new MappedFile(static_cast<char*>(p), size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(data_, size_);
}

void MappedFile::Trim() const {
  if (data_ != nullptr) madvise(data_, size_, MADV_DONTNEED);
}

void MappedFile::TrimRange(uint64_t offset, uint64_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  madvise(data_ + offset, std::min(length, size_ - offset), MADV_DONTNEED);
}

void MappedFile::FaultIn(uint64_t offset, uint64_t length) {
  if (data_ == nullptr || offset >= size_) return;
#ifdef MADV_POPULATE_WRITE
  madvise(data_ + offset, std::min(length, size_ - offset), MADV_POPULATE_WRITE);
#endif
}

uint64_t ResidentMappedBytes() {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long size = 0, resident = 0, shared = 0;
  if (sscanf(buf, "%lu %lu %lu", &size, &resident, &shared) != 3) return 0;
  return static_cast<uint64_t>(shared) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::function<void()> TrimAbove(uint64_t cap, std::vector<const MappedFile*> files) {
  return [cap, files = std::move(files)] {
    if (ResidentMappedBytes() <= cap) return;
    for (const MappedFile* f : files) f->Trim();
  };
}

absl::Status WriteInPieces(absl::string_view bytes, ByteSink* sink, size_t piece,
                           uint64_t trim_every, const std::function<void()>& trim) {
  uint64_t since_trim = 0;
  while (!bytes.empty()) {
    const absl::string_view part = bytes.substr(0, piece);
    if (absl::Status s = sink->Write(part); !s.ok()) return s;
    bytes.remove_prefix(part.size());
    since_trim += part.size();
    if (trim && since_trim >= trim_every) {
      trim();
      since_trim = 0;
    }
  }
  if (trim) trim();
  return absl::OkStatus();
}

}  // namespace sigrelay
