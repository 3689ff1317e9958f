#include "agent-sim/fleet.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/base/digest.h"
#include "core/base/grpc_status.h"
#include "core/base/transport.h"
#include "core/base/upstream_resolver.h"
#include "core/client/client_state.h"
#include "core/client/fetch_client.h"
#include "core/client/grpc_source.h"
#include "core/client/manifest_check.h"
#include "core/client/rebuild.h"
#include "core/model/component.h"
#include "core/model/manifest.h"
#include "core/model/rollout.h"

namespace sigrelay {
// ------------------------------------------------------------------ Agent

class WatchCall;
class FetchCall;

class Agent {
 public:
  struct Held {
    uint32_t version = 0;
    Fleet::Bytes bytes;
  };

  Agent(Fleet* fleet, int index, std::shared_ptr<grpc::Channel> channel,
        std::map<std::string, Held> held)
      : fleet_(fleet),
        index_(index),
        id_(absl::StrCat(fleet->options_.id_prefix, index)),
        channel_(std::move(channel)),
        stub_(v1::UpdateService::NewStub(channel_)),
        held_(std::move(held)),
        rng_(fleet->options_.seed * 1000003 + index) {}

  void Start(absl::Duration delay) {
    fleet_->timers_.After(delay, [this] { OpenWatch(); });
  }

  void Cancel();
  void OnPush(const v1::WatchResponse& push);
  void OnWatchEnded(WatchCall* call, const grpc::Status& s);
  void OnFetched(FetchCall* call, const grpc::Status& s);

 private:
  friend class FetchCall;
  void OpenWatch();
  void MaybeFetchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartFetch(const std::string& component);
  void StartFetchLocked(const std::string& component) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckConvergedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks a downloaded or pushed body and keeps it; what went wrong if not.
  absl::Status AbsorbLocked(const v1::ComponentEntry& entry, const v1::FetchHeader& header,
                            const std::string& body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetryLaterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::WatchRequest StatusLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Report() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Backoff(int failures) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Duration d = absl::Milliseconds(250);
    for (int i = 1; i < failures && d < fleet_->options_.max_backoff; ++i) d *= 2;
    d = std::min(d, fleet_->options_.max_backoff);
    return d * std::uniform_real_distribution<double>(0.5, 1.5)(rng_);
  }
  // What this agent may install of `component` (its ring's admitted
  // version while it rolls out), or nullptr.
  const v1::ComponentEntry* TargetLocked(absl::string_view component) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::ComponentEntry* e = latest_ ? FindEntry(*latest_, component) : nullptr;
    return e == nullptr ? nullptr : &AdmittedEntry(*e, id_, fleet_->options_.ring);
  }
  bool Selected(const std::string& component) const {
    const auto& c = fleet_->options_.components;
    return c.empty() || std::find(c.begin(), c.end(), component) != c.end();
  }

  Fleet* const fleet_;
  const int index_;
  const std::string id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::UpdateService::Stub> stub_;

  absl::Mutex mu_;
  std::map<std::string, Held> held_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const v1::Manifest> latest_ ABSL_GUARDED_BY(mu_);
  WatchCall* watch_ ABSL_GUARDED_BY(mu_) = nullptr;
  FetchCall* fetch_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool fetch_pending_ ABSL_GUARDED_BY(mu_) = false;  // started or scheduled
  bool converged_ ABSL_GUARDED_BY(mu_) = false;
  bool reported_ ABSL_GUARDED_BY(mu_) = false;
  int watch_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int fetch_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

// The agent's Watch stream: pushes in, its status out (newest wins, one
// write in flight).
class WatchCall final : public grpc::ClientBidiReactor<v1::WatchRequest, v1::WatchResponse> {
 public:
  WatchCall(Agent* agent, v1::UpdateService::Stub* stub, std::atomic<int>* live,
            v1::WatchRequest first)
      : agent_(agent), live_(live) {
    ++*live_;
    stub->async()->Watch(&ctx_, this);
    AddHold();  // Send may write from outside reactions until the stream ends
    writing_ = std::move(first);
    in_write_ = true;
    StartWrite(&writing_);
    StartRead(&message_);
    StartCall();
  }
  void Send(v1::WatchRequest status) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      if (in_write_) {
        next_ = std::move(status);
        has_next_ = true;
        return;
      }
      writing_ = std::move(status);
      in_write_ = true;
    }
    StartWrite(&writing_);
  }
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      if (!ok || !has_next_) {
        in_write_ = false;
        return;
      }
      writing_ = std::move(next_);
      has_next_ = false;
    }
    StartWrite(&writing_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        absl::MutexLock lock(&mu_);
        closed_ = true;
      }
      RemoveHold();
      return;  // OnDone follows
    }
    agent_->OnPush(message_);
    v1::WatchResponse().Swap(&message_);  // a pushed body is not kept per agent
    StartRead(&message_);
  }
  void OnDone(const grpc::Status& s) override {
    agent_->OnWatchEnded(this, s);
    std::atomic<int>* live = live_;
    delete this;
    --*live;
  }
  grpc::ClientContext ctx_;

 private:
  Agent* const agent_;
  std::atomic<int>* const live_;
  v1::WatchResponse message_;
  absl::Mutex mu_;
  v1::WatchRequest writing_;
  v1::WatchRequest next_ ABSL_GUARDED_BY(mu_);
  bool in_write_ ABSL_GUARDED_BY(mu_) = false;
  bool has_next_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Takes bytes and keeps none: a full file the fleet already holds is still
// checked as it streams (VerifyingWriter), not stored again.
class DiscardSink final : public ByteSink {
 public:
  absl::Status Write(absl::string_view) override { return absl::OkStatus(); }
};

// One Fetch: an incremental is kept in memory (small), a full file streams
// through a VerifyingWriter to a staged file in the work dir (or nowhere,
// when the fleet holds that version already). Held to the transfer rules
// by the fleet's sweep.
class FetchCall final : public grpc::ClientReadReactor<v1::FetchResponse> {
 public:
  FetchCall(Agent* agent, Fleet* fleet, v1::UpdateService::Stub* stub, std::string component,
            uint32_t have, const v1::ComponentEntry& entry)
      : component_(std::move(component)),
        have_(have),
        entry_(entry),
        agent_(agent),
        fleet_(fleet),
        meter_(fleet->options_.transfer, absl::Now()) {
    ++fleet_->live_reactors_;
    {
      absl::MutexLock lock(&fleet_->mu_);
      fleet_->fetches_.insert(this);
    }
    request_.set_component(component_);
    request_.set_have_version(have);
    request_.set_want_version(entry.version());
    stub->async()->Fetch(&ctx_, &request_, this);
    StartRead(&message_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    {
      absl::MutexLock lock(&meter_mu_);
      meter_.Progress(message_.data().size(), absl::Now());
    }
    if (!check_ && message_.has_header()) {
      // The signed manifest bounds every download: the header must name
      // exactly the signed incremental or full file.
      check_.emplace(ExpectedBody::Claimed(entry_, message_.header()), 0);
    }
    absl::StatusOr<absl::string_view> keep =
        check_ ? check_->Take(message_) : absl::DataLossError("sent data before the Fetch header");
    absl::Status kept = keep.status();
    if (kept.ok() && check_->header().kind() == v1::PAYLOAD_KIND_INCREMENTAL) {
      if (body_.empty() && keep->size() == message_.data().size()) {
        body_.swap(*message_.mutable_data());  // the whole body in one message: no copy
      } else {
        body_.append(keep->data(), keep->size());
      }
    } else if (kept.ok()) {
      if (!writer_) {
        known_ = fleet_->Known(component_, entry_.version(), entry_.sha256());
        ByteSink* sink = &discard_;
        if (known_ == nullptr) {
          absl::StatusOr<std::unique_ptr<StagedFile>> staged = fleet_->Scratch(component_);
          if (!staged.ok()) kept = staged.status();
          if (staged.ok()) staged_ = std::move(*staged);
          if (staged_) sink = staged_.get();
        }
        writer_.emplace(ExpectedBody::Full(entry_), 0, sink);
      }
      if (kept.ok()) kept = writer_->Write(*keep);
    }
    if (!kept.ok()) {
      problem_ = kept;
      ctx_.TryCancel();
      return;
    }
    StartRead(&message_);
  }
  // The header of a completed stream, or DataLoss for one that fell short.
  absl::StatusOr<v1::FetchHeader> Completed() {
    if (!problem_.ok()) return problem_;
    if (!check_) return absl::DataLossError("the Fetch stream ended without a header");
    if (absl::Status s = check_->Finish(); !s.ok()) return s;
    if (writer_) {
      if (absl::Status s = writer_->Finish(); !s.ok()) return s;
    }
    return check_->header();
  }
  // Called by the fleet's sweep (under its lock).
  void Sweep(absl::Time now) {
    absl::Status cut;
    {
      absl::MutexLock lock(&meter_mu_);
      cut = meter_.Check(now);
    }
    if (!cut.ok() && cut_.ok()) {
      cut_ = cut;
      ctx_.TryCancel();
    }
  }
  void OnDone(const grpc::Status& s) override {
    {
      absl::MutexLock lock(&fleet_->mu_);
      fleet_->fetches_.erase(this);
      if (!cut_.ok()) problem_ = cut_;
    }
    agent_->OnFetched(this, s);
    std::atomic<int>* live = &fleet_->live_reactors_;
    delete this;
    --*live;
  }

  grpc::ClientContext ctx_;
  const std::string component_;
  const uint32_t have_;
  const v1::ComponentEntry entry_;
  std::optional<FetchStreamCheck> check_;
  std::string body_;                    // an incremental
  Fleet::Bytes known_;                  // a full file the fleet held already
  std::unique_ptr<StagedFile> staged_;  // a full file new to the fleet
  absl::Status problem_;                // set when the stream broke the signed bounds or was cut

 private:
  Agent* const agent_;
  Fleet* const fleet_;
  v1::FetchRequest request_;
  v1::FetchResponse message_;
  DiscardSink discard_;
  std::optional<VerifyingWriter> writer_;
  absl::Mutex meter_mu_;
  TransferMeter meter_ ABSL_GUARDED_BY(meter_mu_);
  absl::Status cut_;  // guarded by the fleet's mu_
};

void Agent::Cancel() {
  absl::MutexLock lock(&mu_);
  if (watch_ != nullptr) watch_->ctx_.TryCancel();
  if (fetch_ != nullptr) fetch_->ctx_.TryCancel();
}

void Agent::OpenWatch() {
  if (fleet_->stopping_) return;
  absl::MutexLock lock(&mu_);
  // The first request is the agent's status report and what the server
  // picks pushed incrementals by.
  watch_ = new WatchCall(this, stub_.get(), &fleet_->live_reactors_, StatusLocked());
  reported_ = true;
}

v1::WatchRequest Agent::StatusLocked() const {
  v1::WatchRequest status;
  if (fleet_->options_.report) status.set_agent_id(id_);
  status.set_ring(fleet_->options_.ring);
  for (const auto& [component, held] : held_) {
    v1::ComponentVersion* cv = status.add_versions();
    cv->set_component(component);
    cv->set_version(held.version);
    if (const v1::ComponentEntry* e = latest_ ? FindEntry(*latest_, component) : nullptr) {
      cv->set_ring(RingName(*e, id_, fleet_->options_.ring));
    }
    // Played health: the first `unhealthy` per cent of agents (by index)
    // report every version they hold unhealthy, the rest healthy.
    if (fleet_->options_.unhealthy >= 0 && held.version != 0) {
      cv->set_health(index_ * 100 < fleet_->options_.unhealthy * fleet_->options_.agents
                         ? v1::HEALTH_UNHEALTHY
                         : v1::HEALTH_HEALTHY);
    }
  }
  return status;
}

void Agent::OnPush(const v1::WatchResponse& push) {
  absl::StatusOr<std::shared_ptr<const v1::Manifest>> manifest =
      fleet_->Verify(push.manifest(), absl::Now());
  if (!manifest.ok()) {
    fleet_->CountError("manifest", std::string(manifest.status().message()));
    return;
  }
  bool target_seen = !fleet_->options_.until.empty();
  for (const auto& [component, version] : fleet_->options_.until) {
    const v1::ComponentEntry* e = FindEntry(**manifest, component);
    target_seen = target_seen && e != nullptr && e->version() >= version;
  }
  if (target_seen) fleet_->SawTarget(absl::Now());
  absl::MutexLock lock(&mu_);
  watch_failures_ = 0;
  if (latest_ && (*manifest)->serial() <= latest_->serial()) return;  // no rollback
  // A new rollout puts this agent in a ring: reported even when it
  // installs nothing (the gate counts every agent of a ring).
  for (const auto& [component, held] : held_) {
    const v1::ComponentEntry* was = latest_ ? FindEntry(*latest_, component) : nullptr;
    const v1::ComponentEntry* now = FindEntry(**manifest, component);
    if ((was ? RingName(*was, id_, fleet_->options_.ring) : "") !=
        (now ? RingName(*now, id_, fleet_->options_.ring) : "")) {
      reported_ = false;
    }
  }
  latest_ = std::move(*manifest);
  // Incrementals pushed with the manifest: taken when they apply to what
  // this agent holds, checked exactly like a fetched one.
  bool changed = false;
  for (const v1::FetchResponse& p : push.payloads()) {
    const v1::FetchHeader& h = p.header();
    const v1::ComponentEntry* e = TargetLocked(h.component());
    auto it = held_.find(h.component());
    if (fetch_pending_ || e == nullptr || !Selected(h.component()) || it == held_.end()) continue;
    // Held to the signed incremental exactly as a fetched one.
    absl::StatusOr<absl::string_view> data = CheckPushedIncremental(p, *e, it->second.version);
    if (!data.ok()) {
      // Not for this agent's version: fetched below. Not the signed bytes: counted too.
      if (absl::IsDataLoss(data.status())) {
        fleet_->CountError("push", std::string(data.status().message()));
      }
      continue;
    }
    absl::Status problem = AbsorbLocked(*e, h, p.data());
    if (!problem.ok()) {
      fleet_->CountError("rebuild", std::string(problem.message()));
      continue;  // fetched below instead
    }
    changed = true;
  }
  if (changed) reported_ = false;
  MaybeFetchLocked();
  CheckConvergedLocked();
  if (!reported_) Report();
}

void Agent::OnWatchEnded(WatchCall* call, const grpc::Status& s) {
  absl::MutexLock lock(&mu_);
  if (watch_ == call) watch_ = nullptr;
  if (fleet_->stopping_) return;
  ++watch_failures_;
  std::string message =
      s.error_code() == grpc::StatusCode::UNAVAILABLE
          ? absl::StrCat("cannot reach ", fleet_->options_.server, ": ", s.error_message())
          : s.error_message();
  fleet_->CountError(absl::StrCat("watch ", GrpcCodeName(s.error_code())), message);
  fleet_->timers_.After(Backoff(watch_failures_), [this] { OpenWatch(); });
}

void Agent::MaybeFetchLocked() {
  if (fetch_pending_ || !latest_ || fleet_->stopping_) return;
  for (const v1::ComponentEntry& offered : latest_->components()) {
    if (!Selected(offered.name())) continue;
    const v1::ComponentEntry& e = *TargetLocked(offered.name());
    auto it = held_.find(e.name());
    if (it != held_.end() && it->second.version >= e.version()) continue;
    fetch_pending_ = true;
    std::string component = e.name();
    absl::Duration wait =
        fleet_->options_.jitter > absl::ZeroDuration()
            ? fleet_->options_.jitter * std::uniform_real_distribution<double>(0, 1)(rng_)
            : absl::ZeroDuration();
    if (wait == absl::ZeroDuration()) {
      StartFetchLocked(component);
    } else {
      fleet_->timers_.After(wait, [this, component] { StartFetch(component); });
    }
    return;
  }
}

void Agent::StartFetch(const std::string& component) {
  absl::MutexLock lock(&mu_);
  StartFetchLocked(component);
}

void Agent::StartFetchLocked(const std::string& component) {
  const v1::ComponentEntry* entry = TargetLocked(component);
  if (fleet_->stopping_ || entry == nullptr) {
    fetch_pending_ = false;
    return;
  }
  auto it = held_.find(component);
  uint32_t have = it == held_.end() ? 0 : it->second.version;
  fetch_ = new FetchCall(this, fleet_, stub_.get(), component, have, *entry);
}

void Agent::OnFetched(FetchCall* call, const grpc::Status& s) {
  absl::MutexLock lock(&mu_);
  fetch_ = nullptr;
  fetch_pending_ = false;
  if (fleet_->stopping_) return;
  const std::string& component = call->component_;
  absl::StatusOr<v1::FetchHeader> header = call->Completed();
  const bool incremental = header.ok() && header->kind() == v1::PAYLOAD_KIND_INCREMENTAL;
  absl::Status problem;
  if (!call->problem_.ok()) {
    problem = call->problem_;
  } else if (!s.ok()) {
    fleet_->CountError(absl::StrCat("fetch ", GrpcCodeName(s.error_code())),
                       absl::StrCat(component, ": ", s.error_message()));
    ++fetch_failures_;
    RetryLaterLocked();
    return;
  } else if (!header.ok()) {
    problem = header.status();
  } else if (incremental) {
    problem = AbsorbLocked(call->entry_, *header, call->body_);
  } else {
    fleet_->bytes_full_ += call->entry_.size();
    Fleet::Bytes result = call->known_;
    if (result == nullptr) {
      absl::StatusOr<Fleet::Bytes> kept = fleet_->Remember(
          component, call->entry_.version(), call->entry_.sha256(), std::move(call->staged_));
      if (kept.ok()) result = *kept;
      problem = kept.status();
    }
    if (result != nullptr) held_[component] = {call->entry_.version(), std::move(result)};
  }
  if (!problem.ok()) {
    fleet_->CountError(IsTransferCut(problem) ? "cut"
                       : incremental          ? "rebuild"
                                              : "digest",
                       std::string(problem.message()));
    ++fetch_failures_;
    RetryLaterLocked();
    return;
  }
  fetch_failures_ = 0;
  reported_ = false;
  CheckConvergedLocked();
  if (!reported_) Report();
  MaybeFetchLocked();
}

void Agent::RetryLaterLocked() {
  fleet_->timers_.After(Backoff(fetch_failures_), [this] {
    absl::MutexLock relock(&mu_);
    MaybeFetchLocked();
  });
}

absl::Status Agent::AbsorbLocked(const v1::ComponentEntry& entry, const v1::FetchHeader& header,
                                 const std::string& body) {
  const std::string& component = entry.name();
  fleet_->bytes_incremental_ += body.size();
  auto it = held_.find(component);
  if (it == held_.end() || it->second.version != header.from_version() ||
      it->second.bytes == nullptr) {
    return absl::DataLossError("server sent an incremental from a version not held");
  }
  absl::StatusOr<Fleet::Bytes> rebuilt =
      fleet_->Rebuild(component, it->second.version, it->second.bytes, body, entry);
  if (!rebuilt.ok()) {
    held_.erase(component);  // next time: the full file
    return rebuilt.status();
  }
  held_[component] = {entry.version(), *rebuilt};
  return absl::OkStatus();
}

void Agent::CheckConvergedLocked() {
  if (converged_ || !latest_) return;
  if (!fleet_->options_.until.empty()) {
    for (const auto& [component, version] : fleet_->options_.until) {
      auto it = held_.find(component);
      if (it == held_.end() || it->second.version < version) return;
    }
  } else {
    for (const v1::ComponentEntry& e : latest_->components()) {
      if (!Selected(e.name())) continue;
      auto it = held_.find(e.name());
      if (it == held_.end() || it->second.version < TargetLocked(e.name())->version()) return;
    }
  }
  converged_ = true;
  fleet_->MarkConverged(absl::Now());
  if (!reported_) Report();
}

void Agent::Report() {
  reported_ = true;
  if (watch_ != nullptr) {
    watch_->Send(StatusLocked());  // on the open stream: no call of its own
    return;
  }
  if (!fleet_->options_.report) return;
  struct Call {
    grpc::ClientContext ctx;
    v1::ReportStatusRequest request;
    v1::ReportStatusResponse response;
  };
  auto* call = new Call;
  v1::WatchRequest status = StatusLocked();
  call->request.set_agent_id(id_);
  *call->request.mutable_versions() = status.versions();
  ++fleet_->live_reactors_;
  std::atomic<int>* live = &fleet_->live_reactors_;
  stub_->async()->ReportStatus(&call->ctx, &call->request, &call->response,
                               [call, live](grpc::Status) {
                                 delete call;
                                 --*live;
                               });
}

// ------------------------------------------------------------------ Fleet

Fleet::Fleet(FleetOptions options, std::unique_ptr<ManifestVerifier> verifier)
    : options_(std::move(options)), verifier_(std::move(verifier)) {}

Fleet::~Fleet() {
  Stop();
  if (live_reactors_.load() > 0) {
    // A server that never ended some streams within Stop's wait: their
    // reactors may still call into their agents, which are left alive.
    for (auto& a : agents_) a.release();
  }
  {
    absl::MutexLock lock(&mu_);
    files_.clear();
    rebuilt_.clear();
  }
  if (owns_work_dir_) {
    if (EmptyDir(work_dir_).ok()) rmdir(work_dir_.c_str());
  }
}

void Fleet::SweepFetches() {
  if (stopping_) return;
  {
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&mu_);
    for (FetchCall* f : fetches_) f->Sweep(now);
  }
  timers_.After(absl::Seconds(1), [this] { SweepFetches(); });
}

ChannelOptions Fleet::ChannelOptionsFor(const std::string& address) const {
  ChannelOptions channel;
  channel.tls = options_.tls;  // the server and a start source alike
  channel.tls_server_name = TlsServerName(address);
  return channel;
}

std::shared_ptr<grpc::Channel> Fleet::NewChannel() {
  ChannelOptions channel = ChannelOptionsFor(options_.server);
  channel.initial_reconnect_backoff = absl::Milliseconds(250);
  // Equal channels would share one TCP connection; each gets its own.
  channel.own_connection = true;
  return MakeChannel(target_, channel);
}

void Fleet::CountError(const std::string& kind, const std::string& message) {
  absl::MutexLock lock(&mu_);
  if (errors_[kind]++ == 0) first_error_[kind] = message;
}

void Fleet::MarkConverged(absl::Time when) {
  absl::MutexLock lock(&mu_);
  converge_times_.push_back(when);
  converged_ = static_cast<int>(converge_times_.size());
}

void Fleet::SawTarget(absl::Time when) {
  absl::MutexLock lock(&mu_);
  first_target_seen_ = std::min(first_target_seen_, when);
}

Fleet::Bytes Fleet::Known(const std::string& component, uint32_t version,
                          const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  auto it = files_.find(absl::StrCat(component, "/", version, "/", sha256));
  return it == files_.end() ? nullptr : it->second;
}

absl::StatusOr<std::unique_ptr<StagedFile>> Fleet::Scratch(const std::string& component) {
  return StagedFile::Create(absl::StrCat(work_dir_, "/", component), 0600);
}

absl::StatusOr<Fleet::Bytes> Fleet::Remember(const std::string& component, uint32_t version,
                                             const std::string& sha256,
                                             std::unique_ptr<StagedFile> staged) {
  const std::string key = absl::StrCat(component, "/", version, "/", sha256);
  absl::MutexLock lock(&mu_);
  Bytes& slot = files_[key];
  if (slot != nullptr) return slot;  // `staged` goes away unused
  const std::string path =
      absl::StrCat(work_dir_, "/", component, "-", version, "-", ToHex(sha256).substr(0, 16));
  absl::StatusOr<std::unique_ptr<StagedFile>> renamed =
      staged != nullptr ? absl::StatusOr<std::unique_ptr<StagedFile>>(std::move(staged))
                        : absl::InternalError("no file to keep");
  if (!renamed.ok()) {
    files_.erase(key);
    return renamed.status();
  }
  // Committed under the final name, then mapped (pages trimmed: a version
  // costs the fleet its file, not its size in memory).
  absl::Status s = (*renamed)->CommitAs(path);
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped =
      s.ok() ? MappedFile::Open(path) : absl::StatusOr<std::unique_ptr<MappedFile>>(s);
  if (!mapped.ok()) {
    files_.erase(key);
    return mapped.status();
  }
  (*mapped)->Trim();
  slot = std::shared_ptr<const MappedFile>(std::move(*mapped));
  return slot;
}

absl::StatusOr<std::shared_ptr<const v1::Manifest>> Fleet::Verify(const v1::SignedManifest& m,
                                                                  absl::Time now) {
  std::string key = absl::StrCat(m.signature().size(), ":", m.signature(), m.manifest());
  std::shared_ptr<const v1::Manifest> manifest;
  {
    absl::MutexLock lock(&mu_);
    auto it = verified_.find(key);
    if (it != verified_.end()) manifest = it->second;
  }
  if (manifest != nullptr && now < absl::FromUnixSeconds(manifest->expires_unix())) {
    return manifest;
  }
  std::optional<v1::SignedManifest> floor;
  if (!options_.state_dir.empty()) {
    absl::MutexLock lock(&mu_);
    floor = floor_;
  }
  // Against the floor kept across runs: no rollback, no conflict.
  absl::StatusOr<OfferedManifest> checked =
      CheckOfferedManifest(*verifier_, m, floor ? &*floor : nullptr, now);
  if (!checked.ok()) return checked.status();
  manifest = std::make_shared<const v1::Manifest>(std::move(checked->manifest));
  absl::MutexLock lock(&mu_);
  verified_[key] = manifest;
  if (!options_.state_dir.empty() && checked->newer) floor_ = m;
  return manifest;
}

absl::StatusOr<Fleet::Bytes> Fleet::Rebuild(const std::string& component, uint32_t from,
                                            const Bytes& old, const std::string& incremental,
                                            const v1::ComponentEntry& entry) {
  const std::string key = absl::StrCat(component, "/", from, "/", entry.version(), "/",
                                       entry.sha256(), "/", reinterpret_cast<uintptr_t>(old.get()));
  {
    absl::MutexLock lock(&mu_);
    auto it = rebuilt_.find(key);
    if (it != rebuilt_.end()) {
      for (const Rebuilt& r : it->second) {
        if (r.incremental == incremental) return r.result;
      }
    }
  }
  absl::StatusOr<std::unique_ptr<StagedFile>> out = Scratch(component);
  if (!out.ok()) return out.status();
  if (absl::Status s = RebuildInto(codec_, *old, incremental, entry, out->get()); !s.ok()) {
    return s;
  }
  absl::StatusOr<Bytes> result =
      Remember(component, entry.version(), entry.sha256(), std::move(*out));
  if (!result.ok()) return result.status();
  absl::MutexLock lock(&mu_);
  rebuilt_[key].push_back({incremental, *result});
  return result;
}

absl::StatusOr<Fleet::Bytes> Fleet::FetchWhole(const std::string& component, uint32_t version,
                                               const v1::ComponentEntry* verify_against) {
  auto fail = [&](const absl::Status& s) {
    return absl::Status(
        s.code(), absl::StrCat("loading the start version ", component, " ", version, " from ",
                               options_.start_source, ": ", s.message(),
                               " (--start-source can name a node that keeps it, "
                               "e.g. the origin)"));
  };
  absl::StatusOr<std::unique_ptr<StagedFile>> staged = Scratch(component);
  if (!staged.ok()) return staged.status();
  std::string sha256;
  if (verify_against != nullptr) {
    // The newest: streamed and checked against its signed entry.
    std::shared_ptr<grpc::Channel> channel = start_channel_;
    GrpcSource source(options_.start_source, [channel] { return channel; });
    TransferLimits limits = options_.transfer;
    limits.deadline = absl::Now() + absl::Minutes(5);
    absl::Status s = source.Fetch(ExpectedBody::Full(*verify_against), 0, limits, staged->get());
    if (!s.ok()) return fail(s);
    sha256 = verify_against->sha256();
  } else {
    // An older version no manifest signs any more: its announced digest.
    auto stub = v1::UpdateService::NewStub(start_channel_);
    v1::FetchRequest req;
    req.set_component(component);
    req.set_want_version(version);
    absl::StatusOr<v1::FetchHeader> header =
        FetchToSink(stub.get(), req, std::nullopt, absl::Now() + absl::Minutes(5), staged->get());
    if (!header.ok()) return fail(header.status());
    sha256 = header->sha256();
  }
  return Remember(component, version, sha256, std::move(*staged));
}

absl::Status Fleet::Start() {
  started_ = absl::Now();
  if (options_.work_dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/sigrelay-agent-sim.XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot make a work directory ", pattern, ": ", strerror(errno)));
    }
    work_dir_ = pattern;
    owns_work_dir_ = true;
  } else {
    work_dir_ = options_.work_dir;
    if (absl::Status s = MakeDirs(work_dir_); !s.ok()) return s;
  }
  timers_.After(absl::Seconds(1), [this] { SweepFetches(); });
  // Resolve once, keeping only addresses this node can route: an agent in an
  // IPv6-only segment told of an IPv4-only server hears why at once.
  absl::StatusOr<UpstreamTarget> resolved = ResolveUpstream(options_.server, "", absl::Seconds(10));
  if (!resolved.ok()) return resolved.status();
  target_ = resolved->grpc_target;
  // For the manifest and start versions; agents get their own connections.
  shared_channel_ = MakeChannel(target_, ChannelOptionsFor(options_.server));
  const bool own_source = options_.start_source.empty() || options_.start_source == options_.server;
  start_channel_ =
      own_source ? shared_channel_
                 : MakeChannel(options_.start_source, ChannelOptionsFor(options_.start_source));
  auto stub = v1::UpdateService::NewStub(shared_channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::SignedManifest signed_manifest;
  grpc::Status s = stub->GetManifest(&ctx, {}, &signed_manifest);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot read the manifest of ", options_.server,
                                               ": ", GrpcCodeName(s.error_code()), ": ",
                                               s.error_message()));
  }
  if (!options_.state_dir.empty()) {
    absl::StatusOr<v1::AgentState> state = LoadClientState(options_.state_dir);
    if (!state.ok()) return state.status();
    absl::MutexLock lock(&mu_);
    if (state->has_manifest()) floor_ = state->manifest();
  }
  absl::StatusOr<std::shared_ptr<const v1::Manifest>> verified =
      Verify(signed_manifest, absl::Now());
  if (!verified.ok()) {
    return absl::Status(verified.status().code(),
                        absl::StrCat(options_.server, ": ", verified.status().message()));
  }
  const v1::Manifest* manifest = verified->get();
  std::vector<const v1::ComponentEntry*> entries;
  for (const v1::ComponentEntry& e : manifest->components()) {
    const auto& c = options_.components;
    if (c.empty() || std::find(c.begin(), c.end(), e.name()) != c.end()) entries.push_back(&e);
  }
  for (const std::string& c : options_.components) {
    if (FindEntry(*manifest, c) == nullptr) {
      return absl::NotFoundError(absl::StrCat(options_.server, " publishes no ", c));
    }
  }
  // Load each start version once; agents share the bytes.
  double total = 0;
  for (const auto& [v, w] : options_.start_mix) total += w;
  std::map<std::pair<std::string, uint32_t>, Bytes> start_bytes;
  for (const auto& [v, w] : options_.start_mix) {
    if (v == 0) continue;
    for (const v1::ComponentEntry* e : entries) {
      uint32_t version = v == UINT32_MAX ? e->version() : v;
      auto key = std::make_pair(e->name(), version);
      if (start_bytes.count(key)) continue;
      absl::StatusOr<Bytes> b =
          FetchWhole(e->name(), version, version == e->version() ? e : nullptr);
      if (!b.ok()) return b.status();
      start_bytes[key] = *b;
    }
  }
  std::mt19937_64 rng(options_.seed);
  std::shared_ptr<grpc::Channel> connection;
  for (int i = 0; i < options_.agents; ++i) {
    // Agent i takes the mix entry its position falls in.
    double at = (i + 0.5) / options_.agents * total, sum = 0;
    uint32_t v = options_.start_mix.back().first;
    for (const auto& [mv, w] : options_.start_mix) {
      sum += w;
      if (at < sum) {
        v = mv;
        break;
      }
    }
    std::map<std::string, Agent::Held> held;
    if (v != 0) {
      for (const v1::ComponentEntry* e : entries) {
        uint32_t version = v == UINT32_MAX ? e->version() : v;
        held[e->name()] = {version, start_bytes[{e->name(), version}]};
      }
    }
    // Shared mode: 32 agents to a connection. Each holds a Watch stream and
    // at most one Fetch, within a node's --max-streams-per-connection
    // (default 100).
    constexpr int kAgentsPerSharedConnection = 32;
    if (options_.per_agent_connections || i % kAgentsPerSharedConnection == 0) {
      connection = NewChannel();
    }
    agents_.push_back(std::make_unique<Agent>(this, i, connection, std::move(held)));
  }
  for (int i = 0; i < options_.agents; ++i) {
    absl::Duration delay = options_.ramp * (static_cast<double>(i) / options_.agents);
    agents_[i]->Start(delay);
  }
  return absl::OkStatus();
}

bool Fleet::WaitConverged(absl::Duration timeout, const std::function<void()>& progress) {
  absl::Time deadline = absl::Now() + timeout;
  while (converged_.load() < options_.agents && absl::Now() < deadline && !stopping_) {
    absl::SleepFor(absl::Milliseconds(50));  // progress display pace
    if (progress) progress();
  }
  return converged_.load() >= options_.agents;
}

void Fleet::Stop() {
  if (stopping_.exchange(true)) return;
  for (auto& a : agents_) a->Cancel();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (live_reactors_.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    for (auto& a : agents_) a->Cancel();
  }
  if (!options_.state_dir.empty()) {
    absl::StatusOr<v1::AgentState> state = LoadClientState(options_.state_dir);
    absl::Status saved = state.status();
    {
      absl::MutexLock lock(&mu_);
      if (state.ok() && floor_.has_value()) {
        *state->mutable_manifest() = *floor_;
        saved = SaveClientState(options_.state_dir, *state);
      }
    }
    if (!saved.ok()) CountError("state", std::string(saved.message()));
  }
}

FleetSummary Fleet::Summary() const {
  FleetSummary out;
  out.agents = options_.agents;
  out.bytes_incremental = bytes_incremental_.load();
  out.bytes_full = bytes_full_.load();
  absl::MutexLock lock(&mu_);
  out.converged = static_cast<int>(converge_times_.size());
  out.errors = errors_;
  out.first_error = first_error_;
  std::vector<absl::Time> times = converge_times_;
  std::sort(times.begin(), times.end());
  // From the moment the target was first announced when --until is given
  // (publish to converged), else from the start.
  absl::Time t0 = options_.until.empty() || first_target_seen_ == absl::InfiniteFuture()
                      ? started_
                      : std::min(first_target_seen_, times.empty() ? first_target_seen_ : times[0]);
  auto at = [&](double q) {
    size_t need = static_cast<size_t>(std::ceil(q * options_.agents));
    if (need == 0) need = 1;
    if (times.size() < need) return -1.0;
    return absl::ToDoubleSeconds(times[need - 1] - t0);
  };
  out.seconds_to_p50 = at(0.5);
  out.seconds_to_p99 = at(0.99);
  out.seconds_to_all = at(1.0);
  if (times.size() >= static_cast<size_t>(options_.agents) && !times.empty()) {
    out.all_converged_unix = absl::ToDoubleSeconds(times.back() - absl::UnixEpoch());
  }
  return out;
}

}  // namespace sigrelay
