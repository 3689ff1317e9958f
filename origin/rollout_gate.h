// The origin's rollout gate: widens a staged rollout ring by ring on the
// health its relays report up the tree, and halts it (and, with
// --auto-withdraw, withdraws the version) when a ring turns unhealthy.
// Every decision is a new signed manifest from Publisher::ChangeRollout,
// logged with its evidence and kept for status.
//
// Each ring is judged per source of reports (this origin's own agents, and
// each downstream relay's subtree apart), so a subtree reporting inflated
// healthy counts cannot outvote another subtree's unhealthy agents.
//
//   RolloutGate gate(&publisher, [&] { return update->FleetBySource(); }, {.auto_withdraw = true});
//   ... gate.Act(request) for sigrelayctl rollout; gate.FillStatus(&status) ...
#ifndef SIGRELAY_ORIGIN_ROLLOUT_GATE_H_
#define SIGRELAY_ORIGIN_ROLLOUT_GATE_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/base/clock.h"
#include "origin/publisher.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

struct RolloutGateOptions {
  // A halted rollout's version is withdrawn at once (agents of the
  // admitted rings roll forward to the last good content).
  bool auto_withdraw = false;
  absl::Duration every = absl::Milliseconds(250);  // how often the gate looks
  const Clock* clock = RealClock::Get();
};

class RolloutGate {
 public:
  // Fleet counts per source: [0] this node's own agents, then one per
  // downstream relay.
  using FleetBySource = std::function<std::vector<std::vector<v1::FleetCount>>()>;

  // Starts the gate's thread. `publisher` must outlive this.
  RolloutGate(Publisher* publisher, FleetBySource fleet, RolloutGateOptions options);
  ~RolloutGate();

  // One look at every rollout (the thread calls it every `every`).
  void Tick();

  // sigrelayctl rollout: "status", "promote", "halt", "resume".
  absl::StatusOr<v1::RolloutResponse> Act(const v1::RolloutRequest& request);

  // Rollouts with their rings' counts, and the decisions kept.
  void FillStatus(v1::GetStatusResponse* response) const;

 private:
  void Decide(const std::string& component, uint32_t version, const std::string& ring,
              const std::string& action, const std::string& evidence);
  v1::RolloutStatus StatusOf(const v1::ComponentEntry& entry,
                             const std::vector<v1::FleetCount>& fleet) const;

  Publisher* const publisher_;
  const FleetBySource fleet_;
  const RolloutGateOptions options_;
  mutable absl::Mutex mu_;
  std::deque<v1::RolloutDecision> decisions_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_ORIGIN_ROLLOUT_GATE_H_
