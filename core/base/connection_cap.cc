#include "core/base/connection_cap.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/log.h"

namespace sigrelay {
namespace {

using Accept4Fn = int (*)(int, sockaddr*, socklen_t*, int);

std::atomic<int> cap_fd{0};  // 0: not installed, accept4 passes through
std::atomic<int> reserve_fd{-1};
std::atomic<uint64_t> refused{0};
std::atomic<int64_t> next_log_ns{0};
// Fault injection for the listener watchdog's test:
// SIGRELAY_FAULT_ACCEPT=emfile-once hands gRPC one EMFILE, unguarded, as
// gRPC alone would see it in a flood.
std::atomic<bool> fault_emfile_once{false};

Accept4Fn RealAccept4() {
  static const Accept4Fn real = reinterpret_cast<Accept4Fn>(dlsym(RTLD_NEXT, "accept4"));
  return real;
}

// One line at the first refusal and then at most one a minute, with the count.
void LogRefusal() {
  const uint64_t total = refused.fetch_add(1) + 1;
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t next = next_log_ns.load();
  if (now < next || !next_log_ns.compare_exchange_strong(next, now + 60'000'000'000)) return;
  Log(LogLevel::kWarning,
      absl::StrCat("refusing connections over the cap of ", cap_fd.load(), " descriptors (", total,
                   " refused so far): a connection flood, or more agents than this limit; "
                   "raise LimitNOFILE (the hard open-file limit) if they are real"));
}

// accept4 for a listener of gRPC's once the cap is installed; see the header.
int GuardedAccept4(int listener, sockaddr* addr, socklen_t* len, int flags) {
  if (fault_emfile_once.exchange(false)) {
    errno = EMFILE;
    return -1;
  }
  for (;;) {
    int fd = RealAccept4()(listener, addr, len, flags);
    if (fd >= 0) {
      if (fd < cap_fd.load()) return fd;
      close(fd);
      LogRefusal();
      continue;  // drain the backlog: edge-triggered polling wakes once
    }
    if (errno != EMFILE && errno != ENFILE) return -1;
    // Out of descriptors below the cap: free the reserve to take one
    // connection off the backlog, close it, and take the reserve back.
    int reserve = reserve_fd.exchange(-1);
    if (reserve < 0) {
      errno = EAGAIN;  // nothing to free: gRPC waits for the next connection
      return -1;
    }
    close(reserve);
    int dropped = RealAccept4()(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (dropped >= 0) close(dropped);
    reserve_fd.store(open("/dev/null", O_RDONLY | O_CLOEXEC));
    LogRefusal();
    if (dropped < 0) {
      errno = EAGAIN;
      return -1;
    }
  }
}

}  // namespace

uint64_t InstallConnectionCap() {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  const uint64_t limit = files.rlim_cur == RLIM_INFINITY ? (1u << 20) : files.rlim_cur;
  const uint64_t cap = limit > 2 * kReservedDescriptors ? limit - kReservedDescriptors : limit / 2;
  const char* fault = getenv("SIGRELAY_FAULT_ACCEPT");
  fault_emfile_once.store(fault != nullptr && std::string_view(fault) == "emfile-once");
  if (reserve_fd.load() < 0) reserve_fd.store(open("/dev/null", O_RDONLY | O_CLOEXEC));
  cap_fd.store(static_cast<int>(std::min<uint64_t>(cap, INT32_MAX)));
  return cap;
}

uint64_t ConnectionsRefused() { return refused.load(); }

}  // namespace sigrelay

// Interposes libc's accept4 for the whole process (the executable's symbol
// wins over libc's for libgrpc's calls).
extern "C" int accept4(int listener, sockaddr* addr, socklen_t* len, int flags) {
  if (sigrelay::cap_fd.load() == 0) return sigrelay::RealAccept4()(listener, addr, len, flags);
  return sigrelay::GuardedAccept4(listener, addr, len, flags);
}
