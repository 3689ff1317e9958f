// The client side of UpdateService: reading a Fetch stream bounded by what
// the signed manifest allows, and rebuilding + verifying a file. The relay's
// upstream sync, agent-sim, sigrelayctl and the tests all read Fetch streams
// through this one place.
//
//   ExpectedBody want = ExpectedBody::Full(entry);          // from a verified manifest
//   absl::StatusOr<FetchedBody> got = FetchToMemory(stub, request, want, deadline);
//   // got->data matches entry.sha256(); a lie in the header is DataLoss
//
//   FetchStreamCheck check(want, /*offset=*/0);              // async readers
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
#include "core/client/stall_watch.h"
#include "core/model/delta_codec.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

// What a Fetch body must be, taken from a verified manifest entry.
struct ExpectedBody {
  v1::PayloadKind kind = v1::PAYLOAD_KIND_FULL;
  std::string component;
  uint32_t from_version = 0;  // incrementals only
  uint32_t version = 0;
  uint64_t size = 0;
  std::string sha256;
  // Full files: the signed chunking (empty for incrementals and for
  // manifests from before chunks were signed).
  uint32_t chunk_size = 0;
  std::vector<std::string> chunk_sha256;

  static ExpectedBody Full(const v1::ComponentEntry& entry);
  static ExpectedBody Incremental(const v1::ComponentEntry& entry,
                                  const v1::IncrementalEntry& incremental);
  // The signed body a Fetch header claims to be (the server picks
  // incremental or full): the incremental from header.from_version() when the
  // entry lists one, else the full file. The check then holds the header to it.
  static ExpectedBody Claimed(const v1::ComponentEntry& entry, const v1::FetchHeader& header);
  // "virus 5" or "incremental virus v_3.5".
  std::string Describe() const;
};

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

// Passes on only bytes that are whole signed chunks of a full file, checked
// against the digests of its manifest entry, so nothing unverified is ever
// kept (a partial download resumed from another upstream starts from
// verified bytes only). Starts at a chunk boundary. Not thread-safe.
//
//   SignedChunks chunks(ExpectedBody::Full(entry), offset);  // entry.chunk_size() > 0
//   absl::StatusOr<std::string> verified = chunks.Add(data);  // keep *verified
class SignedChunks {
 public:
  // `offset` must be a multiple of expect.chunk_size.
  SignedChunks(ExpectedBody expect, uint64_t offset);
  // The bytes of every chunk `data` completes, each checked; DataLoss naming
  // the chunk when one does not match. The end of the file completes its
  // last, shorter chunk.
  absl::StatusOr<std::string> Add(absl::string_view data);
  uint64_t verified() const { return verified_; }

 private:
  const ExpectedBody expect_;
  uint64_t verified_;    // bytes from the file's start that are checked
  std::string pending_;  // bytes past verified_, short of a chunk
};

struct FetchedBody {
  v1::FetchHeader header;
  std::string data;  // from the request's offset to the end
};

// Runs one Fetch to the end and keeps the body in memory. With a
// `stall_timeout`, a stream that brings no bytes that long is cut
// (DeadlineExceeded saying so) however slow the link, as long as it moves. When `expect` is
// given the body is checked against its signed digest (with offset 0). gRPC
// failures come back with their code and message; DataLoss for a body that
// is not what was signed.
absl::StatusOr<FetchedBody> FetchToMemory(v1::UpdateService::StubInterface* stub,
                                          const v1::FetchRequest& request,
                                          const std::optional<ExpectedBody>& expect,
                                          absl::Time deadline,
                                          absl::Duration stall_timeout = absl::ZeroDuration());

// The data of an incremental pushed on a Watch stream, once its header names
// exactly the signed incremental of `entry` from `held_version` and the
// whole body is there (the same checks as a fetched one: FetchStreamCheck);
// DataLoss or FailedPrecondition saying why it cannot be taken otherwise.
absl::StatusOr<absl::string_view> CheckPushedIncremental(const v1::FetchResponse& payload,
                                                         const v1::ComponentEntry& entry,
                                                         uint32_t held_version);

// Applies `incremental` to `old` and checks the result against the signed
// `entry` (size and SHA-256). DataLoss when the result is not that file.
absl::StatusOr<std::string> ApplyVerified(const IncrementalCodec& codec, absl::string_view old,
                                          absl::string_view incremental,
                                          const v1::ComponentEntry& entry);

// The error of a transfer StallWatch cut after `received` bytes.
absl::Status StalledError(const StallWatch& watch, uint64_t received);

// DataLoss unless `body` is the signed file of `entry`.
absl::Status VerifyFull(absl::string_view body, const v1::ComponentEntry& entry);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_FETCH_CLIENT_H_
