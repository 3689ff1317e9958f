#include "core/client/verifying_writer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace sigrelay {

ExpectedBody ExpectedBody::Full(const v1::ComponentEntry& entry) {
  ExpectedBody e;
  e.kind = v1::PAYLOAD_KIND_FULL;
  e.component = entry.name();
  e.version = entry.version();
  e.size = entry.size();
  e.sha256 = entry.sha256();
  e.chunk_size = entry.chunk_size();
  e.chunk_sha256.assign(entry.chunk_sha256().begin(), entry.chunk_sha256().end());
  return e;
}

ExpectedBody ExpectedBody::Incremental(const v1::ComponentEntry& entry,
                                       const v1::IncrementalEntry& incremental) {
  ExpectedBody e;
  e.kind = v1::PAYLOAD_KIND_INCREMENTAL;
  e.component = entry.name();
  e.from_version = incremental.from_version();
  e.version = entry.version();
  e.size = incremental.size();
  e.sha256 = incremental.sha256();
  return e;
}

ExpectedBody ExpectedBody::Claimed(const v1::ComponentEntry& entry, const v1::FetchHeader& header) {
  if (header.kind() == v1::PAYLOAD_KIND_INCREMENTAL) {
    for (const v1::IncrementalEntry& ie : entry.incrementals()) {
      if (ie.from_version() == header.from_version()) return Incremental(entry, ie);
    }
  }
  return Full(entry);
}

std::string ExpectedBody::Describe() const {
  if (kind == v1::PAYLOAD_KIND_INCREMENTAL) {
    return absl::StrCat("incremental ", component, " v_", from_version, ".", version);
  }
  return absl::StrCat(component, " ", version);
}

VerifyingWriter::VerifyingWriter(ExpectedBody want, uint64_t offset, ByteSink* sink)
    : want_(std::move(want)), offset_(offset), sink_(sink), received_(offset), passed_(offset) {
  if (offset == 0) whole_ = std::make_unique<Sha256>();
}

absl::Status VerifyingWriter::Pass(absl::string_view data) {
  if (whole_) whole_->Update(data);
  passed_ += data.size();
  return sink_->Write(data);
}

absl::Status VerifyingWriter::Write(absl::string_view data) {
  if (!failed_.ok()) return failed_;
  if (data.empty()) return absl::OkStatus();
  if (received_ + data.size() > want_.size) {
    failed_ = absl::DataLossError(absl::StrCat("sent more than the ", want_.size, " bytes of ",
                                               want_.Describe(), " the signed manifest allows"));
    return failed_;
  }
  received_ += data.size();
  if (!want_.signed_chunks()) return Pass(data);
  // Whole signed chunks only: each checked before it passes.
  const uint64_t cs = want_.chunk_size;
  while (!data.empty()) {
    const uint64_t chunk_end = std::min<uint64_t>((passed_ / cs + 1) * cs, want_.size);
    const uint64_t need = chunk_end - passed_ - pending_.size();
    const absl::string_view part = data.substr(0, need);
    data.remove_prefix(part.size());
    absl::string_view whole;
    if (pending_.empty() && part.size() == need) {
      whole = part;  // a whole chunk in one piece: no copy
    } else {
      pending_.append(part.data(), part.size());
      if (part.size() < need) break;
      whole = pending_;
    }
    const uint64_t index = passed_ / cs;
    if (index >= want_.chunk_sha256.size() || Sha256::Of(whole) != want_.chunk_sha256[index]) {
      pending_.clear();
      failed_ = absl::DataLossError(absl::StrCat("chunk ", index, " of ", want_.Describe(),
                                                 " does not match the signed manifest"));
      return failed_;
    }
    absl::Status s = Pass(whole);
    pending_.clear();
    if (!s.ok()) {
      failed_ = s;
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyingWriter::Finish() {
  if (!failed_.ok()) return failed_;
  if (received_ != want_.size || passed_ != want_.size) {
    return absl::DataLossError(absl::StrCat("transfer of ", want_.Describe(), " ended early: got ",
                                            received_, " of ", want_.size, " bytes"));
  }
  if (whole_ && whole_->Finish() != want_.sha256) {
    whole_.reset();
    return absl::DataLossError(
        absl::StrCat(want_.Describe(), " as received does not match its signed digest"));
  }
  whole_.reset();
  return absl::OkStatus();
}

}  // namespace sigrelay
