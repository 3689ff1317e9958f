// Rebuilding a file from an incremental on disk, in bounded memory: the old
// version is mapped, the new one is written through a mapping of a staged
// file while a second thread digests (or stores) what is already decoded,
// both trimmed as they go, and the result is checked against the signed
// entry before anyone may use it.
//
//   absl::StatusOr<std::unique_ptr<MappedFile>> old = MappedFile::Open(installed);
//   absl::StatusOr<std::unique_ptr<StagedFile>> out = StagedFile::Create(installed);
//   absl::Status s = RebuildInto(codec, **old, incremental, entry, out->get());
//   if (s.ok()) s = (*out)->Commit();
#ifndef SIGRELAY_CORE_CLIENT_REBUILD_H_
#define SIGRELAY_CORE_CLIENT_REBUILD_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/base/file_util.h"
#include "core/base/mapped_file.h"
#include "core/model/delta_codec.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// Mapped pages a rebuild holds at most (the old version's matched regions
// and the output), beside what was mapped before it began and, for a
// pattern under IncrementalCodec::kBigFile, its whole old version.
inline constexpr uint64_t kRebuildMappedCap = 8 << 20;

// Decodes `incremental` against `old` into `target` (a writable mapping of
// the decoded size) while a second thread hands each finished piece of the
// output, in order and at most 1 MiB at a time, to `consume` (a digest, a
// store): the two overlap instead of one pass after the other. Memory: the
// output's pages are faulted a few MiB ahead of the decoder in one call and
// handed back once consumed and a few MiB behind it; a big pattern's `old`
// is handed back a few MiB behind the decoder too (its matches are near),
// a small one's stays mapped (its matches reach all of it); past the cap,
// the output the consumer has yet to read and then `old` and `also_trim`
// whole go back. The decoder's error first, else the first error `consume`
// returned (it is not called again after one).
absl::Status DecodeAndConsume(const IncrementalCodec& codec, const MappedFile& old,
                              absl::string_view incremental, MappedFile* target,
                              const std::function<absl::Status(absl::string_view)>& consume,
                              std::vector<const MappedFile*> also_trim = {});

// The SHA-256 of a mapped file, read in pieces and trimmed as it goes.
std::string HashMapped(const MappedFile& file);

// Rebuilds `entry`'s file from `old` and `incremental` into `out` (sized
// and written through a mapping; not committed). DataLoss when the
// incremental does not apply or the result is not the signed file;
// FailedPrecondition when it would decode to more than the entry's size.
absl::Status RebuildInto(const IncrementalCodec& codec, const MappedFile& old,
                         absl::string_view incremental, const v1::ComponentEntry& entry,
                         StagedFile* out);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_REBUILD_H_
