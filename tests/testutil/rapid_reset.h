// An HTTP/2 rapid-reset client (CVE-2023-44487), as an attacker writes it:
// one connection, a HEADERS frame opening a stream and an RST_STREAM
// cancelling it at once, as fast as the socket takes them. Raw frames over a
// socket (TLS with ALPN "h2" when asked); the server's frames are read and
// dropped so its writes never hold the attack back.
#ifndef SIGRELAY_TESTS_TESTUTIL_RAPID_RESET_H_
#define SIGRELAY_TESTS_TESTUTIL_RAPID_RESET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace sigrelay::testing {

struct RapidResetResult {
  uint64_t streams = 0;      // HEADERS + RST_STREAM pairs written
  uint64_t connections = 0;  // connections opened (a new one when the server closes one)
  uint64_t refused = 0;      // connections closed before the first write went through
  std::string error;         // why no connection could be made, if none was
};

// Attacks `address` ("127.0.0.1:PORT") from source address `from` (another
// loopback address, so per-address limits of a front tell it from agents)
// for `duration`, at most `max_streams_per_second`. `tls`: TLS without
// certificate checks, ALPN h2. Streams call `path` (a Watch by default).
// `with_body`: each stream also carries a DATA frame with an empty request
// message and END_STREAM before its RST_STREAM, so every call reaches the
// server's handler (the costlier form). `per_write`: streams per write.
struct RapidResetOptions {
  std::string path = "/sigrelay.v1.UpdateService/Watch";
  bool with_body = false;
  int per_write = 100;
};
RapidResetResult RapidReset(const std::string& address, const std::string& from, bool tls,
                            absl::Duration duration, uint64_t max_streams_per_second,
                            const RapidResetOptions& options = {});

// A connected TCP socket to `address` ("127.0.0.1:PORT") from source
// address `from` (any when empty), or -1. Writes that stall give up after 1 s.
int ConnectTo(const std::string& address, const std::string& from = "");

// Opens `count` connections (from `from`) that each send an HTTP/2 preface
// and SETTINGS and nothing else; the fds (fewer if a connect failed).
// `tls`: each completes a TLS handshake (ALPN h2, no certificate checks)
// first, the costliest idle connection for a server.
std::vector<int> IdleConnections(const std::string& address, int count,
                                 const std::string& from = "", bool tls = false);

// True once the peer closed `fd` (read returns 0 or an error), within `limit`.
bool ClosedWithin(int fd, absl::Duration limit);

// Whether RSS bounds mean anything in this build: under AddressSanitizer
// (scripts/sanitize.sh) freed memory sits in quarantine and shadow memory
// doubles it, so tests keep the behaviour and skip the bound.
// Time bounds (a prompt exit) scale by kSanitizerSlowdown: a sanitized
// process's exit walks its heap for leaks.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kMemoryMeasurable = false;
inline constexpr int kSanitizerSlowdown = 3;
#else
inline constexpr bool kMemoryMeasurable = true;
inline constexpr int kSanitizerSlowdown = 1;
#endif

// The resident set size of process `pid`, in bytes (/proc/PID/status VmRSS).
uint64_t ResidentBytes(int pid);

// The CPU time process `pid` has used, user and system (/proc/PID/stat).
double CpuSeconds(int pid);

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_RAPID_RESET_H_
