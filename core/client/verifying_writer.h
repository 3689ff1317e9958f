// What a download must be, from a verified manifest, and the writer that
// holds the bytes to it on their way to any destination: the only way
// bytes from an upstream reach a store, a staged file or memory.
//
//   VerifyingWriter writer(ExpectedBody::Full(entry), offset, &store_writer);
//   ... source writes pieces into &writer ...
//   absl::Status s = writer.Finish();   // DataLoss unless it is the signed file
#ifndef SIGRELAY_CORE_CLIENT_VERIFYING_WRITER_H_
#define SIGRELAY_CORE_CLIENT_VERIFYING_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/base/byte_sink.h"
#include "core/base/digest.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// What a body must be, taken from a verified manifest entry.
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
  bool signed_chunks() const { return chunk_size > 0 && !chunk_sha256.empty(); }
};

// Passes on to `sink` only bytes of `want` that check out: never more than
// its signed size; with signed chunks, only whole chunks, each matching its
// digest (so a resumed download starts from verified bytes only, whatever
// upstream sent them; at most one chunk is held here); and, written from
// offset 0, Finish checks the digest of the whole. Not thread-safe.
class VerifyingWriter final : public ByteSink {
 public:
  // With signed chunks, `offset` must be a multiple of want.chunk_size.
  VerifyingWriter(ExpectedBody want, uint64_t offset, ByteSink* sink);

  // DataLoss saying what the upstream got wrong; then nothing more is taken.
  absl::Status Write(absl::string_view data) override;
  // After the source said it is done: DataLoss unless the whole body came
  // (and, from offset 0, matches its signed digest).
  absl::Status Finish();

  // Offset of the first byte not yet passed on (verified, for signed chunks).
  uint64_t passed() const { return passed_; }
  uint64_t received() const { return received_; }
  const ExpectedBody& want() const { return want_; }

 private:
  absl::Status Pass(absl::string_view data);

  const ExpectedBody want_;
  const uint64_t offset_;
  ByteSink* const sink_;
  uint64_t received_;
  uint64_t passed_;
  std::string pending_;            // short of a signed chunk
  std::unique_ptr<Sha256> whole_;  // from offset 0 only
  absl::Status failed_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_VERIFYING_WRITER_H_
