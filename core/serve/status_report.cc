#include "core/serve/status_report.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/base/connection_guard.h"
#include "core/model/manifest.h"

namespace sigrelay {

namespace {

// Versions listed one by one per component in status; the rest are summed.
constexpr size_t kTopVersions = 16;

void FillComponentStatus(const StoreView& view, v1::GetStatusResponse* response) {
  if (!view.manifest()) return;
  absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*view.manifest());
  if (!m.ok()) return;
  response->set_manifest_serial(m->serial());
  response->set_manifest_issued_unix(m->issued_unix());
  response->set_manifest_expires_unix(m->expires_unix());
  response->set_manifest_freshness(ManifestFreshness(*m, absl::Now()));
  for (const v1::ComponentEntry& e : m->components()) {
    v1::ComponentStatus* c = response->add_components();
    c->set_name(e.name());
    c->set_version(e.version());
    c->set_size(e.size());
    c->set_sha256(e.sha256());
    for (const v1::IncrementalEntry& ie : e.incrementals()) {
      v1::IncrementalStatus* is = c->add_incrementals();
      is->set_from_version(ie.from_version());
      is->set_size(ie.size());
    }
    for (uint32_t v : view.FullVersions(e.name())) c->add_retained_versions(v);
    for (const v1::Withdrawal& w : m->withdrawn()) {
      if (w.component() == e.name()) c->add_withdrawn(absl::StrCat(w.version(), ": ", w.reason()));
    }
  }
}

// The most common versions of each component, newest first among equals;
// the rest summed into one entry.
void AddVersionCounts(const std::map<std::string, std::map<uint32_t, uint64_t>>& counts,
                      google::protobuf::RepeatedPtrField<v1::AgentVersionCount>* out) {
  for (const auto& [component, versions] : counts) {
    std::vector<std::pair<uint64_t, uint32_t>> by_count;
    for (const auto& [version, count] : versions) by_count.emplace_back(count, version);
    std::sort(by_count.rbegin(), by_count.rend());
    uint64_t other = 0;
    for (size_t i = 0; i < by_count.size(); ++i) {
      if (i >= kTopVersions) {
        other += by_count[i].first;
        continue;
      }
      v1::AgentVersionCount* c = out->Add();
      c->set_component(component);
      c->set_version(by_count[i].second);
      c->set_agents(by_count[i].first);
    }
    if (other > 0) {
      v1::AgentVersionCount* c = out->Add();
      c->set_component(component);
      c->set_agents(other);
      c->set_other_versions(true);
    }
  }
}

void FillServingStatus(const UpdateServiceImpl& update, const AgentRegistry& agents,
                       v1::GetStatusResponse* response) {
  response->set_watchers(update.WatcherCount());
  TransferGate::Stats t = update.TransferStats();
  v1::TransferStatus* ts = response->mutable_transfers();
  ts->set_active(t.active);
  ts->set_queued(t.queued);
  ts->set_peak_active(t.peak_active);
  ts->set_peak_queued(t.peak_queued);
  ts->set_refused(t.refused);
  ts->set_admitted(t.admitted);
  ts->set_max_active(update.max_transfers());
  ts->set_fetches(update.fetches());
  ts->set_pushed(update.pushed());
  ts->set_stalled(update.stalled());
  response->set_agents_reported(agents.AgentCount());
  response->set_agents_stale(agents.StaleCount());
  AddVersionCounts(agents.VersionCounts(), response->mutable_agent_versions());
  AddVersionCounts(agents.StaleVersionCounts(), response->mutable_stale_versions());
  for (v1::FleetCount& c : update.Fleet()) *response->add_fleet() = std::move(c);
  for (const auto& [component, versions] : agents.RefusedCounts()) {
    for (const auto& [version, refused] : versions) {
      v1::AgentVersionCount* c = response->add_agents_refused();
      c->set_component(component);
      c->set_version(version);
      c->set_agents(refused.first);
      c->set_refused_reason(refused.second);
    }
  }
  for (const auto& [reason, n] : ConnectionsRefused()) {
    (*response->mutable_connections_refused())[reason] = n;
  }
}

}  // namespace

void FillNodeStatus(const std::string& role, const StoreView& view, const UpdateServiceImpl& update,
                    const AgentRegistry& agents, v1::GetStatusResponse* response) {
  response->set_pushes_paused(update.pushes_paused());
  response->set_role(role);
  FillComponentStatus(view, response);
  FillServingStatus(update, agents, response);
}

}  // namespace sigrelay
