// One relay sync: fetch the upstream's signed manifest, verify it with the
// pinned origin key, download what changed (the incremental from the version
// held here when the upstream has one, else the full file, resuming an
// interrupted download from its last verified chunk), make every incremental
// the manifest names available (computed locally from retained full versions,
// or fetched), and commit it all at once with the upstream's manifest,
// unchanged. Nothing of a manifest is visible until all of it is held.
//
//   UpstreamSync sync(store, verifier, RealClock::Get(), options);
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
#include "sigrelay/v1/admin.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

struct UpstreamSyncOptions {
  std::vector<std::string> upstreams;  // tried in order
  std::string dns_server;              // "" = the system's
  // http://[user:password@]HOST:PORT: upstream traffic goes through this
  // HTTP CONNECT proxy, except to hosts in `no_proxy`. The start value;
  // SetProxy changes it.
  std::string proxy;
  std::vector<std::string> no_proxy;
  absl::Duration rpc_timeout = absl::Seconds(10);
  // A download slower than this is treated as stalled and abandoned (it
  // resumes at the next attempt).
  uint64_t min_bytes_per_second = 256 << 10;
  uint64_t max_file_size = 1ull << 30;
  int zstd_level = IncrementalCodec::kDefaultLevel;
};

// Thread-compatible for SyncOnce (one sync at a time: the scheduler's
// thread); FillStatus and UpstreamSerial are thread-safe.
class UpstreamSync {
 public:
  UpstreamSync(VersionStore* store, const ManifestVerifier* verifier, const Clock* clock,
               UpstreamSyncOptions options);

  // Tries each upstream in order until one sync succeeds. The error of the
  // last upstream tried (each one's is logged and kept for status) names the
  // upstream and the gRPC status.
  absl::StatusOr<v1::SyncNowResponse> SyncOnce();

  // A channel to upstream `i` (shared with the Watch follower): through the
  // proxy when one applies, else to the addresses of the upstream's name
  // that this node can route (resolved again at each call; the channel is
  // kept while they stay the same). The error says why it cannot be reached.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(size_t i);
  const std::vector<std::string>& upstreams() const { return options_.upstreams; }

  void FillStatus(v1::RelayStatus* status) const;

  // Replaces the proxy settings (checked with CheckProxyUrl; "" for none);
  // the next connection to each upstream uses them. Thread-safe.
  absl::Status SetProxy(const std::string& proxy, const std::string& no_proxy);

 private:
  absl::StatusOr<v1::SyncNowResponse> SyncFrom(size_t i);
  absl::StatusOr<std::string> FetchIncremental(v1::UpdateService::Stub* stub,
                                               const std::string& upstream,
                                               const v1::ComponentEntry& entry,
                                               const v1::IncrementalEntry& signed_entry);
  absl::StatusOr<v1::FileRecord> FetchFull(v1::UpdateService::Stub* stub,
                                           const std::string& upstream,
                                           const v1::ComponentEntry& entry,
                                           std::unique_ptr<VersionStore::FileWriter>* writer);
  void Record(size_t i, const absl::Status& s);
  // The proxy to reach `upstream` through, or "" to go directly.
  std::string ProxyFor(const std::string& upstream) const;
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
  const UpstreamSyncOptions options_;
  const IncrementalCodec codec_;
  mutable absl::Mutex mu_;
  // Per upstream: the gRPC target its channel was made for, and the channel.
  std::vector<std::pair<std::string, std::shared_ptr<grpc::Channel>>> channels_
      ABSL_GUARDED_BY(mu_);
  v1::RelayStatus status_ ABSL_GUARDED_BY(mu_);
  std::string proxy_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> no_proxy_ ABSL_GUARDED_BY(mu_);
};

// "http://user:secret@proxy:3128" -> "proxy:3128": never show a password.
std::string ProxyDisplay(const std::string& proxy);

// OK for "" (no proxy) and http://[user:password@]HOST:PORT; InvalidArgument
// saying what is off otherwise.
absl::Status CheckProxyUrl(const std::string& proxy);

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_UPSTREAM_SYNC_H_
