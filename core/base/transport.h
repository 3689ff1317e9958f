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
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/base/flags.h"

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

// TLS files, PEM. A server: its certificate chain and key, and `ca` to
// require client certificates signed by it (mutual TLS). A client: `ca` to
// verify the server with, and its own certificate and key when the server
// requires one. All empty: plaintext.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;

  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// InvalidArgument naming the file and what is wrong (unreadable, not PEM,
// key not matching the certificate, a certificate without its key) and the
// flags `prefix` names ("--tls" or "--upstream-tls"). A server needs cert and
// key; a client needs ca.
absl::Status CheckTlsFiles(const TlsFiles& files, bool server, const std::string& prefix);

// The identity a server records for a client presenting the certificate in
// `cert_path` under mutual TLS: its common name, else its first subject
// alternative name ("" when it has neither).
absl::StatusOr<std::string> CertificateIdentityOf(const std::string& cert_path);

// --PREFIX-ca, --PREFIX-cert, --PREFIX-key for a client (prefix "tls" for
// agents and sigrelayctl, "upstream-tls" for a relay's upstream link).
void AddClientTlsFlags(FlagParser* flags, TlsFiles* tls, const std::string& prefix);

// The name a server's certificate must carry for `address` ("HOST:PORT",
// "[v6]:PORT"): HOST without brackets.
std::string TlsServerName(const std::string& address);

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
  // TLS to the server (tls.ca set): its certificate must be signed by
  // tls.ca and name `tls_server_name` (default: the target's host).
  TlsFiles tls;
  std::string tls_server_name;
};

// A channel to `target` (HOST:PORT or any gRPC target) with sigrelay's
// limits, over TLS when options.tls.ca is set. A TLS file that cannot be read
// makes a channel whose calls fail saying so (check with CheckTlsFiles first).
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
// "unix:/path" listens on a socket file (mode as the umask allows).
// `tls`: serve TLS with these files (re-read when they change on disk, so a
// renewed certificate needs no restart); mutual TLS when tls.ca is set.
// What one client may hold of a server, and how long connections live.
struct ServerLimits {
  // Concurrent streams one HTTP/2 connection may open (Watch, Fetch, ...).
  uint32_t max_streams_per_connection = 100;
  // A connection without a call this long is closed (a client that sent a
  // preface and nothing else, an agent that went quiet without a Watch).
  absl::Duration idle_timeout = absl::Minutes(5);
  // Connections are asked to reconnect after this long (GOAWAY), calls get
  // `max_connection_age_grace` to finish; zero: never.
  absl::Duration max_connection_age = absl::Hours(24);
  absl::Duration max_connection_age_grace = absl::Minutes(5);
  // A TCP connection that has not finished its (TLS) handshake this long is
  // dropped.
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Memory gRPC may use for all connections' buffers together.
  uint64_t memory_quota_bytes = 2ull << 30;
  // HTTP/2 bandwidth probing: the server pings on data it receives, to
  // widen its receive window for big uploads. Off where clients send only
  // small messages (the agents' port: reports and Fetch requests), where
  // it only costs a PING and its ACK per message (bench/RESULTS.md).
  bool bdp_probe = true;

  // InvalidArgument naming the flag for a value that would stop serving.
  absl::Status Validate() const;
};

absl::StatusOr<RunningServer> StartServer(const std::vector<std::string>& listen,
                                          const std::vector<grpc::Service*>& services,
                                          const std::string& listening_file,
                                          const TlsFiles& tls = {},
                                          const ServerLimits& limits = {});

// True when a server listening on `address` (HOST:PORT) takes a new
// connection and answers its first bytes within `timeout`: the server's
// HTTP/2 SETTINGS to a preface in plaintext, its ServerHello to a ClientHello
// when `tls` (no certificate is checked or presented: only the listener is
// judged). A listener that stopped accepting leaves connections in the
// kernel's backlog, unanswered.
bool ListenerAnswers(const std::string& address, bool tls, absl::Duration timeout);

// "http://user:secret@proxy:3128" -> "proxy:3128": never show a password.
std::string ProxyDisplay(const std::string& proxy);

// OK for "" (no proxy) and http://[user:password@]HOST:PORT; InvalidArgument
// saying what is off otherwise.
absl::Status CheckProxyUrl(const std::string& proxy);

// The parts of a proxy URL that CheckProxyUrl accepts (not ""), for
// clients that take them apart (cpp-httplib). `host` without brackets.
struct ProxyUrl {
  std::string host;
  int port = 0;
  std::string user, password;  // both "" without user:password@
};
absl::StatusOr<ProxyUrl> ParseProxyUrl(const std::string& proxy);

// When `message` (a failed call's through `proxy`) says the HTTP CONNECT
// proxy refused: what to fix ("proxy HOST:PORT answered CONNECT with HTTP
// 407 (Proxy Authentication Required): check the user and password in
// --proxy"), PermissionDenied for 407/401, Unavailable for other codes.
std::optional<absl::Status> ProxyRefusal(absl::string_view message, const std::string& proxy);

// "HOST:PORT" -> {HOST, PORT}; "[v6]:PORT" keeps the brackets in HOST.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& addr);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_TRANSPORT_H_
