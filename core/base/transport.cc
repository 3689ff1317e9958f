#include "core/base/transport.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/base/file_util.h"

namespace sigrelay {

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& addr) {
  size_t colon = addr.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(addr.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", addr, "\" is not HOST:PORT (use [v6addr]:PORT for IPv6)"));
  }
  std::string host = addr.substr(0, colon);
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::InvalidArgumentError(
        absl::StrCat("IPv6 address \"", addr, "\" needs brackets: [", host, "]:", port));
  }
  return std::make_pair(host, port);
}

absl::Status CheckChunkSize(uint64_t chunk_size, uint64_t max_file_size) {
  constexpr uint64_t kMinChunk = 4 << 10;
  if (chunk_size < kMinChunk || chunk_size > kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--chunk-size ", chunk_size, " is outside 4KiB..", kMaxChunkBytes,
        " bytes (4MiB less 1KiB of framing): a Fetch message carries one chunk and must fit "
        "a stock gRPC client's 4 MiB receive limit"));
  }
  // 32 digest bytes and 2 of framing per chunk, in the first message.
  const uint64_t chunks = (max_file_size + chunk_size - 1) / chunk_size;
  if (chunks * 34 + kFramingBytes > kMaxMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--chunk-size ", chunk_size, " splits a file of --max-file-size ",
                     max_file_size, " bytes into ", chunks,
                     " chunks, whose digests do not fit one Fetch header; "
                     "raise --chunk-size or lower --max-file-size"));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  const int initial_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.initial_reconnect_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.max_reconnect_backoff)));
  if (options.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (options.disable_bdp_probe) args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  if (options.proxy.empty()) {
    args.SetInt("grpc.enable_http_proxy", 0);  // never an env http_proxy behind our back
  } else {
    // gRPC sends CONNECT (with Basic credentials from the URL) and tunnels
    // HTTP/2 through it; the proxy resolves the target.
    args.SetString("grpc.http_proxy", options.proxy);
  }
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

absl::StatusOr<RunningServer> StartServer(const std::vector<std::string>& listen,
                                          const std::vector<grpc::Service*>& services,
                                          const std::string& listening_file) {
  if (listen.empty()) {
    return absl::InvalidArgumentError("no --listen address given");
  }
  grpc::ServerBuilder builder;
  // Two daemons on one port would split clients silently; refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
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
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", absl::StrJoin(failed, ", "),
                     ": the port is in use or the address is not on this host"));
  }
  if (!listening_file.empty()) {
    absl::Status s = WriteFileAtomically(listening_file, absl::StrJoin(out.bound, "\n") + "\n");
    if (!s.ok()) return s;
  }
  return out;
}

}  // namespace sigrelay
