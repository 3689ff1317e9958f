// Files mapped into memory, for work on files bigger than the memory a node
// should use: the incremental codec reads an old version and writes a new
// one through mappings, and gives resident pages back as it goes (Trim), so
// a 150 MB pattern costs the codec's own state, not 150 MB of RSS. Pages
// given back stay in the kernel's page cache; touching them again is a
// minor fault, not a disk read.
//
//   absl::StatusOr<std::unique_ptr<MappedFile>> old = MappedFile::Open(path);
//   codec.Encode((*old)->view(), ..., /*trim=*/[&] { (*old)->Trim(); });
//
// A mapped file must not be truncated by anyone while mapped (the reader
// would fault); sigrelay maps only files it wrote itself or installs by
// rename, never truncating in place.
#ifndef SIGRELAY_CORE_BASE_MAPPED_FILE_H_
#define SIGRELAY_CORE_BASE_MAPPED_FILE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/byte_sink.h"

namespace sigrelay {

class MappedFile {
 public:
  // `path` read-only; an empty file is an empty view. NotFound,
  // PermissionDenied or FailedPrecondition naming the path.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  // Sizes the open file `fd` to `size` bytes, its blocks reserved, and maps
  // it for writing: what is written through data() is the file's content.
  // ResourceExhausted when the disk has no room for it. `path` is for
  // errors.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Writable(int fd, const std::string& path,
                                                              uint64_t size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  absl::string_view view() const { return absl::string_view(data_, size_); }
  char* data() { return data_; }  // writable mappings only
  uint64_t size() const { return size_; }

  // Drops this process's resident pages of the mapping (MADV_DONTNEED).
  // Written pages of a writable mapping are already the file's: nothing is
  // lost. Thread-safe.
  void Trim() const;
  // The same for the pages of [offset, offset + length) (page-aligned
  // offset; the length is cut at the end of the mapping).
  void TrimRange(uint64_t offset, uint64_t length) const;
  // Faults the pages of [offset, offset + length) in, writable, in one call
  // (MADV_POPULATE_WRITE) rather than a fault per page as they are first
  // written; a no-op where the kernel cannot. Writable mappings only.
  void FaultIn(uint64_t offset, uint64_t length);

 private:
  MappedFile(char* data, uint64_t size) : data_(data), size_(size) {}
  char* const data_;
  const uint64_t size_;
};

// Bytes of mapped files resident in this process now (/proc/self/statm's
// shared pages, the executable's and libraries' among them): cheap enough
// to read every few milliseconds.
uint64_t ResidentMappedBytes();

// A trim callback for the codec that hands back the pages of `files` only
// when the process's resident mapped pages pass `cap` bytes: cheap when
// under it, so it can be offered every few milliseconds. Thread-safe.
std::function<void()> TrimAbove(uint64_t cap, std::vector<const MappedFile*> files);

// Feeds `bytes` to `sink` in pieces of `piece` bytes, calling `trim` (when
// given) after every `trim_every` bytes: copying a mapped file into a store
// or a socket without holding it resident.
absl::Status WriteInPieces(absl::string_view bytes, ByteSink* sink, size_t piece,
                           uint64_t trim_every, const std::function<void()>& trim);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_MAPPED_FILE_H_
