// sigrelay-agent-sim: plays N agents against an origin or relay and reports
// how fast and how completely they converge.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent-sim/fleet.h"
#include "core/base/flags.h"
#include "core/base/process.h"
#include "core/client/transfer_watch.h"
#include "core/model/component.h"

namespace sigrelay {
namespace {

absl::Status ParseMix(const std::string& text, FleetOptions* o) {
  o->start_mix.clear();
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(part, ':');
    double weight = 1;
    if (kv.size() > 2 || (kv.size() == 2 && !absl::SimpleAtod(kv[1], &weight))) {
      return absl::InvalidArgumentError(
          absl::StrCat("--start \"", text,
                       "\": expected VERSION[:WEIGHT],... with VERSION a number, "
                       "\"current\" or \"none\", e.g. current:90,171:5,none:5"));
    }
    uint32_t v = 0;
    if (kv[0] == "current") {
      v = UINT32_MAX;
    } else if (kv[0] != "none" && !absl::SimpleAtoi(kv[0], &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--start: \"", kv[0], "\" is not a version, current or none"));
    }
    o->start_mix.emplace_back(v, weight);
  }
  if (o->start_mix.empty()) return absl::InvalidArgumentError("--start is empty");
  return absl::OkStatus();
}

std::string Json(const FleetSummary& s, double elapsed) {
  std::vector<std::string> errors;
  for (const auto& [kind, n] : s.errors) {
    std::string first = s.first_error.at(kind);
    std::string escaped;
    for (char c : first) {
      if (c == '"' || c == '\\') escaped.push_back('\\');
      if (static_cast<unsigned char>(c) >= 0x20) escaped.push_back(c);
    }
    errors.push_back(
        absl::StrCat("{\"kind\":\"", kind, "\",\"count\":", n, ",\"first\":\"", escaped, "\"}"));
  }
  return absl::StrCat(
      "{\"agents\":", s.agents, ",\"converged\":", s.converged,
      ",\"seconds_to_p50\":", s.seconds_to_p50, ",\"seconds_to_p99\":", s.seconds_to_p99,
      ",\"seconds_to_all\":", s.seconds_to_all, ",\"seconds_elapsed\":", elapsed,
      ",\"all_converged_unix\":", absl::StrFormat("%.3f", s.all_converged_unix),
      ",\"bytes_incremental\":", s.bytes_incremental, ",\"bytes_full\":", s.bytes_full,
      ",\"errors\":[", absl::StrJoin(errors, ","), "]}");
}

int Main(int argc, char** argv) {
  InitDaemonProcess();
  // SIGINT and SIGTERM stop the fleet (below) instead of killing the
  // process, so its work directory, which holds every version the agents
  // downloaded, goes with it.
  const sigset_t stop_signals = BlockStopSignals();
  FleetOptions o;
  std::string pubkey, root, components, until, start = "current", connections = "shared";
  absl::Duration timeout = absl::Seconds(60);
  bool json = false, no_report = false;
  int agents = 1;
  FlagParser flags("sigrelay-agent-sim",
                   "sigrelay-agent-sim --server HOST:PORT --agents N --origin-pubkey FILE "
                   "[--components a,b] [--until COMPONENT=VERSION] [--timeout 60s] "
                   "[--connections per-agent|shared] [--json]");
  flags.Add("server", &o.server, "HOST:PORT", "relay or origin the agents use (required)");
  flags.Add("agents", &agents, "N", "number of simulated agents (default 1)");
  flags.Add("origin-pubkey", &pubkey, "FILE", "the origin's origin.pub (this or --root)");
  flags.Add("root", &root, "FILE", "the origin's trust root chain, instead of --origin-pubkey");
  flags.Add("components", &components, "a,b",
            "components the agents keep (default: all published)");
  flags.Add("until", &until, "C=V[,C=V]",
            "converged when holding at least these versions (default: the newest seen)");
  flags.Add("timeout", &timeout, "give up after this long (default 60s)");
  flags.Add("connections", &connections, "MODE",
            "per-agent: one TCP connection per agent; shared: 32 agents to a connection (default)");
  flags.Add("start", &start, "MIX",
            "versions agents start with, weighted: current:90,171:5,none:5 (default current)");
  flags.Add("start-source", &o.start_source, "HOST:PORT",
            "node to load the --start versions from once (default: --server)");
  flags.Add("ramp", &o.ramp, "start agents spread over this long (default 0)");
  flags.Add("jitter", &o.jitter, "random wait before each fetch, up to this (default 0)");
  flags.Add("max-backoff", &o.max_backoff, "longest reconnect/retry wait (default 10s)");
  flags.Add("seed", &o.seed, "S", "random seed (default 1)");
  flags.Add("unhealthy", &o.unhealthy, "PCT",
            "agents report health for what they hold: PCT per cent unhealthy, the rest healthy "
            "(default: no health reported)");
  flags.Add("ring", &o.ring, "NAME",
            "every agent is in this staged-rollout ring (default: each by its id's hash)");
  flags.Add("id-prefix", &o.id_prefix, "P",
            "agent i reports the id P<i> (default sim-); fleets sharing a relay need distinct "
            "prefixes, or the relay counts them as the same agents");
  AddTransferFlags(&flags, &o.transfer, "", "the agent fetches again after a backoff");
  AddClientTlsFlags(&flags, &o.tls, "tls");
  flags.AddBool("no-report", &no_report,
                "agents give no id, so the server records no status (their versions still go on "
                "Watch for pushes)");
  flags.AddBool("json", &json, "print the summary as one JSON object");
  flags.Add("state-dir", &o.state_dir, "DIR",
            "keep the fleet's trust across runs here: a manifest older than (or conflicting "
            "with) the newest one accepted before is refused, as a restarted agent would");
  absl::Status parsed = flags.ParseFlagsOnly(argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  auto fail = [](const absl::Status& s) {
    std::cerr << "sigrelay-agent-sim: " << s.message() << std::endl;
    return 2;
  };
  if (!parsed.ok()) return fail(parsed);
  if (o.server.empty() || (pubkey.empty() && root.empty()) || agents < 1) {
    return fail(absl::InvalidArgumentError(
        "--server, --origin-pubkey (or --root) and --agents N (N >= 1) are required; see "
        "--help"));
  }
  if (o.unhealthy != -1 && (o.unhealthy < 0 || o.unhealthy > 100)) {
    return fail(absl::InvalidArgumentError("--unhealthy takes a per cent, 0 to 100"));
  }
  if (connections != "shared" && connections != "per-agent") {
    return fail(absl::InvalidArgumentError("--connections takes per-agent or shared"));
  }
  if (absl::Status t = CheckTlsFiles(o.tls, /*server=*/false, "--tls"); !t.ok()) return fail(t);
  if (absl::Status t = o.transfer.Validate(); !t.ok()) return fail(t);
  o.agents = agents;
  if (o.start_source.empty()) o.start_source = o.server;
  o.per_agent_connections = connections == "per-agent";
  o.report = !no_report;
  if (!components.empty()) {
    o.components = absl::StrSplit(components, ',', absl::SkipEmpty());
    for (const std::string& c : o.components) {
      if (absl::Status name = ValidateComponentName(c); !name.ok()) return fail(name);
    }
  }
  for (absl::string_view part : absl::StrSplit(until, ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(part, '=');
    uint32_t v = 0;
    if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &v)) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("--until \"", until, "\": expected COMPONENT=VERSION,...")));
    }
    if (absl::Status name = ValidateComponentName(kv[0]); !name.ok()) return fail(name);
    o.until[kv[0]] = v;
  }
  if (absl::Status m = ParseMix(start, &o); !m.ok()) return fail(m);
  auto verifier = ManifestVerifier::FromFlags(pubkey, root);
  if (!verifier.ok()) return fail(verifier.status());

  absl::Time begin = absl::Now();
  Fleet fleet(o, std::move(*verifier));
  if (absl::Status s = fleet.Start(); !s.ok()) return fail(s);
  const bool tty = isatty(STDERR_FILENO) && !json;
  absl::Time last_draw = absl::InfinitePast();
  int stopped_by = 0;
  bool all = fleet.WaitConverged(timeout, [&] {
    const timespec now{0, 0};
    if (const int sig = sigtimedwait(&stop_signals, nullptr, &now); sig > 0) {
      stopped_by = sig;
      fleet.Stop();
      return;
    }
    if (!tty || absl::Now() - last_draw < absl::Milliseconds(200)) return;
    last_draw = absl::Now();
    int done = fleet.converged();
    int width = 30, filled = static_cast<int>(static_cast<double>(done) / agents * width);
    std::fprintf(stderr, "\r[%s%s] %d/%d converged, %.1f MB received, %.1fs ",
                 std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(), done,
                 agents, fleet.bytes() / 1e6, absl::ToDoubleSeconds(absl::Now() - begin));
  });
  if (tty) std::fprintf(stderr, "\n");
  fleet.Stop();
  FleetSummary s = fleet.Summary();
  double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
  if (json) {
    std::cout << Json(s, elapsed) << std::endl;
  } else {
    std::cout << absl::StrFormat(
        "%d/%d agents converged and verified\n"
        "time to 50%%: %.2fs, 99%%: %.2fs, 100%%: %.2fs (elapsed %.2fs)\n"
        "received: %d bytes as incrementals, %d bytes as full files\n",
        s.converged, s.agents, s.seconds_to_p50, s.seconds_to_p99, s.seconds_to_all, elapsed,
        s.bytes_incremental, s.bytes_full);
    for (const auto& [kind, n] : s.errors) {
      std::cout << "errors: " << kind << " x" << n << " (first: " << s.first_error.at(kind)
                << ")\n";
    }
  }
  if (all) return 0;
  if (stopped_by != 0) return 128 + stopped_by;  // as if the signal had ended it
  std::vector<std::string> reasons;
  for (const auto& [kind, n] : s.errors) {
    reasons.push_back(absl::StrCat(kind, " x", n, " (", s.first_error.at(kind), ")"));
  }
  std::cerr << "sigrelay-agent-sim: " << s.agents - s.converged << " of " << s.agents
            << " agents did not converge within " << absl::FormatDuration(timeout) << "; "
            << (reasons.empty() ? "no errors seen: is the awaited version published?"
                                : "errors: " + absl::StrJoin(reasons, "; "))
            << std::endl;
  return 1;
}

}  // namespace
}  // namespace sigrelay

int main(int argc, char** argv) { return sigrelay::Main(argc, argv); }
