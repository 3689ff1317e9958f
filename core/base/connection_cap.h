// A cap on the connections a daemon's gRPC listeners accept, below its
// descriptor limit, so a connection flood cannot stop the listener.
//
// gRPC 1.51 (Debian's) gives up on a listening socket for good when accept4
// fails with EMFILE (CVE-2023-4785): after one flood, no agent can connect
// until a restart. sigrelay interposes accept4 (gRPC's listeners call it
// from libgrpc) and, once InstallConnectionCap ran:
//   - a connection whose descriptor would be at or over the cap is closed at
//     once (the client sees the connection end and retries later);
//   - when accept4 fails for lack of descriptors anyway (RocksDB, files), a
//     reserved descriptor is freed to accept and close the connection, so
//     the listener drains its backlog and stays armed;
// and in both cases gRPC is told "nothing more to accept" (EAGAIN), never an
// error that would stop the listener.
//
//   InstallConnectionCap();  // after raising RLIMIT_NOFILE
//   ... ConnectionsRefused() for status and metrics
#ifndef SIGRELAY_CORE_BASE_CONNECTION_CAP_H_
#define SIGRELAY_CORE_BASE_CONNECTION_CAP_H_

#include <cstdint>

namespace sigrelay {

// Descriptors kept free for the store, files and outgoing connections: the
// cap is the open-file soft limit minus this (at least half the limit).
inline constexpr uint64_t kReservedDescriptors = 128;

// Computes the cap from the current RLIMIT_NOFILE and starts enforcing it.
// Returns the cap (the highest descriptor number a connection may have + 1).
uint64_t InstallConnectionCap();

// Connections closed at accept because they were over the cap.
uint64_t ConnectionsRefused();

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_CONNECTION_CAP_H_
