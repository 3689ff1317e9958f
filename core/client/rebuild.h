// Rebuilding a file from an incremental on disk, in bounded memory: the old
// version is mapped, the new one is written through a mapping of a staged
// file, both trimmed as the codec goes, and the result is checked against
// the signed entry before anyone may use it.
//
//   absl::StatusOr<std::unique_ptr<MappedFile>> old = MappedFile::Open(installed);
//   absl::StatusOr<std::unique_ptr<StagedFile>> out = StagedFile::Create(installed);
//   absl::Status s = RebuildInto(codec, **old, incremental, entry, out->get());
//   if (s.ok()) s = (*out)->Commit();
#ifndef SIGRELAY_CORE_CLIENT_REBUILD_H_
#define SIGRELAY_CORE_CLIENT_REBUILD_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/base/file_util.h"
#include "core/base/mapped_file.h"
#include "core/model/delta_codec.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// Mapped pages a rebuild holds at most (the old version's matched regions
// and the output), beside what was mapped before it began.
inline constexpr uint64_t kRebuildMappedCap = 8 << 20;

// The SHA-256 of a mapped file, read in pieces and trimmed as it goes.
std::string HashMapped(const MappedFile& file);

// Rebuilds `entry`'s file from `old` and `incremental` into `out` (sized
// and written through a mapping; not committed). DataLoss when the
// incremental does not apply or the result is not the signed file;
// FailedPrecondition when it would decode to more than the entry's size.
absl::Status RebuildInto(const IncrementalCodec& codec, const MappedFile& old,
                         absl::string_view incremental, const v1::ComponentEntry& entry,
                         StagedFile* out);

// DataLoss unless `file` is the signed file of `entry` (size and digest).
absl::Status VerifyMapped(const MappedFile& file, const v1::ComponentEntry& entry);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_REBUILD_H_
