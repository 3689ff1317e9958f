// sigrelay-origin: the publisher. Accepts new full versions (AdminService
// Publish), computes incrementals, signs manifests and serves UpdateService.
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "core/base/clock.h"
#include "core/base/config_file.h"
#include "core/base/file_util.h"
#include "core/base/flags.h"
#include "core/base/grpc_status.h"
#include "core/base/log.h"
#include "core/base/process.h"
#include "core/base/transport.h"
#include "core/client/fetch_client.h"
#include "core/client/grpc_source.h"
#include "core/model/manifest.h"
#include "core/model/rollout.h"
#include "core/model/trust_root.h"
#include "core/serve/node.h"
#include "origin/admin_service.h"
#include "origin/publisher.h"
#include "origin/rollout_gate.h"
#include "origin/tree_publisher.h"

namespace sigrelay {
namespace {

int Fail(const absl::Status& s) {
  Log(LogLevel::kError, absl::StrCat("sigrelay-origin: ", s.message()));
  return 1;
}

// sigrelay-origin --resume-from: the newest manifest `address` holds, and
// each newer file from it, checked against that manifest.
absl::Status ResumeFrom(Publisher* publisher, const std::string& address, const TlsFiles& tls) {
  ChannelOptions options;
  options.tls = tls;
  std::shared_ptr<grpc::Channel> channel = MakeChannel(address, options);
  GrpcSource source(
      address, [channel] { return channel; }, absl::Seconds(30));
  TransferLimits limits;
  limits.deadline = absl::Now() + absl::Seconds(30);
  absl::StatusOr<v1::SignedManifest> remote = source.Manifest(limits);
  if (!remote.ok()) {
    return absl::Status(remote.status().code(),
                        absl::StrCat("--resume-from ", address, ": ", remote.status().message()));
  }
  absl::StatusOr<v1::ResumeResult> r =
      publisher->ResumeFrom(*remote, [&](const v1::ComponentEntry& e, ByteSink* sink) {
        TransferLimits body = limits;
        body.deadline = absl::Now() + absl::Hours(1);
        return source.Fetch(ExpectedBody::Full(e), 0, body, sink);
      });
  if (!r.ok())
    return absl::Status(r.status().code(),
                        absl::StrCat("--resume-from ", address, ": ", r.status().message()));
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  InitDaemonProcess();
  NodeOptions node_options;
  std::string signing_key;
  std::string http_tree;
  absl::Duration http_tree_keep = absl::Minutes(10);
  std::vector<std::string> http_tree_names;
  std::string origin_root;
  std::string resume_from;
  TlsFiles resume_tls;
  PublisherOptions options;
  std::vector<std::string> components;
  std::string rollout = "none";
  bool auto_withdraw = false;
  FlagParser flags("sigrelay-origin",
                   "sigrelay-origin --data-dir DIR --listen HOST:PORT [--listen ...] [flags]");
  node_options.AddFlags(&flags);
  flags.Add("signing-key", &signing_key, "FILE",
            "Ed25519 private key in PEM (default: DIR/origin.key, created with "
            "DIR/origin.pub on first start)");
  flags.Add("root", &origin_root, "FILE",
            "the trust root chain (`sigrelayctl root`) every signed manifest carries so nodes "
            "pinned on an older root move to its newest; the signing key must be one of the "
            "newest root's keys. Without it nodes pin origin.pub");
  flags.Add("first-version", &options.policy.first, "N",
            "version of a component's first publish (default 1)");
  flags.Add("version-step", &options.policy.step, "N",
            "added to the version at each publish (default 2)");
  flags.Add("zstd-level", &options.zstd_level, "N",
            "zstd level of the incrementals, 1..22, or 0 for auto: 12 for files under 48 MiB, "
            "1 from there on, where it makes smaller incrementals faster (default 0)");
  flags.AddBytes("encode-memory", &options.encode_memory,
                 "memory the encodes of incrementals may take at once (each: zstd's tables and "
                 "the old version it searches): encodes run in parallel as far as this and the "
                 "cores allow, at least one (default 256MiB: two 20 MB patterns at once, one "
                 "150 MB pattern)");
  flags.Add("retain", &options.policy.retain, "K",
            "older versions kept, each with an incremental to the newest (default 8)");
  flags.Add("manifest-validity", &options.manifest_validity,
            "how long a signed manifest stays valid (default 24h)");
  flags.Add("resign-every", &options.resign_every,
            "re-sign the manifest (new serial, fresh expiry) this often while nothing is "
            "published; nodes call a manifest stale after two of these (default 1h)");
  flags.Add("resume-from", &resume_from, "HOST:PORT",
            "before serving, continue after the newest manifest this relay or mirror holds "
            "(it must verify with this origin's key): newer component versions are taken "
            "from it and serials and versions go on above it. For an origin restored from an "
            "old copy of its data dir, which would otherwise sign versions and serials it "
            "signed before");
  AddClientTlsFlags(&flags, &resume_tls, "resume-from-tls");
  flags.Add("http-tree", &http_tree, "DIR",
            "keep the static tree (docs/tree.md) of what this origin serves in DIR, for any "
            "HTTP server, cache or CDN to serve: after every publish and re-sign, new files "
            "first, the manifest last by rename");
  flags.Add("http-tree-keep", &http_tree_keep,
            "keep a file of the tree this long after the last manifest that named it, for "
            "readers still fetching an older manifest's files (default 10m)");
  flags.AddRepeated("http-tree-name", &http_tree_names, "COMPONENT=NAME",
                    "also keep the newest full file of COMPONENT as current/NAME in the tree, for "
                    "HTTP clients that know nothing of sigrelay (e.g. freshclam's "
                    "DatabaseCustomURL); they check no sigrelay signature (README)");
  flags.AddRepeated("component", &components, "NAME[:full]",
                    "a component this origin publishes; replaces the default six: virus, "
                    "smartscan-agent, damage-cleanup, intellitrap-exception, spyware and "
                    "outbreak-policy:full");
  flags.Add(
      "rollout", &rollout, "PLAN",
      "how a publish reaches agents (sigrelayctl publish --rollout overrides it per "
      "publish): none (everyone at once; the default), staged (canary 1% baking 30m, early "
      "10% baking 1h, then broad; 95% of each ring healthy), or rings in order as "
      "NAME=SHARE%:BAKE[:HEALTHY%] and the last as NAME alone: canary=1%:30m,early=10%:1h,broad");
  flags.AddBool("auto-withdraw", &auto_withdraw,
                "withdraw a version whose staged rollout halted on unhealthy reports: agents of "
                "the admitted rings roll forward to the last good content");
  absl::Status parsed = ParseFlagsWithConfig(&flags, &node_options.config, argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) return Fail(parsed);
  if (absl::Status s = node_options.Validate(); !s.ok()) return Fail(s);
  if (absl::Status s = options.policy.Validate(); !s.ok()) return Fail(s);
  absl::StatusOr<std::vector<v1::Ring>> plan = ParseRolloutPlan(rollout);
  if (!plan.ok())
    return Fail(absl::InvalidArgumentError(absl::StrCat("--rollout: ", plan.status().message())));
  options.rollout = std::move(*plan);
  if (options.zstd_level < 0 || options.zstd_level > 22) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--zstd-level ", options.zstd_level, " is outside zstd's levels 1..22 (or 0: auto)")));
  }
  if (options.resign_every < absl::Seconds(10) ||
      options.manifest_validity < 3 * options.resign_every) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--resign-every (", absl::FormatDuration(options.resign_every),
        ") must be at least 10s and --manifest-validity (",
        absl::FormatDuration(options.manifest_validity),
        ") at least three times it, so a manifest goes stale well before it expires")));
  }
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
  absl::StatusOr<std::map<std::string, std::string>> current_names =
      ParseFileNames("http-tree-name", http_tree_names);
  if (!current_names.ok()) return Fail(current_names.status());
  for (const auto& [component, name] : *current_names) {
    if (absl::StatusOr<ComponentSpec> spec = options.catalog.Find(component); !spec.ok()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--http-tree-name ", component, "=", name, ": ", spec.status().message())));
    }
  }
  if (!current_names->empty() && http_tree.empty()) {
    return Fail(absl::InvalidArgumentError("--http-tree-name needs --http-tree DIR"));
  }
  options.max_file_size = node_options.max_file_size;
  node_options.serve.catalog = &options.catalog;
  // Uploads a killed origin left half-written and the encoder's scratch
  // files: nothing refers to them.
  const std::string spool = node_options.data_dir + "/spool";
  options.work_dir = node_options.data_dir + "/tmp";
  for (const std::string& scratch : {spool, options.work_dir}) {
    absl::StatusOr<int> removed = EmptyDir(scratch);
    if (!removed.ok()) return Fail(removed.status());
    if (*removed > 0) {
      Log(LogLevel::kInfo,
          absl::StrCat("removed ", *removed, " unfinished file(s) from ", scratch));
    }
  }

  // Signals are taken by WaitForStopSignal below.
  const sigset_t stop_signals = BlockStopSignals();

  const std::string& dir = node_options.data_dir;
  auto signer = signing_key.empty()
                    ? ManifestSigner::LoadOrCreate(dir + "/origin.key", dir + "/origin.pub")
                    : ManifestSigner::Load(signing_key);
  if (!signer.ok()) return Fail(signer.status());
  if (!origin_root.empty()) {
    TrustRoot newest;
    absl::StatusOr<v1::RootChain> chain = ReadRootChain(origin_root, &newest);
    if (!chain.ok()) return Fail(chain.status());
    const std::string key = (*signer)->RawPublicKey();
    if (std::find(newest.keys.begin(), newest.keys.end(), key) == newest.keys.end()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the signing key ", KeyFingerprint(key), " is not one of trust root v", newest.version,
          "'s keys in ", origin_root, "; give --signing-key one of them")));
    }
    (*signer)->SetRoots(std::move(*chain));
  }
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(node_options);
  if (!node.ok()) return Fail(node.status());

  Publisher publisher((*node)->store(), signer->get(), RealClock::Get(), options);
  if (!resume_from.empty()) {
    if (absl::Status s = ResumeFrom(&publisher, resume_from, resume_tls); !s.ok()) return Fail(s);
  }
  if (absl::Status s = publisher.RefreshIfDue(); !s.ok()) return Fail(s);
  Node* const served = node->get();
  RolloutGate gate(&publisher, [served] { return served->update()->FleetBySource(); },
                   {.auto_withdraw = auto_withdraw});
  auto admin = std::make_unique<OriginAdminService>(node->get(), &publisher, &gate, spool);
  if (absl::Status served = (*node)->Serve(admin.get()); !served.ok()) return Fail(served);
  Log(LogLevel::kInfo,
      absl::StrCat("sigrelay-origin serving on ", absl::StrJoin((*node)->bound(), ", "),
                   "; admin API on ", (*node)->admin_bound(), ", token in ",
                   (*node)->options().admin_token_file));

  std::unique_ptr<TreePublisher> tree;
  if (!http_tree.empty()) {
    absl::StatusOr<std::unique_ptr<ManifestVerifier>> own =
        origin_root.empty() ? ManifestVerifier::FromPem((*signer)->PublicKeyPem())
                            : ManifestVerifier::FromRootFile(origin_root);
    if (!own.ok()) return Fail(own.status());
    if (absl::Status s = MakeDirs(http_tree); !s.ok()) return Fail(s);
    tree = std::make_unique<TreePublisher>(http_tree, (*node)->store(), std::move(*own),
                                           http_tree_keep, std::move(*current_names));
  }

  // Keep the manifest from expiring while nothing is published.
  absl::Notification stopping;
  std::thread refresher([&] {
    const absl::Duration period = std::min(options.resign_every / 4, absl::Minutes(1));
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
  tree.reset();
  (*node)->Shutdown();
  admin.reset();  // drains a publish in progress
  return 0;
}

}  // namespace
}  // namespace sigrelay

int main(int argc, char** argv) { return sigrelay::Main(argc, argv); }
