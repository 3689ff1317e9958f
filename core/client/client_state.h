// What an update client trusts, kept across restarts so a restarted agent
// refuses what it refused before: STATE_DIR/state.binpb, an AgentState (the
// newest manifest accepted, what was installed), replaced atomically.
// sigrelay-agent and agent-sim (--state-dir) keep theirs here.
#ifndef SIGRELAY_CORE_CLIENT_CLIENT_STATE_H_
#define SIGRELAY_CORE_CLIENT_CLIENT_STATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "sigrelay/v1/config.pb.h"

namespace sigrelay {

// The state in `dir` (made if missing); an empty one on first use.
// DataLoss, saying what to do, for a file that is not a state.
absl::StatusOr<v1::AgentState> LoadClientState(const std::string& dir);

absl::Status SaveClientState(const std::string& dir, const v1::AgentState& state);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_CLIENT_STATE_H_
