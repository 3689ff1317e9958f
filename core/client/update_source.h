// Where signed content is read from: an origin or relay over gRPC, a static
// tree over HTTP(S), a tree on disk or removable media. A transport only
// produces bytes; the bounds (deadline, silence, minimum rate, stop),
// verification against the signed manifest and what errors mean are
// written once, here, for all of them.
//
//   std::unique_ptr<UpdateSource> source = ...;       // GrpcSource, HttpTreeSource, ...
//   absl::StatusOr<v1::SignedManifest> m = source->Manifest(limits);
//   ... CheckOfferedManifest(...) ...
//   absl::Status s = source->Fetch(ExpectedBody::Full(entry), offset, limits, &sink);
//
// Error codes say what to do next: Unavailable / DeadlineExceeded: later or
// elsewhere (DeadlineExceeded is also a cut for silence or rate);
// Cancelled: the process is stopping; NotFound: not here; DataLoss: the
// source lied, nothing past the last verified chunk was kept.
#ifndef SIGRELAY_CORE_CLIENT_UPDATE_SOURCE_H_
#define SIGRELAY_CORE_CLIENT_UPDATE_SOURCE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/base/byte_sink.h"
#include "core/client/transfer_watch.h"
#include "core/client/verifying_writer.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// Given to a transport for one read: how to stop it when a rule cuts it.
class TransferControl {
 public:
  // `cancel` is called (from another thread) when the transfer is cut.
  // Transports that read in a loop may instead poll cut().
  virtual void OnCut(std::function<void()> cancel) = 0;
  virtual bool cut() const = 0;

 protected:
  ~TransferControl() = default;
};

class UpdateSource {
 public:
  // The most a signed manifest may be (a bigger one is refused unread).
  static constexpr uint64_t kMaxManifestBytes = 4 << 20;

  virtual ~UpdateSource() = default;

  // "127.0.0.1:7443", "http://mirror.example/sigrelay/", "file:///media/usb/sigrelay":
  // for messages and status.
  virtual std::string Describe() const = 0;

  // The signed manifest as the source holds it, held to `limits` (not
  // verified here: CheckOfferedManifest judges it).
  absl::StatusOr<v1::SignedManifest> Manifest(const TransferLimits& limits);

  // Writes `want` from byte `offset` into `sink`, verified on the way
  // (VerifyingWriter) and held to `limits`; never more than want.size -
  // offset bytes. For a full file with signed chunks `offset` is a chunk
  // boundary and only whole verified chunks reach `sink`.
  absl::Status Fetch(const ExpectedBody& want, uint64_t offset, const TransferLimits& limits,
                     ByteSink* sink);

 protected:
  // One read of the manifest's bytes (at most kMaxManifestBytes). Each
  // piece that arrives goes to `out` (which meters it).
  virtual absl::Status ReadManifest(TransferControl* control, ByteSink* out) = 0;
  // One read of `want` from `offset`: each piece as it arrives to `out`
  // (which meters and verifies it). Stop when a write fails.
  virtual absl::Status ReadBody(const ExpectedBody& want, uint64_t offset, TransferControl* control,
                                ByteSink* out) = 0;

 private:
  // Runs `read` under a TransferWatch; the cut's reason wins over the
  // transport's own error.
  absl::Status Watched(const TransferLimits& limits, ByteSink* sink,
                       const std::function<absl::Status(TransferControl*, ByteSink*)>& read);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_UPDATE_SOURCE_H_
