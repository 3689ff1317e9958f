// sigrelay-agent's engine: keeps a pattern directory current from a relay.
//
// Each component lives in DIR as COMPONENT.pattern (the verified file; or
// the name given with --file, the one a scanner expects) and
// COMPONENT.version (its version, one line), each replaced atomically (a
// hidden temporary beside it, fsync, rename, directory fsync), pattern first.
// With --verify-cmd, a verified file is first committed under its final
// name in DIR/.sigrelay-staging and the command decides: exit 0 moves it
// over the installed one; anything else leaves the installed file as it
// was and the version refused (kept in the state, reported to the relay,
// not tried again until another version is offered).
// A scanner reading DIR never sees a half-written file; a crash at any
// instant leaves the old file or the new one. What was accepted and
// installed is kept in STATE_DIR/state.binpb; at start the files in DIR are
// hashed against it, so a file changed or torn outside the agent is
// replaced by a full download rather than trusted.
//
//   PatternAgent agent(options, std::move(verifier));
//   absl::Status s = agent.Open();           // state dir, agent id, held files
//   absl::StatusOr<UpdateResult> r = agent.UpdateOnce();   // --once
//   agent.Run(&stop);                        // Watch, with fallback and backoff
#ifndef SIGRELAY_AGENT_PATTERN_AGENT_H_
#define SIGRELAY_AGENT_PATTERN_AGENT_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/base/transport.h"
#include "core/client/grpc_source.h"
#include "core/client/transfer_watch.h"
#include "core/client/update_source.h"
#include "core/client/watch_stream.h"
#include "core/model/delta_codec.h"
#include "core/model/manifest.h"
#include "sigrelay/v1/config.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

struct PatternAgentOptions {
  std::vector<std::string> servers;  // tried in order; the next when one fails
  std::string dir;                   // where the pattern files go
  std::vector<std::string> components;
  std::string state_dir;
  // component -> file name in DIR (default COMPONENT.pattern); checked by
  // CheckFileNames.
  std::map<std::string, std::string> files;
  std::string on_update;  // shell command run after each installed update
  absl::Duration on_update_timeout = absl::Seconds(60);
  // Shell command run against each staged file before it is installed
  // (SIGRELAY_STAGED, SIGRELAY_COMPONENT, SIGRELAY_VERSION); exit 0 accepts.
  std::string verify_cmd;
  absl::Duration verify_timeout = absl::Seconds(60);
  // Shell command run after each update that installed something (after
  // --on-update, same environment): exit 0 reports the installed versions
  // healthy on the Watch stream, anything else (or the timeout) unhealthy.
  std::string health_check;
  absl::Duration health_timeout = absl::Seconds(60);
  // The staged-rollout ring this machine is in, when an operator chose it
  // (a canary); empty: the ring its id's hash falls in.
  std::string ring;
  ChannelOptions channel;  // TLS, proxy
  absl::Duration max_backoff = absl::Minutes(5);
  // How often a static tree (http(s):// or file:// server, which cannot
  // announce) is asked for a newer manifest.
  absl::Duration poll_interval = absl::Minutes(10);
  // Silence cut, minimum rate, and the process's stop: a stop cuts a
  // transfer and a running --on-update at once.
  TransferLimits transfer;
};

struct UpdateResult {
  std::string server;
  uint64_t serial = 0;
  std::vector<v1::InstalledFile> installed;  // empty: already current
  // Offered versions --verify-cmd refused, now or before; `refused_now`:
  // some of them just now (the relay hears of it).
  std::vector<v1::RefusedFile> refused;
  bool refused_now = false;
};

// --file's names (from ParseFileNames) checked against --components:
// InvalidArgument for a component not kept, or a name another component's
// files already use.
absl::Status CheckFileNames(const std::vector<std::string>& components,
                            const std::map<std::string, std::string>& files);

class PatternAgent {
 public:
  PatternAgent(PatternAgentOptions options, std::unique_ptr<ManifestVerifier> verifier);

  // Makes the directories, loads the state and the agent id (made once),
  // removes temporaries a crash left in DIR, and hashes what DIR holds.
  absl::Status Open();

  // One update from the first server that can give one: its manifest, then
  // whatever changed (a pending incremental is not waited for: the full
  // file then). An error names each server tried and why;
  // FailedPrecondition when an offered version is refused by --verify-cmd
  // (what could be installed is).
  absl::StatusOr<UpdateResult> UpdateOnce();

  // Follows the servers' Watch streams until `stop` is notified: every push
  // is verified and installed; a broken stream moves to the next server
  // after a backoff with jitter.
  void Run(absl::Notification* stop);
  // After notifying Run's `stop`: ends the open Watch stream at once.
  void Interrupt();

  const std::string& agent_id() const { return agent_id_; }

 private:
  struct Held {
    uint32_t version = 0;  // 0: nothing usable in DIR
    std::string sha256;
    v1::Health health = v1::HEALTH_UNKNOWN;
  };

  // Verifies `offered`, installs what changed for our components (taking a
  // pushed incremental when one checks out), saves the state. With
  // `wait_pending`, a component whose incremental from the held version is
  // still being made is left for the next manifest.
  absl::StatusOr<UpdateResult> Apply(size_t server, const v1::SignedManifest& offered,
                                     const v1::WatchResponse* push, bool wait_pending);
  // Writes `entry`'s file to `to` (its final path, or its staging path):
  // rebuilt from a pushed or fetched incremental when one applies, else
  // downloaded whole; written to a hidden temporary and renamed once
  // verified.
  absl::Status Fetch(UpdateSource* source, const v1::ComponentEntry& entry, const Held& held,
                     const v1::WatchResponse* push, const std::string& to, std::string* how);
  // Runs --verify-cmd on the staged file of `entry`: OkStatus when it
  // accepts, Cancelled when the agent stops, else the refusal's reason.
  absl::Status Verify(const v1::ComponentEntry& entry, const std::string& staged);
  const v1::RefusedFile* RefusalOf(const std::string& component) const;
  absl::Status SaveState();
  v1::WatchRequest Report() const;
  // After an update that installed something: --on-update, then
  // --health-check, whose verdict is kept for the installed versions.
  void AfterInstall(const UpdateResult& result);
  // The environment both get: SIGRELAY_UPDATED, SIGRELAY_VERSION_<C>, ...
  std::vector<std::string> HookEnv(const UpdateResult& result) const;
  void RunHealthCheck(const UpdateResult& result);
  std::string PatternPath(const std::string& component) const;
  std::string StagingDir() const { return options_.dir + "/.sigrelay-staging"; }
  TransferLimits Limits() const;
  // `s` from `server`, saying so (and naming the proxy when it is in the way).
  absl::Status Prefixed(const std::string& server, const absl::Status& s) const;

  const PatternAgentOptions options_;
  const std::unique_ptr<ManifestVerifier> verifier_;
  const IncrementalCodec codec_;
  std::vector<std::unique_ptr<UpdateSource>> sources_;  // one per server
  std::string ring_identity_;  // hashed for its rollout ring: the id, or the certificate's
  std::string agent_id_;
  v1::AgentState state_;
  std::map<std::string, Held> held_;
  absl::Mutex mu_;
  WatchStream* watch_ ABSL_GUARDED_BY(mu_) = nullptr;  // the open stream, to cancel on stop
};

}  // namespace sigrelay

#endif  // SIGRELAY_AGENT_PATTERN_AGENT_H_
