// sigrelay-origin: the publisher. Accepts new full versions (AdminService
// Publish), computes incrementals, signs manifests and serves UpdateService.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "core/base/admin_token.h"
#include "core/base/clock.h"
#include "core/base/file_util.h"
#include "core/base/flags.h"
#include "core/base/log.h"
#include "core/base/process.h"
#include "core/base/transport.h"
#include "core/model/manifest.h"
#include "core/serve/update_service.h"
#include "core/store/version_store.h"
#include "origin/admin_service.h"
#include "origin/publisher.h"

namespace sigrelay {
namespace {

int Fail(const absl::Status& s) {
  Log(LogLevel::kError, absl::StrCat("sigrelay-origin: ", s.message()));
  return 1;
}

int Main(int argc, char** argv) {
  InitDaemonProcess();
  std::string data_dir, admin_token_file, signing_key;
  std::vector<std::string> listen;
  PublisherOptions options;
  uint64_t chunk_size = 1 << 20;
  UpdateServiceOptions serve;
  FlagParser flags("sigrelay-origin",
                   "sigrelay-origin --data-dir DIR --listen HOST:PORT [--listen ...] [flags]");
  flags.Add("data-dir", &data_dir, "DIR", "store, keys and admin token live here (required)");
  flags.AddRepeated("listen", &listen, "HOST:PORT",
                    "address to serve on: 127.0.0.1:7443, [::]:7443, 0.0.0.0:0 (required)");
  flags.Add("admin-token-file", &admin_token_file, "FILE",
            "admin bearer token (default: DIR/admin.token, created on first start)");
  flags.Add("signing-key", &signing_key, "FILE",
            "Ed25519 private key in PEM (default: DIR/origin.key, created with "
            "DIR/origin.pub on first start)");
  flags.Add("first-version", &options.policy.first, "N",
            "version of a component's first publish (default 1)");
  flags.Add("version-step", &options.policy.step, "N",
            "added to the version at each publish (default 2)");
  flags.Add("retain", &options.policy.retain, "K",
            "older versions kept, each with an incremental to the newest (default 8)");
  flags.AddBytes("max-file-size", &options.max_file_size, "largest accepted upload (default 1GiB)");
  flags.Add("zstd-level", &options.zstd_level, "N",
            "zstd level for incrementals, 1..22 (default 12)");
  flags.Add("manifest-validity", &options.manifest_validity,
            "how long a signed manifest stays valid; re-signed at half (default 168h)");
  flags.AddBytes("chunk-size", &chunk_size,
                 "store chunk size, 4KiB..4032KiB: one chunk and its Fetch header fit a stock "
                 "gRPC client's 4MiB message (default 1MiB)");
  std::vector<std::string> components;
  flags.AddRepeated("component", &components, "NAME[:full]",
                    "a component this origin publishes (repeatable; replaces the default six: "
                    "virus, smartscan-agent, damage-cleanup, intellitrap-exception, spyware "
                    "and outbreak-policy:full)");
  flags.Add("max-transfers", &serve.max_transfers, "N",
            "transfers (Fetch streams, pushes with incrementals) at once; more wait in a queue "
            "(default 64)");
  flags.Add("stall-timeout", &serve.stall_timeout,
            "cancel a transfer whose write makes no progress this long, freeing its slot "
            "(default 60s, 0s: never)");
  absl::Status parsed = flags.ParseFlagsOnly(argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) return Fail(parsed);
  if (data_dir.empty() || listen.empty()) {
    return Fail(absl::InvalidArgumentError("--data-dir and --listen are required; see --help"));
  }
  if (absl::Status s = options.policy.Validate(); !s.ok()) return Fail(s);
  if (options.manifest_validity < absl::Minutes(2)) {
    return Fail(absl::InvalidArgumentError("--manifest-validity must be at least 2m"));
  }
  if (absl::Status s = CheckChunkSize(chunk_size, options.max_file_size); !s.ok()) return Fail(s);
  if (!components.empty()) {
    std::vector<ComponentSpec> specs;
    for (const std::string& text : components) {
      absl::StatusOr<ComponentSpec> spec = ComponentCatalog::ParseSpec(text);
      if (!spec.ok()) return Fail(spec.status());
      specs.push_back(*spec);
    }
    absl::StatusOr<ComponentCatalog> catalog = ComponentCatalog::FromSpecs(std::move(specs));
    if (!catalog.ok()) return Fail(catalog.status());
    options.catalog = std::move(*catalog);
  }
  serve.catalog = &options.catalog;
  if (absl::Status s = MakeDirs(data_dir + "/spool"); !s.ok()) return Fail(s);

  // Signals are taken by WaitForStopSignal below.
  const sigset_t stop_signals = BlockStopSignals();

  auto signer = signing_key.empty() ? ManifestSigner::LoadOrCreate(data_dir + "/origin.key",
                                                                   data_dir + "/origin.pub")
                                    : ManifestSigner::Load(signing_key);
  if (!signer.ok()) return Fail(signer.status());
  const bool default_token = admin_token_file.empty();
  if (default_token) admin_token_file = data_dir + "/admin.token";
  auto token = AdminToken::LoadOrCreate(admin_token_file, default_token);
  if (!token.ok()) return Fail(token.status());
  auto store =
      VersionStore::Open(data_dir + "/store", {.chunk_size = static_cast<uint32_t>(chunk_size)});
  if (!store.ok()) return Fail(store.status());

  Publisher publisher(store->get(), signer->get(), RealClock::Get(), options);
  if (absl::Status s = publisher.RefreshIfDue(); !s.ok()) return Fail(s);
  AgentRegistry agents;
  UpdateServiceImpl update(store->get(), &agents, serve);
  auto admin = std::make_unique<OriginAdminService>(&*token, &publisher, store->get(), &update,
                                                    &agents, data_dir + "/spool");
  auto server = StartServer(listen, {&update, admin.get()}, data_dir + "/listening");
  if (!server.ok()) return Fail(server.status());
  Log(LogLevel::kInfo,
      absl::StrCat("sigrelay-origin serving on ", absl::StrJoin(server->bound, ", "),
                   "; admin token in ", admin_token_file));

  // Keep the manifest from expiring while nothing is published.
  absl::Notification stopping;
  std::thread refresher([&] {
    const absl::Duration period = std::min(options.manifest_validity / 8, absl::Hours(1));
    while (!stopping.WaitForNotificationWithTimeout(period)) {
      if (absl::Status s = publisher.RefreshIfDue(); !s.ok()) {
        Log(LogLevel::kError, absl::StrCat("cannot re-sign the manifest: ", s.message()));
      }
    }
  });

  const int sig = WaitForStopSignal(stop_signals);
  Log(LogLevel::kInfo, absl::StrCat("signal ", sig, ": shutting down"));
  stopping.Notify();
  refresher.join();
  update.Shutdown();
  server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  admin.reset();  // drains a publish in progress
  return 0;
}

}  // namespace
}  // namespace sigrelay

int main(int argc, char** argv) { return sigrelay::Main(argc, argv); }
