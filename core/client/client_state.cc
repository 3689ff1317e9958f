#include "core/client/client_state.h"

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"

namespace sigrelay {

absl::StatusOr<v1::AgentState> LoadClientState(const std::string& dir) {
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  const std::string file = dir + "/state.binpb";
  v1::AgentState state;
  if (!FileExists(file)) return state;
  absl::StatusOr<std::string> bytes = ReadFileToString(file);
  if (!bytes.ok()) return bytes.status();
  if (!state.ParseFromString(*bytes)) {
    return absl::DataLossError(
        absl::StrCat(file,
                     " is not a client state (sigrelay.v1.AgentState); it is only ever replaced "
                     "whole, so something else wrote it: remove it to start over (the client then "
                     "trusts the next valid manifest)"));
  }
  return state;
}

absl::Status SaveClientState(const std::string& dir, const v1::AgentState& state) {
  return WriteFileAtomically(dir + "/state.binpb", state.SerializeAsString(), 0600);
}

}  // namespace sigrelay
