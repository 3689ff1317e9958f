// One relay sync, as its steps: take the offer of an upstream (its signed
// manifest, verified with the pinned trust root and judged against what is
// held), plan what changed, fetch each changed component (its incremental
// from the version held, rebuilt and verified, else the full file, resuming
// an interrupted download from its last verified chunk; then every
// incremental the manifest names), and commit it all at once with the
// upstream's manifest, unchanged. Nothing of a manifest is visible until
// all of it is held.
//
// Memory stays bounded by the chunk whatever the pattern size: every byte
// passes a VerifyingWriter into the store chunk by chunk, and a rebuild maps
// the old version and its output from files in the work dir, trimmed as the
// codec goes.
//
// Upstreams are UpdateSources tried in order. One whose transfer is cut
// (silence, or a rate under the minimum: a mirror that dribbles) is tried
// after the others for a while (doubling per cut); the verified part of the
// download is kept and resumed from whichever upstream serves the same
// signed file.
//
//   NetworkDialer dialer({.upstreams = {"origin.example:7443"}});
//   UpstreamSync sync(store, verifier, RealClock::Get(), &dialer, options);
//   absl::StatusOr<v1::SyncNowResponse> r = sync.SyncOnce();
#ifndef SIGRELAY_RELAY_UPSTREAM_SYNC_H_
#define SIGRELAY_RELAY_UPSTREAM_SYNC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/base/clock.h"
#include "core/client/manifest_check.h"
#include "core/client/transfer_watch.h"
#include "core/client/update_source.h"
#include "core/model/delta_codec.h"
#include "core/model/manifest.h"
#include "core/store/version_store.h"
#include "relay/upstream_dialer.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

struct UpstreamSyncOptions {
  absl::Duration rpc_timeout = absl::Seconds(10);
  // Silence cut, minimum rate, and the process's stop (their flag names in
  // messages); the deadline is set per download from max_download_time.
  TransferLimits transfer = [] {
    TransferLimits t;
    t.stall_flag = "--upstream-stall-timeout";
    t.rate_flags = "--upstream-min-rate/--upstream-min-rate-window";
    return t;
  }();
  // The CA of https:// tree upstreams' certificates ("" for the system's).
  std::string tree_tls_ca;
  // Longest any one download may take at all.
  absl::Duration max_download_time = absl::Hours(24);
  uint64_t max_file_size = 1ull << 30;
  // Where rebuilds map their files (emptied at start); required.
  std::string work_dir;
  // How long an upstream whose transfer was cut is tried after the others:
  // this, doubled per cut in a row, at most cut_backoff_max.
  absl::Duration cut_backoff = absl::Minutes(1);
  absl::Duration cut_backoff_max = absl::Hours(1);
};

// Thread-compatible for SyncOnce (one sync at a time: the scheduler's
// thread); FillStatus, NoteWatch and WorthSyncing are thread-safe.
class UpstreamSync {
 public:
  // All pointers must outlive the sync. `clock` decides manifest expiry,
  // status times and cut backoffs; transfer deadlines are real time.
  UpstreamSync(VersionStore* store, const ManifestVerifier* verifier, const Clock* clock,
               UpstreamDialer* dialer, UpstreamSyncOptions options);

  // Tries the upstreams (cut ones last) until one sync succeeds. The error
  // of the last upstream tried (each one's is logged and kept for status)
  // names the upstream and what went wrong.
  absl::StatusOr<v1::SyncNowResponse> SyncOnce();
  // One sync from the static tree in directory `dir` (absolute), with every
  // check an upstream gets: an air-gapped site's media (sigrelayctl
  // import). Same thread as SyncOnce.
  absl::StatusOr<v1::SyncNowResponse> ImportTree(const std::string& dir);

  // The upstreams and how they are reached (shared with the Watch follower).
  UpstreamDialer* dialer() const { return dialer_; }

  void FillStatus(v1::RelayStatus* status) const;
  uint64_t root_version() const { return verifier_->root_version(); }
  // What the Watch stream on upstream `i` shows, in its state at once: OK
  // when a push arrived, the error when the stream ended.
  void NoteWatch(size_t i, const absl::Status& s);

  // Whether a manifest an upstream announced (Watch) is worth a sync: true
  // when it verifies and is newer than the one held; the refusal otherwise.
  absl::StatusOr<bool> WorthSyncing(const v1::SignedManifest& announced) const;

 private:
  // What a sync of one component brings to the commit.
  struct Fetched {
    VersionStore::ComponentCommit commit;
    v1::ComponentUpdate update;
    bool resumed_full = false;         // a partial download to drop after the commit
    std::vector<std::string> missing;  // incrementals left out ("virus v_1.3")
  };

  // Upstream indexes in the order to try now.
  std::vector<size_t> Order() const;
  absl::StatusOr<v1::SyncNowResponse> SyncEachUpstream();
  absl::StatusOr<v1::SyncNowResponse> SyncFrom(size_t i);
  // Steps of SyncFrom.
  absl::StatusOr<OfferedManifest> TakeOffer(size_t i, const v1::SignedManifest& offered,
                                            const StoreView& view);
  absl::StatusOr<Fetched> FetchComponent(
      size_t i, const v1::ComponentEntry& entry, const v1::ComponentEntry* held,
      const StoreView& view, std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers);
  // The new full version from the incremental `ie` and the held `old`, into
  // the store; DataLoss or the transfer's error when it cannot be.
  absl::StatusOr<v1::FileRecord> Rebuild(
      const v1::ComponentEntry& entry, const v1::FileRecord& old, const v1::FileRecord& incremental,
      const StoreView& view, std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers);
  // The full file, resuming a partial download of the same signed file.
  absl::StatusOr<v1::FileRecord> FetchFull(size_t i, const v1::ComponentEntry& entry,
                                           std::unique_ptr<VersionStore::FileWriter>* writer);
  // `want` whole into a new store file (kept in `writers` until the commit).
  absl::StatusOr<v1::FileRecord> FetchToStore(
      size_t i, const ExpectedBody& want,
      std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers);
  TransferLimits Limits() const;
  void Record(size_t i, const absl::Status& s);
  // A transport's failure as an operator should read it (names the
  // upstream, and the proxy when it refused).
  absl::Status UpstreamError(size_t i, const absl::Status& s, absl::string_view doing) const;
  void ExpectBytes(uint64_t bytes);
  void CountBytes(bool incremental, uint64_t bytes);

  VersionStore* const store_;
  const ManifestVerifier* const verifier_;
  const Clock* const clock_;
  UpstreamDialer* const dialer_;
  const UpstreamSyncOptions options_;
  const IncrementalCodec codec_;
  std::vector<std::unique_ptr<UpdateSource>> sources_;  // one per upstream, in list order
  std::vector<std::string> names_;                      // and what they are called
  mutable absl::Mutex mu_;
  v1::RelayStatus status_ ABSL_GUARDED_BY(mu_);
  std::vector<int> cuts_in_a_row_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> demoted_until_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_UPSTREAM_SYNC_H_
