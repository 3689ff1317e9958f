// Staged rollouts: which ring an agent is in, and which version of a
// component its ring is admitted to. Relays (choosing what to push), agents
// and agent-sim (choosing what to install) and the origin's gate decide
// with these same functions from the same signed manifest.
//
//   absl::StatusOr<std::vector<v1::Ring>> rings =
//       ParseRolloutPlan("canary=1%:30m:95%,early=10%:1h,broad");
//   const v1::ComponentEntry& take = AdmittedEntry(*entry, agent_id, "");
#ifndef SIGRELAY_CORE_MODEL_ROLLOUT_H_
#define SIGRELAY_CORE_MODEL_ROLLOUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// A plan: "none" (no rings: every agent at once), "staged" (canary 1 %
// baking 30 minutes, early 10 % baking an hour, broad the rest; each
// needing 95 % of its agents healthy), or rings in order:
// NAME=SHARE%:BAKE[:HEALTHY%], the last one NAME alone (everyone else).
// SHARE is cumulative. InvalidArgument saying what is wrong otherwise.
absl::StatusOr<std::vector<v1::Ring>> ParseRolloutPlan(absl::string_view plan);
// The plan as ParseRolloutPlan reads it ("none" for no rings).
std::string FormatRolloutPlan(const google::protobuf::RepeatedPtrField<v1::Ring>& rings);

// An agent's bucket in [0, 10000): from the SHA-256 of its id.
uint32_t RingBucket(absl::string_view agent_id);

// The index of the ring of `rollout` an agent is in: the ring named
// `chosen` when the plan has one of that name, else by its id's bucket.
int RingIndex(const v1::Rollout& rollout, absl::string_view agent_id, absl::string_view chosen);

// What an agent may install of `entry`: the entry itself when it is not
// rolling out or the agent's ring is admitted, else the rollout's previous
// version.
const v1::ComponentEntry& AdmittedEntry(const v1::ComponentEntry& entry, absl::string_view agent_id,
                                        absl::string_view chosen);

// The name of the agent's ring for `entry` ("" when it is not rolling out).
std::string RingName(const v1::ComponentEntry& entry, absl::string_view agent_id,
                     absl::string_view chosen);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_MODEL_ROLLOUT_H_
