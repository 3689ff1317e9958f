// sigrelayctl: the operator's CLI for origins and relays, and the synthetic
// pattern generator used by the demo, tests and benchmarks.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/base/admin_token.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/flags.h"
#include "core/base/grpc_status.h"
#include "core/base/json.h"
#include "core/base/transport.h"
#include "core/client/fetch_client.h"
#include "core/client/grpc_source.h"
#include "core/client/tree.h"
#include "core/model/delta_codec.h"
#include "core/model/manifest.h"
#include "core/model/rollout.h"
#include "ctl/pattern_gen.h"
#include "ctl/root_command.h"
#include "sigrelay/v1/admin.grpc.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {
namespace {

constexpr char kSynopsis[] =
    R"(sigrelayctl [--data-dir DIR | --server HOST:PORT --admin ADDR --token-file F] COMMAND ...

commands:
  publish COMPONENT FILE [--rollout PLAN]
                                upload FILE as the next version (origin; needs --token-file);
                                PLAN: none, staged, or canary=1%:30m,early=10%:1h,broad (default:
                                the origin's --rollout)
  rollout status|promote|halt|resume COMPONENT [--reason TEXT]
                                origin: a staged rollout's rings and counts, or admit the next
                                ring now, halt it, resume it (needs --token-file)
  status [--json]               components served; with --token-file also the node's own state
                                (a relay's upstream, schedule, download counters and agents)
  withdraw COMPONENT VERSION [--reason TEXT]
                                origin: withdraw a bad version; when it is the newest, the last
                                good one is published again as the next version (needs
                                --token-file)
  update                        relay: sync from the upstream now (needs --token-file)
  export --server ADDR|URL --to DIR --origin-pubkey FILE|--root FILE [--incrementals-only]
         [--http-tree-name COMPONENT=NAME]
                                write the static tree (docs/tree.md) of what a node or tree
                                serves into DIR, verified; again into the same DIR adds only
                                what is new (removable media for an air-gapped site)
  import --from DIR             relay: load the tree in DIR (on the relay's host), checked as
                                an upstream's content, and serve it (needs --token-file)
  pushing on|off                hold new manifests back from Watch streams (off) or push the
                                newest at once (on); not kept across restarts (needs
                                --token-file)
  schedule PERIOD               relay: sync every PERIOD (15m, 2h) besides pushes; applied at
                                once and kept across restarts (needs --token-file)
  proxy URL [--no-proxy HOSTS]  relay: reach upstreams through http://[user:password@]HOST:PORT;
  proxy --clear                 or directly again; kept across restarts (needs --token-file)
  fetch COMPONENT --have V --out FILE [--want W] [--offset N]
                                download what the server sends for a client at version V
                                (the incremental V->newest when there is one, else the full file)
  gen-pattern --records N --seed S [--from FILE --churn PCT] --out FILE
                                write a synthetic signature file (or the next version of one)
  delta OLD NEW --out INCR [--level N]
                                make an incremental as the origin does
  patch OLD INCR --out NEW      rebuild NEW from OLD and an incremental
  root keygen PREFIX            write a new Ed25519 pair PREFIX.key and PREFIX.pub
  root create FILE --key PUB [--key PUB ...] [--threshold N]
                                start a trust root chain: root v1 listing the keys that may
                                sign manifests; N of them must sign each next root
  root rotate FILE --key PUB [--key PUB ...] [--threshold N]
                                add the next root (a new key set) to the chain
  root sign FILE --signing-key KEY
                                sign the chain's newest root (its own keys and the previous
                                root's keys must both reach their threshold)
  root show FILE                print the chain and whether each root is complete
                                (the procedure: SECURITY.md, "Rotating the signing key"))";

struct Options {
  RootFlags root;
  std::string server;
  std::string admin;     // the node's admin listener
  std::string data_dir;  // where server, admin and token are read from
  std::string token_file;
  bool json = false;
  std::string rollout;  // publish: this version's plan ("": the origin's)
  uint32_t have = 0;
  uint32_t want = 0;
  uint32_t offset = 0;
  std::string out;
  uint32_t records = 0;
  uint32_t seed = 1;
  std::string from;
  double churn = 0.5;
  std::string no_proxy;
  bool clear = false;
  std::string reason;
  TlsFiles tls;
  int level = IncrementalCodec::kDefaultLevel;
  std::string to;
  std::string origin_pubkey;
  std::string root_file;
  bool incrementals_only = false;
  std::vector<std::string> http_tree_names;
};

absl::Status WithServer(const Options& o, const grpc::Status& s) {
  absl::Status status = FromGrpcStatus(s);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
      (s.error_message().find("andshake") != std::string::npos ||
       s.error_message().find("CERTIFICATE") != std::string::npos ||
       s.error_message().find("certificate") != std::string::npos ||
       s.error_message().find("Socket closed") != std::string::npos)) {
    // gRPC says only that the connection closed: these are the usual causes.
    return absl::UnavailableError(absl::StrCat(
        o.tls.ca.empty() ? "connection to " : "TLS with ", o.server, " failed: ", s.error_message(),
        o.tls.ca.empty() ? " (if the server speaks TLS, give --tls-ca)"
                         : " (is --tls-ca the CA that signed its certificate, and does the "
                           "certificate name this address? a server requiring client "
                           "certificates also needs --tls-cert and --tls-key)"));
  }
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat("cannot reach ", o.server, ": ", s.error_message(),
                                               " (is the daemon running and listening there?)"));
  }
  return absl::Status(status.code(), absl::StrCat(o.server, ": ", status.message()));
}

std::shared_ptr<grpc::Channel> Connect(const Options& o) {
  ChannelOptions channel;
  channel.tls = o.tls;
  return MakeChannel(o.server, channel);
}

absl::Status AddToken(const Options& o, grpc::ClientContext* ctx) {
  if (o.token_file.empty()) {
    return absl::InvalidArgumentError(
        "this command needs --token-file (the daemon's DATA_DIR/admin.token)");
  }
  absl::StatusOr<std::string> token = ReadTokenFile(o.token_file);
  if (!token.ok()) return token.status();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", *token));
  return absl::OkStatus();
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
}

// One authenticated call to the node's admin listener (never its agents'
// port: --admin, or what --data-dir's admin.listening says): the stub and a
// context carrying the token and, unless zero, a deadline.
struct AdminCall {
  std::unique_ptr<v1::AdminService::Stub> stub;
  grpc::ClientContext ctx;
};

absl::Status OpenAdmin(const Options& o, absl::Duration deadline, AdminCall* call) {
  if (o.admin.empty()) {
    return absl::InvalidArgumentError(
        "this command talks to the node's admin API, which has its own listener: give "
        "--data-dir DIR (on the node's host: address and token are read from there) or "
        "--admin HOST:PORT|unix:PATH with --token-file");
  }
  if (absl::Status t = AddToken(o, &call->ctx); !t.ok()) return t;
  if (deadline > absl::ZeroDuration()) SetDeadline(&call->ctx, deadline);
  ChannelOptions channel;
  channel.tls = o.tls;
  call->stub = v1::AdminService::NewStub(MakeChannel(o.admin, channel));
  return absl::OkStatus();
}

absl::Status Publish(const Options& o, const std::vector<std::string>& args) {
  if (args.size() != 2) {
    return absl::InvalidArgumentError("usage: sigrelayctl publish COMPONENT FILE [--rollout PLAN]");
  }
  if (absl::StatusOr<std::vector<v1::Ring>> plan = ParseRolloutPlan(o.rollout); !plan.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--rollout: ", plan.status().message()));
  }
  const std::string& component = args[0];
  const std::string& path = args[1];
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  AdminCall call;  // an upload of any size: no deadline
  if (absl::Status s = OpenAdmin(o, absl::ZeroDuration(), &call); !s.ok()) {
    close(fd);
    return s;
  }
  grpc::ClientContext& ctx = call.ctx;
  v1::PublishResponse response;
  auto writer = call.stub->Publish(&ctx, &response);
  v1::PublishRequest req;
  req.set_component(component);
  req.set_rollout(o.rollout);
  bool open_stream = writer->Write(req);
  req.clear_rollout();
  std::string buf(1 << 20, '\0');
  while (open_stream) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      ctx.TryCancel();
      return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
    }
    if (n == 0) break;
    req.set_data(buf.data(), static_cast<size_t>(n));
    open_stream = writer->Write(req);
  }
  close(fd);
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return WithServer(o, s);
  std::cout << "published " << response.size() << " bytes, sha256 " << ToHex(response.sha256())
            << "\n"
            << response.component() << " " << response.version() << std::endl;
  return absl::OkStatus();
}

void PrintRollout(const v1::RolloutStatus& r) {
  std::cout << "rollout: " << r.component() << " " << r.version() << " "
            << (r.state() == "halted" ? "HALTED" : "rolling out") << " (" << r.plan()
            << "; rings not admitted keep " << r.component() << " " << r.previous_version() << ")"
            << (r.reason().empty() ? "" : absl::StrCat(": ", r.reason())) << "\n";
  for (const v1::RingStatus& g : r.rings()) {
    std::cout << "  ring " << g.name() << (g.admitted() ? " admitted" : " waiting") << ": "
              << g.agents() << " agents, " << g.installed() << " on " << r.version() << ", "
              << g.healthy() << " healthy, " << g.unhealthy() << " unhealthy, " << g.silent()
              << " silent\n";
  }
}

void PrintDecision(const v1::RolloutDecision& d) {
  std::cout << "rollout decision "
            << absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixSeconds(d.decided_unix()),
                                absl::UTCTimeZone())
            << ": " << d.component() << " " << d.version() << " " << d.action() << " " << d.ring()
            << " (" << d.evidence() << ")\n";
}

absl::Status Status(const Options& o) {
  auto channel = Connect(o);
  auto update = v1::UpdateService::NewStub(channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(15));
  v1::SignedManifest signed_manifest;
  grpc::Status s = update->GetManifest(&ctx, v1::GetManifestRequest(), &signed_manifest);
  v1::Manifest manifest;
  if (s.ok()) {
    absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(signed_manifest);
    if (!m.ok()) return m.status();
    manifest = *m;
  } else if (s.error_code() != grpc::StatusCode::FAILED_PRECONDITION) {
    return WithServer(o, s);  // FAILED_PRECONDITION: up, nothing published or synced yet
  }
  // With a token, the node's own view: role and retained versions.
  v1::GetStatusResponse node;
  bool have_node = false;
  if (!o.token_file.empty()) {
    AdminCall call;
    if (absl::Status a = OpenAdmin(o, absl::Seconds(15), &call); !a.ok()) return a;
    grpc::Status as = call.stub->GetStatus(&call.ctx, v1::GetStatusRequest(), &node);
    if (!as.ok()) return WithServer(o, as);
    have_node = true;
  }
  auto retained = [&](absl::string_view name) {
    std::vector<uint32_t> out;
    for (const v1::ComponentStatus& c : node.components()) {
      if (c.name() == name) out.assign(c.retained_versions().begin(), c.retained_versions().end());
    }
    return out;
  };

  if (o.json) {
    std::vector<std::string> comps;
    for (const v1::ComponentEntry& e : manifest.components()) {
      std::vector<std::string> from, incrs;
      for (const v1::IncrementalEntry& ie : e.incrementals()) {
        from.push_back(absl::StrCat(ie.from_version()));
        incrs.push_back(absl::StrCat("{\"from\":", ie.from_version(), ",\"size\":", ie.size(),
                                     ",\"sha256\":\"", ToHex(ie.sha256()), "\"}"));
      }
      std::string c = absl::StrCat(
          "{\"name\":", JsonQuote(e.name()), ",\"version\":", e.version(), ",\"size\":", e.size(),
          ",\"sha256\":\"", ToHex(e.sha256()), "\",\"incrementals_from\":[",
          absl::StrJoin(from, ","), "],\"incrementals\":[", absl::StrJoin(incrs, ","),
          "],\"incrementals_pending\":[", absl::StrJoin(e.pending_incrementals(), ","), "]");
      if (have_node) {
        absl::StrAppend(&c, ",\"retained_versions\":[", absl::StrJoin(retained(e.name()), ","),
                        "]");
      }
      comps.push_back(c + "}");
    }
    std::string out = absl::StrCat(
        "{\"server\":", JsonQuote(o.server), ",\"manifest_serial\":", manifest.serial(),
        ",\"manifest_issued_unix\":", manifest.issued_unix(),
        ",\"manifest_expires_unix\":", manifest.expires_unix(),
        ",\"manifest_freshness\":", JsonQuote(ManifestFreshness(manifest, absl::Now())));
    std::vector<std::string> withdrawn;
    for (const v1::Withdrawal& w : manifest.withdrawn()) {
      withdrawn.push_back(absl::StrCat("{\"component\":", JsonQuote(w.component()), ",\"version\":",
                                       w.version(), ",\"reason\":", JsonQuote(w.reason()), "}"));
    }
    absl::StrAppend(&out, ",\"withdrawn\":[", absl::StrJoin(withdrawn, ","), "]");
    if (have_node) {
      absl::StrAppend(&out, ",\"listener_security\":", JsonQuote(node.listener_security()));
      absl::StrAppend(&out, ",\"role\":", JsonQuote(node.role()), ",\"watchers\":", node.watchers(),
                      ",\"agents_reported\":", node.agents_reported(),
                      ",\"agents_stale\":", node.agents_stale());
      std::vector<std::string> counts;
      for (const v1::AgentVersionCount& c : node.agent_versions()) {
        counts.push_back(absl::StrCat("{\"component\":", JsonQuote(c.component()),
                                      ",\"version\":", c.version(), ",\"agents\":", c.agents(),
                                      c.other_versions() ? ",\"other_versions\":true" : "", "}"));
      }
      absl::StrAppend(&out, ",\"agent_versions\":[", absl::StrJoin(counts, ","), "]");
      std::vector<std::string> stale, refused;
      for (const v1::AgentVersionCount& c : node.stale_versions()) {
        stale.push_back(absl::StrCat("{\"component\":", JsonQuote(c.component()),
                                     ",\"version\":", c.version(), ",\"agents\":", c.agents(),
                                     c.other_versions() ? ",\"other_versions\":true" : "", "}"));
      }
      for (const auto& [reason, n] : node.connections_refused()) {
        refused.push_back(absl::StrCat(JsonQuote(reason), ":", n));
      }
      std::vector<std::string> refusing;
      for (const v1::AgentVersionCount& c : node.agents_refused()) {
        refusing.push_back(absl::StrCat("{\"component\":", JsonQuote(c.component()),
                                        ",\"version\":", c.version(), ",\"agents\":", c.agents(),
                                        ",\"reason\":", JsonQuote(c.refused_reason()), "}"));
      }
      std::vector<std::string> fleet;
      for (const v1::FleetCount& c : node.fleet()) {
        fleet.push_back(absl::StrCat("{\"component\":", JsonQuote(c.component()),
                                     ",\"version\":", c.version(), ",\"agents\":", c.agents(),
                                     ",\"healthy\":", c.healthy(), ",\"unhealthy\":", c.unhealthy(),
                                     ",\"refused\":", c.refused(),
                                     ",\"ring\":", JsonQuote(c.ring()), "}"));
      }
      absl::StrAppend(&out, ",\"fleet\":[", absl::StrJoin(fleet, ","), "]");
      std::vector<std::string> rollouts;
      for (const v1::RolloutStatus& r : node.rollouts()) {
        std::vector<std::string> rings;
        for (const v1::RingStatus& g : r.rings()) {
          rings.push_back(absl::StrCat(
              "{\"name\":", JsonQuote(g.name()), ",\"admitted\":", g.admitted() ? "true" : "false",
              ",\"agents\":", g.agents(), ",\"installed\":", g.installed(), ",\"healthy\":",
              g.healthy(), ",\"unhealthy\":", g.unhealthy(), ",\"silent\":", g.silent(), "}"));
        }
        rollouts.push_back(absl::StrCat(
            "{\"component\":", JsonQuote(r.component()), ",\"version\":", r.version(),
            ",\"previous_version\":", r.previous_version(), ",\"state\":", JsonQuote(r.state()),
            ",\"reason\":", JsonQuote(r.reason()), ",\"plan\":", JsonQuote(r.plan()),
            ",\"rings\":[", absl::StrJoin(rings, ","), "]}"));
      }
      absl::StrAppend(&out, ",\"rollouts\":[", absl::StrJoin(rollouts, ","), "]");
      absl::StrAppend(&out, ",\"stale_versions\":[", absl::StrJoin(stale, ","),
                      "],\"connections_refused\":{", absl::StrJoin(refused, ","),
                      "},\"agents_refused\":[", absl::StrJoin(refusing, ","), "]");
      const v1::TransferStatus& t = node.transfers();
      absl::StrAppend(&out, ",\"transfers\":{\"active\":", t.active(), ",\"queued\":", t.queued(),
                      ",\"max_active\":", t.max_active(), ",\"peak_active\":", t.peak_active(),
                      ",\"peak_queued\":", t.peak_queued(), ",\"admitted\":", t.admitted(),
                      ",\"refused\":", t.refused(), ",\"fetches\":", t.fetches(),
                      ",\"pushed\":", t.pushed(), ",\"stalled\":", t.stalled(), "}");
    }
    if (have_node && node.has_relay()) {
      const v1::RelayStatus& r = node.relay();
      std::vector<std::string> ups;
      for (const v1::UpstreamStatus& u : r.upstreams()) {
        ups.push_back(absl::StrCat("{\"address\":", JsonQuote(u.address()),
                                   ",\"state\":", JsonQuote(u.state()),
                                   ",\"last_error\":", JsonQuote(u.last_error()), "}"));
      }
      absl::StrAppend(
          &out, ",\"relay\":{\"upstream\":", JsonQuote(r.upstream_in_use()), ",\"upstreams\":[",
          absl::StrJoin(ups, ","), "]", ",\"last_update_unix\":", r.last_success_unix(),
          ",\"next_update_unix\":", r.next_scheduled_unix(),
          ",\"schedule_seconds\":", r.schedule_seconds(), ",\"proxy\":", JsonQuote(r.proxy()),
          ",\"no_proxy\":", JsonQuote(r.no_proxy()),
          ",\"bytes_incremental\":", r.bytes_incremental(), ",\"bytes_full\":", r.bytes_full(),
          ",\"syncs_ok\":", r.syncs_ok(), ",\"syncs_failed\":", r.syncs_failed(),
          ",\"last_error\":", JsonQuote(r.last_error()), ",\"conflicts\":", r.conflicts(),
          ",\"last_conflict\":", JsonQuote(r.last_conflict()), ",\"skipped\":[",
          absl::StrJoin(r.skipped(), ",",
                        [](std::string* o, const std::string& x) { o->append(JsonQuote(x)); }),
          "]}");
    }
    absl::StrAppend(&out, ",\"components\":[", absl::StrJoin(comps, ","), "]}");
    std::cout << out << std::endl;
    return absl::OkStatus();
  }
  if (manifest.components().empty()) {
    std::cout << o.server << ": nothing published yet\n";
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "%s%s  manifest serial %d (%s), expires %s\n\n", o.server,
      have_node ? absl::StrCat(" (", node.role(), ")") : "", manifest.serial(),
      ManifestFreshness(manifest, absl::Now()),
      absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixSeconds(manifest.expires_unix()),
                       absl::UTCTimeZone()));
  std::cout << absl::StrFormat("%-22s %8s %12s  %-16s %s\n", "COMPONENT", "VERSION", "SIZE",
                               "SHA256", "INCREMENTALS FROM");
  for (const v1::ComponentEntry& e : manifest.components()) {
    std::vector<uint32_t> from;
    for (const v1::IncrementalEntry& ie : e.incrementals()) from.push_back(ie.from_version());
    std::cout << absl::StrFormat(
        "%-22s %8d %12d  %-16s %s%s\n", e.name(), e.version(), e.size(),
        ToHex(e.sha256()).substr(0, 16), from.empty() ? "-" : absl::StrJoin(from, ","),
        e.pending_incrementals().empty()
            ? ""
            : absl::StrCat(" (being made: ", absl::StrJoin(e.pending_incrementals(), ","), ")"));
  }
  for (const v1::Withdrawal& w : manifest.withdrawn()) {
    std::cout << "withdrawn: " << w.component() << " " << w.version() << " (" << w.reason()
              << ")\n";
  }
  if (have_node && node.has_relay()) {
    const v1::RelayStatus& r = node.relay();
    auto when = [](int64_t t) {
      return t == 0 ? std::string("never")
                    : absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixSeconds(t),
                                       absl::UTCTimeZone());
    };
    std::cout << "\nupstream in use: "
              << (r.upstream_in_use().empty() ? "none yet" : r.upstream_in_use()) << "\n";
    for (const v1::UpstreamStatus& u : r.upstreams()) {
      std::cout << "  " << u.address() << "  " << u.state()
                << (u.last_error().empty() ? "" : "  (" + u.last_error() + ")") << "\n";
    }
    std::cout << "last update: " << when(r.last_success_unix())
              << "   next scheduled: " << when(r.next_scheduled_unix()) << " (every "
              << r.schedule_seconds() << "s)\n"
              << "upstream proxy: " << (r.proxy().empty() ? "none" : r.proxy())
              << (r.no_proxy().empty() ? "" : " (direct to " + r.no_proxy() + ")") << "\n"
              << "downloaded: " << r.bytes_incremental() << " bytes as incrementals, "
              << r.bytes_full() << " bytes as full files\n"
              << (r.conflicts() == 0 ? ""
                                     : absl::StrCat("CONFLICTS: ", r.conflicts(),
                                                    " (last: ", r.last_conflict(), ")\n"))
              << (r.skipped().empty() ? ""
                                      : "not carried: " + absl::StrJoin(r.skipped(), "; ") + "\n")
              << "watch streams: " << node.watchers()
              << ", agents reported: " << node.agents_reported() << " (" << node.agents_stale()
              << " stale)\n";
  }
  if (have_node) {
    const v1::TransferStatus& t = node.transfers();
    std::cout << "transfers: " << t.active() << " running, " << t.queued() << " queued (at most "
              << t.max_active() << " at once); " << t.fetches() << " fetches served, " << t.pushed()
              << " incrementals pushed, " << t.stalled() << " stalled and cancelled, "
              << t.refused() << " refused\n";
    if (!node.connections_refused().empty()) {
      std::vector<std::string> parts;
      for (const auto& [reason, n] : node.connections_refused()) {
        parts.push_back(absl::StrCat(reason, " ", n));
      }
      std::cout << "connections refused or cut: " << absl::StrJoin(parts, ", ") << "\n";
    }
    for (const v1::FleetCount& c : node.fleet()) {
      std::cout << "fleet (this node and every relay below): " << c.component() << " "
                << c.version() << (c.ring().empty() ? "" : absl::StrCat(" ring ", c.ring())) << ": "
                << c.agents() << " agents (" << c.healthy() << " healthy, " << c.unhealthy()
                << " unhealthy)"
                << (c.refused() > 0 ? absl::StrCat(", refused by ", c.refused()) : "") << "\n";
    }
    for (const v1::AgentVersionCount& c : node.agents_refused()) {
      std::cout << "REFUSED by " << c.agents() << " agent(s)' own check: " << c.component() << " "
                << c.version() << " (last reason: " << c.refused_reason() << ")\n";
    }
    for (const v1::RolloutStatus& r : node.rollouts()) PrintRollout(r);
    for (const v1::RolloutDecision& d : node.rollout_decisions()) PrintDecision(d);
  }
  return absl::OkStatus();
}

absl::Status Update(const Options& o) {
  AdminCall call;
  if (absl::Status a = OpenAdmin(o, absl::Minutes(30), &call); !a.ok()) return a;
  v1::SyncNowResponse r;
  grpc::Status s = call.stub->SyncNow(&call.ctx, v1::SyncNowRequest(), &r);
  if (!s.ok()) return WithServer(o, s);
  if (r.updated().empty()) {
    std::cout << "already current: manifest serial " << r.manifest_serial() << " from "
              << r.upstream() << std::endl;
    return absl::OkStatus();
  }
  for (const v1::ComponentUpdate& u : r.updated()) {
    std::cout << u.component() << " " << u.from_version() << " -> " << u.version() << " by "
              << u.how() << " (" << u.bytes() << " bytes)\n";
  }
  std::cout << "updated to manifest serial " << r.manifest_serial() << " from " << r.upstream()
            << std::endl;
  return absl::OkStatus();
}

absl::Status Export(const Options& o) {
  if (o.server.empty() || o.to.empty()) {
    return absl::InvalidArgumentError(
        "usage: sigrelayctl export --server HOST:PORT|URL --to DIR --origin-pubkey FILE|--root "
        "FILE");
  }
  absl::StatusOr<std::unique_ptr<ManifestVerifier>> verifier =
      ManifestVerifier::FromFlags(o.origin_pubkey, o.root_file);
  if (!verifier.ok()) return verifier.status();
  std::unique_ptr<UpdateSource> source;
  if (IsTreeUrl(o.server)) {
    TreeSourceOptions tree_options;
    tree_options.tls_ca = o.tls.ca;
    absl::StatusOr<std::unique_ptr<UpdateSource>> tree = OpenTreeSource(o.server, tree_options);
    if (!tree.ok()) return tree.status();
    source = std::move(*tree);
  } else {
    std::shared_ptr<grpc::Channel> channel = Connect(o);
    source = std::make_unique<GrpcSource>(
        o.server,
        [channel]() -> absl::StatusOr<std::shared_ptr<grpc::Channel>> { return channel; });
  }
  TreeExportOptions options;
  options.full_files = !o.incrementals_only;
  absl::StatusOr<std::map<std::string, std::string>> names =
      ParseFileNames("http-tree-name", o.http_tree_names);
  if (!names.ok()) return names.status();
  options.current_names = std::move(*names);
  absl::StatusOr<TreeExportResult> r = ExportTree(source.get(), **verifier, o.to, options);
  if (!r.ok()) return r.status();
  std::cout << "exported manifest serial " << r->serial << " to " << o.to << ": "
            << r->blobs_written << " files written (" << r->bytes_written << " bytes), "
            << r->blobs_kept << " already there, " << r->blobs_removed << " no longer named removed"
            << std::endl;
  return absl::OkStatus();
}

absl::Status Import(const Options& o) {
  if (o.from.empty()) return absl::InvalidArgumentError("usage: sigrelayctl import --from DIR");
  char resolved[PATH_MAX];
  if (realpath(o.from.c_str(), resolved) == nullptr) return ErrnoError("cannot find", o.from);
  AdminCall call;
  if (absl::Status a = OpenAdmin(o, absl::Hours(2), &call); !a.ok()) return a;
  v1::ImportRequest req;
  req.set_dir(resolved);
  v1::SyncNowResponse r;
  grpc::Status s = call.stub->Import(&call.ctx, req, &r);
  if (!s.ok()) return WithServer(o, s);
  for (const v1::ComponentUpdate& u : r.updated()) {
    std::cout << u.component() << " " << u.from_version() << " -> " << u.version() << " by "
              << u.how() << " (" << u.bytes() << " bytes)\n";
  }
  std::cout << (r.updated().empty() ? "already current: manifest serial "
                                    : "imported manifest serial ")
            << r.manifest_serial() << " from " << r.upstream() << std::endl;
  return absl::OkStatus();
}

absl::Status Schedule(const Options& o, const std::vector<std::string>& args) {
  if (args.size() != 1) return absl::InvalidArgumentError("usage: sigrelayctl schedule PERIOD");
  AdminCall call;
  if (absl::Status a = OpenAdmin(o, absl::Seconds(15), &call); !a.ok()) return a;
  v1::SetScheduleRequest req;
  req.set_period(args[0]);
  v1::SetScheduleResponse r;
  grpc::Status s = call.stub->SetSchedule(&call.ctx, req, &r);
  if (!s.ok()) return WithServer(o, s);
  std::cout << "schedule: every " << r.schedule_seconds() << "s; next sync "
            << absl::FormatTime("%Y-%m-%d %H:%M:%SZ",
                                absl::FromUnixSeconds(r.next_scheduled_unix()), absl::UTCTimeZone())
            << std::endl;
  return absl::OkStatus();
}

absl::Status Pushing(const Options& o, const std::vector<std::string>& args) {
  if (args.size() != 1 || (args[0] != "on" && args[0] != "off")) {
    return absl::InvalidArgumentError("usage: sigrelayctl pushing on|off");
  }
  AdminCall call;
  if (absl::Status a = OpenAdmin(o, absl::Seconds(15), &call); !a.ok()) return a;
  v1::SetPushingRequest req;
  req.set_paused(args[0] == "off");
  v1::SetPushingResponse r;
  grpc::Status s = call.stub->SetPushing(&call.ctx, req, &r);
  if (!s.ok()) return WithServer(o, s);
  std::cout << (r.paused() ? "pushes paused: new manifests wait for `pushing on`"
                           : "pushing: watchers get each new manifest at once")
            << std::endl;
  return absl::OkStatus();
}

absl::Status Withdraw(const Options& o, const std::vector<std::string>& args) {
  uint32_t version = 0;
  if (args.size() != 2 || !absl::SimpleAtoi(args[1], &version) || version == 0) {
    return absl::InvalidArgumentError(
        "usage: sigrelayctl withdraw COMPONENT VERSION [--reason TEXT]");
  }
  AdminCall call;
  if (absl::Status a = OpenAdmin(o, absl::Minutes(30), &call); !a.ok()) return a;
  v1::WithdrawRequest req;
  req.set_component(args[0]);
  req.set_version(version);
  req.set_reason(o.reason);
  v1::WithdrawResponse r;
  grpc::Status s = call.stub->Withdraw(&call.ctx, req, &r);
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return absl::FailedPreconditionError("withdraw at the origin; relays carry what it signs");
  }
  if (!s.ok()) return WithServer(o, s);
  std::cout << "withdrew " << args[0] << " " << version;
  if (r.has_published()) {
    std::cout << "; published " << args[0] << " " << r.published().version()
              << " with the content of " << r.content_of();
  }
  std::cout << std::endl;
  return absl::OkStatus();
}

absl::Status Rollout(const Options& o, const std::vector<std::string>& args) {
  if (args.size() != 2 ||
      (args[0] != "status" && args[0] != "promote" && args[0] != "halt" && args[0] != "resume")) {
    return absl::InvalidArgumentError(
        "usage: sigrelayctl rollout status|promote|halt|resume COMPONENT [--reason TEXT]");
  }
  AdminCall call;
  if (absl::Status a = OpenAdmin(o, absl::Seconds(30), &call); !a.ok()) return a;
  v1::RolloutRequest req;
  req.set_action(args[0]);
  req.set_component(args[1]);
  req.set_reason(o.reason);
  v1::RolloutResponse r;
  grpc::Status s = call.stub->Rollout(&call.ctx, req, &r);
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return absl::FailedPreconditionError(
        "rollouts are run at the origin; relays carry what it signs");
  }
  if (!s.ok()) return WithServer(o, s);
  std::cout << r.message() << "\n";
  if (r.has_status()) PrintRollout(r.status());
  std::cout << std::flush;
  return absl::OkStatus();
}

absl::Status Proxy(const Options& o, const std::vector<std::string>& args) {
  if (o.clear == (args.size() == 1) || args.size() > 1) {
    return absl::InvalidArgumentError(
        "usage: sigrelayctl proxy http://[user:password@]HOST:PORT [--no-proxy HOSTS], or "
        "sigrelayctl proxy --clear");
  }
  AdminCall call;
  if (absl::Status a = OpenAdmin(o, absl::Seconds(15), &call); !a.ok()) return a;
  v1::SetProxyRequest req;
  if (!o.clear) req.set_url(args[0]);
  req.set_no_proxy(o.no_proxy);
  v1::SetProxyResponse r;
  grpc::Status s = call.stub->SetProxy(&call.ctx, req, &r);
  if (!s.ok()) return WithServer(o, s);
  std::cout << "proxy: " << (r.proxy().empty() ? "none (upstreams reached directly)" : r.proxy())
            << (r.no_proxy().empty() ? "" : "; direct to " + r.no_proxy()) << std::endl;
  return absl::OkStatus();
}

absl::Status Fetch(const Options& o, const std::vector<std::string>& args) {
  if (args.size() != 1 || o.out.empty()) {
    return absl::InvalidArgumentError(
        "usage: sigrelayctl fetch COMPONENT --have V --out FILE [--want W] [--offset N]");
  }
  auto stub = v1::UpdateService::NewStub(Connect(o));
  v1::FetchRequest req;
  req.set_component(args[0]);
  req.set_have_version(o.have);
  req.set_want_version(o.want);
  req.set_offset(o.offset);
  // No manifest here: the header bounds the body (an inspection tool).
  absl::StatusOr<FetchedBody> fetched =
      FetchToMemory(stub.get(), req, std::nullopt, absl::Now() + absl::Minutes(30));
  if (!fetched.ok()) return WithServer(o, ToGrpcStatus(fetched.status()));
  const v1::FetchHeader& header = fetched->header;
  const std::string& body = fetched->data;
  if (absl::Status w = WriteFileAtomically(o.out, body); !w.ok()) return w;
  if (header.kind() == v1::PAYLOAD_KIND_INCREMENTAL) {
    std::cout << "incremental " << header.from_version() << "->" << header.version() << " "
              << header.size() << std::endl;
  } else {
    std::cout << "full " << header.version() << " " << header.size() << std::endl;
  }
  return absl::OkStatus();
}

absl::Status GenPattern(const Options& o) {
  if (o.out.empty()) return absl::InvalidArgumentError("gen-pattern needs --out FILE");
  std::string text;
  if (!o.from.empty()) {
    absl::StatusOr<std::string> previous = ReadFileToString(o.from);
    if (!previous.ok()) return previous.status();
    absl::StatusOr<std::string> next = NextPattern(*previous, o.churn, o.seed);
    if (!next.ok()) return next.status();
    text = std::move(*next);
  } else {
    if (o.records == 0) return absl::InvalidArgumentError("gen-pattern needs --records N (N > 0)");
    text = GeneratePattern(o.records, o.seed);
  }
  return WriteFileAtomically(o.out, text);
}

// delta OLD NEW --out INCR, patch OLD INCR --out NEW
absl::Status Codec(const Options& o, bool make, const std::vector<std::string>& args) {
  if (args.size() != 2 || o.out.empty()) {
    return absl::InvalidArgumentError(make ? "usage: sigrelayctl delta OLD NEW --out INCR"
                                           : "usage: sigrelayctl patch OLD INCR --out NEW");
  }
  absl::StatusOr<std::string> old_version = ReadFileToString(args[0]);
  if (!old_version.ok()) return old_version.status();
  absl::StatusOr<std::string> input = ReadFileToString(args[1]);
  if (!input.ok()) return input.status();
  IncrementalCodec codec(o.level);
  absl::StatusOr<std::string> out = make ? codec.Encode(*old_version, *input)
                                         : codec.Decode(*old_version, *input, uint64_t{1} << 32);
  if (!out.ok()) return out.status();
  return WriteFileAtomically(o.out, *out);
}

// Fills what --data-dir DIR tells: the first address in DIR/listening, the
// one in DIR/admin.listening, DIR/admin.token. Flags given explicitly win.
absl::Status FromDataDir(Options* o) {
  auto first_line = [](const std::string& path) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> text = ReadFileToString(path);
    if (!text.ok()) {
      return absl::NotFoundError(absl::StrCat("cannot read ", path,
                                              ": is a daemon running with this --data-dir? (",
                                              text.status().message(), ")"));
    }
    return std::string(absl::StripAsciiWhitespace(text->substr(0, text->find('\n'))));
  };
  if (o->server.empty()) {
    absl::StatusOr<std::string> s = first_line(o->data_dir + "/listening");
    if (!s.ok()) return s.status();
    o->server = *s;
  }
  if (o->admin.empty()) {
    absl::StatusOr<std::string> a = first_line(o->data_dir + "/admin.listening");
    if (!a.ok()) return a.status();
    o->admin = *a;
  }
  if (o->token_file.empty()) o->token_file = o->data_dir + "/admin.token";
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  Options o;
  FlagParser flags("sigrelayctl", kSynopsis);
  flags.Add("server", &o.server, "HOST:PORT", "origin or relay to talk to");
  flags.Add("token-file", &o.token_file, "FILE", "admin token (the daemon's DATA_DIR/admin.token)");
  flags.Add("admin", &o.admin, "ADDR",
            "the daemon's admin listener, HOST:PORT or unix:PATH (its --admin-listen)");
  flags.Add("data-dir", &o.data_dir, "DIR",
            "the daemon's data dir on this host: --server, --admin and --token-file from "
            "its listening, admin.listening and admin.token");
  flags.AddBool("json", &o.json, "status: print one JSON object");
  flags.Add("have", &o.have, "V", "fetch: the version held (0: nothing)");
  flags.Add("want", &o.want, "W", "fetch: the version wanted (default: the newest)");
  flags.Add("offset", &o.offset, "N", "fetch: resume at this byte of the body");
  flags.Add("out", &o.out, "FILE", "fetch, gen-pattern: where to write");
  flags.Add("records", &o.records, "N", "gen-pattern: number of signature records");
  flags.Add("seed", &o.seed, "S", "gen-pattern: random seed (default 1)");
  flags.Add("from", &o.from, "FILE",
            "gen-pattern: make the next version of FILE; import: the tree's directory");
  flags.Add("to", &o.to, "DIR", "export: the tree's directory (made if missing)");
  flags.Add("origin-pubkey", &o.origin_pubkey, "FILE",
            "export: the origin's origin.pub, which signs what is exported (this or --root)");
  flags.Add("root", &o.root_file, "FILE", "export: the origin's trust root chain");
  flags.AddBool("incrementals-only", &o.incrementals_only,
                "export: only incrementals, for a site that holds the older version");
  flags.AddRepeated("http-tree-name", &o.http_tree_names, "COMPONENT=NAME",
                    "export: also keep the newest full file of COMPONENT as current/NAME, for "
                    "HTTP clients that know nothing of sigrelay (README: ClamAV)");
  flags.Add("churn", &o.churn, "PCT", "gen-pattern: percent of records replaced (default 0.5)");
  flags.Add("level", &o.level, "N",
            "delta: zstd level, 1..22, or 0 for the origin's choice by size (default 0)");
  flags.Add("no-proxy", &o.no_proxy, "HOSTS",
            "proxy: comma list of upstream hosts reached directly");
  flags.AddBool("clear", &o.clear, "proxy: no proxy any more");
  flags.Add("reason", &o.reason, "TEXT",
            "withdraw, rollout: why (signed into the manifest, shown in status)");
  flags.Add("rollout", &o.rollout, "PLAN",
            "publish: how this version reaches agents: none, staged, or "
            "canary=1%:30m[:95%],early=10%:1h,broad (default: the origin's --rollout)");
  flags.AddRepeated("key", &o.root.keys, "PUB", "root create/rotate: a public key of the root");
  flags.Add("threshold", &o.root.threshold, "N",
            "root create/rotate: signatures of the root's keys each next root needs (default 1)");
  flags.Add("signing-key", &o.root.signing_key, "KEY", "root sign: the private key that signs");
  AddClientTlsFlags(&flags, &o.tls, "tls");
  std::vector<std::string> args;
  absl::Status parsed = flags.Parse(argc, argv, &args);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  absl::Status result = parsed;
  if (result.ok()) result = CheckTlsFiles(o.tls, /*server=*/false, "--tls");
  if (result.ok() && !o.data_dir.empty()) result = FromDataDir(&o);
  if (result.ok() && args.empty()) {
    result = absl::InvalidArgumentError("no command given; see sigrelayctl --help");
  }
  if (result.ok()) {
    const std::string command = args[0];
    args.erase(args.begin());
    const bool needs_server = command == "status" || command == "fetch";
    if (needs_server && o.server.empty()) {
      result = absl::InvalidArgumentError(absl::StrCat(command, " needs --server HOST:PORT"));
    } else if (command == "publish") {
      result = Publish(o, args);
    } else if (command == "status") {
      result = Status(o);
    } else if (command == "update") {
      result = Update(o);
    } else if (command == "schedule") {
      result = Schedule(o, args);
    } else if (command == "withdraw") {
      result = Withdraw(o, args);
    } else if (command == "rollout") {
      result = Rollout(o, args);
    } else if (command == "pushing") {
      result = Pushing(o, args);
    } else if (command == "proxy") {
      result = Proxy(o, args);
    } else if (command == "export") {
      result = Export(o);
    } else if (command == "import") {
      result = Import(o);
    } else if (command == "fetch") {
      result = Fetch(o, args);
    } else if (command == "root") {
      result = RootCommand(o.root, args, std::cout);
    } else if (command == "gen-pattern") {
      result = GenPattern(o);
    } else if (command == "delta" || command == "patch") {
      result = Codec(o, command == "delta", args);
    } else {
      result = absl::InvalidArgumentError(
          absl::StrCat("unknown command \"", command, "\"; see sigrelayctl --help"));
    }
  }
  if (!result.ok()) {
    std::cerr << "sigrelayctl: " << result.message() << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace sigrelay

int main(int argc, char** argv) { return sigrelay::Main(argc, argv); }
