#include "core/serve/agent_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/model/component.h"

namespace sigrelay {

absl::Status AgentRegistry::Report(const v1::ReportStatusRequest& report) {
  if (report.agent_id().empty() || report.agent_id().size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("agent_id must be 1..", kMaxIdBytes,
                                                   " bytes, got ", report.agent_id().size()));
  }
  if (static_cast<size_t>(report.versions_size()) > kMaxComponents) {
    return absl::InvalidArgumentError(absl::StrCat("a report lists ", report.versions_size(),
                                                   " components; at most ", kMaxComponents));
  }
  for (const v1::ComponentVersion& cv : report.versions()) {
    if (absl::Status s = ValidateComponentName(cv.component()); !s.ok()) return s;
  }
  absl::MutexLock lock(&mu_);
  Entry fresh;
  for (const v1::ComponentVersion& cv : report.versions()) {
    if (cv.version() == 0) continue;  // holds nothing of it: not an agent "at 0"
    auto id = component_ids_.find(cv.component());
    if (id == component_ids_.end()) {
      if (component_names_.size() >= kMaxComponents) continue;  // not counted
      id = component_ids_.emplace(cv.component(), component_names_.size()).first;
      component_names_.push_back(cv.component());
    }
    fresh.versions.emplace_back(id->second, cv.version());
  }
  auto it = agents_.find(report.agent_id());
  if (it != agents_.end()) {
    CountLocked(it->second, -1);
    recency_.splice(recency_.begin(), recency_, it->second.recency);
    it->second.versions = std::move(fresh.versions);
  } else {
    if (agents_.size() >= max_agents_) {
      auto oldest = agents_.find(recency_.back());
      CountLocked(oldest->second, -1);
      agents_.erase(oldest);
      recency_.pop_back();
    }
    recency_.push_front(report.agent_id());
    fresh.recency = recency_.begin();
    it = agents_.emplace(report.agent_id(), std::move(fresh)).first;
  }
  CountLocked(it->second, +1);
  return absl::OkStatus();
}

void AgentRegistry::CountLocked(const Entry& entry, int64_t delta) {
  for (const auto& key : entry.versions) {
    uint64_t& n = counts_[key];
    n += delta;
    if (n == 0) counts_.erase(key);
  }
}

size_t AgentRegistry::AgentCount() const {
  absl::MutexLock lock(&mu_);
  return agents_.size();
}

std::map<std::string, std::map<uint32_t, uint64_t>> AgentRegistry::VersionCounts() const {
  std::map<std::string, std::map<uint32_t, uint64_t>> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, n] : counts_) out[component_names_[key.first]][key.second] = n;
  return out;
}

}  // namespace sigrelay
