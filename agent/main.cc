// sigrelay-agent: keeps a directory of pattern files current from the
// nearest relay, for the scanner that reads them (what freshclam does for
// ClamAV's database directory). See README "Keeping endpoints current".
//
//   sigrelay-agent --server relay:7443 --origin-pubkey origin.pub
//       --dir /var/lib/scanner/patterns --components virus,spyware [--once]
//   sigrelay-agent status --state-dir DIR
#include <cstring>
#include <iostream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/pattern_agent.h"
#include "core/base/config_file.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/flags.h"
#include "core/base/log.h"
#include "core/base/process.h"
#include "core/client/transfer_watch.h"
#include "core/client/tree.h"
#include "core/model/component.h"
#include "core/model/manifest.h"
#include "sigrelay/v1/config.pb.h"

namespace sigrelay {
namespace {

int Fail(const absl::Status& s) {
  Log(LogLevel::kError, absl::StrCat("sigrelay-agent: ", s.message()));
  return 1;
}

std::string When(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

// `sigrelay-agent status --state-dir DIR`: what is installed, from where,
// and when.
int Status(int argc, char** argv) {
  std::string state_dir;
  FlagParser flags("sigrelay-agent status", "sigrelay-agent status --state-dir DIR");
  flags.Add("state-dir", &state_dir, "DIR", "the agent's --state-dir (required)");
  if (absl::Status s = flags.ParseFlagsOnly(argc, argv); !s.ok()) return Fail(s);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (state_dir.empty()) return Fail(absl::InvalidArgumentError("--state-dir is required"));
  absl::StatusOr<std::string> bytes = ReadFileToString(state_dir + "/state.binpb");
  v1::AgentState state;
  if (!bytes.ok()) {
    return Fail(absl::NotFoundError(
        absl::StrCat("no agent state in ", state_dir, " (", bytes.status().message(),
                     "): the agent has not run with this --state-dir yet")));
  }
  if (!state.ParseFromString(*bytes)) {
    return Fail(absl::DataLossError(state_dir + "/state.binpb is not an agent state"));
  }
  absl::StatusOr<std::string> id = ReadFileToString(state_dir + "/agent-id");
  std::cout << "agent " << (id.ok() ? std::string(absl::StripAsciiWhitespace(*id)) : "?")
            << ", state in " << state_dir << "\n";
  v1::Manifest manifest;
  if (state.has_manifest() && manifest.ParseFromString(state.manifest().manifest())) {
    std::cout << "trusted manifest: serial " << manifest.serial() << ", expires "
              << When(manifest.expires_unix()) << "\n";
  } else {
    std::cout << "trusted manifest: none yet\n";
  }
  std::cout << "\n"
            << absl::StrFormat("%-20s %8s  %-18s %-22s %-20s %-9s %s\n", "COMPONENT", "VERSION",
                               "HOW", "FROM", "WHEN", "HEALTH", "SHA256");
  for (const v1::InstalledFile& f : state.installed()) {
    const char* health = f.health() == v1::HEALTH_HEALTHY     ? "healthy"
                         : f.health() == v1::HEALTH_UNHEALTHY ? "UNHEALTHY"
                                                              : "-";
    std::cout << absl::StrFormat("%-20s %8d  %-18s %-22s %-20s %-9s %s\n", f.component(),
                                 f.version(), f.how(), f.server(), When(f.installed_unix()), health,
                                 ToHex(f.sha256()).substr(0, 16));
  }
  for (const v1::RefusedFile& r : state.refused()) {
    std::cout << "\nrefused: " << r.component() << " " << r.version() << " at "
              << When(r.refused_unix()) << " by --verify-cmd: " << r.reason()
              << "\n  (the installed file stays; tried again when another version is offered)\n";
  }
  return 0;
}

int Main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "status") == 0) return Status(argc - 1, argv + 1);
  InitDaemonProcess();
  PatternAgentOptions o;
  std::string config, pubkey, root, components;
  std::vector<std::string> files;
  bool once = false;
  FlagParser flags(
      "sigrelay-agent",
      "sigrelay-agent --server HOST:PORT [--server ...] --origin-pubkey FILE|--root FILE "
      "--dir DIR --components a,b [flags]\n"
      "       sigrelay-agent status --state-dir DIR");
  flags.Add("config", &config, "FILE",
            "settings in protobuf text format (sigrelay.v1.AgentConfig, "
            "proto/sigrelay/v1/config.proto); flags given here win");
  flags.AddRepeated("server", &o.servers, "HOST:PORT|URL",
                    "relay (or origin) to update from, or a static tree: https://HOST/PATH/, "
                    "http://... or file:///PATH (docs/tree.md); several are tried in order "
                    "(required)");
  flags.Add("poll-interval", &o.poll_interval,
            "how often a static tree (which cannot announce) is asked for a newer manifest "
            "(default 10m)");
  flags.Add("origin-pubkey", &pubkey, "FILE",
            "the origin's origin.pub: every manifest must be signed by it (this or --root)");
  flags.Add("root", &root, "FILE",
            "the origin's trust root chain (`sigrelayctl root`), instead of --origin-pubkey");
  flags.Add("dir", &o.dir, "DIR",
            "the pattern directory: COMPONENT.pattern and COMPONENT.version, each replaced "
            "atomically (required)");
  flags.Add("components", &components, "a,b", "the components to keep current (required)");
  flags.AddRepeated("file", &files, "COMPONENT=NAME",
                    "install COMPONENT in DIR as NAME, the name the scanner expects (e.g. "
                    "company-sigs=company.ndb for ClamAV; default COMPONENT.pattern)");
  flags.Add("state-dir", &o.state_dir, "DIR",
            "what the agent trusts and installed, and its id (default DIR/.sigrelay-state)");
  flags.Add("on-update", &o.on_update, "CMD",
            "shell command run once after each update that installed something, with "
            "SIGRELAY_UPDATED=\"virus=5 spyware=3\", SIGRELAY_VERSION_<COMPONENT>, SIGRELAY_DIR, "
            "SIGRELAY_SERVER and SIGRELAY_SERIAL in its environment");
  flags.Add("on-update-timeout", &o.on_update_timeout,
            "kill --on-update after this long (default 60s)");
  flags.Add("verify-cmd", &o.verify_cmd, "CMD",
            "shell command that checks each verified file before it replaces the installed one: "
            "the file (under its final name, in DIR/.sigrelay-staging) in SIGRELAY_STAGED, "
            "SIGRELAY_COMPONENT and SIGRELAY_VERSION in its environment; exit 0 installs it, "
            "anything else refuses that version (the installed file stays; see status)");
  flags.Add("verify-timeout", &o.verify_timeout,
            "a --verify-cmd running longer is killed and the version refused (default 60s)");
  flags.Add("health-check", &o.health_check, "CMD",
            "shell command run after each update that installed something (after --on-update, "
            "same environment): exit 0 reports the installed versions healthy to the relay, "
            "anything else unhealthy (the relays sum these up to the origin)");
  flags.Add("ring", &o.ring, "NAME",
            "the staged-rollout ring of this machine (a canary: --ring canary); by default the "
            "ring its agent id's hash falls in. A version reaches it once the origin admits its "
            "ring");
  flags.Add("health-timeout", &o.health_timeout,
            "a --health-check running longer is killed: unhealthy (default 60s)");
  flags.AddBool("once", &once,
                "update once and exit: 0 when current or updated, 1 with the reason otherwise");
  AddClientTlsFlags(&flags, &o.channel.tls, "tls");
  flags.Add("proxy", &o.channel.proxy, "URL",
            "reach the servers through this HTTP CONNECT proxy: http://[user:pass@]HOST:PORT");
  flags.Add("max-backoff", &o.max_backoff,
            "longest wait before trying the next server after a failure (default 5m)");
  AddTransferFlags(&flags, &o.transfer, "", "the next server is tried");
  absl::Status parsed =
      ParseFlagsWithConfig(&flags, &config, argc, argv, &v1::AgentConfig::default_instance());
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) return Fail(parsed);
  if (o.servers.empty() || (pubkey.empty() && root.empty()) || o.dir.empty() ||
      components.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--server, --origin-pubkey (or --root), --dir and --components are required; see "
        "--help"));
  }
  for (absl::string_view c : absl::StrSplit(components, ',', absl::SkipEmpty())) {
    if (absl::Status s = ValidateComponentName(c); !s.ok()) return Fail(s);
    o.components.emplace_back(c);
  }
  absl::StatusOr<std::map<std::string, std::string>> names = ParseFileNames("file", files);
  if (!names.ok()) return Fail(names.status());
  o.files = std::move(*names);
  if (absl::Status s = CheckFileNames(o.components, o.files); !s.ok()) return Fail(s);
  if (o.state_dir.empty()) o.state_dir = o.dir + "/.sigrelay-state";
  if (o.on_update_timeout <= absl::ZeroDuration() || o.max_backoff <= absl::ZeroDuration() ||
      o.verify_timeout <= absl::ZeroDuration() || o.health_timeout <= absl::ZeroDuration()) {
    return Fail(absl::InvalidArgumentError(
        "--on-update-timeout, --verify-timeout, --health-timeout and --max-backoff must be "
        "positive"));
  }
  if (o.poll_interval < absl::Seconds(1)) {
    return Fail(absl::InvalidArgumentError("--poll-interval must be at least 1s"));
  }
  for (const std::string& server : o.servers) {
    if (!IsTreeUrl(server)) continue;
    if (absl::StatusOr<std::unique_ptr<UpdateSource>> t = OpenTreeSource(server); !t.ok()) {
      return Fail(t.status());
    }
  }
  if (absl::Status s = o.transfer.Validate(); !s.ok()) return Fail(s);
  if (absl::Status s = CheckProxyUrl(o.channel.proxy); !s.ok()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--proxy: ", s.message())));
  }
  if (o.channel.tls.enabled()) {
    if (absl::Status s = CheckTlsFiles(o.channel.tls, /*server=*/false, "--tls"); !s.ok()) {
      return Fail(s);
    }
  }
  absl::StatusOr<std::unique_ptr<ManifestVerifier>> verifier =
      ManifestVerifier::FromFlags(pubkey, root);
  if (!verifier.ok()) return Fail(verifier.status());

  sigset_t stop_signals = BlockStopSignals();
  // A signal cuts a transfer and a running --on-update at once; what is
  // installed is whole (every file is replaced by rename).
  absl::Notification stop, stopped;
  o.transfer.stop = &stop;
  PatternAgent agent(o, std::move(*verifier));
  if (absl::Status s = agent.Open(); !s.ok()) return Fail(s);
  absl::Status result;
  std::thread runner;
  if (once) {
    runner = std::thread([&] {
      absl::StatusOr<UpdateResult> r = agent.UpdateOnce();
      if (!r.ok()) {
        result = r.status();
      } else if (r->installed.empty()) {
        Log(LogLevel::kInfo, absl::StrCat("current at serial ", r->serial, " from ", r->server));
      }
      stopped.Notify();
    });
  } else {
    Log(LogLevel::kInfo, absl::StrCat("sigrelay-agent ", agent.agent_id(), " keeping ", components,
                                      " current in ", o.dir));
    runner = std::thread([&] {
      agent.Run(&stop);
      stopped.Notify();
    });
  }
  const int sig = WaitForStopSignalOr(stop_signals, stopped);
  if (sig != 0) {
    Log(LogLevel::kInfo, absl::StrCat("signal ", sig, ": stopping"));
    stop.Notify();
    agent.Interrupt();
    if (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(1500))) {
      Log(LogLevel::kWarning, "a transfer did not end within 2s of the signal; exiting anyway");
      _exit(1);
    }
  }
  runner.join();
  if (sig != 0) return once ? 1 : 0;
  if (!result.ok()) {
    return Fail(absl::Status(result.code(), absl::StrCat("cannot update: ", result.message())));
  }
  return 0;
}

}  // namespace
}  // namespace sigrelay

int main(int argc, char** argv) { return sigrelay::Main(argc, argv); }
