#include "agent/pattern_agent.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "agent/hook.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/grpc_status.h"
#include "core/base/log.h"
#include "core/base/mapped_file.h"
#include "core/client/client_state.h"
#include "core/client/fetch_client.h"
#include "core/client/manifest_check.h"
#include "core/client/rebuild.h"
#include "core/client/tree.h"
#include "core/model/rollout.h"

namespace sigrelay {
namespace {

// A random 128-bit id, hex: an agent's name on its Watch reports.
std::string NewAgentId() {
  absl::BitGen gen;
  return absl::StrCat("agent-", absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16),
                      absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}

// Removes `component`'s entries (installed files or refusals) from `list`.
template <typename T>
void EraseComponent(google::protobuf::RepeatedPtrField<T>* list, const std::string& component) {
  list->erase(std::remove_if(list->begin(), list->end(),
                             [&](const T& x) { return x.component() == component; }),
              list->end());
}

}  // namespace

absl::Status CheckFileNames(const std::vector<std::string>& components,
                            const std::map<std::string, std::string>& files) {
  for (const auto& [c, name] : files) {
    if (std::find(components.begin(), components.end(), c) == components.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--file ", c, "=", name, ": ", c, " is not in --components; add it there"));
    }
  }
  // Every name in DIR a component's files take: its pattern (--file's or
  // COMPONENT.pattern) and its COMPONENT.version.
  std::map<std::string, std::string> taken;
  for (const std::string& c : components) {
    taken[c + ".version"] = c;
    if (files.count(c) == 0) taken[c + ".pattern"] = c;
  }
  for (const auto& [c, name] : files) {
    if (auto [it, fresh] = taken.emplace(name, c); !fresh) {
      return absl::InvalidArgumentError(
          absl::StrCat("--file ", c, "=", name, ": ", name, " is already ", it->second,
                       "'s file in --dir; give each component its own name"));
    }
  }
  return absl::OkStatus();
}

PatternAgent::PatternAgent(PatternAgentOptions options, std::unique_ptr<ManifestVerifier> verifier)
    : options_(std::move(options)), verifier_(std::move(verifier)) {
  for (const std::string& server : options_.servers) {
    if (IsTreeUrl(server)) {
      const std::string proxy = options_.channel.proxy;
      absl::StatusOr<std::unique_ptr<UpdateSource>> tree = OpenTreeSource(
          server, {.proxy = [proxy] { return proxy; }, .tls_ca = options_.channel.tls.ca});
      if (tree.ok()) {
        sources_.push_back(std::move(*tree));
        continue;
      }
      Log(LogLevel::kError, std::string(tree.status().message()));
    }
    std::shared_ptr<grpc::Channel> channel = MakeChannel(server, options_.channel);
    sources_.push_back(std::make_unique<GrpcSource>(
        server, [channel]() -> absl::StatusOr<std::shared_ptr<grpc::Channel>> { return channel; },
        absl::Seconds(30)));
  }
}

TransferLimits PatternAgent::Limits() const {
  TransferLimits limits = options_.transfer;
  limits.deadline = absl::Now() + absl::Hours(24);
  return limits;
}

absl::Status PatternAgent::Prefixed(const std::string& server, const absl::Status& s) const {
  const std::string& proxy = options_.channel.proxy;
  if (std::optional<absl::Status> refused = ProxyRefusal(s.message(), proxy)) {
    return absl::Status(refused->code(), absl::StrCat(server, ": ", refused->message()));
  }
  const bool network =
      s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded;
  return absl::Status(s.code(),
                      absl::StrCat(server,
                                   proxy.empty() || !network
                                       ? ""
                                       : absl::StrCat(" (through proxy ", ProxyDisplay(proxy), ")"),
                                   ": ", s.message()));
}

std::string PatternAgent::PatternPath(const std::string& component) const {
  auto f = options_.files.find(component);
  return f == options_.files.end() ? absl::StrCat(options_.dir, "/", component, ".pattern")
                                   : absl::StrCat(options_.dir, "/", f->second);
}

const v1::RefusedFile* PatternAgent::RefusalOf(const std::string& component) const {
  for (const v1::RefusedFile& r : state_.refused()) {
    if (r.component() == component) return &r;
  }
  return nullptr;
}

absl::Status PatternAgent::Open() {
  for (const std::string& d : {options_.dir, options_.state_dir}) {
    if (absl::Status s = MakeDirs(d); !s.ok()) return s;
  }
  const std::string id_file = options_.state_dir + "/agent-id";
  if (absl::StatusOr<std::string> id = ReadFileToString(id_file); id.ok()) {
    agent_id_ = std::string(absl::StripAsciiWhitespace(*id));
  } else {
    agent_id_ = NewAgentId();
    if (absl::Status s = WriteFileAtomically(id_file, agent_id_ + "\n", 0644); !s.ok()) return s;
  }
  // Under mutual TLS the servers know this agent by its certificate: its
  // rollout ring comes from that, as theirs does.
  ring_identity_ = agent_id_;
  if (!options_.channel.tls.cert.empty()) {
    absl::StatusOr<std::string> identity = CertificateIdentityOf(options_.channel.tls.cert);
    if (!identity.ok()) return identity.status();
    if (!identity->empty()) ring_identity_ = *identity;
  }
  absl::StatusOr<v1::AgentState> state = LoadClientState(options_.state_dir);
  if (!state.ok()) return state.status();
  state_ = std::move(*state);
  // Temporaries of an install a crash interrupted (".NAME.tmp.PID").
  if (DIR* d = opendir(options_.dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (absl::StartsWith(name, ".") && absl::StrContains(name, ".tmp.")) {
        unlink(absl::StrCat(options_.dir, "/", name).c_str());
      }
    }
    closedir(d);
  }
  // A file staged for --verify-cmd when the agent stopped: fetched again.
  if (!options_.verify_cmd.empty()) {
    if (absl::StatusOr<int> n = EmptyDir(StagingDir()); !n.ok()) return n.status();
  }
  for (const std::string& c : options_.components) {
    Held held;
    absl::StatusOr<std::unique_ptr<MappedFile>> file = MappedFile::Open(PatternPath(c));
    if (file.ok()) {
      const std::string sha = HashMapped(**file);
      for (const v1::InstalledFile& f : state_.installed()) {
        if (f.component() == c && f.sha256() == sha) held = {f.version(), sha, f.health()};
      }
      if (held.version == 0) {
        Log(LogLevel::kWarning, absl::StrCat(PatternPath(c),
                                             " is not a file this agent installed (changed outside "
                                             "it?); it will be replaced by a full download"));
      }
    }
    held_[c] = held;
  }
  return absl::OkStatus();
}

v1::WatchRequest PatternAgent::Report() const {
  v1::WatchRequest r;
  r.set_agent_id(agent_id_);
  r.set_ring(options_.ring);
  std::optional<v1::Manifest> manifest;
  if (state_.has_manifest()) {
    if (absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(state_.manifest()); m.ok()) {
      manifest = std::move(*m);
    }
  }
  for (const std::string& c : options_.components) {
    v1::ComponentVersion* v = r.add_versions();
    v->set_component(c);
    v->set_version(held_.at(c).version);
    v->set_health(held_.at(c).health);
    if (const v1::ComponentEntry* e = manifest ? FindEntry(*manifest, c) : nullptr) {
      v->set_ring(RingName(*e, ring_identity_, options_.ring));
    }
    if (const v1::RefusedFile* refused = RefusalOf(c)) {
      v->set_refused_version(refused->version());
      v->set_refused_reason(refused->reason().substr(0, 512));
    }
  }
  return r;
}

absl::StatusOr<UpdateResult> PatternAgent::UpdateOnce() {
  std::vector<std::string> errors;
  absl::StatusCode code = absl::StatusCode::kUnavailable;
  for (size_t i = 0; i < sources_.size(); ++i) {
    const std::string& server = options_.servers[i];
    TransferLimits limits = Limits();
    limits.deadline = absl::Now() + absl::Seconds(30);
    absl::StatusOr<v1::SignedManifest> manifest = sources_[i]->Manifest(limits);
    absl::StatusOr<UpdateResult> r = manifest.ok()
                                         ? Apply(i, *manifest, nullptr, /*wait_pending=*/false)
                                         : Prefixed(server, manifest.status());
    if (r.ok()) {
      AfterInstall(*r);
      if (r->refused.empty()) return r;
      std::vector<std::string> refused;
      for (const v1::RefusedFile& f : r->refused) {
        refused.push_back(absl::StrCat(f.component(), " ", f.version(), " (", f.reason(), ")"));
      }
      return absl::FailedPreconditionError(
          absl::StrCat("--verify-cmd refused ", absl::StrJoin(refused, "; "),
                       "; the installed files stay as they were (see sigrelay-agent status)"));
    }
    code = r.status().code();
    errors.push_back(std::string(r.status().message()));
    if (code == absl::StatusCode::kCancelled) break;  // stopping
    if (i + 1 < sources_.size()) {
      Log(LogLevel::kWarning, absl::StrCat(r.status().message(), "; trying the next server"));
    }
  }
  return absl::Status(code, absl::StrJoin(errors, "; "));
}

absl::StatusOr<UpdateResult> PatternAgent::Apply(size_t i, const v1::SignedManifest& offered,
                                                 const v1::WatchResponse* push, bool wait_pending) {
  const std::string& server = options_.servers[i];
  absl::StatusOr<OfferedManifest> offer = CheckOfferedManifest(
      *verifier_, offered, state_.has_manifest() ? &state_.manifest() : nullptr, absl::Now());
  if (!offer.ok()) return Prefixed(server, offer.status());
  UpdateResult result;
  result.server = server;
  result.serial = offer->manifest.serial();
  if (offer->newer) {
    *state_.mutable_manifest() = offered;  // the rollback floor, once verified
    if (absl::Status s = SaveState(); !s.ok()) return s;
  }
  for (const std::string& c : options_.components) {
    const v1::ComponentEntry* offered_entry = FindEntry(offer->manifest, c);
    if (offered_entry == nullptr) continue;  // not published (yet)
    // A version rolling out ring by ring is taken once the origin admits
    // this agent's ring, whatever a relay pushes.
    const v1::ComponentEntry* entry = &AdmittedEntry(*offered_entry, ring_identity_, options_.ring);
    const Held held = held_[c];
    if (held.version == entry->version() && held.sha256 == entry->sha256()) continue;
    if (entry != offered_entry && held.version >= entry->version()) continue;
    if (const v1::RefusedFile* refused = RefusalOf(c); refused != nullptr &&
                                                       refused->version() == entry->version() &&
                                                       refused->sha256() == entry->sha256()) {
      result.refused.push_back(*refused);  // not tried again
      continue;
    }
    if (wait_pending &&
        WaitForPendingIncremental(offer->manifest, *entry, held.version, absl::Now())) {
      Log(LogLevel::kInfo, absl::StrCat(c, " ", entry->version(), ": the incremental from ",
                                        held.version, " is still being made; waiting for it"));
      continue;
    }
    std::string how;
    const std::string path = PatternPath(c);
    const std::string staged =
        options_.verify_cmd.empty() ? path : StagingDir() + path.substr(path.rfind('/'));
    if (absl::Status s = Fetch(sources_[i].get(), *entry, held, push, staged, &how); !s.ok()) {
      return Prefixed(server, s);
    }
    if (!options_.verify_cmd.empty()) {
      absl::Status verified = Verify(*entry, staged);
      if (absl::IsCancelled(verified)) {
        unlink(staged.c_str());
        return verified;
      }
      if (!verified.ok()) {
        unlink(staged.c_str());
        v1::RefusedFile r;
        r.set_component(c);
        r.set_version(entry->version());
        r.set_sha256(entry->sha256());
        r.set_reason(std::string(verified.message()));
        r.set_refused_unix(absl::ToUnixSeconds(absl::Now()));
        EraseComponent(state_.mutable_refused(), c);
        *state_.add_refused() = r;
        if (absl::Status s = SaveState(); !s.ok()) return s;
        Log(LogLevel::kError, absl::StrCat("--verify-cmd refused ", c, " ", entry->version(), " (",
                                           r.reason(), "); ", path, " stays at version ",
                                           held.version, " until another version is offered"));
        result.refused.push_back(std::move(r));
        result.refused_now = true;
        continue;
      }
      if (rename(staged.c_str(), path.c_str()) != 0) return ErrnoError("cannot rename into", path);
      SyncDir(options_.dir);
    }
    if (absl::Status s = WriteFileAtomically(absl::StrCat(options_.dir, "/", c, ".version"),
                                             absl::StrCat(entry->version(), "\n"), 0644);
        !s.ok()) {
      return s;
    }
    held_[c] = {entry->version(), entry->sha256(), v1::HEALTH_UNKNOWN};
    v1::InstalledFile f;
    f.set_component(c);
    f.set_version(entry->version());
    f.set_sha256(entry->sha256());
    f.set_server(server);
    f.set_how(how);
    f.set_installed_unix(absl::ToUnixSeconds(absl::Now()));
    EraseComponent(state_.mutable_installed(), c);
    *state_.add_installed() = f;
    EraseComponent(state_.mutable_refused(), c);
    if (absl::Status s = SaveState(); !s.ok()) return s;
    Log(LogLevel::kInfo,
        absl::StrCat("installed ", c, " ", entry->version(), " from ", server, " by ", how, " (",
                     entry->size(), " bytes) in ", options_.dir));
    result.installed.push_back(std::move(f));
  }
  return result;
}

absl::Status PatternAgent::Verify(const v1::ComponentEntry& entry, const std::string& staged) {
  HookRun run = RunHook({.command = options_.verify_cmd,
                         .env = {"SIGRELAY_STAGED=" + staged, "SIGRELAY_COMPONENT=" + entry.name(),
                                 absl::StrCat("SIGRELAY_VERSION=", entry.version())},
                         .timeout = options_.verify_timeout,
                         .stop = options_.transfer.stop,
                         .capture = true});
  if (run.outcome == HookRun::kOk) return absl::OkStatus();
  if (run.outcome == HookRun::kStopped) return absl::CancelledError("the agent is stopping");
  return absl::FailedPreconditionError(run.Summary(options_.verify_timeout));
}

absl::Status PatternAgent::Fetch(UpdateSource* source, const v1::ComponentEntry& entry,
                                 const Held& held, const v1::WatchResponse* push,
                                 const std::string& to, std::string* how) {
  const std::string path = PatternPath(entry.name());
  if (held.version != 0) {
    // The installed file is the reference (it is replaced by rename, never
    // written in place, so the mapping stays whole).
    absl::StatusOr<std::unique_ptr<MappedFile>> old = MappedFile::Open(path);
    if (old.ok() && push != nullptr) {
      for (const v1::FetchResponse& payload : push->payloads()) {
        if (payload.header().component() != entry.name()) continue;
        absl::StatusOr<absl::string_view> incr =
            CheckPushedIncremental(payload, entry, held.version);
        absl::StatusOr<std::unique_ptr<StagedFile>> out = StagedFile::Create(to);
        absl::Status s = !incr.ok()  ? incr.status()
                         : !out.ok() ? out.status()
                                     : RebuildInto(codec_, **old, *incr, entry, out->get());
        if (s.ok()) s = (*out)->Commit();
        if (s.ok()) {
          *how = "pushed incremental";
          break;
        }
        Log(LogLevel::kWarning,
            absl::StrCat("pushed incremental for ", entry.name(), " not taken: ", s.message()));
      }
      if (!how->empty()) return absl::OkStatus();
    }
    for (const v1::IncrementalEntry& ie : entry.incrementals()) {
      if (!old.ok() || ie.from_version() != held.version) continue;
      // The incremental goes to a scratch file in the state dir (whatever
      // its size), then the rebuild maps it.
      absl::StatusOr<std::unique_ptr<StagedFile>> scratch =
          StagedFile::Create(options_.state_dir + "/" + entry.name() + ".incr", 0600);
      if (!scratch.ok()) return scratch.status();
      absl::Status s =
          source->Fetch(ExpectedBody::Incremental(entry, ie), 0, Limits(), scratch->get());
      if (!s.ok() && (IsTransferCut(s) || absl::IsCancelled(s) || absl::IsUnavailable(s) ||
                      absl::IsDeadlineExceeded(s))) {
        return s;  // this server cannot deliver now: the next one
      }
      absl::StatusOr<std::unique_ptr<MappedFile>> incr =
          s.ok() ? MappedFile::Open((*scratch)->temp_path())
                 : absl::StatusOr<std::unique_ptr<MappedFile>>(s);
      absl::StatusOr<std::unique_ptr<StagedFile>> out = StagedFile::Create(to);
      s = !incr.ok()  ? incr.status()
          : !out.ok() ? out.status()
                      : RebuildInto(codec_, **old, (*incr)->view(), entry, out->get());
      if (s.ok()) s = (*out)->Commit();
      if (s.ok()) {
        *how = "incremental";
        return absl::OkStatus();
      }
      Log(LogLevel::kWarning,
          absl::StrCat("incremental ", entry.name(), " v_", held.version, ".", entry.version(),
                       " failed (", s.message(), "); fetching the full file"));
    }
  }
  // The whole file, verified as it streams to its staged name.
  absl::StatusOr<std::unique_ptr<StagedFile>> out = StagedFile::Create(to);
  if (!out.ok()) return out.status();
  if (absl::Status s = source->Fetch(ExpectedBody::Full(entry), 0, Limits(), out->get()); !s.ok()) {
    return s;
  }
  if (absl::Status s = (*out)->Commit(); !s.ok()) return s;
  *how = "full";
  return absl::OkStatus();
}

absl::Status PatternAgent::SaveState() {
  return WriteFileAtomically(options_.state_dir + "/state.binpb", state_.SerializeAsString(), 0600);
}

std::vector<std::string> PatternAgent::HookEnv(const UpdateResult& result) const {
  std::vector<std::string> env, updated;
  for (const v1::InstalledFile& f : result.installed) {
    updated.push_back(absl::StrCat(f.component(), "=", f.version()));
    env.push_back(absl::StrCat(
        "SIGRELAY_VERSION_",
        absl::AsciiStrToUpper(absl::StrReplaceAll(f.component(), {{"-", "_"}, {".", "_"}})), "=",
        f.version()));
  }
  env.push_back("SIGRELAY_UPDATED=" + absl::StrJoin(updated, " "));
  env.push_back("SIGRELAY_DIR=" + options_.dir);
  env.push_back("SIGRELAY_SERVER=" + result.server);
  env.push_back(absl::StrCat("SIGRELAY_SERIAL=", result.serial));
  return env;
}

void PatternAgent::AfterInstall(const UpdateResult& result) {
  if (result.installed.empty()) return;
  std::vector<std::string> updated;
  for (const v1::InstalledFile& f : result.installed) {
    updated.push_back(absl::StrCat(f.component(), "=", f.version()));
  }
  if (!options_.on_update.empty()) {
    const HookRun run = RunHook({.command = options_.on_update,
                                 .env = HookEnv(result),
                                 .timeout = options_.on_update_timeout,
                                 .stop = options_.transfer.stop});
    const std::string hook = absl::StrCat("--on-update \"", options_.on_update, "\"");
    switch (run.outcome) {
      case HookRun::kOk:
        Log(LogLevel::kInfo, absl::StrCat("--on-update ran for ", absl::StrJoin(updated, " ")));
        break;
      case HookRun::kStopped:
        Log(LogLevel::kWarning, absl::StrCat(hook, " killed: the agent is stopping"));
        return;
      case HookRun::kTimedOut:
        Log(LogLevel::kError, absl::StrCat(hook, " ", run.Describe(options_.on_update_timeout),
                                           " (it runs again after the next update)"));
        break;
      case HookRun::kFailed:
      case HookRun::kNotStarted:
        Log(LogLevel::kError,
            absl::StrCat(hook, " failed (", run.Describe(options_.on_update_timeout), ") for ",
                         absl::StrJoin(updated, " "), "; not retried"));
        break;
    }
  }
  RunHealthCheck(result);
}

void PatternAgent::RunHealthCheck(const UpdateResult& result) {
  if (options_.health_check.empty()) return;
  const HookRun run = RunHook({.command = options_.health_check,
                               .env = HookEnv(result),
                               .timeout = options_.health_timeout,
                               .stop = options_.transfer.stop,
                               .capture = true});
  if (run.outcome == HookRun::kStopped) return;  // no verdict
  const v1::Health health = run.outcome == HookRun::kOk ? v1::HEALTH_HEALTHY : v1::HEALTH_UNHEALTHY;
  std::vector<std::string> checked;
  for (const v1::InstalledFile& f : result.installed) {
    checked.push_back(absl::StrCat(f.component(), " ", f.version()));
    held_[f.component()].health = health;
    for (v1::InstalledFile& s : *state_.mutable_installed()) {
      if (s.component() == f.component()) s.set_health(health);
    }
  }
  if (absl::Status s = SaveState(); !s.ok()) Log(LogLevel::kError, std::string(s.message()));
  Log(health == v1::HEALTH_HEALTHY ? LogLevel::kInfo : LogLevel::kError,
      absl::StrCat("--health-check: ", absl::StrJoin(checked, ", "),
                   health == v1::HEALTH_HEALTHY ? " healthy" : " UNHEALTHY", " (",
                   run.Summary(options_.health_timeout, 512), ")"));
}

void PatternAgent::Run(absl::Notification* stop) {
  absl::BitGen gen;
  absl::Duration backoff = absl::Seconds(1);
  size_t i = 0;
  while (!stop->HasBeenNotified()) {
    const std::string& server = options_.servers[i];
    absl::Status ended;
    auto* grpc_source = dynamic_cast<GrpcSource*>(sources_[i].get());
    if (grpc_source == nullptr) {
      // A static tree cannot announce: asked every poll interval while it
      // works.
      for (;;) {
        TransferLimits limits = Limits();
        limits.deadline = absl::Now() + absl::Seconds(30);
        absl::StatusOr<v1::SignedManifest> m = sources_[i]->Manifest(limits);
        absl::StatusOr<UpdateResult> r =
            m.ok() ? Apply(i, *m, nullptr, /*wait_pending=*/true) : Prefixed(server, m.status());
        if (!r.ok()) {
          ended = r.status();
          break;
        }
        backoff = absl::Seconds(1);
        AfterInstall(*r);
        if (stop->WaitForNotificationWithTimeout(options_.poll_interval)) break;
      }
    }
    if (grpc_source != nullptr) {
      auto stub = v1::UpdateService::NewStub(*grpc_source->Channel());
      v1::WatchRequest reported = Report();
      WatchStream watch(stub.get(), reported);
      {
        absl::MutexLock lock(&mu_);
        watch_ = &watch;
      }
      if (stop->HasBeenNotified()) watch.Cancel();
      for (;;) {
        absl::StatusOr<v1::WatchResponse> push = watch.Next();
        if (!push.ok()) {
          ended = Prefixed(server, push.status());
          break;
        }
        absl::StatusOr<UpdateResult> r = Apply(i, push->manifest(), &*push, /*wait_pending=*/true);
        if (!r.ok()) {
          ended = r.status();  // a refused manifest or a failed transfer: another server
          break;
        }
        backoff = absl::Seconds(1);  // this server works
        if (!r->installed.empty() || r->refused_now) AfterInstall(*r);
        // Also when only the rollout rings changed: the gate counts agents
        // per ring, those held back too.
        if (v1::WatchRequest now = Report();
            now.SerializeAsString() != reported.SerializeAsString()) {
          reported = now;
          watch.Report(std::move(now));
        }
      }
      absl::MutexLock lock(&mu_);
      watch_ = nullptr;
    }
    if (stop->HasBeenNotified()) break;
    i = (i + 1) % options_.servers.size();
    const absl::Duration wait = backoff * absl::Uniform(gen, 0.5, 1.0);
    Log(LogLevel::kWarning,
        absl::StrCat(ended.message(), "; next: ", options_.servers[i], " in ",
                     absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(100)))));
    stop->WaitForNotificationWithTimeout(wait);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void PatternAgent::Interrupt() {
  absl::MutexLock lock(&mu_);
  if (watch_ != nullptr) watch_->Cancel();
}

}  // namespace sigrelay
