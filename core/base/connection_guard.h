// What a daemon's gRPC listeners accept, and how long a connection may stay
// that does nothing useful or abuses the node: one table of connections,
// kept by interposing accept4 and close for the whole process (gRPC 1.51
// gives no hook of its own).
//
// For every listener (once InstallConnectionGuard ran):
//   - a cap on descriptors below the limit, so a flood cannot stop the
//     listener (gRPC 1.51 gives up on a listening socket for good when
//     accept4 fails with EMFILE: CVE-2023-4785): over the cap a new
//     connection is closed at once, and when accept4 fails anyway a
//     reserved descriptor is freed to accept and close one; gRPC is told
//     "nothing more to accept" (EAGAIN), never an error.
// For the agents' listeners (GuardListener):
//   - at most max_per_peer connections from one address (and never more
//     than half the cap), so one peer cannot hold every slot;
//   - a connection that starts no call within first_call_timeout of its
//     accept is closed (a preface, SETTINGS, and nothing else);
//   - a connection whose calls are cancelled faster than
//     max_cancels_per_second, or started faster than max_calls_per_second,
//     is cut (HTTP/2 rapid reset, CVE-2023-44487: every call costs the node
//     an arena before it can refuse it), and its address is refused for
//     peer_penalty, doubling for each cut in a row;
//   - a connection reports at most max_agents_per_connection distinct
//     agent ids (fake ids would fill the agents' registry).
// Connections from a front's address (a reverse proxy such as the shipped
// nginx front, which carries many agents' calls over each of its
// connections and enforces per-client limits itself) are neither counted
// per address, nor penalized, nor capped in agent ids: the first-call
// timeout and the abuse cut still apply to each one.
// A connection is cut with shutdown(2): gRPC sees the connection end and
// lets go of its calls.
//
//   InstallConnectionGuard(limits);     // after raising RLIMIT_NOFILE
//   GuardListener(port);                // each agents' listener
//   ... in each handler: if (!NoteCall(ctx->peer())) { refuse }
#ifndef SIGRELAY_CORE_BASE_CONNECTION_GUARD_H_
#define SIGRELAY_CORE_BASE_CONNECTION_GUARD_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace sigrelay {

// Descriptors kept free for the store, files and outgoing connections: the
// cap is the open-file soft limit minus this (at least half the limit).
inline constexpr uint64_t kReservedDescriptors = 128;

struct ConnectionLimits {
  // Connections one address may hold on the agents' listeners at once
  // (never more than half the descriptor cap). Far above one NAT'd site of
  // agents with one connection each; raise it with the open-file limit for
  // a bigger one.
  uint64_t max_per_peer = 1024;
  absl::Duration first_call_timeout = absl::Seconds(10);
  uint32_t max_cancels_per_second = 100;
  uint32_t max_calls_per_second = 200;
  absl::Duration peer_penalty = absl::Seconds(10);
  uint32_t max_agents_per_connection = 1024;
  // Addresses of fronts ("127.0.0.1", "::1"), see above.
  std::vector<std::string> fronts;

  // A clear error for a front that is not an IP address.
  absl::Status Validate() const;
};

// Computes the cap from the current RLIMIT_NOFILE and starts enforcing the
// limits. Returns the cap (the highest descriptor number a connection may
// have + 1).
uint64_t InstallConnectionGuard(const ConnectionLimits& limits = {});

// Applies the per-connection rules to connections accepted on `port` (an
// agents' listener; the admin listener is not guarded).
void GuardListener(int port);

// Connections refused at accept or cut later, by reason: "descriptors"
// (over the cap), "per_peer", "penalty" (an address recently cut),
// "no_call" (no call within the first-call timeout), "abuse" (calls
// cancelled or started too fast), "agents" (too many agent ids).
std::map<std::string, uint64_t> ConnectionsRefused();

// A call started on the connection of `peer` (gRPC's ServerContext::peer(),
// "ipv4:1.2.3.4:5678"). False when that connection is being cut: the call
// should end at once. Calls on connections the guard does not know (an
// in-process channel, an unguarded listener) pass.
bool NoteCall(const std::string& peer);
// A call on `peer`'s connection was cancelled by the client.
void NoteCancel(const std::string& peer);
// Whether `peer`'s connection may report the agent `agent_hash`: true when
// it did before or is under max_agents_per_connection; false past it (and
// the connection is cut).
bool NoteAgent(const std::string& peer, uint64_t agent_hash);

// Closes guarded connections that started no call within the first-call
// timeout; the node calls it every second or so.
void SweepConnections();

// Connections open on guarded listeners (tests and status).
uint64_t GuardedConnections();

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_CONNECTION_GUARD_H_
