#include "core/client/rebuild.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/base/digest.h"

namespace sigrelay {

std::string HashMapped(const MappedFile& file) {
  Sha256 sha;
  const absl::string_view all = file.view();
  uint64_t since_trim = 0;
  for (size_t at = 0; at < all.size(); at += 1 << 20) {
    const absl::string_view part = all.substr(at, 1 << 20);
    sha.Update(part);
    since_trim += part.size();
    if (since_trim >= IncrementalCodec::kTrimEvery) {
      file.Trim();
      since_trim = 0;
    }
  }
  file.Trim();
  return sha.Finish();
}

absl::Status VerifyMapped(const MappedFile& file, const v1::ComponentEntry& entry) {
  if (file.size() != entry.size() || HashMapped(file) != entry.sha256()) {
    return absl::DataLossError(
        absl::StrCat(entry.name(), " ", entry.version(), " does not match its signed digest"));
  }
  return absl::OkStatus();
}

absl::Status RebuildInto(const IncrementalCodec& codec, const MappedFile& old,
                         absl::string_view incremental, const v1::ComponentEntry& entry,
                         StagedFile* out) {
  absl::StatusOr<uint64_t> size = IncrementalCodec::DecodedSize(incremental, entry.size());
  if (!size.ok()) return size.status();
  if (*size != entry.size()) {
    return absl::DataLossError(absl::StrCat("incremental for ", entry.name(), " ", entry.version(),
                                            " decodes to ", *size,
                                            " bytes where the signed file has ", entry.size()));
  }
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped =
      MappedFile::Writable(out->fd(), out->temp_path(), *size);
  if (!mapped.ok()) return mapped.status();
  MappedFile* target = mapped->get();
  absl::Status s =
      codec.DecodeInto(old.view(), incremental, target->data(), *size,
                       TrimAbove(ResidentMappedBytes() + kRebuildMappedCap, {&old, target}));
  if (!s.ok()) return s;
  return VerifyMapped(*target, entry);
}

}  // namespace sigrelay
