// The gRPC side of a Fetch stream: each message held to the body the signed
// manifest names (GrpcSource and agent-sim's async readers), pushed
// incrementals checked the same way, and an in-memory fetch for tools.
// Downloads that keep what they fetch go through UpdateSource (bounded,
// verified, resumable); this is what it reads gRPC with.
//
//   FetchStreamCheck check(want, /*offset=*/0);
//   for each message m: absl::StatusOr<absl::string_view> keep = check.Take(m);
//   absl::Status done = check.Finish();
#ifndef SIGRELAY_CORE_CLIENT_FETCH_CLIENT_H_
#define SIGRELAY_CORE_CLIENT_FETCH_CLIENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/byte_sink.h"
#include "core/client/verifying_writer.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

// Checks one Fetch stream message by message. With an expectation, the
// header must name exactly that body and no more bytes than its signed size
// are taken; without one (an inspection tool that has no manifest), the
// header's own size bounds it. Each message that starts on a chunk boundary
// and holds one whole chunk is checked against the header's chunk digest, so
// a resuming downloader keeps verified chunks only. Not thread-safe.
class FetchStreamCheck {
 public:
  FetchStreamCheck(std::optional<ExpectedBody> expect, uint64_t offset);

  // The data of `message` to keep, or DataLoss saying what the server did
  // wrong (a header that is not the signed body, more bytes than allowed, a
  // chunk that does not match its digest, data before any header).
  absl::StatusOr<absl::string_view> Take(const v1::FetchResponse& message);

  // After the stream ended OK: DataLoss unless the whole body arrived.
  absl::Status Finish() const;

  bool has_header() const { return has_header_; }
  const v1::FetchHeader& header() const { return header_; }
  uint64_t received() const { return received_; }  // offset + bytes taken

 private:
  const std::optional<ExpectedBody> expect_;
  const uint64_t offset_;
  v1::FetchHeader header_;
  bool has_header_ = false;
  uint64_t received_;
};

struct FetchedBody {
  v1::FetchHeader header;
  std::string data;  // from the request's offset to the end
};

// Runs one Fetch to the end into `sink` (each message as it arrives) and
// returns the header. For tools and start-up loads; downloads that keep what
// they fetch go through UpdateSource.
absl::StatusOr<v1::FetchHeader> FetchToSink(v1::UpdateService::StubInterface* stub,
                                            const v1::FetchRequest& request,
                                            const std::optional<ExpectedBody>& expect,
                                            absl::Time deadline, ByteSink* sink);

// Runs one Fetch to the end and keeps the body in memory: for tools and
// small bodies. When `expect` is given the body is checked against its signed
// digest (with offset 0); without, against the digest its header announces.
// gRPC failures come back with their code and message; DataLoss for a body
// that is not what was signed.
absl::StatusOr<FetchedBody> FetchToMemory(v1::UpdateService::StubInterface* stub,
                                          const v1::FetchRequest& request,
                                          const std::optional<ExpectedBody>& expect,
                                          absl::Time deadline);

// The data of an incremental pushed on a Watch stream, once its header names
// exactly the signed incremental of `entry` from `held_version` and the
// whole body is there (the same checks as a fetched one: FetchStreamCheck);
// DataLoss or FailedPrecondition saying why it cannot be taken otherwise.
absl::StatusOr<absl::string_view> CheckPushedIncremental(const v1::FetchResponse& payload,
                                                         const v1::ComponentEntry& entry,
                                                         uint32_t held_version);

// DataLoss unless `body` is the signed file of `entry`.
absl::Status VerifyFull(absl::string_view body, const v1::ComponentEntry& entry);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_FETCH_CLIENT_H_
