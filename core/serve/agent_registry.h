// What each agent last reported (on its Watch stream or with ReportStatus),
// for status pages and the rollout view: how far a rollout has got among the
// agents that are there now.
//
// An agent counts as live while a Watch stream it reported on is open, and
// for `stale_after` after its last report or stream ended; after that it
// counts apart, as stale, until it is heard from again. Sweep() moves agents
// to stale (the node calls it every few seconds).
//
// Bounded in memory and in time whatever clients send: agents are kept
// under a 16-byte digest of their id (about 70 bytes each, whatever the
// id's length), versions as an index into a table of distinct version
// sets (thousands of agents share a few), at most `max_agents` of them
// (stale agents are forgotten first, then the longest disconnected; agents
// with an open stream never), at most kMaxComponents distinct component
// names and entries per report. Agents per version are counted as reports
// arrive, so reading them costs the number of distinct versions.
//
//   AgentRegistry registry({.max_agents = 1 << 20, .stale_after = absl::Minutes(5)});
//   absl::StatusOr<AgentKey> key = AgentRegistry::KeyOf(report.agent_id());
//   registry.Report(*key, report.versions(), AgentRegistry::Via::kStreamOpened);
//   ... the stream ends: registry.StreamEnded(*key);
#ifndef SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_
#define SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/base/clock.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// An agent's id as the registry keeps it: the first 16 bytes of its SHA-256.
using AgentKey = std::array<uint8_t, 16>;

struct AgentRegistryOptions {
  size_t max_agents = 1 << 20;
  // An agent without an open Watch stream counts as stale this long after
  // it was last heard from (a report, or its stream ending).
  absl::Duration stale_after = absl::Minutes(5);
  const Clock* clock = RealClock::Get();
};

// Thread-safe.
class AgentRegistry {
 public:
  static constexpr size_t kMaxComponents = 64;
  static constexpr size_t kMaxIdBytes = 256;

  explicit AgentRegistry(AgentRegistryOptions options = {});

  // InvalidArgument for an empty or over-long id (nothing recorded).
  static absl::StatusOr<AgentKey> KeyOf(const std::string& agent_id);

  enum class Via {
    kStreamOpened,  // the first report on a Watch stream: live until StreamEnded
    kStream,        // a later report on the same stream
    kCall,          // ReportStatus: no stream
  };

  // The versions `key` holds now, reported `via`. InvalidArgument for a bad component
  // name or more than kMaxComponents of them; nothing is recorded then.
  // Versions of components past the kMaxComponents distinct names seen are
  // not counted (the report is still taken). Version 0 means "holds
  // nothing". ResourceExhausted when the registry is full of agents with
  // open streams (the report is not recorded).
  absl::Status Report(const AgentKey& key,
                      const google::protobuf::RepeatedPtrField<v1::ComponentVersion>& versions,
                      Via via);
  // The form ReportStatus takes: no stream.
  absl::Status Report(const v1::ReportStatusRequest& report);
  // A Watch stream on which `key` reported has ended.
  void StreamEnded(const AgentKey& key);

  // Moves agents not heard from within stale_after to stale.
  void Sweep();

  size_t AgentCount() const;  // live
  size_t max_agents() const { return options_.max_agents; }
  size_t StaleCount() const;
  // component -> version -> number of live agents reporting it.
  std::map<std::string, std::map<uint32_t, uint64_t>> VersionCounts() const;
  // The same for stale agents.
  std::map<std::string, std::map<uint32_t, uint64_t>> StaleVersionCounts() const;
  // component -> refused version -> (live agents whose own check refused
  // it, the reason the last of them reported).
  std::map<std::string, std::map<uint32_t, std::pair<uint64_t, std::string>>> RefusedCounts() const;
  // Live agents per component, version and rollout ring with their health
  // and refusals, in that order.
  std::vector<v1::FleetCount> Fleet() const;

  // Bytes the registry holds (tables, entries, version sets), for status
  // and tests.
  size_t MemoryBytes() const;

 private:
  using ComponentId = uint16_t;
  // Flags on a version set's entry (id | flag, v): the agent refused
  // version v of component id (ComponentVersion.refused_version), or holds
  // v and reported it healthy or unhealthy. Component ids stay below
  // kMaxComponents.
  static constexpr ComponentId kRefused = 0x8000;
  static constexpr ComponentId kHealthy = 0x4000;
  static constexpr ComponentId kUnhealthy = 0x2000;
  // (id | kRing, r): the agent is in ring r (into ring_names_, from 1) of
  // the component's rollout.
  static constexpr ComponentId kRing = 0x1000;
  static constexpr ComponentId kFlags = kRefused | kHealthy | kUnhealthy | kRing;
  // Distinct ring names kept; reports naming others count without a ring.
  static constexpr size_t kMaxRings = 64;
  // Reasons kept: one per (component, refused version), at most this many,
  // each cut to kMaxReasonBytes.
  static constexpr size_t kMaxReasons = 256;
  static constexpr size_t kMaxReasonBytes = 512;
  using VersionSet = std::vector<std::pair<ComponentId, uint32_t>>;
  static constexpr uint32_t kNone = ~uint32_t{0};
  enum class State : uint8_t { kFree, kConnected, kDisconnected, kStale };

  // 36 bytes: an agent, in a slab; kDisconnected and kStale ones are also
  // in a doubly linked list of their state, most recently heard first.
  struct Entry {
    AgentKey key;
    uint32_t set = kNone;  // into sets_
    uint32_t prev = kNone, next = kNone;
    uint32_t heard = 0;  // seconds since epoch_
    uint16_t streams = 0;
    State state = State::kFree;
  };
  struct List {
    uint32_t head = kNone, tail = kNone;
    size_t size = 0;
  };
  struct SetInfo {
    VersionSet versions;
    uint64_t refs = 0;
  };

  uint32_t NowLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  List* ListOf(State s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unlink(uint32_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushFront(uint32_t i, State s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves entry i to `s`, its counts with it.
  void SetState(uint32_t i, State s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A free slot (evicting the oldest stale, else the oldest disconnected
  // agent when full), or kNone.
  uint32_t TakeSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeLocked(uint32_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t InternLocked(VersionSet versions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseSetLocked(uint32_t set) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountLocked(uint32_t set, bool stale, int64_t delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts of the entries flagged exactly `flag` (0: plain versions).
  std::map<std::string, std::map<uint32_t, uint64_t>> CountsLocked(bool stale,
                                                                   ComponentId flag = 0) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AgentRegistryOptions options_;
  const absl::Time epoch_;
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<AgentKey, uint32_t> index_ ABSL_GUARDED_BY(mu_);
  List disconnected_ ABSL_GUARDED_BY(mu_), stale_ ABSL_GUARDED_BY(mu_);
  size_t connected_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<SetInfo> sets_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_sets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<VersionSet, uint32_t> set_index_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ComponentId> component_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> component_names_ ABSL_GUARDED_BY(mu_);
  // (component with its flag, version, ring) -> agents, live and stale.
  using CountKey = std::tuple<ComponentId, uint32_t, uint16_t>;
  absl::flat_hash_map<CountKey, uint64_t> live_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<CountKey, uint64_t> stale_counts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint16_t> ring_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ring_names_ ABSL_GUARDED_BY(mu_) = {""};
  // (component | kRefused, version) -> the last reason reported.
  absl::flat_hash_map<std::pair<ComponentId, uint32_t>, std::string> reasons_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_
