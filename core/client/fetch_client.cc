#include "core/client/fetch_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/base/digest.h"
#include "core/base/grpc_status.h"

namespace sigrelay {

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

absl::StatusOr<v1::FetchHeader> FetchToSink(v1::UpdateService::StubInterface* stub,
                                            const v1::FetchRequest& request,
                                            const std::optional<ExpectedBody>& expect,
                                            absl::Time deadline, ByteSink* sink) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  FetchStreamCheck check(expect, request.offset());
  Sha256 sha;
  std::unique_ptr<grpc::ClientReaderInterface<v1::FetchResponse>> reader =
      stub->Fetch(&ctx, request);
  v1::FetchResponse message;
  absl::Status problem;
  while (problem.ok() && reader->Read(&message)) {
    absl::StatusOr<absl::string_view> keep = check.Take(message);
    problem = keep.status();
    if (problem.ok()) {
      sha.Update(*keep);
      problem = sink->Write(*keep);
    }
  }
  if (!problem.ok()) {
    ctx.TryCancel();
    grpc::Status ignored = reader->Finish();  // the stream is refused either way
    (void)ignored;
    return problem;
  }
  absl::Status finished = FromGrpcStatus(reader->Finish());
  if (!finished.ok()) return finished;
  if (absl::Status s = check.Finish(); !s.ok()) return s;
  if (request.offset() == 0 &&
      sha.Finish() != (expect ? expect->sha256 : check.header().sha256())) {
    return absl::DataLossError(absl::StrCat(expect ? expect->Describe() : request.component(),
                                            " as received does not match its ",
                                            expect ? "signed" : "announced", " digest"));
  }
  return check.header();
}

absl::StatusOr<FetchedBody> FetchToMemory(v1::UpdateService::StubInterface* stub,
                                          const v1::FetchRequest& request,
                                          const std::optional<ExpectedBody>& expect,
                                          absl::Time deadline) {
  FetchedBody out;
  StringSink sink(&out.data);
  absl::StatusOr<v1::FetchHeader> header = FetchToSink(stub, request, expect, deadline, &sink);
  if (!header.ok()) return header.status();
  out.header = std::move(*header);
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

absl::Status VerifyFull(absl::string_view body, const v1::ComponentEntry& entry) {
  if (body.size() != entry.size() || Sha256::Of(body) != entry.sha256()) {
    return absl::DataLossError(
        absl::StrCat(entry.name(), " ", entry.version(), " does not match its signed digest"));
  }
  return absl::OkStatus();
}

}  // namespace sigrelay
