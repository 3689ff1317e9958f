// A shell command the agent runs for the operator (--on-update after an
// install, --verify-cmd against a staged file): /bin/sh -c CMD in its own
// process group with extra environment, killed with everything it started
// when it outlives its timeout or the agent stops.
//
//   HookRun r = RunHook({.command = cmd, .env = {"SIGRELAY_STAGED=/x"},
//                        .timeout = absl::Seconds(60), .stop = &stop,
//                        .capture = true});
//   if (r.outcome != HookRun::kOk) Log(..., r.Describe());
#ifndef SIGRELAY_AGENT_HOOK_H_
#define SIGRELAY_AGENT_HOOK_H_

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace sigrelay {

struct HookOptions {
  std::string command;           // for /bin/sh -c
  std::vector<std::string> env;  // NAME=VALUE, added to the agent's own
  absl::Duration timeout = absl::Seconds(60);
  const absl::Notification* stop = nullptr;  // kills the command when notified
  // Keep what it prints on stdout and stderr (the first kMaxOutput bytes)
  // instead of passing it to the agent's own.
  bool capture = false;
};

struct HookRun {
  static constexpr size_t kMaxOutput = 4096;
  enum Outcome { kOk, kFailed, kTimedOut, kStopped, kNotStarted };
  Outcome outcome = kNotStarted;
  int wait_status = 0;  // from waitpid, for kOk and kFailed
  std::string output;   // with capture
  // "exit 2", "signal 9", "did not finish within 1m", "killed: the agent is
  // stopping", "cannot start: ...".
  std::string Describe(absl::Duration timeout) const;
  // Describe, then what it printed (with capture) on one line, at most
  // `max_output` bytes of it: "exit 2: LibClamAV Error: ... | ERROR: ...".
  std::string Summary(absl::Duration timeout, size_t max_output = kMaxOutput) const;
};

HookRun RunHook(const HookOptions& options);

}  // namespace sigrelay

#endif  // SIGRELAY_AGENT_HOOK_H_
