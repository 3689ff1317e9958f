// sigrelay-relay: pulls from its upstream (an origin or another relay),
// stores every version in RocksDB, serves UpdateService to agents and
// downstream relays, and pushes each change to Watch subscribers.
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <signal.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/base/admin_token.h"
#include "core/base/clock.h"
#include "core/base/file_util.h"
#include "core/base/flags.h"
#include "core/base/log.h"
#include "core/base/process.h"
#include "core/base/transport.h"
#include "core/model/manifest.h"
#include "core/serve/agent_registry.h"
#include "core/serve/update_service.h"
#include "core/store/version_store.h"
#include "relay/admin_service.h"
#include "relay/sync_scheduler.h"
#include "relay/upstream_sync.h"
#include "sigrelay/v1/config.pb.h"

namespace sigrelay {
namespace {

int Fail(const absl::Status& s) {
  Log(LogLevel::kError, absl::StrCat("sigrelay-relay: ", s.message()));
  return 1;
}

struct RelaySettings {
  std::string data_dir, admin_token_file, origin_pubkey, config;
  std::vector<std::string> listen, upstreams;
  absl::Duration schedule = absl::Minutes(60);
  absl::Duration max_backoff = absl::Minutes(1);
  int zstd_level = IncrementalCodec::kDefaultLevel;
  uint64_t max_file_size = 1ull << 30;
  uint64_t chunk_size = 1 << 20;
  UpdateServiceOptions serve;
  std::string proxy, no_proxy, dns_server;
};

// http://[user:password@]HOST:PORT, or InvalidArgument saying what is off.
absl::Status CheckProxy(const std::string& proxy) {
  std::string rest = proxy;
  if (rest.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--proxy must look like http://[user:password@]HOST:PORT (an HTTP CONNECT proxy)"));
  }
  rest = rest.substr(7);
  if (size_t at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(rest);
  if (!hp.ok() || hp->second == 0) {
    return absl::InvalidArgumentError(
        "--proxy needs HOST:PORT after http:// (and optional user:password@)");
  }
  return absl::OkStatus();
}

absl::Status ApplyConfigFile(const std::string& path, RelaySettings* s) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  v1::RelayConfig config;
  struct Collector : google::protobuf::io::ErrorCollector {
    std::string errors;
    void AddError(int line, int column, const std::string& message) override {
      absl::StrAppend(&errors, "line ", line + 1, " column ", column + 1, ": ", message, "; ");
    }
  } collector;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  if (!parser.ParseFromString(*text, &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config file ", path, " is not a valid sigrelay.v1.RelayConfig: ", collector.errors,
        "see proto/sigrelay/v1/config.proto"));
  }
  if (!config.data_dir().empty()) s->data_dir = config.data_dir();
  if (!config.listen().empty()) s->listen.assign(config.listen().begin(), config.listen().end());
  if (!config.upstream().empty()) {
    s->upstreams.assign(config.upstream().begin(), config.upstream().end());
  }
  if (!config.origin_pubkey().empty()) s->origin_pubkey = config.origin_pubkey();
  if (!config.admin_token_file().empty()) s->admin_token_file = config.admin_token_file();
  if (config.zstd_level() != 0) s->zstd_level = config.zstd_level();
  if (!config.proxy().empty()) s->proxy = config.proxy();
  if (!config.no_proxy().empty()) s->no_proxy = absl::StrJoin(config.no_proxy(), ",");
  if (!config.dns_server().empty()) s->dns_server = config.dns_server();
  if (!config.schedule().empty() && !absl::ParseDuration(config.schedule(), &s->schedule)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config file ", path, ": schedule \"", config.schedule(), "\" is not a duration like 60m"));
  }
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  InitDaemonProcess();
  RelaySettings s;
  FlagParser flags("sigrelay-relay",
                   "sigrelay-relay --data-dir DIR --listen HOST:PORT [--listen ...] "
                   "--upstream HOST:PORT [--upstream ...] --origin-pubkey FILE [flags]");
  flags.Add("config", &s.config, "FILE",
            "protobuf text-format RelayConfig (proto/sigrelay/v1/config.proto); flags override it");
  flags.Add("data-dir", &s.data_dir, "DIR", "store and admin token live here (required)");
  flags.AddRepeated(
      "listen", &s.listen, "HOST:PORT",
      "address to serve agents and relays on, either family: 0.0.0.0:7443, [::]:7443");
  flags.AddRepeated("upstream", &s.upstreams, "HOST:PORT",
                    "origin or relay to pull from; several are tried in order");
  flags.Add("origin-pubkey", &s.origin_pubkey, "FILE",
            "the origin's origin.pub; every manifest must verify with it (required)");
  flags.Add("schedule", &s.schedule, "how often to sync besides pushes (default 60m)");
  flags.Add("max-backoff", &s.max_backoff,
            "longest wait between retries while the upstream fails (default 1m)");
  flags.Add("admin-token-file", &s.admin_token_file, "FILE",
            "admin bearer token (default: DIR/admin.token, created on first start)");
  flags.Add("zstd-level", &s.zstd_level, "N", "zstd level for incrementals made here (default 12)");
  flags.AddBytes("max-file-size", &s.max_file_size,
                 "largest file accepted from upstream (default 1GiB)");
  flags.AddBytes("chunk-size", &s.chunk_size,
                 "store chunk size, 4KiB..4032KiB: one chunk and its Fetch header fit a stock "
                 "gRPC client's 4MiB message (default 1MiB)");
  flags.Add("proxy", &s.proxy, "URL",
            "HTTP CONNECT proxy for upstream traffic: http://[user:password@]HOST:PORT");
  flags.Add("no-proxy", &s.no_proxy, "HOSTS", "comma list of upstream hosts reached directly");
  flags.Add("dns-server", &s.dns_server, "IP[:PORT]",
            "DNS server for upstream names (default: /etc/resolv.conf); /etc/hosts is read first");
  flags.Add("max-transfers", &s.serve.max_transfers, "N",
            "transfers (Fetch streams, pushes with incrementals) at once; more wait in a queue "
            "(default 64)");
  flags.Add("stall-timeout", &s.serve.stall_timeout,
            "cancel a transfer whose write makes no progress this long, freeing its slot "
            "(default 60s, 0s: never)");
  // The config file first, so the flags on the command line override it.
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) s.config = argv[i + 1];
    if (arg.rfind("--config=", 0) == 0) s.config = arg.substr(9);
  }
  if (!s.config.empty()) {
    if (absl::Status c = ApplyConfigFile(s.config, &s); !c.ok()) return Fail(c);
  }
  absl::Status parsed = flags.ParseFlagsOnly(argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) return Fail(parsed);
  if (s.data_dir.empty() || s.listen.empty() || s.upstreams.empty() || s.origin_pubkey.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--data-dir, --listen, --upstream and --origin-pubkey are required; see --help"));
  }
  if (!s.proxy.empty()) {
    if (absl::Status p = CheckProxy(s.proxy); !p.ok()) return Fail(p);
  }
  if (absl::Status c = CheckChunkSize(s.chunk_size, s.max_file_size); !c.ok()) return Fail(c);
  if (s.schedule < absl::Seconds(1)) {
    return Fail(absl::InvalidArgumentError("--schedule must be at least 1s"));
  }
  if (absl::Status m = MakeDirs(s.data_dir); !m.ok()) return Fail(m);

  // Signals are taken by WaitForStopSignal below.
  const sigset_t stop_signals = BlockStopSignals();

  auto verifier = ManifestVerifier::FromPemFile(s.origin_pubkey);
  if (!verifier.ok()) return Fail(verifier.status());
  const bool default_token = s.admin_token_file.empty();
  if (default_token) s.admin_token_file = s.data_dir + "/admin.token";
  auto token = AdminToken::LoadOrCreate(s.admin_token_file, default_token);
  if (!token.ok()) return Fail(token.status());
  auto store = VersionStore::Open(s.data_dir + "/store",
                                  {.chunk_size = static_cast<uint32_t>(s.chunk_size)});
  if (!store.ok()) return Fail(store.status());

  UpstreamSyncOptions sync_options;
  sync_options.upstreams = s.upstreams;
  sync_options.zstd_level = s.zstd_level;
  sync_options.max_file_size = s.max_file_size;
  sync_options.proxy = s.proxy;
  sync_options.no_proxy = absl::StrSplit(s.no_proxy, ',', absl::SkipEmpty());
  sync_options.dns_server = s.dns_server;
  UpstreamSync sync(store->get(), verifier->get(), RealClock::Get(), sync_options);
  SchedulerOptions sched_options;
  sched_options.period = s.schedule;
  sched_options.max_backoff = s.max_backoff;
  sched_options.initial_backoff = std::min(absl::Seconds(1), s.max_backoff);
  SyncScheduler scheduler(&sync, store->get(), RealClock::Get(), sched_options);
  AgentRegistry agents;
  UpdateServiceImpl update(store->get(), &agents, s.serve);
  RelayAdminService admin(&*token, store->get(), &sync, &scheduler, &update, &agents);
  auto server = StartServer(s.listen, {&update, &admin}, s.data_dir + "/listening");
  if (!server.ok()) return Fail(server.status());
  Log(LogLevel::kInfo,
      absl::StrCat("sigrelay-relay serving on ", absl::StrJoin(server->bound, ", "), "; upstream ",
                   absl::StrJoin(s.upstreams, ", "), "; admin token in ", s.admin_token_file));
  scheduler.Start();

  const int sig = WaitForStopSignal(stop_signals);
  Log(LogLevel::kInfo, absl::StrCat("signal ", sig, ": shutting down"));
  scheduler.Stop();
  update.Shutdown();
  server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace
}  // namespace sigrelay

int main(int argc, char** argv) { return sigrelay::Main(argc, argv); }
