// sigrelay-relay: pulls from its upstream (an origin or another relay),
// stores every version in RocksDB, serves UpdateService to agents and
// downstream relays, and pushes each change to Watch subscribers.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "core/base/clock.h"
#include "core/base/config_file.h"
#include "core/base/file_util.h"
#include "core/base/flags.h"
#include "core/base/log.h"
#include "core/base/process.h"
#include "core/client/transfer_watch.h"
#include "core/client/tree.h"
#include "core/model/manifest.h"
#include "core/serve/node.h"
#include "relay/admin_service.h"
#include "relay/runtime_settings.h"
#include "relay/sync_scheduler.h"
#include "relay/upstream_sync.h"

namespace sigrelay {
namespace {

int Fail(const absl::Status& s) {
  Log(LogLevel::kError, absl::StrCat("sigrelay-relay: ", s.message()));
  return 1;
}

struct RelaySettings {
  NodeOptions node;
  std::string origin_pubkey;
  std::string root;
  std::vector<std::string> upstreams;
  std::string schedule = "60m";
  absl::Duration max_backoff = absl::Minutes(1);
  UpstreamSyncOptions sync;
  std::string proxy, no_proxy, dns_server;
  TlsFiles upstream_tls;
};

int Main(int argc, char** argv) {
  InitDaemonProcess();
  RelaySettings s;
  FlagParser flags(
      "sigrelay-relay",
      "sigrelay-relay --data-dir DIR --listen HOST:PORT [--listen ...] "
      "--upstream HOST:PORT [--upstream ...] --origin-pubkey FILE|--root FILE [flags]");
  s.node.AddFlags(&flags);
  flags.AddRepeated("upstream", &s.upstreams, "HOST:PORT|URL",
                    "origin or relay to pull from, or a static tree: https://HOST/PATH/, "
                    "http://... or file:///PATH (docs/tree.md; polled on --schedule, it cannot "
                    "announce); several are tried in order");
  flags.Add("origin-pubkey", &s.origin_pubkey, "FILE",
            "the origin's origin.pub: every manifest must be signed by it (this or --root)");
  flags.Add("root", &s.root, "FILE",
            "the origin's trust root chain (`sigrelayctl root`): every manifest must be signed "
            "by a key of it or of a newer root that links to it (this or --origin-pubkey)");
  flags.Add("schedule", &s.schedule, "DURATION",
            "how often to sync besides pushes, 1s..720h (default 60m; `sigrelayctl schedule` "
            "changes it at run time, and that change wins over this flag)");
  flags.Add("max-backoff", &s.max_backoff,
            "longest wait between retries while the upstream fails (default 1m)");
  AddTransferFlags(&flags, &s.sync.transfer, "upstream-",
                   "the upstream is then tried after the others for a while and the verified "
                   "part is resumed elsewhere");
  flags.Add("proxy", &s.proxy, "URL",
            "HTTP CONNECT proxy for upstream traffic: http://[user:password@]HOST:PORT "
            "(`sigrelayctl proxy` changes it at run time, and that change wins over this flag)");
  flags.Add("no-proxy", &s.no_proxy, "HOSTS", "comma list of upstream hosts reached directly");
  AddClientTlsFlags(&flags, &s.upstream_tls, "upstream-tls");
  flags.Add("dns-server", &s.dns_server, "IP[:PORT]",
            "DNS server for upstream names (default: /etc/resolv.conf); /etc/hosts is read first");
  absl::Status parsed = ParseFlagsWithConfig(&flags, &s.node.config, argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) return Fail(parsed);
  if (s.node.data_dir.empty() || s.node.listen.empty() || s.upstreams.empty() ||
      (s.origin_pubkey.empty() && s.root.empty())) {
    return Fail(absl::InvalidArgumentError(
        "--data-dir, --listen, --upstream and --origin-pubkey (or --root) are required; see "
        "--help"));
  }
  if (absl::Status v = s.node.Validate(); !v.ok()) return Fail(v);
  if (absl::Status p = CheckProxyUrl(s.proxy); !p.ok()) return Fail(p);
  if (absl::Status t = CheckTlsFiles(s.upstream_tls, /*server=*/false, "--upstream-tls"); !t.ok()) {
    return Fail(t);
  }
  if (absl::Status t = s.sync.transfer.Validate(); !t.ok()) return Fail(t);
  for (const std::string& u : s.upstreams) {
    if (!IsTreeUrl(u)) continue;
    if (absl::StatusOr<std::unique_ptr<UpdateSource>> t = OpenTreeSource(u); !t.ok()) {
      return Fail(t.status());
    }
  }
  absl::StatusOr<absl::Duration> schedule = ParseSchedule(s.schedule);
  if (!schedule.ok()) return Fail(schedule.status());
  if (absl::Status m = MakeDirs(s.node.data_dir); !m.ok()) return Fail(m);

  // What an operator set at run time wins over flags and config file.
  absl::StatusOr<RuntimeSettingsFile> runtime =
      RuntimeSettingsFile::Load(s.node.data_dir + "/settings.textpb");
  if (!runtime.ok()) return Fail(runtime.status());
  const v1::RuntimeSettings changed = runtime->Get();
  if (!changed.schedule().empty()) {
    absl::StatusOr<absl::Duration> kept = ParseSchedule(changed.schedule());
    if (!kept.ok()) return Fail(kept.status());
    Log(LogLevel::kInfo, absl::StrCat("schedule ", changed.schedule(),
                                      " set at run time (settings.textpb) replaces ", s.schedule));
    schedule = kept;
  }
  if (changed.proxy_set()) {
    if (absl::Status p = CheckProxyUrl(changed.proxy()); !p.ok()) return Fail(p);
    Log(LogLevel::kInfo,
        absl::StrCat("upstream proxy set at run time (settings.textpb): ",
                     changed.proxy().empty() ? "none" : ProxyDisplay(changed.proxy())));
    s.proxy = changed.proxy();
    s.no_proxy = changed.no_proxy();
  }

  // Signals are taken by WaitForStopSignal below.
  const sigset_t stop_signals = BlockStopSignals();

  auto verifier = ManifestVerifier::FromFlags(s.origin_pubkey, s.root);
  if (!verifier.ok()) return Fail(verifier.status());
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(s.node);
  if (!node.ok()) return Fail(node.status());

  NetworkDialerOptions dial;
  dial.upstreams = s.upstreams;
  dial.proxy = s.proxy;
  dial.no_proxy = absl::StrSplit(s.no_proxy, ',', absl::SkipEmpty());
  dial.dns_server = s.dns_server;
  dial.tls = s.upstream_tls;
  NetworkDialer dialer(dial);
  // A stop cuts any transfer at once (the verified part stays for resume).
  absl::Notification stopping;
  UpstreamSyncOptions sync_options = s.sync;
  sync_options.max_file_size = s.node.max_file_size;
  sync_options.tree_tls_ca = s.upstream_tls.ca;
  sync_options.transfer.stop = &stopping;
  sync_options.work_dir = s.node.data_dir + "/tmp";
  if (absl::StatusOr<int> emptied = EmptyDir(sync_options.work_dir); !emptied.ok()) {
    return Fail(emptied.status());
  }
  UpstreamSync sync((*node)->store(), verifier->get(), RealClock::Get(), &dialer, sync_options);
  SchedulerOptions sched_options;
  sched_options.period = *schedule;
  sched_options.max_backoff = s.max_backoff;
  sched_options.initial_backoff = std::min(absl::Seconds(1), s.max_backoff);
  UpdateServiceImpl* update = (*node)->update();
  sched_options.fleet = [update] { return update->Fleet(); };
  SyncScheduler scheduler(&sync, (*node)->store(), RealClock::Get(), sched_options);
  RelayAdminService admin(node->get(), &sync, &dialer, &scheduler, &*runtime);
  if (absl::Status served = (*node)->Serve(&admin); !served.ok()) return Fail(served);
  Log(LogLevel::kInfo,
      absl::StrCat("sigrelay-relay serving on ", absl::StrJoin((*node)->bound(), ", "),
                   "; upstream ", absl::StrJoin(s.upstreams, ", "), "; admin API on ",
                   (*node)->admin_bound(), ", token in ", (*node)->options().admin_token_file));
  scheduler.Start();

  const int sig = WaitForStopSignal(stop_signals);
  Log(LogLevel::kInfo, absl::StrCat("signal ", sig, ": shutting down"));
  stopping.Notify();
  scheduler.Stop();
  (*node)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace sigrelay

int main(int argc, char** argv) { return sigrelay::Main(argc, argv); }
