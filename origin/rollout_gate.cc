#include "origin/rollout_gate.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/base/log.h"
#include "core/model/manifest.h"
#include "core/model/rollout.h"

namespace sigrelay {
namespace {

constexpr size_t kDecisionsKept = 64;
constexpr absl::Duration kUnlabelledWait = absl::Minutes(5);
constexpr absl::Duration kReportGrace = absl::Seconds(30);

struct RingCounts {
  uint64_t agents = 0, installed = 0, healthy = 0, unhealthy = 0;
  uint64_t silent() const { return agents - std::min(agents, healthy + unhealthy); }
};

// Agents of `ring` (all versions of `component`) in `fleet`, and of those
// on `version`: healthy, and unhealthy (a refusal by their own check
// counts as unhealthy).
RingCounts Count(const std::vector<v1::FleetCount>& fleet, const std::string& component,
                 uint32_t version, const std::string& ring) {
  RingCounts n;
  for (const v1::FleetCount& c : fleet) {
    if (c.component() != component || c.ring() != ring) continue;
    n.agents += c.agents();
    if (c.version() != version) continue;
    n.installed += c.agents();
    n.healthy += c.healthy();
    n.unhealthy += c.unhealthy() + c.refused();
  }
  n.unhealthy = std::min(n.unhealthy, n.agents - std::min(n.agents, n.healthy));
  return n;
}

std::string Percent(uint32_t bp) { return absl::StrFormat("%g%%", bp / 100.0); }

std::string Describe(const RingCounts& n, const std::string& ring, const std::string& source) {
  return absl::StrCat("ring ", ring, " (", source, "): ", n.agents, " agents, ", n.installed,
                      " installed, ", n.healthy, " healthy, ", n.unhealthy, " unhealthy, ",
                      n.silent(), " silent");
}

std::string SourceName(size_t i) {
  return i == 0 ? "this origin's own agents" : absl::StrCat("downstream relay ", i);
}

}  // namespace

RolloutGate::RolloutGate(Publisher* publisher, FleetBySource fleet, RolloutGateOptions options)
    : publisher_(publisher), fleet_(std::move(fleet)), options_(options) {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.every)) Tick();
  });
}

RolloutGate::~RolloutGate() {
  stop_.Notify();
  thread_.join();
}

void RolloutGate::Decide(const std::string& component, uint32_t version, const std::string& ring,
                         const std::string& action, const std::string& evidence) {
  v1::RolloutDecision d;
  d.set_decided_unix(absl::ToUnixSeconds(options_.clock->Now()));
  d.set_component(component);
  d.set_version(version);
  d.set_ring(ring);
  d.set_action(action);
  d.set_evidence(evidence);
  Log(action == "halt" || action == "withdraw" ? LogLevel::kError : LogLevel::kInfo,
      absl::StrCat("rollout of ", component, " ", version, ": ", action, " ", ring, ": ", evidence),
      {{"event", "rollout"},
       {"component", component},
       {"version", absl::StrCat(version)},
       {"ring", ring},
       {"action", action}});
  absl::MutexLock lock(&mu_);
  decisions_.push_back(std::move(d));
  while (decisions_.size() > kDecisionsKept) decisions_.pop_front();
}

void RolloutGate::Tick() {
  std::optional<v1::Manifest> manifest = publisher_->Current();
  if (!manifest) return;
  std::vector<std::vector<v1::FleetCount>> sources;
  bool fetched = false;
  const absl::Time now = options_.clock->Now();
  for (const v1::ComponentEntry& entry : manifest->components()) {
    if (!entry.has_rollout() || entry.rollout().halted()) continue;
    if (!fetched) {
      sources = fleet_();
      fetched = true;
    }
    const v1::Rollout& r = entry.rollout();
    const std::string& component = entry.name();
    const uint32_t version = entry.version();
    // Halt: a ring admitted so far where more agents are unhealthy than
    // its threshold allows, in any one source.
    std::string halt, halt_ring;
    for (uint32_t i = 0; i < r.admitted() && halt.empty(); ++i) {
      const v1::Ring& ring = r.rings(i);
      for (size_t s = 0; s < sources.size() && halt.empty(); ++s) {
        const RingCounts n = Count(sources[s], component, version, ring.name());
        if (n.agents > 0 && n.unhealthy * 10000 > (10000 - ring.min_healthy_bp()) * n.agents) {
          halt = absl::StrCat(Describe(n, ring.name(), SourceName(s)), "; over ",
                              Percent(10000 - ring.min_healthy_bp()), " unhealthy");
          halt_ring = ring.name();
        }
      }
    }
    // Promote: the newest admitted ring has baked, and in every source
    // enough of its agents report healthy. Its agents have the bake time
    // and kReportGrace (for reports to climb the tree) to report; after
    // that the silent ones count as unhealthy and a ring short of its
    // threshold halts the rollout. Agents that have not yet reported the
    // rollout's manifest (no ring) are waited for, up to kUnlabelledWait
    // past the bake: until then a ring's count may be short.
    std::string promote;
    const v1::Ring& newest = r.rings(r.admitted() - 1);
    const absl::Time baked = absl::FromUnixSeconds(r.admitted_unix() + newest.bake_seconds());
    uint64_t unlabelled = 0;
    for (const auto& source : sources) {
      for (const v1::FleetCount& c : source) {
        if (c.component() == component && c.ring().empty()) unlabelled += c.agents();
      }
    }
    if (halt.empty() && now >= baked) {
      RingCounts total;
      std::string short_of;
      for (size_t s = 0; s < sources.size(); ++s) {
        const RingCounts n = Count(sources[s], component, version, newest.name());
        total.agents += n.agents;
        total.installed += n.installed;
        total.healthy += n.healthy;
        total.unhealthy += n.unhealthy;
        if (short_of.empty() && n.agents > 0 &&
            n.healthy * 10000 < newest.min_healthy_bp() * n.agents) {
          short_of = absl::StrCat(Describe(n, newest.name(), SourceName(s)), " at the end of its ",
                                  absl::FormatDuration(absl::Seconds(newest.bake_seconds())),
                                  " bake and ", absl::FormatDuration(kReportGrace),
                                  " for reports; under ", Percent(newest.min_healthy_bp()),
                                  " healthy (silent agents count as unhealthy)");
        }
      }
      const bool all_in = unlabelled == 0 || now >= baked + kUnlabelledWait;
      if (!short_of.empty() && now >= baked + kReportGrace) {
        halt = short_of;
        halt_ring = newest.name();
      } else if (short_of.empty() && all_in) {
        promote = total.agents == 0
                      ? absl::StrCat("ring ", newest.name(),
                                     " has no agents; promoted on its bake time alone")
                      : absl::StrCat(Describe(total, newest.name(), "all sources"), "; at least ",
                                     Percent(newest.min_healthy_bp()), " healthy after ",
                                     absl::FormatDuration(absl::Seconds(newest.bake_seconds())));
      }
    }
    if (!halt.empty()) {
      absl::StatusOr<v1::ComponentEntry> done =
          publisher_->ChangeRollout(component, version, [&](v1::Rollout* rollout) {
            rollout->set_halted(true);
            rollout->set_reason(halt);
            return absl::OkStatus();
          });
      if (!done.ok()) continue;  // a publish came first
      Decide(component, version, halt_ring, "halt", halt);
      if (options_.auto_withdraw) {
        absl::StatusOr<v1::WithdrawResponse> w =
            publisher_->Withdraw(component, version, absl::StrCat("rollout halted at ", halt));
        Decide(component, version, halt_ring, "withdraw",
               w.ok() ? absl::StrCat("--auto-withdraw: published ", component, " ",
                                     w->published().version(), " with the content of ",
                                     w->content_of())
                      : absl::StrCat("--auto-withdraw failed: ", w.status().message()));
      }
    } else if (!promote.empty()) {
      const bool last = r.admitted() + 1 >= static_cast<uint32_t>(r.rings_size());
      const std::string next = r.rings(std::min<int>(r.admitted(), r.rings_size() - 1)).name();
      absl::StatusOr<v1::ComponentEntry> done =
          publisher_->ChangeRollout(component, version, [&](v1::Rollout* rollout) {
            rollout->set_admitted(rollout->admitted() + 1);
            rollout->set_admitted_unix(absl::ToUnixSeconds(now));
            return absl::OkStatus();
          });
      if (!done.ok()) continue;
      Decide(component, version, next, last ? "complete" : "promote", promote);
    }
  }
}

absl::StatusOr<v1::RolloutResponse> RolloutGate::Act(const v1::RolloutRequest& request) {
  const std::string& action = request.action();
  const std::string who = request.reason().empty()
                              ? "by the operator"
                              : absl::StrCat("by the operator: ", request.reason());
  v1::RolloutResponse response;
  absl::StatusOr<v1::ComponentEntry> entry;
  std::string ring;
  if (action == "status") {
    std::optional<v1::Manifest> m = publisher_->Current();
    const v1::ComponentEntry* e = m ? FindEntry(*m, request.component()) : nullptr;
    if (e == nullptr) {
      return absl::NotFoundError(absl::StrCat(request.component(), " is not published"));
    }
    entry = *e;
  } else if (action == "promote" || action == "halt" || action == "resume") {
    entry = publisher_->ChangeRollout(request.component(), 0, [&](v1::Rollout* r) {
      const absl::Time now = options_.clock->Now();
      if (action == "promote") {
        ring = r->rings(std::min<int>(r->admitted(), r->rings_size() - 1)).name();
        r->set_admitted(r->admitted() + 1);
        r->set_admitted_unix(absl::ToUnixSeconds(now));
        r->set_halted(false);
        r->set_reason(absl::StrCat("ring ", ring, " promoted ", who));
      } else if (action == "halt") {
        if (r->halted()) return absl::FailedPreconditionError("the rollout is halted already");
        ring = r->rings(r->admitted() - 1).name();
        r->set_halted(true);
        r->set_reason(absl::StrCat("halted ", who));
      } else {
        if (!r->halted()) return absl::FailedPreconditionError("the rollout is not halted");
        ring = r->rings(r->admitted() - 1).name();
        r->set_halted(false);
        r->set_reason("");
        r->set_admitted_unix(absl::ToUnixSeconds(now));  // it bakes again
      }
      return absl::OkStatus();
    });
    if (entry.ok()) {
      Decide(request.component(), entry->version(), ring,
             action == "promote" && !entry->has_rollout() ? "complete" : action, who);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown rollout action \"", action,
                                                   "\"; use status, promote, halt or resume"));
  }
  if (!entry.ok()) return entry.status();
  response.set_message(absl::StrCat(request.component(), " ", entry->version(), ": ",
                                    entry->has_rollout()
                                        ? (entry->rollout().halted() ? "halted" : "rolling out")
                                        : "reaches every agent"));
  if (entry->has_rollout()) {
    std::vector<v1::FleetCount> total;
    for (auto& source : fleet_()) total.insert(total.end(), source.begin(), source.end());
    *response.mutable_status() = StatusOf(*entry, total);
  }
  return response;
}

v1::RolloutStatus RolloutGate::StatusOf(const v1::ComponentEntry& entry,
                                        const std::vector<v1::FleetCount>& fleet) const {
  const v1::Rollout& r = entry.rollout();
  v1::RolloutStatus s;
  s.set_component(entry.name());
  s.set_version(entry.version());
  s.set_previous_version(r.previous().version());
  s.set_plan(FormatRolloutPlan(r.rings()));
  s.set_state(r.halted() ? "halted" : "rolling");
  s.set_reason(r.reason());
  s.set_admitted_unix(r.admitted_unix());
  for (int i = 0; i < r.rings_size(); ++i) {
    const v1::Ring& ring = r.rings(i);
    const RingCounts n = Count(fleet, entry.name(), entry.version(), ring.name());
    v1::RingStatus* rs = s.add_rings();
    rs->set_name(ring.name());
    rs->set_share_bp(ring.share_bp());
    rs->set_admitted(static_cast<uint32_t>(i) < r.admitted());
    rs->set_bake_seconds(ring.bake_seconds());
    rs->set_min_healthy_bp(ring.min_healthy_bp());
    rs->set_agents(n.agents);
    rs->set_installed(n.installed);
    rs->set_healthy(n.healthy);
    rs->set_unhealthy(n.unhealthy);
    rs->set_silent(n.silent());
  }
  return s;
}

void RolloutGate::FillStatus(v1::GetStatusResponse* response) const {
  std::optional<v1::Manifest> manifest = publisher_->Current();
  if (manifest) {
    std::vector<v1::FleetCount> total;
    bool fetched = false;
    for (const v1::ComponentEntry& e : manifest->components()) {
      if (!e.has_rollout()) continue;
      if (!fetched) {
        for (auto& source : fleet_()) total.insert(total.end(), source.begin(), source.end());
        fetched = true;
      }
      *response->add_rollouts() = StatusOf(e, total);
    }
  }
  absl::MutexLock lock(&mu_);
  for (const v1::RolloutDecision& d : decisions_) *response->add_rollout_decisions() = d;
}

}  // namespace sigrelay
