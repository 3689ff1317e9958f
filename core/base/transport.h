// The transport: every gRPC channel and server of sigrelay is made here, so
// message limits, reconnect pacing, proxies and (later) credentials are one
// change, not one per role.
//
//   auto server = StartServer({"127.0.0.1:0", "[::1]:0"}, {&update, &admin},
//                             data_dir + "/listening");
//   // server->bound holds "127.0.0.1:40123", "[::1]:40125"
//   std::shared_ptr<grpc::Channel> ch = MakeChannel("127.0.0.1:7443", {});
#ifndef SIGRELAY_CORE_BASE_TRANSPORT_H_
#define SIGRELAY_CORE_BASE_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sigrelay {

// gRPC's default receive limit, which a stock client keeps: every message a
// node sends fits it, and every channel and server here takes it.
inline constexpr size_t kMaxMessageBytes = 4 << 20;

// Protobuf framing around data in a message, with room to spare.
inline constexpr size_t kFramingBytes = 1 << 10;
// A stored chunk travels as one Fetch message, so it is at most this.
inline constexpr size_t kMaxChunkBytes = kMaxMessageBytes - kFramingBytes;

// InvalidArgument, saying what to change, unless a store of `chunk_size`
// chunks holding files up to `max_file_size` keeps every Fetch message
// within kMaxMessageBytes: a chunk per message, and a header with one digest
// per chunk (sent alone when it does not fit beside the first chunk).
absl::Status CheckChunkSize(uint64_t chunk_size, uint64_t max_file_size);

struct ChannelOptions {
  // Reconnect pacing: notice a returning server within seconds.
  absl::Duration initial_reconnect_backoff = absl::Milliseconds(500);
  absl::Duration max_reconnect_backoff = absl::Seconds(5);
  // Its own TCP connection instead of one shared by equal channels (a
  // simulated agent is one endpoint).
  bool own_connection = false;
  // http://[user:password@]HOST:PORT: tunnel through this HTTP CONNECT proxy.
  // Empty: connect directly, whatever http_proxy the environment sets.
  std::string proxy;
  // Test hook: stop widening the receive window past HTTP/2's first 64 KB
  // (a client that reads slowly).
  bool disable_bdp_probe = false;
};

// A channel to `target` (HOST:PORT or any gRPC target) with sigrelay's
// limits. Insecure credentials for now: TLS comes in here.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options);

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  std::vector<std::string> bound;  // each listen address with its real port
};

// Binds every address in `listen` (port 0 picks a free port) and starts
// serving `services`. Fails, naming the address, when any one cannot be
// bound: a node that silently skips a segment is worse than one that stops.
// When `listening_file` is not empty, writes the bound addresses there, one
// per line, once serving (tests and scripts wait for it).
absl::StatusOr<RunningServer> StartServer(const std::vector<std::string>& listen,
                                          const std::vector<grpc::Service*>& services,
                                          const std::string& listening_file);

// "HOST:PORT" -> {HOST, PORT}; "[v6]:PORT" keeps the brackets in HOST.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& addr);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_TRANSPORT_H_
