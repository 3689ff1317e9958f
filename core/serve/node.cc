#include "core/serve/node.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/base/connection_guard.h"
#include "core/base/file_util.h"
#include "core/base/log.h"
#include "core/base/process.h"
#include "core/base/transport.h"

namespace sigrelay {

void NodeOptions::AddFlags(FlagParser* flags) {
  flags->Add("config", &config, "FILE",
             "protobuf text-format NodeConfig (proto/sigrelay/v1/config.proto): each field is "
             "the flag of that name; flags on the command line override it");
  flags->Add("data-dir", &data_dir, "DIR", "store, keys and admin token live here (required)");
  flags->AddRepeated("listen", &listen, "HOST:PORT",
                     "address to serve agents and relays on, either family: 0.0.0.0:7443, "
                     "[::]:7443, 127.0.0.1:0 (required)");
  flags->Add("admin-listen", &admin_listen, "ADDR",
             "where AdminService listens, never on the agents' port: HOST:PORT or "
             "unix:PATH (default 127.0.0.1:0, written to DIR/admin.listening); off this host "
             "only with --tls-cert");
  flags->Add("console", &console, "HOST:PORT",
             "serve the web console, the JSON API (/api/v1/), /metrics, /healthz and /readyz "
             "here (off when not given; keep it on loopback or behind TLS: it is plain HTTP; "
             "DIR/console.listening says where)");
  flags->AddBool("metrics-auth", &metrics_auth,
                 "/metrics only with the admin token (Authorization: Bearer) or a console "
                 "session");
  flags->Add("log-format", &log_format, "text|json",
             "one line per event on stderr: text, or a JSON object per line (default text)");
  flags->Add("log-level", &log_level, "LEVEL",
             "debug, info, warning or error: lines below it are dropped (default info)");
  flags->Add("admin-token-file", &admin_token_file, "FILE",
             "admin bearer token (default: DIR/admin.token, created on first start)");
  flags->AddBytes("max-file-size", &max_file_size,
                  "largest file taken (upload or download) (default 1GiB)");
  flags->AddBytes("chunk-size", &chunk_size,
                  "store chunk size, 4KiB..4095KiB: one chunk is one Fetch message and must fit "
                  "a stock gRPC client's 4MiB limit (default 1MiB)");
  flags->Add("max-transfers", &serve.max_transfers, "N",
             "transfers (Fetch streams, pushes with incrementals) at once; more wait in a "
             "queue (default 64)");
  flags->Add("tls-cert", &tls.cert, "FILE",
             "serve TLS with this certificate chain (PEM); re-read when the file changes");
  flags->Add("tls-key", &tls.key, "FILE", "the key of --tls-cert (PEM)");
  flags->Add("tls-client-ca", &tls.ca, "FILE",
             "require client certificates signed by this CA (PEM): mutual TLS");
  flags->Add("max-streams-per-connection", &limits.max_streams_per_connection, "N",
             "concurrent streams one client connection may open (default 100)");
  flags->Add("idle-timeout", &limits.idle_timeout,
             "close a connection with no call this long (default 5m)");
  flags->Add("max-connection-age", &limits.max_connection_age,
             "ask clients to reconnect after this long, 5m grace for calls (default 24h, 0s: "
             "never)");
  flags->AddBytes("memory-limit", &limits.memory_quota_bytes,
                  "memory gRPC may use for all connection buffers together (default 2GiB)");
  flags->Add("max-transfers-per-connection", &serve.max_transfers_per_connection, "N",
             "transfer slots one client connection may hold; freed slots go to waiting "
             "connections in turn (default 8)");
  flags->Add("max-agents", &max_agents, "N",
             "agents remembered for status (their reported versions); past it the one heard "
             "from longest ago is forgotten (default 1048576)");
  flags->Add("agent-stale-after", &agent_stale_after,
             "an agent without an open Watch stream counts as stale, not as holding its "
             "versions, this long after it was last heard from (default 5m: an agent's stream "
             "ends within 80s of it going, keepalive; one polling with --once reports each run)");
  flags->Add("max-conns-per-peer", &connections.max_per_peer, "N",
             "connections one address may hold on the agents' port (never more than half the "
             "descriptor cap); a site of agents behind one NAT address needs one each "
             "(default 1024)");
  flags->Add("first-call-timeout", &connections.first_call_timeout,
             "close a connection that starts no call this long after it connected "
             "(default 10s)");
  flags->Add("max-agents-per-connection", &connections.max_agents_per_connection, "N",
             "distinct agent ids one connection may report; past it the connection is cut "
             "(default 1024; agent-sim puts 32 agents on a shared connection)");
  flags->AddRepeated("front", &connections.fronts, "ADDRESS",
                     "a reverse proxy in front of the agents' port connects from this address "
                     "(e.g. 127.0.0.1 for the shipped nginx front): its connections carry many "
                     "agents, so they are not limited per address, penalized or capped in agent "
                     "ids; the proxy limits each client itself");
  flags->Add("stall-timeout", &serve.stall_timeout,
             "cancel a transfer whose write makes no progress this long, freeing its slot "
             "(default 60s, 0s: never)");
}

absl::Status NodeOptions::Validate() const {
  if (data_dir.empty() || listen.empty()) {
    return absl::InvalidArgumentError("--data-dir and --listen are required; see --help");
  }
  if (absl::Status s = CheckChunkSize(chunk_size, max_file_size); !s.ok()) return s;
  if (serve.max_transfers_per_connection < 1) {
    return absl::InvalidArgumentError("--max-transfers-per-connection must be at least 1");
  }
  if (max_agents < 1) return absl::InvalidArgumentError("--max-agents must be at least 1");
  if (agent_stale_after < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--agent-stale-after must be at least 1s");
  }
  if (connections.max_per_peer < 1 || connections.max_agents_per_connection < 1) {
    return absl::InvalidArgumentError(
        "--max-conns-per-peer and --max-agents-per-connection must be at least 1");
  }
  if (absl::Status s = connections.Validate(); !s.ok()) return s;
  if (connections.first_call_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--first-call-timeout must be at least 1s");
  }
  if (serve.max_transfers < 1) {
    return absl::InvalidArgumentError(
        "--max-transfers must be at least 1: with 0 nothing would ever be served");
  }
  if (max_file_size < 1) return absl::InvalidArgumentError("--max-file-size must be at least 1");
  if (absl::Status s = limits.Validate(); !s.ok()) return s;
  if (admin_listen.empty()) return absl::InvalidArgumentError("--admin-listen is empty");
  if (!absl::StartsWith(admin_listen, "unix:")) {
    absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(admin_listen);
    if (!hp.ok()) return hp.status();
    const bool loopback =
        absl::StartsWith(hp->first, "127.") || hp->first == "[::1]" || hp->first == "localhost";
    if (!loopback && tls.cert.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--admin-listen ", admin_listen,
          " is reachable from other hosts and the admin token would cross in clear: serve it "
          "with --tls-cert and --tls-key (better with --tls-client-ca), or keep it on "
          "loopback or unix:PATH"));
    }
    if (hp->second != 0 && std::find(listen.begin(), listen.end(), admin_listen) != listen.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--admin-listen ", admin_listen,
                                                     " is also a --listen address: the "
                                                     "admin API never shares the agents' port"));
    }
  }
  return CheckTlsFiles(tls, /*server=*/true, "--tls");
}

std::string NodeOptions::ListenerSecurity() const {
  if (tls.cert.empty()) return "plaintext";
  return tls.ca.empty() ? "TLS" : "mutual TLS";
}

Node::Node(NodeOptions options, AdminToken token, std::unique_ptr<VersionStore> store)
    : options_(std::move(options)),
      token_(std::move(token)),
      store_(std::move(store)),
      agents_({.max_agents = options_.max_agents, .stale_after = options_.agent_stale_after}) {
  UpdateServiceOptions serve = options_.serve;
  serve.client_certificates = !options_.tls.ca.empty();
  update_ = std::make_unique<UpdateServiceImpl>(store_.get(), &agents_, serve);
}

absl::StatusOr<std::unique_ptr<Node>> Node::Open(const NodeOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (absl::Status s = SetLogOptions(options.log_format, options.log_level); !s.ok()) return s;
  if (absl::Status s = MakeDirs(options.data_dir); !s.ok()) return s;
  const bool default_token = options.admin_token_file.empty();
  const std::string token_file =
      default_token ? options.data_dir + "/admin.token" : options.admin_token_file;
  absl::StatusOr<AdminToken> token = AdminToken::LoadOrCreate(token_file, default_token);
  if (!token.ok()) return token.status();
  absl::StatusOr<std::unique_ptr<VersionStore>> store = VersionStore::Open(
      options.data_dir + "/store", {.chunk_size = static_cast<uint32_t>(options.chunk_size)});
  if (!store.ok()) return store.status();
  NodeOptions resolved = options;
  resolved.admin_token_file = token_file;
  return std::unique_ptr<Node>(new Node(std::move(resolved), std::move(*token), std::move(*store)));
}

Node::~Node() { Shutdown(); }

absl::Status Node::Serve(grpc::Service* admin) {
  // gRPC health checking and server reflection on every listener: load
  // balancers and operators' tools see what is served.
  InstallConnectionGuard(options_.connections);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<RunningServer> admin_server =
      StartServer({options_.admin_listen}, {admin}, options_.data_dir + "/admin.listening",
                  options_.tls, options_.limits);
  if (!admin_server.ok()) return admin_server.status();
  admin_server_ = std::move(admin_server->server);
  admin_bound_ = admin_server->bound.front();
  // The console before the agents' listeners: once DATA_DIR/listening
  // exists, so does console.listening.
  if (!options_.console.empty()) {
    ConsoleOptions console;
    console.listen = options_.console;
    console.metrics_auth = options_.metrics_auth;
    console.max_upload = options_.max_file_size;
    absl::StatusOr<std::unique_ptr<Console>> started_console =
        Console::Start(console, admin_server_->InProcessChannel(grpc::ChannelArguments()), &token_);
    if (!started_console.ok()) return started_console.status();
    console_ = std::move(*started_console);
    if (absl::Status s = WriteFileAtomically(options_.data_dir + "/console.listening",
                                             absl::StrCat(console_->bound(), "\n"), 0644);
        !s.ok()) {
      return s;
    }
    Log(LogLevel::kInfo, absl::StrCat("console on http://", console_->bound(), "/"));
  }
  absl::Status started = StartAgentsServer(options_.listen);
  if (!started.ok()) return started;
  watchdog_ = std::thread([this] { WatchListeners(); });
  if (options_.tls.cert.empty()) {
    Log(LogLevel::kWarning,
        "listening in plaintext: patterns are still verified end to end, but the admin token "
        "and agents' reports cross in clear; serve TLS with --tls-cert and --tls-key off "
        "trusted segments");
  }
  return absl::OkStatus();
}

absl::Status Node::StartAgentsServer(const std::vector<std::string>& listen) {
  // Guarded before the first connection can come: a fixed port before the
  // server listens, a chosen one (":0") before DATA_DIR/listening tells
  // anyone where it is. (A connection taken before its port is guarded is
  // never guarded.)
  auto guard = [](const std::vector<std::string>& addresses) {
    for (const std::string& address : addresses) {
      absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(address);
      if (hp.ok() && hp->second != 0) GuardListener(hp->second);
    }
  };
  guard(listen);
  ServerLimits agents_limits = options_.limits;
  agents_limits.bdp_probe = false;  // agents and relays send only small messages here
  absl::StatusOr<RunningServer> server =
      StartServer(listen, {update_.get()}, "", options_.tls, agents_limits);
  if (!server.ok()) return server.status();
  server_ = std::move(server->server);
  bound_ = std::move(server->bound);
  guard(bound_);
  return WriteFileAtomically(options_.data_dir + "/listening", absl::StrJoin(bound_, "\n") + "\n");
}

void Node::WatchListeners() {
  int failures = 0;
  int tick = 0;
  const int probe_every = static_cast<int>(kListenerProbePeriod / kSweepPeriod);
  while (!stop_watchdog_.WaitForNotificationWithTimeout(kSweepPeriod)) {
    SweepConnections();
    agents_.Sweep();
    if (++tick % probe_every != 0) continue;
    ReturnFreeMemory();
    std::string silent;
    for (const std::string& address : bound_) {
      if (absl::StartsWith(address, "unix:")) continue;
      if (!ListenerAnswers(address, !options_.tls.cert.empty(), absl::Seconds(3))) {
        silent = address;
      }
    }
    failures = silent.empty() ? 0 : failures + 1;
    if (failures < kListenerProbeFailures) continue;
    failures = 0;
    Log(LogLevel::kError,
        absl::StrCat("the agents' listener on ", silent,
                     " stopped accepting connections; rebuilding the server on the same ports "
                     "(store and agents' registry kept, agents reconnect)"));
    update_->EndWatches();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_.reset();
    const std::vector<std::string> same_ports = bound_;
    absl::Status s = StartAgentsServer(same_ports);
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kError,
        s.ok() ? absl::StrCat("agents' server rebuilt, serving on ", absl::StrJoin(bound_, ", "))
               : absl::StrCat("cannot rebuild the agents' server: ", s.message(),
                              "; restart the node"));
  }
}

void Node::Shutdown() {
  if (watchdog_.joinable()) {
    stop_watchdog_.Notify();
    watchdog_.join();
  }
  console_.reset();  // its calls go to the admin server
  if (update_ != nullptr) update_->Shutdown();
  // Calls still running a second from now are cancelled: a transfer to a
  // reader that takes a byte a second must not hold the exit (clients
  // resume from their last verified chunk elsewhere or after the restart).
  for (std::unique_ptr<grpc::Server>* s : {&server_, &admin_server_}) {
    if (*s == nullptr) continue;
    (*s)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    s->reset();
  }
}

grpc::ServerUnaryReactor* Node::SetPushing(grpc::CallbackServerContext* context,
                                           const v1::SetPushingRequest* request,
                                           v1::SetPushingResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!token_.Admit(context, reactor)) return reactor;
  update_->SetPushesPaused(request->paused());
  response->set_paused(request->paused());
  Log(LogLevel::kInfo,
      request->paused() ? "admin: pushes to watchers paused (Fetch still serves)"
                        : "admin: pushes to watchers resumed",
      {{"event", "admin_pushing"}, {"paused", request->paused() ? "true" : "false"}});
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace sigrelay
