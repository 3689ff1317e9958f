// Starting a gRPC server on every configured address, of either family.
//
//   auto server = StartServer({"127.0.0.1:0", "[::1]:0"}, {&update, &admin},
//                             data_dir + "/listening");
//   // server->bound holds "127.0.0.1:40123", "[::1]:40125"
#ifndef SIGRELAY_CORE_SERVER_H_
#define SIGRELAY_CORE_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sigrelay {

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  std::vector<std::string> bound;  // each listen address with its real port
};

// Binds every address in `listen` (port 0 picks a free port) and starts
// serving `services`. Fails, naming the address, when any one cannot be
// bound: a node that silently skips a segment is worse than one that stops.
// When `listening_file` is not empty, writes the bound addresses there, one
// per line, once serving (tests and scripts wait for it).
absl::StatusOr<RunningServer> StartServer(
    const std::vector<std::string>& listen,
    const std::vector<grpc::Service*>& services,
    const std::string& listening_file);

// "HOST:PORT" -> {HOST, PORT}; "[v6]:PORT" keeps the brackets in HOST.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& addr);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVER_H_
