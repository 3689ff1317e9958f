#include "core/client/fetch_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/base/digest.h"
#include "core/base/grpc_status.h"
#include "core/client/stall_watch.h"

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

SignedChunks::SignedChunks(ExpectedBody expect, uint64_t offset)
    : expect_(std::move(expect)), verified_(offset) {}

absl::StatusOr<std::string> SignedChunks::Add(absl::string_view data) {
  pending_.append(data.data(), data.size());
  std::string out;
  const uint64_t cs = expect_.chunk_size;
  while (verified_ < expect_.size) {
    const uint64_t want = std::min<uint64_t>(cs, expect_.size - verified_);
    if (pending_.size() < want) break;
    const uint64_t index = verified_ / cs;
    if (index >= expect_.chunk_sha256.size() ||
        Sha256::Of(absl::string_view(pending_).substr(0, want)) != expect_.chunk_sha256[index]) {
      pending_.clear();
      return absl::DataLossError(absl::StrCat("chunk ", index, " of ", expect_.Describe(),
                                              " does not match the signed manifest"));
    }
    out.append(pending_, 0, want);
    pending_.erase(0, want);
    verified_ += want;
  }
  if (verified_ >= expect_.size && !pending_.empty()) {
    pending_.clear();
    return absl::DataLossError(absl::StrCat("sent bytes past the end of ", expect_.Describe()));
  }
  return out;
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

FetchStreamCheck::FetchStreamCheck(std::optional<ExpectedBody> expect, uint64_t offset)
    : expect_(std::move(expect)), offset_(offset), received_(offset) {}

absl::StatusOr<absl::string_view> FetchStreamCheck::Take(const v1::FetchResponse& message) {
  if (message.has_header()) {
    if (has_header_) return absl::DataLossError("sent a second Fetch header in one stream");
    const v1::FetchHeader& h = message.header();
    if (h.offset() != offset_) {
      return absl::DataLossError(
          absl::StrCat("answered offset ", offset_, " with data from offset ", h.offset()));
    }
    if (expect_) {
      const ExpectedBody& e = *expect_;
      const bool same =
          h.kind() == e.kind && h.version() == e.version && h.size() == e.size &&
          h.sha256() == e.sha256 &&
          (e.kind != v1::PAYLOAD_KIND_INCREMENTAL || h.from_version() == e.from_version);
      if (!same) {
        return absl::DataLossError(absl::StrCat(
            "offered ", h.kind() == v1::PAYLOAD_KIND_INCREMENTAL ? "an incremental" : "a file",
            " of ", h.size(), " bytes (version ", h.version(), ") where the signed manifest names ",
            e.Describe(), " of ", e.size, " bytes"));
      }
    }
    header_ = h;
    has_header_ = true;
  }
  const std::string& data = message.data();
  if (data.empty()) return absl::string_view();
  if (!has_header_) return absl::DataLossError("sent data before the Fetch header");
  const uint64_t bound = expect_ ? expect_->size : header_.size();
  if (received_ + data.size() > bound) {
    return absl::DataLossError(
        absl::StrCat("sent more than the ", bound, " bytes ",
                     expect_ ? "the signed manifest allows" : "its header announced"));
  }
  // A message that is one whole chunk is checked before it is kept.
  const uint64_t chunk = header_.chunk_size();
  if (chunk > 0 && received_ % chunk == 0) {
    const uint64_t index = received_ / chunk;
    if (index < static_cast<uint64_t>(header_.chunk_sha256_size()) &&
        data.size() == std::min<uint64_t>(chunk, bound - received_) &&
        Sha256::Of(data) != header_.chunk_sha256(static_cast<int>(index))) {
      return absl::DataLossError(
          absl::StrCat("chunk ", index, " of ", header_.component(), " does not match its digest"));
    }
  }
  received_ += data.size();
  return absl::string_view(data);
}

absl::Status FetchStreamCheck::Finish() const {
  if (!has_header_) return absl::DataLossError("the Fetch stream ended without a header");
  const uint64_t bound = expect_ ? expect_->size : header_.size();
  if (received_ != bound) {
    return absl::DataLossError(
        absl::StrCat("transfer ended early: got ", received_, " of ", bound, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status StalledError(const StallWatch& watch, uint64_t received) {
  return absl::DeadlineExceededError(absl::StrCat(
      "no bytes for ", absl::FormatDuration(watch.limit()), " after ", received,
      " bytes: the transfer stalled and was cut (a slow link that keeps moving is not cut)"));
}

absl::StatusOr<FetchedBody> FetchToMemory(v1::UpdateService::StubInterface* stub,
                                          const v1::FetchRequest& request,
                                          const std::optional<ExpectedBody>& expect,
                                          absl::Time deadline, absl::Duration stall_timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  FetchStreamCheck check(expect, request.offset());
  FetchedBody out;
  if (expect) out.data.reserve(expect->size - std::min(expect->size, request.offset()));
  std::optional<StallWatch> watch;
  if (stall_timeout > absl::ZeroDuration()) watch.emplace(&ctx, stall_timeout);
  std::unique_ptr<grpc::ClientReaderInterface<v1::FetchResponse>> reader =
      stub->Fetch(&ctx, request);
  v1::FetchResponse message;
  absl::Status problem;
  while (problem.ok() && reader->Read(&message)) {
    if (watch) watch->Progress();
    absl::StatusOr<absl::string_view> keep = check.Take(message);
    if (!keep.ok()) {
      problem = keep.status();
    } else if (out.data.empty() && keep->size() == message.data().size() &&
               message.data().size() > (1 << 16)) {
      out.data.swap(*message.mutable_data());  // one big message: no copy
    } else {
      out.data.append(keep->data(), keep->size());
    }
  }
  if (!problem.ok()) {
    ctx.TryCancel();
    grpc::Status ignored = reader->Finish();  // the stream is refused either way
    (void)ignored;
    return problem;
  }
  absl::Status finished = FromGrpcStatus(reader->Finish());
  if (watch && watch->fired()) return StalledError(*watch, check.received());
  if (!finished.ok()) return finished;
  if (absl::Status s = check.Finish(); !s.ok()) return s;
  out.header = check.header();
  if (request.offset() == 0 &&
      Sha256::Of(out.data) != (expect ? expect->sha256 : out.header.sha256())) {
    return absl::DataLossError(absl::StrCat(expect ? expect->Describe() : request.component(),
                                            " as received does not match its ",
                                            expect ? "signed" : "announced", " digest"));
  }
  return out;
}

absl::StatusOr<absl::string_view> CheckPushedIncremental(const v1::FetchResponse& payload,
                                                         const v1::ComponentEntry& entry,
                                                         uint32_t held_version) {
  const v1::FetchHeader& h = payload.header();
  if (h.kind() != v1::PAYLOAD_KIND_INCREMENTAL || h.from_version() != held_version ||
      held_version >= entry.version()) {
    return absl::FailedPreconditionError(
        absl::StrCat("pushed payload of ", entry.name(),
                     " is not an incremental from the version held (", held_version, ")"));
  }
  FetchStreamCheck check(ExpectedBody::Claimed(entry, h), 0);
  absl::StatusOr<absl::string_view> data = check.Take(payload);
  if (!data.ok()) return data.status();
  if (absl::Status s = check.Finish(); !s.ok()) return s;
  return data;
}

absl::StatusOr<std::string> ApplyVerified(const IncrementalCodec& codec, absl::string_view old,
                                          absl::string_view incremental,
                                          const v1::ComponentEntry& entry) {
  absl::StatusOr<std::string> rebuilt = codec.Decode(old, incremental, entry.size());
  if (!rebuilt.ok()) return rebuilt.status();
  if (absl::Status s = VerifyFull(*rebuilt, entry); !s.ok()) return s;
  return rebuilt;
}

absl::Status VerifyFull(absl::string_view body, const v1::ComponentEntry& entry) {
  if (body.size() != entry.size() || Sha256::Of(body) != entry.sha256()) {
    return absl::DataLossError(
        absl::StrCat(entry.name(), " ", entry.version(), " does not match its signed digest"));
  }
  return absl::OkStatus();
}

}  // namespace sigrelay
