// A fleet of simulated agents: each subscribes with Watch, takes the
// incremental pushed with a manifest or fetches the incremental or full file
// for every component it lags on, rebuilds, verifies against the signed
// manifest and reports its versions on the Watch stream. Everything
// runs on gRPC's callback API and one timer thread, so ten thousand agents
// cost reactors, not threads. Agents on the same version share one mapped
// file of it in the work dir (its pages trimmed after each use, so a big
// pattern costs the fleet its file, not its size in memory), and a rebuild
// from the same inputs is done once. Fetches are held to the same transfer
// rules as every other client (TransferMeter).
#ifndef SIGRELAY_AGENT_SIM_FLEET_H_
#define SIGRELAY_AGENT_SIM_FLEET_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent-sim/timer_queue.h"
#include "core/base/file_util.h"
#include "core/base/mapped_file.h"
#include "core/base/transport.h"
#include "core/client/transfer_watch.h"
#include "core/model/delta_codec.h"
#include "core/model/manifest.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

struct FleetOptions {
  std::string server;
  std::string start_source;  // where start versions are loaded (default: server)
  int agents = 1;
  std::vector<std::string> components;    // empty: all in the manifest
  std::map<std::string, uint32_t> until;  // converged at these versions
  bool per_agent_connections = false;
  // Start mix: (version, weight); version 0 = nothing held, UINT32_MAX = the
  // newest at start.
  std::vector<std::pair<uint32_t, double>> start_mix = {{UINT32_MAX, 1.0}};
  absl::Duration ramp = absl::ZeroDuration();    // agents start spread over this
  absl::Duration jitter = absl::ZeroDuration();  // random wait before each fetch
  absl::Duration max_backoff = absl::Seconds(10);
  bool report = true;
  uint64_t seed = 1;
  // Agent i reports the id id_prefix + i.
  std::string id_prefix = "sim-";
  // Agents report health for the versions they hold: this per cent of them
  // (the lowest indexes) unhealthy, the rest healthy; -1: no health.
  double unhealthy = -1;
  // The staged-rollout ring every agent puts itself in; empty: each by its
  // id's hash.
  std::string ring;
  TlsFiles tls;  // TLS to the server when tls.ca is set
  // The fleet's trust floor across runs (core/client client_state): a
  // manifest older than, or conflicting with, the newest one accepted in an
  // earlier run is refused. Empty: the fleet remembers nothing.
  std::string state_dir;
  // Where the versions the agents hold are kept as files; empty: a new
  // directory under $TMPDIR (or /tmp), removed when the fleet stops.
  std::string work_dir;
  // Silence cut and minimum rate of every fetch.
  TransferLimits transfer;
};

struct FleetSummary {
  int agents = 0;
  int converged = 0;
  double seconds_to_p50 = -1, seconds_to_p99 = -1, seconds_to_all = -1;
  double all_converged_unix = -1;  // wall clock when the last agent converged
  uint64_t bytes_incremental = 0, bytes_full = 0;
  std::map<std::string, uint64_t> errors;          // kind -> count
  std::map<std::string, std::string> first_error;  // kind -> first message
};

class Agent;
class FetchCall;

class Fleet {
 public:
  Fleet(FleetOptions options, std::unique_ptr<ManifestVerifier> verifier);
  ~Fleet();

  // Reads the server's manifest, loads the start versions (each fetched
  // once and shared) and starts the agents.
  absl::Status Start();
  // Waits until every agent converged, `timeout` passed or the fleet was
  // stopped (`progress`, called every 50 ms, may call Stop).
  bool WaitConverged(absl::Duration timeout, const std::function<void()>& progress);
  // Cancels every stream and waits for them to end.
  void Stop();

  int converged() const { return converged_.load(); }
  int agents() const { return options_.agents; }
  uint64_t bytes() const { return bytes_incremental_.load() + bytes_full_.load(); }
  FleetSummary Summary() const;

 private:
  friend class Agent;
  friend class FetchCall;
  // A verified version: a mapped file in the work dir, shared by agents.
  using Bytes = std::shared_ptr<const MappedFile>;

  std::shared_ptr<grpc::Channel> NewChannel();
  // TLS settings for a channel to `address` (the server or a start source).
  ChannelOptions ChannelOptionsFor(const std::string& address) const;
  void CountError(const std::string& kind, const std::string& message);
  void MarkConverged(absl::Time when);
  void SawTarget(absl::Time when);
  // The verified bytes of `component` `version`, if some agent has them.
  Bytes Known(const std::string& component, uint32_t version, const std::string& sha256);
  // Takes the verified `staged` file as `component` `version` (or the copy
  // known already, `staged` then dropped).
  absl::StatusOr<Bytes> Remember(const std::string& component, uint32_t version,
                                 const std::string& sha256, std::unique_ptr<StagedFile> staged);
  // A staged file in the work dir for a body of `component`.
  absl::StatusOr<std::unique_ptr<StagedFile>> Scratch(const std::string& component);
  // Cuts fetches the transfer rules say to cut; runs every second.
  void SweepFetches();
  // The signed manifest checked: the signature once per distinct signed
  // bytes (agents sent the same bytes share the check), expiry every time.
  absl::StatusOr<std::shared_ptr<const v1::Manifest>> Verify(const v1::SignedManifest& m,
                                                             absl::Time now);
  // Rebuilds (once per distinct input) and checks the result's digest.
  absl::StatusOr<Bytes> Rebuild(const std::string& component, uint32_t from, const Bytes& old,
                                const std::string& incremental, const v1::ComponentEntry& entry);
  absl::StatusOr<Bytes> FetchWhole(const std::string& component, uint32_t version,
                                   const v1::ComponentEntry* verify_against);
  bool owns_work_dir_ = false;
  std::string work_dir_;

  const FleetOptions options_;
  const std::unique_ptr<ManifestVerifier> verifier_;
  const IncrementalCodec codec_;
  std::string target_;  // the server's reachable addresses, as a gRPC target
  std::shared_ptr<grpc::Channel> shared_channel_;
  std::shared_ptr<grpc::Channel> start_channel_;
  TimerQueue timers_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::atomic<int> converged_{0};
  std::atomic<int> live_reactors_{0};
  std::atomic<uint64_t> bytes_incremental_{0}, bytes_full_{0};
  std::atomic<bool> stopping_{false};
  absl::Time started_;

  mutable absl::Mutex mu_;
  // The newest manifest accepted (loaded from and saved to --state-dir).
  std::optional<v1::SignedManifest> floor_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Bytes> files_ ABSL_GUARDED_BY(mu_);  // "comp/ver/sha"
  absl::flat_hash_set<FetchCall*> fetches_ ABSL_GUARDED_BY(mu_);        // under way
  // Inputs are compared byte for byte, so a cache hit is as strong as a
  // rebuild and digest check: key "comp/from/to/old-bytes-address".
  struct Rebuilt {
    std::string incremental;
    Bytes result;
  };
  absl::flat_hash_map<std::string, std::vector<Rebuilt>> rebuilt_ ABSL_GUARDED_BY(mu_);
  // Signed bytes (signature + body) -> the manifest they verified to.
  absl::flat_hash_map<std::string, std::shared_ptr<const v1::Manifest>> verified_
      ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> converge_times_ ABSL_GUARDED_BY(mu_);
  absl::Time first_target_seen_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::map<std::string, uint64_t> errors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> first_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_AGENT_SIM_FLEET_H_
