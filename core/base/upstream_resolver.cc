#include "core/base/upstream_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/base/transport.h"

namespace sigrelay {
namespace {

struct Lookup {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<std::pair<int, std::string>> addresses;  // family, text
};

void OnAddrInfo(void* arg, int status, int /*timeouts*/, struct ares_addrinfo* result) {
  auto* lookup = static_cast<Lookup*>(arg);
  lookup->done = true;
  lookup->status = status;
  if (status != ARES_SUCCESS || result == nullptr) return;
  for (ares_addrinfo_node* n = result->nodes; n != nullptr; n = n->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw =
        n->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr);
    if (inet_ntop(n->ai_family, raw, text, sizeof text) != nullptr) {
      bool seen = false;
      for (const auto& a : lookup->addresses) seen = seen || a.second == text;
      if (!seen) lookup->addresses.emplace_back(n->ai_family, text);
    }
  }
  ares_freeaddrinfo(result);
}

// Whether the kernel has a route to `ip`: a UDP connect() looks the route
// up without sending anything.
bool Routable(int family, const std::string& ip) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int rc;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9);
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(9);
    inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  close(fd);
  return rc == 0;
}

}  // namespace

absl::StatusOr<UpstreamTarget> ResolveUpstream(const std::string& upstream,
                                               const std::string& dns_server,
                                               absl::Duration timeout) {
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(upstream);
  if (!hp.ok()) return hp.status();
  std::string host = hp->first;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  static std::once_flag init;
  std::call_once(init, [] { ares_library_init(ARES_LIB_INIT_ALL); });

  ares_channel channel;
  ares_options options{};
  char lookups[] = "fb";  // /etc/hosts, then DNS
  options.lookups = lookups;
  if (ares_init_options(&channel, &options, ARES_OPT_LOOKUPS) != ARES_SUCCESS) {
    return absl::InternalError("cannot initialise the c-ares resolver");
  }
  if (!dns_server.empty() &&
      ares_set_servers_ports_csv(channel, dns_server.c_str()) != ARES_SUCCESS) {
    ares_destroy(channel);
    return absl::InvalidArgumentError(
        absl::StrCat("DNS server \"", dns_server, "\" is not IP or IP:PORT"));
  }
  Lookup lookup;
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(hp->second);
  ares_getaddrinfo(channel, host.c_str(), port.c_str(), &hints, OnAddrInfo, &lookup);
  absl::Time deadline = absl::Now() + timeout;
  while (!lookup.done && absl::Now() < deadline) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    std::vector<pollfd> fds;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = (ARES_GETSOCK_READABLE(bits, i) ? POLLIN : 0) |
                     (ARES_GETSOCK_WRITABLE(bits, i) ? POLLOUT : 0);
      if (events != 0) fds.push_back({socks[i], events, 0});
    }
    timeval max{0, 100000}, tv;
    timeval* wait = ares_timeout(channel, &max, &tv);
    int ms = static_cast<int>(wait->tv_sec * 1000 + wait->tv_usec / 1000);
    poll(fds.data(), fds.size(), std::max(ms, 1));
    if (fds.empty()) {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      continue;
    }
    for (const pollfd& p : fds) {
      ares_process_fd(channel, (p.revents & (POLLIN | POLLERR | POLLHUP)) ? p.fd : ARES_SOCKET_BAD,
                      (p.revents & POLLOUT) ? p.fd : ARES_SOCKET_BAD);
    }
  }
  ares_destroy(channel);  // calls back with ARES_EDESTRUCTION if still pending
  if (!lookup.done || lookup.status == ARES_EDESTRUCTION || lookup.status == ARES_ETIMEOUT) {
    return absl::UnavailableError(
        absl::StrCat("upstream \"", upstream, "\": no DNS answer for ", host, " within ",
                     absl::FormatDuration(timeout),
                     dns_server.empty() ? "" : absl::StrCat(" from DNS server ", dns_server)));
  }
  if (lookup.status != ARES_SUCCESS || lookup.addresses.empty()) {
    return absl::NotFoundError(absl::StrCat("upstream \"", upstream, "\": cannot resolve ", host,
                                            ": ", ares_strerror(lookup.status),
                                            " (checked /etc/hosts and DNS)"));
  }
  UpstreamTarget target;
  int family = 0;
  bool has[2] = {false, false};
  for (const auto& [f, ip] : lookup.addresses) {
    target.resolved.push_back(ip);
    has[f == AF_INET6] = true;
    if (!Routable(f, ip)) continue;
    if (family == 0) family = f;  // resolver order: the preferred one first
    if (f == family) target.usable.push_back(ip);
  }
  if (target.usable.empty()) {
    std::string families = has[0] && has[1] ? "IPv4 and IPv6" : has[0] ? "IPv4 only" : "IPv6 only";
    std::string missing = has[0] && has[1] ? "neither an IPv4 nor an IPv6"
                                           : absl::StrCat("no ", has[0] ? "IPv4" : "IPv6");
    return absl::FailedPreconditionError(absl::StrCat(
        "upstream \"", upstream, "\" resolved to ", absl::StrJoin(target.resolved, ", "), " (",
        families, "); this node has ", missing,
        " route: put a dual-stack relay between the segments (a relay listening in both), or "
        "name an upstream in a family this node reaches"));
  }
  std::vector<std::string> parts;
  for (const std::string& ip : target.usable) {
    parts.push_back(family == AF_INET ? absl::StrCat(ip, ":", hp->second)
                                      : absl::StrCat("[", ip, "]:", hp->second));
  }
  target.grpc_target =
      absl::StrCat(family == AF_INET ? "ipv4:" : "ipv6:", absl::StrJoin(parts, ","));
  return target;
}

}  // namespace sigrelay
