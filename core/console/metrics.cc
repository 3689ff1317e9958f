#include "core/console/metrics.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace sigrelay {
namespace {

// A label value escaped as the text format wants (\\, \", \n).
std::string Label(absl::string_view v) {
  return absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

class Writer {
 public:
  // Starts a metric family.
  void Family(absl::string_view name, absl::string_view type, absl::string_view help) {
    absl::StrAppend(&out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  template <typename V>
  void Sample(absl::string_view name, absl::string_view labels, V value) {
    absl::StrAppend(&out_, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ", value,
                    "\n");
  }
  template <typename V>
  void One(absl::string_view name, absl::string_view type, absl::string_view help, V value) {
    Family(name, type, help);
    Sample(name, "", value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string PrometheusText(const v1::GetStatusResponse& s, absl::Time now) {
  Writer w;
  w.Family("sigrelay_info", "gauge", "The node's role and what its listeners speak.");
  w.Sample("sigrelay_info",
           absl::StrCat("role=\"", Label(s.role()), "\",listener_security=\"",
                        Label(s.listener_security()), "\""),
           1);
  w.Family("sigrelay_component_version", "gauge", "Newest version held, per component.");
  for (const v1::ComponentStatus& c : s.components()) {
    w.Sample("sigrelay_component_version", absl::StrCat("component=\"", Label(c.name()), "\""),
             c.version());
  }
  w.Family("sigrelay_component_size_bytes", "gauge", "Size of the newest version, per component.");
  for (const v1::ComponentStatus& c : s.components()) {
    w.Sample("sigrelay_component_size_bytes", absl::StrCat("component=\"", Label(c.name()), "\""),
             c.size());
  }
  w.One("sigrelay_manifest_serial", "gauge", "Serial of the signed manifest held (0: none).",
        s.manifest_serial());
  const double until_expiry =
      s.manifest_expires_unix() == 0
          ? 0
          : absl::ToDoubleSeconds(absl::FromUnixSeconds(s.manifest_expires_unix()) - now);
  w.One("sigrelay_manifest_expiry_seconds", "gauge",
        "Seconds until the manifest held expires (negative: expired).", until_expiry);
  w.Family("sigrelay_manifest_freshness", "gauge",
           "1 for the state of the manifest held: fresh, stale or expired.");
  for (const char* state : {"fresh", "stale", "expired"}) {
    w.Sample("sigrelay_manifest_freshness", absl::StrCat("state=\"", state, "\""),
             s.manifest_freshness() == state ? 1 : 0);
  }
  w.One("sigrelay_trust_root_version", "gauge", "Trust root held (0: one pinned key).",
        s.root_version());
  w.One("sigrelay_watch_streams", "gauge", "Open Watch streams (agents and relays below).",
        s.watchers());
  w.One("sigrelay_pushes_paused", "gauge", "1 while an operator paused pushes to watchers.",
        s.pushes_paused() ? 1 : 0);
  w.One("sigrelay_agents_reported", "gauge",
        "Live agents: an open Watch stream, or heard from within --agent-stale-after.",
        s.agents_reported());
  w.One("sigrelay_agents_stale", "gauge",
        "Agents not heard from within --agent-stale-after (not counted in sigrelay_agents).",
        s.agents_stale());
  w.Family("sigrelay_connections_refused_total", "counter",
           "Connections on the agents' port refused at accept or cut, by reason.");
  for (const auto& [reason, n] : s.connections_refused()) {
    w.Sample("sigrelay_connections_refused_total", absl::StrCat("reason=\"", Label(reason), "\""),
             n);
  }
  w.Family("sigrelay_agents", "gauge",
           "Live agents per component and version reported (version=\"other\": the rest).");
  for (const v1::AgentVersionCount& a : s.agent_versions()) {
    w.Sample("sigrelay_agents",
             absl::StrCat("component=\"", Label(a.component()), "\",version=\"",
                          a.other_versions() ? "other" : absl::StrCat(a.version()), "\""),
             a.agents());
  }
  w.Family("sigrelay_fleet_agents", "gauge",
           "Live agents of this node's whole subtree (its own and every relay's below) per "
           "component, version, staged-rollout ring (\"\": none) and health (healthy, unhealthy, "
           "unknown: no --health-check).");
  for (const v1::FleetCount& c : s.fleet()) {
    const std::string labels =
        absl::StrCat("component=\"", Label(c.component()), "\",version=\"", c.version(),
                     "\",ring=\"", Label(c.ring()), "\",health=\"");
    w.Sample("sigrelay_fleet_agents", labels + "healthy\"", c.healthy());
    w.Sample("sigrelay_fleet_agents", labels + "unhealthy\"", c.unhealthy());
    w.Sample("sigrelay_fleet_agents", labels + "unknown\"",
             c.agents() - std::min(c.agents(), c.healthy() + c.unhealthy()));
  }
  w.Family("sigrelay_rollout_ring_agents", "gauge",
           "Origin: live agents of each ring of a staged rollout (kind=agents: all versions; "
           "installed, healthy, unhealthy, silent: on the version rolling out).");
  for (const v1::RolloutStatus& r : s.rollouts()) {
    for (const v1::RingStatus& g : r.rings()) {
      const std::string labels =
          absl::StrCat("component=\"", Label(r.component()), "\",version=\"", r.version(),
                       "\",ring=\"", Label(g.name()), "\",kind=\"");
      for (const auto& [kind, n] : {std::pair<const char*, uint64_t>{"agents", g.agents()},
                                    {"installed", g.installed()},
                                    {"healthy", g.healthy()},
                                    {"unhealthy", g.unhealthy()},
                                    {"silent", g.silent()}}) {
        w.Sample("sigrelay_rollout_ring_agents", labels + kind + "\"", n);
      }
    }
  }
  w.Family("sigrelay_rollout_ring_admitted", "gauge",
           "Origin: 1 for each ring admitted to the version rolling out, 0 for one waiting.");
  auto rollout_labels = [](const v1::RolloutStatus& r) {
    return absl::StrCat("component=\"", Label(r.component()), "\",version=\"", r.version(), "\"");
  };
  for (const v1::RolloutStatus& r : s.rollouts()) {
    for (const v1::RingStatus& g : r.rings()) {
      w.Sample("sigrelay_rollout_ring_admitted",
               absl::StrCat(rollout_labels(r), ",ring=\"", Label(g.name()), "\""),
               g.admitted() ? 1 : 0);
    }
  }
  w.Family("sigrelay_rollout_halted", "gauge",
           "Origin: 1 while a staged rollout is halted (by its gate or an operator).");
  for (const v1::RolloutStatus& r : s.rollouts()) {
    w.Sample("sigrelay_rollout_halted", rollout_labels(r), r.state() == "halted" ? 1 : 0);
  }
  w.Family("sigrelay_agents_refused", "gauge",
           "Live agents whose own check (sigrelay-agent --verify-cmd) refused a version, per "
           "component and refused version.");
  for (const v1::AgentVersionCount& a : s.agents_refused()) {
    w.Sample("sigrelay_agents_refused",
             absl::StrCat("component=\"", Label(a.component()), "\",version=\"", a.version(), "\""),
             a.agents());
  }
  const v1::TransferStatus& t = s.transfers();
  w.One("sigrelay_transfers_active", "gauge", "Transfers running.", t.active());
  w.One("sigrelay_transfers_queued", "gauge", "Transfers waiting for a slot.", t.queued());
  w.One("sigrelay_transfers_refused_total", "counter", "Transfers refused (queue full).",
        t.refused());
  w.One("sigrelay_transfers_stalled_total", "counter",
        "Transfers cancelled for making no progress.", t.stalled());
  w.One("sigrelay_fetches_total", "counter", "Fetch calls served.", t.fetches());
  w.One("sigrelay_pushed_incrementals_total", "counter", "Incrementals sent inside Watch pushes.",
        t.pushed());
  w.One("sigrelay_admin_refused_total", "counter",
        "Admin calls and console sign-ins refused (bad or no token).", s.admin_refused());

  if (s.role() == "relay") {
    const v1::RelayStatus& r = s.relay();
    w.One("sigrelay_last_sync_success_timestamp_seconds", "gauge",
          "Unix time of the last successful sync (0: none since start).", r.last_success_unix());
    w.One("sigrelay_sync_schedule_seconds", "gauge", "Period of scheduled syncs.",
          r.schedule_seconds());
    w.Family("sigrelay_sync_duration_seconds", "histogram", "How long syncs took.");
    uint64_t cumulative = 0;
    for (int i = 0; i < kSyncSecondsBuckets; ++i) {
      cumulative += i < r.sync_seconds_counts_size() ? r.sync_seconds_counts(i) : 0;
      std::string le =
          i < kSyncSecondsBuckets - 1 ? absl::StrCat(kSyncSecondsBounds[i]) : std::string("+Inf");
      w.Sample("sigrelay_sync_duration_seconds_bucket", absl::StrCat("le=\"", le, "\""),
               cumulative);
    }
    w.Sample("sigrelay_sync_duration_seconds_sum", "", r.sync_seconds_sum());
    w.Sample("sigrelay_sync_duration_seconds_count", "", cumulative);
    w.Family("sigrelay_downloaded_bytes_total", "counter", "Bytes downloaded from upstreams.");
    w.Sample("sigrelay_downloaded_bytes_total", "kind=\"incremental\"", r.bytes_incremental());
    w.Sample("sigrelay_downloaded_bytes_total", "kind=\"full\"", r.bytes_full());
    w.One("sigrelay_syncs_total", "counter", "Syncs that succeeded.", r.syncs_ok());
    w.Family("sigrelay_sync_failures_total", "counter",
             "Failed sync attempts (one per upstream tried), by reason.");
    const std::map<std::string, uint64_t> reasons(r.syncs_failed_by_reason().begin(),
                                                  r.syncs_failed_by_reason().end());
    for (const auto& [reason, n] : reasons) {
      w.Sample("sigrelay_sync_failures_total", absl::StrCat("reason=\"", Label(reason), "\""), n);
    }
    w.One("sigrelay_manifest_conflicts_total", "counter",
          "Manifests refused for signing held serials or versions over other content.",
          r.conflicts());
    w.Family("sigrelay_upstream_up", "gauge", "1 when the upstream answered last time.");
    for (const v1::UpstreamStatus& u : r.upstreams()) {
      w.Sample("sigrelay_upstream_up", absl::StrCat("upstream=\"", Label(u.address()), "\""),
               u.state() == "ok" ? 1 : 0);
    }
  }
  return w.Take();
}

}  // namespace sigrelay
