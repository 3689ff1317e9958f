// The UpdateService over a VersionStore: what origins and relays both serve,
// so a relay serves exactly what an origin serves and relays chain.
//
//   UpdateServiceImpl service(store.get());
//   builder.RegisterService(&service);
//   ... server runs; every store commit is pushed to Watch subscribers ...
//   service.Shutdown();  // ends Watch streams so server->Shutdown() returns
//
// Callback API throughout: one reactor per stream with one write in flight,
// never a thread per client. Fetch streams a file chunk by chunk from a store
// snapshot, so memory per transfer is one chunk and a commit during the
// transfer does not disturb it.
#ifndef SIGRELAY_CORE_SERVE_UPDATE_SERVICE_H_
#define SIGRELAY_CORE_SERVE_UPDATE_SERVICE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "core/model/component.h"
#include "core/serve/agent_registry.h"
#include "core/serve/stall_sweeper.h"
#include "core/serve/transfer_gate.h"
#include "core/store/version_store.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

class WatchReactor;

// What a watcher holds, from its WatchRequest: (component, version) pairs.
using HeldVersions = std::vector<std::pair<std::string, uint32_t>>;
// "virus=3;spyware=5;": what pushes are cached by.
std::string HeldKey(const HeldVersions& held);

// A WatchResponse serialized once and written to every watcher it suits:
// each write takes references to the same bytes, not a copy.
struct WatchPush {
  grpc::ByteBuffer bytes;
  int payloads = 0;  // incrementals inside
};

// What every push of one manifest is made from, built when the manifest is
// committed (off the reaction path): the manifest and each incremental it
// names that fits in one message, read from the store once. Pushes for each
// distinct set of held versions are assembled from these in memory and
// cached here, so a reaction never reads the store.
struct PushParts {
  std::shared_ptr<const v1::SignedManifest> manifest;
  v1::Manifest parsed;
  // (component, from_version) -> the whole incremental as one FetchResponse.
  absl::flat_hash_map<std::pair<std::string, uint32_t>, v1::FetchResponse> incrementals;

  mutable absl::Mutex mu;
  mutable absl::flat_hash_map<std::string, std::shared_ptr<const WatchPush>> pushes
      ABSL_GUARDED_BY(mu);  // "component=version;..." -> its push
};

// Watch is served raw (bytes in, bytes out) so pushes are shared as WatchPush;
// every other method is typed.
using UpdateServiceBase = v1::UpdateService::WithCallbackMethod_GetManifest<
    v1::UpdateService::WithRawCallbackMethod_Watch<v1::UpdateService::WithCallbackMethod_Fetch<
        v1::UpdateService::WithCallbackMethod_ReportStatus<v1::UpdateService::Service>>>>;

struct UpdateServiceOptions {
  size_t max_transfers = 64;    // transfers (Fetch streams, pushes with incrementals) at once
  size_t max_queued = 1 << 20;  // transfers waiting for a slot
  // Slots one client connection may hold; freed slots go to waiting
  // connections in turn.
  size_t max_transfers_per_connection = 8;
  // Serialized pushes with incrementals alive at once, all watchers and
  // manifests together; past it watchers get the manifest alone and fetch.
  uint64_t push_memory_budget = 256ull << 20;
  // A transfer whose write makes no progress this long is cancelled
  // (zero: never).
  absl::Duration stall_timeout = absl::Seconds(60);
  // The listeners require client certificates (mutual TLS): an agent's id
  // is its certificate's identity, not what it says.
  bool client_certificates = false;
  // An origin's catalog: a Fetch of a component outside it is told so.
  // Null on relays, which carry whatever the signed manifest names.
  const ComponentCatalog* catalog = nullptr;
};

class UpdateServiceImpl final : public UpdateServiceBase {
 public:
  // `store` and `agents` must outlive the service. Becomes the store's commit
  // observer.
  UpdateServiceImpl(VersionStore* store, AgentRegistry* agents,
                    const UpdateServiceOptions& options = {});
  ~UpdateServiceImpl() override;

  // Ends every Watch stream and refuses new ones; call before the server's
  // Shutdown so it does not wait on open streams.
  void Shutdown();
  // Ends every Watch stream (agents reconnect), e.g. before the server is
  // rebuilt; new ones are still taken.
  void EndWatches();
  size_t WatcherCount() const;
  TransferGate::Stats TransferStats() const { return gate_.stats(); }
  size_t max_transfers() const { return max_transfers_; }
  uint64_t fetches() const { return fetches_.load(); }
  uint64_t pushed() const { return pushed_.load(); }
  uint64_t stalled() const { return sweeper_.cancelled(); }

  // Paused: a committed manifest is kept back from watchers (new ones get
  // the last pushed) until resumed, which pushes the newest at once.
  void SetPushesPaused(bool paused);
  bool pushes_paused() const;

  // Live agents of this node's subtree per component and version: its own
  // registry's plus what each relay watching it reports for its subtree
  // (WatchRequest.fleet), in component and version order.
  std::vector<v1::FleetCount> Fleet() const;
  // The same per source: this node's own agents first, then each
  // downstream relay's subtree (what the rollout gate judges apart, so one
  // subtree's counts cannot hide another's).
  std::vector<std::vector<v1::FleetCount>> FleetBySource() const;
  static constexpr size_t kMaxFleetEntries = 256;

  grpc::ServerUnaryReactor* GetManifest(grpc::CallbackServerContext* context,
                                        const v1::GetManifestRequest* request,
                                        v1::SignedManifest* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Watch(
      grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<v1::FetchResponse>* Fetch(grpc::CallbackServerContext* context,
                                                     const v1::FetchRequest* request) override;
  grpc::ServerUnaryReactor* ReportStatus(grpc::CallbackServerContext* context,
                                         const v1::ReportStatusRequest* request,
                                         v1::ReportStatusResponse* response) override;

 private:
  friend class WatchReactor;
  void Announce(std::shared_ptr<const v1::SignedManifest> manifest);
  // Reads what pushes of `manifest` carry (store reads: never in a reaction).
  std::shared_ptr<const PushParts> BuildPushParts(
      std::shared_ptr<const v1::SignedManifest> manifest) const;
  void Remove(WatchReactor* watcher);
  // A relay's subtree report on the stream `stream`: checked and kept
  // (counts capped at the registry's max_agents) until the stream ends.
  absl::Status OnFleetReport(const void* stream,
                             const google::protobuf::RepeatedPtrField<v1::FleetCount>& fleet);
  // A watcher's report: checked, recorded when it names an agent (`agent`:
  // the agent the stream reported for before, set at its first report), and
  // returned as the versions its pushes are made for.
  absl::StatusOr<HeldVersions> OnWatchRequest(const grpc::ServerContextBase& context,
                                              const v1::WatchRequest& request,
                                              std::optional<AgentKey>* agent);
  // The agent's id: under mutual TLS its certificate's identity, whatever
  // it says.
  std::string Identity(const grpc::ServerContextBase& context, const std::string& agent_id) const;
  // The push of `manifest` to a watcher holding `held` (`key`: HeldKey of
  // it): one shared response per distinct `held` and admitted rings, with
  // the incrementals that fit in one message. An agent (`agent_id` set, in
  // `ring` when it chose one) gets only the incrementals of versions its
  // ring is admitted to; a relay (no id) gets all.
  std::shared_ptr<const WatchPush> PushFor(const PushParts& parts, const HeldVersions& held,
                                           const std::string& key, const std::string& agent_id,
                                           const std::string& ring);

  VersionStore* const store_;
  AgentRegistry* const agents_;
  const ComponentCatalog* const catalog_;
  const bool client_certificates_;
  const uint64_t push_memory_budget_;
  // Bytes of serialized pushes alive (cached or in flight), shared with
  // their deleters, which may run after a reaction ends.
  const std::shared_ptr<std::atomic<int64_t>> push_live_bytes_ =
      std::make_shared<std::atomic<int64_t>>(0);
  const size_t max_transfers_;
  TransferGate gate_;
  StallSweeper sweeper_;
  std::atomic<uint64_t> fetches_{0}, pushed_{0};

  mutable absl::Mutex mu_;
  absl::flat_hash_set<WatchReactor*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;

  std::shared_ptr<const PushParts> current_ ABSL_GUARDED_BY(mu_);  // what watchers get
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const PushParts> held_back_ ABSL_GUARDED_BY(mu_);  // while paused

  mutable absl::Mutex fleet_mu_;
  // What each relay watching this node last reported, by its stream.
  absl::flat_hash_map<const void*, std::vector<v1::FleetCount>> downstream_fleet_
      ABSL_GUARDED_BY(fleet_mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_UPDATE_SERVICE_H_
