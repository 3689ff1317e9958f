// One relay sync: fetch the upstream's signed manifest, verify it with the
// pinned origin key, download what changed (the incremental from the version
// held here when the upstream has one, else the full file, resuming an
// interrupted download from its last verified chunk), make every incremental
// the manifest names available (computed locally from retained full versions,
// or fetched), and commit it all at once with the upstream's manifest,
// unchanged. Nothing of a manifest is visible until all of it is held.
//
//   NetworkDialer dialer({.upstreams = {"origin.example:7443"}});
//   UpstreamSync sync(store, verifier, RealClock::Get(), &dialer, options);
//   absl::StatusOr<v1::SyncNowResponse> r = sync.SyncOnce();
#ifndef SIGRELAY_RELAY_UPSTREAM_SYNC_H_
#define SIGRELAY_RELAY_UPSTREAM_SYNC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/base/clock.h"
#include "core/model/delta_codec.h"
#include "core/model/manifest.h"
#include "core/store/version_store.h"
#include "relay/upstream_dialer.h"
#include "sigrelay/v1/admin.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

struct UpstreamSyncOptions {
  absl::Duration rpc_timeout = absl::Seconds(10);
  // A download that brings no bytes this long is cut (it resumes at the
  // next attempt); one that keeps moving, however slowly, goes on.
  absl::Duration stall_timeout = absl::Seconds(60);
  // Longest any one download may take at all.
  absl::Duration max_download_time = absl::Hours(24);
  uint64_t max_file_size = 1ull << 30;
  int zstd_level = IncrementalCodec::kDefaultLevel;
};

// Thread-compatible for SyncOnce (one sync at a time: the scheduler's
// thread); FillStatus and UpstreamSerial are thread-safe.
class UpstreamSync {
 public:
  // All pointers must outlive the sync. `clock` decides manifest expiry
  // and status times; RPC deadlines are real time.
  UpstreamSync(VersionStore* store, const ManifestVerifier* verifier, const Clock* clock,
               UpstreamDialer* dialer, UpstreamSyncOptions options);

  // Tries each upstream in order until one sync succeeds. The error of the
  // last upstream tried (each one's is logged and kept for status) names the
  // upstream and the gRPC status.
  absl::StatusOr<v1::SyncNowResponse> SyncOnce();

  // The upstreams and how they are reached (shared with the Watch follower).
  UpstreamDialer* dialer() const { return dialer_; }

  void FillStatus(v1::RelayStatus* status) const;
  uint64_t root_version() const { return verifier_->root_version(); }
  // What the Watch stream on upstream `i` shows, in its state at once: OK
  // when a push arrived, the error when the stream ended.
  void NoteWatch(size_t i, const absl::Status& s);

  // Whether a manifest an upstream announced (Watch) is worth a sync: true
  // when it verifies and is newer than the one held; the refusal otherwise.
  // Thread-safe.
  absl::StatusOr<bool> WorthSyncing(const v1::SignedManifest& announced) const;

 private:
  absl::StatusOr<v1::SyncNowResponse> SyncEachUpstream();
  absl::StatusOr<v1::SyncNowResponse> SyncFrom(size_t i);
  // Adds to the bytes the running sync expects to download (status).
  void ExpectBytes(uint64_t bytes);
  absl::StatusOr<std::string> FetchIncremental(v1::UpdateService::Stub* stub,
                                               const std::string& upstream,
                                               const v1::ComponentEntry& entry,
                                               const v1::IncrementalEntry& signed_entry);
  absl::StatusOr<v1::FileRecord> FetchFull(v1::UpdateService::Stub* stub,
                                           const std::string& upstream,
                                           const v1::ComponentEntry& entry,
                                           std::unique_ptr<VersionStore::FileWriter>* writer);
  void Record(size_t i, const absl::Status& s);
  // A gRPC failure as an operator should read it (names the upstream, and
  // the proxy when it refused).
  absl::Status UpstreamError(const std::string& upstream, const absl::Status& s,
                             absl::string_view doing) const;
  // Writes `bytes` as a file; the writer joins `writers` so its chunks stay
  // pinned until the commit.
  absl::StatusOr<v1::FileRecord> Put(
      absl::string_view bytes, std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers);

  VersionStore* const store_;
  const ManifestVerifier* const verifier_;
  const Clock* const clock_;
  UpstreamDialer* const dialer_;
  const UpstreamSyncOptions options_;
  const IncrementalCodec codec_;
  mutable absl::Mutex mu_;
  v1::RelayStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_UPSTREAM_SYNC_H_
