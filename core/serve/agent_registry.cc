#include "core/serve/agent_registry.h"

#include "absl/strings/str_cat.h"
#include "core/model/component.h"

namespace sigrelay {

absl::Status AgentRegistry::Report(const v1::ReportStatusRequest& report, absl::Time now) {
  if (report.agent_id().empty() || report.agent_id().size() > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent_id must be 1..256 bytes, got ", report.agent_id().size()));
  }
  Entry entry{{}, now};
  for (const v1::ComponentVersion& cv : report.versions()) {
    if (absl::Status s = ValidateComponentName(cv.component()); !s.ok()) return s;
    if (cv.version() == 0) continue;  // holds nothing of it: not an agent "at 0"
    entry.versions[cv.component()] = cv.version();
  }
  absl::MutexLock lock(&mu_);
  if (!agents_.contains(report.agent_id()) && agents_.size() >= max_agents_) {
    auto oldest = agents_.begin();
    for (auto it = agents_.begin(); it != agents_.end(); ++it) {
      if (it->second.last_seen < oldest->second.last_seen) oldest = it;
    }
    agents_.erase(oldest);
  }
  agents_[report.agent_id()] = std::move(entry);
  return absl::OkStatus();
}

size_t AgentRegistry::AgentCount() const {
  absl::MutexLock lock(&mu_);
  return agents_.size();
}

std::map<std::string, std::map<uint32_t, uint64_t>> AgentRegistry::VersionCounts() const {
  std::map<std::string, std::map<uint32_t, uint64_t>> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : agents_) {
    for (const auto& [component, version] : entry.versions) ++out[component][version];
  }
  return out;
}

}  // namespace sigrelay
