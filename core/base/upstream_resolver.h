// Turning an upstream "HOST:PORT" into addresses this node can actually
// reach, with c-ares (A and AAAA; /etc/hosts first, then DNS).
//
// An IPv6-only node cannot talk to an IPv4-only upstream and the reverse;
// instead of a connect that hangs or a bare UNAVAILABLE, the error names the
// upstream, what it resolved to and the family this node lacks:
//
//   upstream "origin.example:7443" resolved to 198.18.1.1 (IPv4 only); this
//   node has no IPv4 route: put a dual-stack relay between the segments
//
//   absl::StatusOr<UpstreamTarget> t = ResolveUpstream("origin:7443", "", absl::Seconds(5));
//   grpc::CreateChannel(t->grpc_target, ...);
#ifndef SIGRELAY_CORE_BASE_UPSTREAM_RESOLVER_H_
#define SIGRELAY_CORE_BASE_UPSTREAM_RESOLVER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sigrelay {

struct UpstreamTarget {
  // A gRPC target naming only reachable addresses of one family, e.g.
  // "ipv4:198.18.1.1:7443" or "ipv6:[fd00:1::1]:7443".
  std::string grpc_target;
  std::vector<std::string> resolved;  // every address the name gave
  std::vector<std::string> usable;    // those this node can route to
};

// `dns_server` ("" for the system's resolv.conf) is "IP" or "IP:PORT", as
// c-ares takes it. NotFound when the name does not resolve, Unavailable when
// DNS does not answer within `timeout`, FailedPrecondition when no resolved
// address is in a family this node can route.
absl::StatusOr<UpstreamTarget> ResolveUpstream(const std::string& upstream,
                                               const std::string& dns_server,
                                               absl::Duration timeout);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_UPSTREAM_RESOLVER_H_
