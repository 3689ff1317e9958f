// What each agent last reported (on its Watch stream or with ReportStatus),
// for status pages: how far a rollout has got.
//
// Bounded in memory and in time whatever clients send: at most `max_agents`
// agents (the least recently heard from is forgotten first, in O(1)), at
// most kMaxComponents distinct component names, at most kMaxComponents
// entries per report; agents per version are counted as reports arrive, so
// reading them costs the number of distinct versions, not of agents.
#ifndef SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_
#define SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// Thread-safe.
class AgentRegistry {
 public:
  static constexpr size_t kMaxComponents = 64;
  static constexpr size_t kMaxIdBytes = 256;

  explicit AgentRegistry(size_t max_agents = 1 << 20) : max_agents_(max_agents) {}

  // InvalidArgument for an empty or over-long agent id, a bad component name
  // or more than kMaxComponents of them; nothing is recorded then. Versions
  // of components past the kMaxComponents distinct names seen are not
  // counted (the report is still taken). Version 0 means "holds nothing".
  absl::Status Report(const v1::ReportStatusRequest& report);

  size_t AgentCount() const;
  // component -> version -> number of agents reporting it.
  std::map<std::string, std::map<uint32_t, uint64_t>> VersionCounts() const;

 private:
  using ComponentId = uint16_t;
  struct Entry {
    std::vector<std::pair<ComponentId, uint32_t>> versions;
    std::list<std::string>::iterator recency;  // into recency_
  };
  void CountLocked(const Entry& entry, int64_t delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_agents_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> agents_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);  // most recently heard first
  absl::flat_hash_map<std::string, ComponentId> component_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> component_names_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::pair<ComponentId, uint32_t>, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_
