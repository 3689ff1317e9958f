#include "core/server.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_util.h"

namespace sigrelay {

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& addr) {
  size_t colon = addr.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(addr.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address \"", addr, "\" is not HOST:PORT (use [v6addr]:PORT for IPv6)"));
  }
  std::string host = addr.substr(0, colon);
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::InvalidArgumentError(
        absl::StrCat("IPv6 address \"", addr, "\" needs brackets: [", host, "]:", port));
  }
  return std::make_pair(host, port);
}

absl::StatusOr<RunningServer> StartServer(
    const std::vector<std::string>& listen,
    const std::vector<grpc::Service*>& services,
    const std::string& listening_file) {
  if (listen.empty()) {
    return absl::InvalidArgumentError("no --listen address given");
  }
  grpc::ServerBuilder builder;
  // Two daemons on one port would split clients silently; refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(8 << 20);
  std::vector<std::unique_ptr<int>> ports;
  for (const std::string& addr : listen) {
    absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(addr);
    if (!hp.ok()) return hp.status();
    ports.push_back(std::make_unique<int>(0));
    // "[::]:P" already takes IPv4 too (a dual-stack socket); binding
    // "0.0.0.0:P" beside it would collide, so it rides on the IPv6 one.
    if (hp->first == "0.0.0.0" && hp->second != 0 &&
        std::find(listen.begin(), listen.end(), absl::StrCat("[::]:", hp->second)) !=
            listen.end()) {
      *ports.back() = hp->second;
      continue;
    }
    builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), ports.back().get());
  }
  for (grpc::Service* s : services) builder.RegisterService(s);
  RunningServer out;
  out.server = builder.BuildAndStart();
  std::vector<std::string> failed;
  for (size_t i = 0; i < listen.size(); ++i) {
    if (out.server == nullptr || *ports[i] == 0) {
      failed.push_back(listen[i]);
      continue;
    }
    out.bound.push_back(absl::StrCat(SplitHostPort(listen[i])->first, ":", *ports[i]));
  }
  if (!failed.empty()) {
    if (out.server) out.server->Shutdown();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on ", absl::StrJoin(failed, ", "),
        ": the port is in use or the address is not on this host"));
  }
  if (!listening_file.empty()) {
    absl::Status s =
        WriteFileAtomically(listening_file, absl::StrJoin(out.bound, "\n") + "\n");
    if (!s.ok()) return s;
  }
  return out;
}

}  // namespace sigrelay
