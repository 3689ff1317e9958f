#include "core/base/connection_guard.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/base/log.h"

namespace sigrelay {
namespace {

using Accept4Fn = int (*)(int, sockaddr*, socklen_t*, int);
using CloseFn = int (*)(int);

std::atomic<int> cap_fd{0};  // 0: not installed, accept4 and close pass through
std::atomic<int> reserve_fd{-1};
// Fault injection for the listener watchdog's test:
// SIGRELAY_FAULT_ACCEPT=emfile-once hands gRPC one EMFILE, unguarded, as
// gRPC alone would see it in a flood.
std::atomic<bool> fault_emfile_once{false};

Accept4Fn RealAccept4() {
  static const Accept4Fn real = reinterpret_cast<Accept4Fn>(dlsym(RTLD_NEXT, "accept4"));
  return real;
}
CloseFn RealClose() {
  static const CloseFn real = reinterpret_cast<CloseFn>(dlsym(RTLD_NEXT, "close"));
  return real;
}

// Events in the current second.
struct PerSecond {
  int64_t second = -1;
  uint32_t count = 0;
  uint32_t Add(int64_t now) {
    if (now != second) {
      second = now;
      count = 0;
    }
    return ++count;
  }
};

struct Conn {
  std::string peer;     // as gRPC names it: "ipv4:1.2.3.4:5678"
  std::string address;  // "1.2.3.4": what per-peer limits count
  absl::Time accepted;
  bool had_call = false;
  bool cut = false;
  PerSecond calls, cancels;
  absl::flat_hash_set<uint64_t> agents;
  bool front = false;  // from one of ConnectionLimits::fronts
};

struct Peer {
  uint64_t open = 0;
  absl::Time penalty_until = absl::InfinitePast();
  int cuts_in_a_row = 0;
};

// Everything the guard knows; the descriptor-indexed arrays are sized to
// the cap at install.
struct Table {
  absl::Mutex mu;
  ConnectionLimits limits ABSL_GUARDED_BY(mu);
  uint64_t per_peer ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::unique_ptr<Conn>> by_fd ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, int> by_peer ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, Peer> peers ABSL_GUARDED_BY(mu);
  std::map<std::string, uint64_t> refused ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, absl::Time> logged ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<int> guarded_ports ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<std::string> fronts ABSL_GUARDED_BY(mu);  // as Describe prints them
};

Table& table() {
  static Table* t = new Table;
  return *t;
}

// Per descriptor, read without the lock: whether it is a guarded
// connection (close's fast path), and a listener's port (-2: not known yet,
// -1: not an inet socket).
std::unique_ptr<std::atomic<bool>[]> tracked;
std::unique_ptr<std::atomic<int>[]> listener_port;

int ListenerPort(int listener) {
  const int cap = cap_fd.load();
  if (listener < 0 || listener >= cap) return -1;
  int port = listener_port[listener].load();
  if (port != -2) return port;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  port = -1;
  if (getsockname(listener, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  listener_port[listener].store(port);
  return port;
}

// The peer as gRPC prints it ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678"; an
// IPv4-mapped IPv6 address as IPv4) and its address alone.
bool Describe(const sockaddr_storage& ss, std::string* peer, std::string* address) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    *address = buf;
    *peer = absl::StrCat("ipv4:", buf, ":", ntohs(a->sin_port));
    return true;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      in_addr v4;
      std::memcpy(&v4, a->sin6_addr.s6_addr + 12, 4);
      inet_ntop(AF_INET, &v4, buf, sizeof buf);
      *address = buf;
      *peer = absl::StrCat("ipv4:", buf, ":", ntohs(a->sin6_port));
      return true;
    }
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    *address = buf;
    *peer = absl::StrCat("ipv6:[", buf, "]:", ntohs(a->sin6_port));
    return true;
  }
  return false;
}

// An address as Describe prints it ("::1" for "0:0::1"); "" when it is none.
std::string Normalized(const std::string& address) {
  char buf[INET6_ADDRSTRLEN] = {0};
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    return inet_ntop(AF_INET, &v4, buf, sizeof buf);
  }
  if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
    return inet_ntop(AF_INET6, &v6, buf, sizeof buf);
  }
  return "";
}

// One line per reason at the first refusal and then at most one a minute.
void RefuseLocked(Table& t, const std::string& reason, const std::string& detail)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(t.mu) {
  const uint64_t total = ++t.refused[reason];
  const absl::Time now = absl::Now();
  absl::Time& last = t.logged[reason];
  if (now - last < absl::Minutes(1)) return;
  last = now;
  Log(LogLevel::kWarning,
      absl::StrCat("refusing connections (", reason, ", ", total, " so far): ", detail),
      {{"event", "connection_refused"}, {"reason", reason}});
}

// Cuts connection `fd`; `penalize` also refuses its address for a while.
void CutLocked(Table& t, int fd, const std::string& reason, const std::string& detail,
               bool penalize) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t.mu) {
  Conn& c = *t.by_fd[fd];
  if (c.cut) return;
  c.cut = true;
  shutdown(fd, SHUT_RDWR);  // gRPC sees the end and lets go of its calls
  std::string why = absl::StrCat(c.peer, ": ", detail);
  if (penalize && !c.front) {
    Peer& p = t.peers[c.address];
    absl::Duration wait = t.limits.peer_penalty;
    for (int i = 0; i < p.cuts_in_a_row && wait < absl::Minutes(5); ++i) wait *= 2;
    wait = std::min(wait, absl::Minutes(5));
    ++p.cuts_in_a_row;
    p.penalty_until = absl::Now() + wait;
    absl::StrAppend(&why, "; ", c.address, " refused for ", absl::FormatDuration(wait));
  }
  RefuseLocked(t, reason, why);
}

// gRPC names an IPv6 peer as a URI, brackets escaped ("ipv6:%5B::1%5D:80");
// the table keys it as Describe does ("ipv6:[::1]:80").
std::string Unescaped(const std::string& peer) {
  if (peer.find('%') == std::string::npos) return peer;
  std::string out;
  for (size_t i = 0; i < peer.size(); ++i) {
    int hi = 0, lo = 0;
    if (peer[i] == '%' && i + 2 < peer.size() && absl::ascii_isxdigit(peer[i + 1]) &&
        absl::ascii_isxdigit(peer[i + 2])) {
      hi = absl::ascii_isdigit(peer[i + 1]) ? peer[i + 1] - '0' : (peer[i + 1] | 0x20) - 'a' + 10;
      lo = absl::ascii_isdigit(peer[i + 2]) ? peer[i + 2] - '0' : (peer[i + 2] | 0x20) - 'a' + 10;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(peer[i]);
    }
  }
  return out;
}

Conn* FindLocked(Table& t, const std::string& peer, int* fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t.mu) {
  auto it = t.by_peer.find(Unescaped(peer));
  if (it == t.by_peer.end()) return nullptr;
  *fd = it->second;
  return t.by_fd[it->second].get();
}

int64_t NowSecond() { return absl::ToUnixSeconds(absl::Now()); }

// Takes a new connection into the table, or says why it is refused.
bool AdmitLocked(Table& t, int fd, const sockaddr_storage& ss) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t.mu) {
  auto conn = std::make_unique<Conn>();
  if (!Describe(ss, &conn->peer, &conn->address)) return true;  // not inet: not guarded
  conn->front = t.fronts.contains(conn->address);
  Peer& p = t.peers[conn->address];
  if (absl::Now() < p.penalty_until) {
    RefuseLocked(t, "penalty",
                 absl::StrCat(conn->address, " was cut for abuse; refused until ",
                              absl::FormatTime(p.penalty_until)));
    return false;
  }
  if (p.open >= t.per_peer && !conn->front) {
    RefuseLocked(t, "per_peer",
                 absl::StrCat(conn->address, " holds ", p.open,
                              " connections, the limit of one "
                              "address (--max-conns-per-peer); raise it for a site behind NAT"));
    return false;
  }
  ++p.open;
  conn->accepted = absl::Now();
  t.by_peer[conn->peer] = fd;
  t.by_fd[fd] = std::move(conn);
  tracked[fd].store(true);
  return true;
}

void ForgetLocked(Table& t, int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t.mu) {
  std::unique_ptr<Conn>& c = t.by_fd[fd];
  if (c == nullptr) return;
  auto p = t.peers.find(c->address);
  if (p != t.peers.end() && p->second.open > 0 && --p->second.open == 0 &&
      absl::Now() >= p->second.penalty_until) {
    t.peers.erase(p);  // nothing left to remember
  }
  t.by_peer.erase(c->peer);
  c.reset();
  tracked[fd].store(false);
}

// accept4 for a listener of gRPC's once the guard is installed.
int GuardedAccept4(int listener, sockaddr* addr, socklen_t* len, int flags) {
  if (fault_emfile_once.exchange(false)) {
    errno = EMFILE;
    return -1;
  }
  Table& t = table();
  for (;;) {
    sockaddr_storage ss{};
    socklen_t ss_len = sizeof ss;
    int fd = RealAccept4()(listener, reinterpret_cast<sockaddr*>(&ss), &ss_len, flags);
    if (fd >= 0) {
      if (fd >= cap_fd.load()) {
        RealClose()(fd);
        absl::MutexLock lock(&t.mu);
        RefuseLocked(t, "descriptors",
                     absl::StrCat("over the cap of ", cap_fd.load(),
                                  " descriptors: a connection flood, or more agents than this "
                                  "limit; raise LimitNOFILE (the hard open-file limit) if they "
                                  "are real"));
        continue;  // drain the backlog: edge-triggered polling wakes once
      }
      bool admitted = true;
      {
        absl::MutexLock lock(&t.mu);
        if (t.guarded_ports.contains(ListenerPort(listener))) admitted = AdmitLocked(t, fd, ss);
      }
      if (!admitted) {
        RealClose()(fd);
        continue;
      }
      if (addr != nullptr && len != nullptr) {
        std::memcpy(addr, &ss, std::min<socklen_t>(*len, ss_len));
        *len = ss_len;
      }
      return fd;
    }
    if (errno != EMFILE && errno != ENFILE) return -1;
    // Out of descriptors below the cap: free the reserve to take one
    // connection off the backlog, close it, and take the reserve back.
    int reserve = reserve_fd.exchange(-1);
    if (reserve < 0) {
      errno = EAGAIN;  // nothing to free: gRPC waits for the next connection
      return -1;
    }
    RealClose()(reserve);
    int dropped = RealAccept4()(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (dropped >= 0) RealClose()(dropped);
    reserve_fd.store(open("/dev/null", O_RDONLY | O_CLOEXEC));
    {
      absl::MutexLock lock(&t.mu);
      RefuseLocked(t, "descriptors", "out of descriptors");
    }
    if (dropped < 0) {
      errno = EAGAIN;
      return -1;
    }
  }
}

}  // namespace

absl::Status ConnectionLimits::Validate() const {
  for (const std::string& front : fronts) {
    if (Normalized(front).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--front ", front,
          " is not an IP address: give the address the front connects from, e.g. 127.0.0.1"));
    }
  }
  return absl::OkStatus();
}

uint64_t InstallConnectionGuard(const ConnectionLimits& limits) {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  const uint64_t limit = files.rlim_cur == RLIM_INFINITY ? (1u << 20) : files.rlim_cur;
  const uint64_t cap = std::min<uint64_t>(
      limit > 2 * kReservedDescriptors ? limit - kReservedDescriptors : limit / 2, INT32_MAX);
  const char* fault = getenv("SIGRELAY_FAULT_ACCEPT");
  fault_emfile_once.store(fault != nullptr && std::string_view(fault) == "emfile-once");
  Table& t = table();
  {
    absl::MutexLock lock(&t.mu);
    t.limits = limits;
    t.per_peer = std::max<uint64_t>(1, std::min<uint64_t>(limits.max_per_peer, cap / 2));
    t.fronts.clear();
    for (const std::string& front : limits.fronts) t.fronts.insert(Normalized(front));
    if (cap_fd.load() == 0) {
      t.by_fd.resize(cap);
      tracked.reset(new std::atomic<bool>[cap]);
      listener_port.reset(new std::atomic<int>[cap]);
      for (uint64_t i = 0; i < cap; ++i) {
        tracked[i].store(false);
        listener_port[i].store(-2);
      }
    }
  }
  if (reserve_fd.load() < 0) reserve_fd.store(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (cap_fd.load() == 0) cap_fd.store(static_cast<int>(cap));
  return cap_fd.load();
}

void GuardListener(int port) {
  Table& t = table();
  absl::MutexLock lock(&t.mu);
  t.guarded_ports.insert(port);
}

std::map<std::string, uint64_t> ConnectionsRefused() {
  Table& t = table();
  absl::MutexLock lock(&t.mu);
  return t.refused;
}

uint64_t GuardedConnections() {
  Table& t = table();
  absl::MutexLock lock(&t.mu);
  return t.by_peer.size();
}

bool NoteCall(const std::string& peer) {
  if (cap_fd.load() == 0) return true;
  Table& t = table();
  absl::MutexLock lock(&t.mu);
  int fd = -1;
  Conn* c = FindLocked(t, peer, &fd);
  if (c == nullptr) return true;
  if (c->cut) return false;
  c->had_call = true;
  if (c->calls.Add(NowSecond()) > t.limits.max_calls_per_second) {
    CutLocked(
        t, fd, "abuse",
        absl::StrCat("started more than ", t.limits.max_calls_per_second, " calls in a second"),
        true);
    return false;
  }
  return true;
}

void NoteCancel(const std::string& peer) {
  if (cap_fd.load() == 0) return;
  Table& t = table();
  absl::MutexLock lock(&t.mu);
  int fd = -1;
  Conn* c = FindLocked(t, peer, &fd);
  if (c == nullptr || c->cut) return;
  if (c->cancels.Add(NowSecond()) > t.limits.max_cancels_per_second) {
    CutLocked(t, fd, "abuse",
              absl::StrCat("cancelled more than ", t.limits.max_cancels_per_second,
                           " calls in a second (HTTP/2 rapid reset)"),
              true);
  }
}

bool NoteAgent(const std::string& peer, uint64_t agent_hash) {
  if (cap_fd.load() == 0) return true;
  Table& t = table();
  absl::MutexLock lock(&t.mu);
  int fd = -1;
  Conn* c = FindLocked(t, peer, &fd);
  if (c == nullptr) return true;
  if (c->cut) return false;
  if (c->front || c->agents.contains(agent_hash)) return true;
  if (c->agents.size() >= t.limits.max_agents_per_connection) {
    CutLocked(t, fd, "agents",
              absl::StrCat("reported more than ", t.limits.max_agents_per_connection,
                           " agent ids on one connection"),
              true);
    return false;
  }
  c->agents.insert(agent_hash);
  return true;
}

void SweepConnections() {
  if (cap_fd.load() == 0) return;
  Table& t = table();
  absl::MutexLock lock(&t.mu);
  const absl::Time too_old = absl::Now() - t.limits.first_call_timeout;
  std::vector<int> idle;
  for (const auto& [peer, fd] : t.by_peer) {
    const Conn& c = *t.by_fd[fd];
    if (!c.had_call && !c.cut && c.accepted < too_old) idle.push_back(fd);
  }
  for (int fd : idle) {
    CutLocked(t, fd, "no_call",
              absl::StrCat("no call within ", absl::FormatDuration(t.limits.first_call_timeout),
                           " of connecting"),
              false);
  }
}

}  // namespace sigrelay

// Interposes libc's accept4 and close for the whole process (the
// executable's symbols win over libc's for libgrpc's calls).
extern "C" int accept4(int listener, sockaddr* addr, socklen_t* len, int flags) {
  if (sigrelay::cap_fd.load() == 0) return sigrelay::RealAccept4()(listener, addr, len, flags);
  return sigrelay::GuardedAccept4(listener, addr, len, flags);
}

extern "C" int close(int fd) {
  const int cap = sigrelay::cap_fd.load();
  if (cap != 0 && fd >= 0 && fd < cap) {
    sigrelay::listener_port[fd].store(-2);
    if (sigrelay::tracked[fd].load()) {
      sigrelay::Table& t = sigrelay::table();
      absl::MutexLock lock(&t.mu);
      sigrelay::ForgetLocked(t, fd);
    }
  }
  return sigrelay::RealClose()(fd);
}
