// What each agent last reported (ReportStatus), for status pages: how far a
// rollout has got. Bounded: past `max_agents` the least recently seen agent
// is forgotten.
#ifndef SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_
#define SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

class AgentRegistry {
 public:
  explicit AgentRegistry(size_t max_agents = 1 << 20) : max_agents_(max_agents) {}

  // InvalidArgument for an empty or over-long agent id or an unknown
  // component; nothing is recorded then.
  absl::Status Report(const v1::ReportStatusRequest& report, absl::Time now);

  size_t AgentCount() const;
  // component -> version -> number of agents reporting it.
  std::map<std::string, std::map<uint32_t, uint64_t>> VersionCounts() const;

 private:
  struct Entry {
    std::map<std::string, uint32_t> versions;
    absl::Time last_seen;
  };
  const size_t max_agents_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> agents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_AGENT_REGISTRY_H_
