#include "core/serve/update_service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/base/connection_guard.h"
#include "core/base/grpc_status.h"
#include "core/base/log.h"
#include "core/base/transport.h"
#include "core/model/component.h"
#include "core/model/manifest.h"
#include "core/model/rollout.h"

namespace sigrelay {

// One Watch stream: the current manifest, then each newer one, once the
// watcher has sent its first WatchRequest (or half-closed). Only the newest
// unsent manifest is kept, so a slow subscriber costs one pointer, not a
// queue. A push that carries incrementals passes the transfer gate like a
// Fetch, so a burst of pushes is paced the same way and all pushes of one
// manifest share one immutable response per distinct set of held versions.
class WatchReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  WatchReactor(UpdateServiceImpl* service, grpc::CallbackServerContext* ctx)
      : service_(service), ctx_(ctx), peer_(ctx->peer()) {
    StartRead(&request_);
  }

  void Offer(std::shared_ptr<const PushParts> parts) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || parts == last_offered_) return;
      last_offered_ = parts;
      pending_ = std::move(parts);
    }
    TrySend();
  }

  // Finishes the stream, or has the write being started finish it: a
  // StartWrite and a Finish must never run at once (both may carry the
  // initial metadata, and gRPC aborts the process on that: a rapid-reset
  // client set the race off within seconds).
  void End(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      if (starting_write_) {
        deferred_finish_ = std::move(status);
        return;
      }
    }
    Finish(std::move(status));
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      v1::WatchRequest request;
      grpc::ProtoBufferReader reader(&request_);
      absl::StatusOr<HeldVersions> held =
          request.ParseFromZeroCopyStream(&reader)
              ? service_->OnWatchRequest(*ctx_, request, &agent_)
              : absl::InvalidArgumentError("WatchRequest is not a valid sigrelay.v1.WatchRequest");
      request_.Clear();
      if (!held.ok()) {
        End(ToGrpcStatus(held.status()));
        return;
      }
      std::string key = HeldKey(*held);
      absl::MutexLock lock(&mu_);
      held_ = std::move(*held);
      held_key_ = std::move(key);
      // The rollout ring's hash: under mutual TLS the certificate's
      // identity. A relay (no id) takes every ring.
      agent_id_ =
          request.agent_id().empty()
              ? ""
              : service_->Identity(*ctx_, request.agent_id()).substr(0, AgentRegistry::kMaxIdBytes);
      ring_ = request.ring().substr(0, 64);
      started_ = true;
    } else {
      absl::MutexLock lock(&mu_);
      started_ = true;  // half-closed: a follower that says nothing
    }
    if (ok) StartRead(&request_);
    TrySend();
  }

  void OnWriteDone(bool ok) override {
    std::shared_ptr<StallSweeper::Guard> leave;  // set when a slot is held
    {
      absl::MutexLock lock(&mu_);
      if (holds_slot_) leave = guard_;
      holds_slot_ = false;
      in_flight_ = nullptr;
    }
    if (leave != nullptr) {
      leave->WriteEnded();
      service_->sweeper_.Untrack(leave);
      service_->gate_.Leave(peer_);
    }
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream broken"));
      return;
    }
    TrySend();
  }

  void OnCancel() override {
    NoteCancel(peer_);
    {
      absl::MutexLock lock(&mu_);
      if (waiting_gate_ && service_->gate_.Cancel(ticket_)) {
        waiting_gate_ = false;
        gated_ = nullptr;
      }
    }
    End(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    service_->Remove(this);
    {
      absl::MutexLock lock(&service_->fleet_mu_);
      service_->downstream_fleet_.erase(static_cast<const grpc::ServerContextBase*>(ctx_));
    }
    if (agent_.has_value()) service_->agents_->StreamEnded(*agent_);
    {
      absl::MutexLock lock(&mu_);
      if (guard_ != nullptr) {
        StallSweeper::Dead(*guard_);
        service_->sweeper_.Untrack(guard_);
      }
      done_ = true;
      if (waiting_gate_) return;  // GateOpened comes later and deletes
    }
    delete this;
  }

 private:
  // Writes the newest pending manifest when nothing is being written.
  void TrySend() {
    std::shared_ptr<const WatchPush> now;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || !started_ || in_flight_ != nullptr || waiting_gate_ || pending_ == nullptr ||
          ctx_->IsCancelled()) {
        return;
      }
      std::shared_ptr<const PushParts> parts = std::move(pending_);
      std::shared_ptr<const WatchPush> response =
          service_->PushFor(*parts, held_, held_key_, agent_id_, ring_);
      if (response->payloads > 0) {
        switch (service_->gate_.Enter(peer_, &ticket_, [this] { GateOpened(); })) {
          case TransferGate::Admit::kNow:
            HoldSlotLocked();
            break;
          case TransferGate::Admit::kQueued:
            waiting_gate_ = true;
            gated_ = std::move(response);
            return;
          case TransferGate::Admit::kRefused:
            // Full: the manifest alone; the watcher fetches when it can.
            response = service_->PushFor(*parts, {}, "", "", "");
            break;
        }
      }
      in_flight_ = response;
      starting_write_ = true;
      now = std::move(response);
    }
    Write(*now);
  }

  // `push` is in_flight_, which keeps it alive until OnWriteDone. Called
  // with starting_write_ set (by TrySend or GateOpened, under mu_).
  void Write(const WatchPush& push) {
    service_->pushed_ += push.payloads;
    StartWrite(&push.bytes);
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      starting_write_ = false;
      finish = std::move(deferred_finish_);
    }
    if (finish.has_value()) Finish(std::move(*finish));
  }

  // A push with incrementals got a transfer slot; its write is watched.
  void HoldSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    holds_slot_ = true;
    if (guard_ == nullptr) guard_ = StallSweeper::NewGuard(ctx_);
    guard_->WriteStarted();
    service_->sweeper_.Track(guard_);
  }

  // The gate admitted the queued push.
  void GateOpened() {
    mu_.Lock();
    waiting_gate_ = false;
    std::shared_ptr<const WatchPush> response = std::move(gated_);
    if (done_ || finished_) {
      const bool done = done_;
      mu_.Unlock();
      service_->gate_.Leave(peer_);
      if (done) delete this;
      return;
    }
    HoldSlotLocked();
    in_flight_ = response;
    starting_write_ = true;
    mu_.Unlock();
    Write(*response);
  }

  UpdateServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  const std::string peer_;    // the connection: its share of transfer slots
  grpc::ByteBuffer request_;  // the read in progress
  // The agent this stream reports for, once it did (reads are one at a
  // time and OnDone comes after the last).
  std::optional<AgentKey> agent_;
  absl::Mutex mu_;
  std::shared_ptr<StallSweeper::Guard> guard_ ABSL_GUARDED_BY(mu_);  // once it held a slot
  HeldVersions held_ ABSL_GUARDED_BY(mu_);
  std::string held_key_ ABSL_GUARDED_BY(mu_);  // HeldKey(held_)
  std::string agent_id_ ABSL_GUARDED_BY(mu_), ring_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const WatchPush> in_flight_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const WatchPush> gated_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const PushParts> pending_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const PushParts> last_offered_ ABSL_GUARDED_BY(mu_);
  uint64_t ticket_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_gate_ ABSL_GUARDED_BY(mu_) = false;
  bool holds_slot_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool starting_write_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> deferred_finish_ ABSL_GUARDED_BY(mu_);
};

namespace {

// A client tells this apart by its code (FAILED_PRECONDITION from
// GetManifest or Fetch): the node is up but has nothing to serve yet.
absl::Status NoManifestYet() {
  return absl::FailedPreconditionError(
      "this node holds no manifest yet: nothing has been published or synced; retry later");
}

struct FetchPlan {
  v1::FetchHeader header;
  v1::FileRecord record;
};

absl::StatusOr<FetchPlan> PlanFetch(const StoreView& view, const ComponentCatalog* catalog,
                                    const v1::FetchRequest& req) {
  if (catalog != nullptr) {
    absl::StatusOr<ComponentSpec> spec = catalog->Find(req.component());
    if (!spec.ok()) return spec.status();
  }
  if (!view.manifest()) return NoManifestYet();
  absl::StatusOr<v1::Manifest> manifest = ParseTrustedManifest(*view.manifest());
  if (!manifest.ok()) return manifest.status();
  const v1::ComponentEntry* entry = FindEntry(*manifest, req.component());
  if (entry == nullptr) {
    std::vector<std::string> carried;
    for (const v1::ComponentEntry& e : manifest->components()) carried.push_back(e.name());
    return absl::NotFoundError(
        absl::StrCat("no version of ", absl::CHexEscape(req.component().substr(0, 80)),
                     " is published yet; this node carries: ", absl::StrJoin(carried, ", ")));
  }
  const uint32_t want = req.want_version() != 0 ? req.want_version() : entry->version();
  for (const v1::Withdrawal& w : manifest->withdrawn()) {
    if (w.component() == req.component() && w.version() == want) {
      return absl::NotFoundError(absl::StrCat(req.component(), " ", want,
                                              " was withdrawn by the origin (", w.reason(),
                                              "); ask for the newest (want_version 0)"));
    }
  }
  FetchPlan plan;
  v1::FetchHeader& h = plan.header;
  h.set_component(req.component());
  h.set_version(want);
  absl::StatusOr<v1::FileRecord> record;
  if (want == entry->version() && req.have_version() != 0 && req.have_version() != want) {
    for (const v1::IncrementalEntry& ie : entry->incrementals()) {
      if (ie.from_version() != req.have_version()) continue;
      record = view.Incremental(req.component(), ie.from_version(), want);
      // A relay whose upstream could not give this one intact serves the
      // full file instead (its next sync fetches it again).
      if (absl::IsNotFound(record.status())) continue;
      if (!record.ok()) return record.status();
      h.set_kind(v1::PAYLOAD_KIND_INCREMENTAL);
      h.set_from_version(ie.from_version());
    }
  }
  if (h.kind() == v1::PAYLOAD_KIND_UNSPECIFIED) {
    if (want > entry->version()) {
      return absl::NotFoundError(absl::StrCat(
          req.component(), " ", want, " is not published; the newest is ", entry->version()));
    }
    record = view.Full(req.component(), want);
    if (absl::IsNotFound(record.status()) && want == entry->version()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this node does not carry ", req.component(), " ", want,
          " (a relay skips a component over its --max-file-size; its status says why): fetch "
          "it from another node"));
    }
    if (absl::IsNotFound(record.status())) {
      return absl::NotFoundError(
          absl::StrCat(req.component(), " ", want, " is no longer retained; retained versions: ",
                       absl::StrJoin(view.FullVersions(req.component()), ", "),
                       "; ask for the newest (want_version 0)"));
    }
    if (!record.ok()) return record.status();
    h.set_kind(v1::PAYLOAD_KIND_FULL);
  }
  plan.record = std::move(*record);
  if (req.offset() > plan.record.size()) {
    return absl::OutOfRangeError(absl::StrCat("offset ", req.offset(), " is past the end of the ",
                                              plan.record.size(), "-byte body"));
  }
  h.set_size(plan.record.size());
  h.set_sha256(plan.record.sha256());
  h.set_offset(req.offset());
  h.set_chunk_size(plan.record.chunk_size());
  for (const std::string& d : plan.record.chunks()) h.add_chunk_sha256(d);
  return plan;
}

// One Fetch stream: admitted through the transfer gate, then the header,
// then the body from the requested offset, one stored chunk per message, read
// only when the previous one is sent (a slow client holds one chunk).
class FetchReactor final : public grpc::ServerWriteReactor<v1::FetchResponse> {
 public:
  FetchReactor(std::shared_ptr<const StoreView> view, const ComponentCatalog* catalog,
               const v1::FetchRequest& req, TransferGate* gate, StallSweeper* sweeper,
               grpc::CallbackServerContext* ctx)
      : view_(std::move(view)),
        peer_(ctx->peer()),
        gate_(gate),
        sweeper_(sweeper),
        guard_(StallSweeper::NewGuard(ctx)) {
    absl::StatusOr<FetchPlan> plan = PlanFetch(*view_, catalog, req);
    if (!plan.ok()) {
      Finish(ToGrpcStatus(plan.status()));
      return;
    }
    record_ = std::move(plan->record);
    const uint64_t chunk_size = record_.chunk_size();
    if (chunk_size > 0) {
      next_chunk_ = static_cast<int>(req.offset() / chunk_size);
      skip_ = req.offset() % chunk_size;
    }
    header_ = std::move(plan->header);
    switch (gate_->Enter(peer_, &ticket_, [this] { Begin(); })) {
      case TransferGate::Admit::kNow:
        Begin();
        break;
      case TransferGate::Admit::kQueued:
        break;  // Begin() runs when a slot frees
      case TransferGate::Admit::kRefused: {
        TransferGate::Stats s = gate_->stats();
        Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            absl::StrCat("node busy: ", s.active, " transfers running and ",
                                         s.queued, " waiting; retry with backoff")));
        break;
      }
    }
  }

  void OnCancel() override {
    NoteCancel(peer_);
    absl::MutexLock lock(&mu_);
    if (!begun_ && gate_->Cancel(ticket_)) {
      cancelled_ = true;
      Finish(grpc::Status::CANCELLED);
    }
  }

  void OnWriteDone(bool ok) override {
    guard_->WriteEnded();
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "client went away"));
      return;
    }
    SendNext();
  }

  void OnDone() override {
    bool holds_slot;
    {
      absl::MutexLock lock(&mu_);
      holds_slot = begun_;
    }
    StallSweeper::Dead(*guard_);
    sweeper_->Untrack(guard_);
    if (holds_slot) gate_->Leave(peer_);
    delete this;
  }

 private:
  void Begin() {
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      begun_ = true;
    }
    sweeper_->Track(guard_);
    *message_.mutable_header() = std::move(header_);
    SendNext();
  }

  // The next message: the header (first time) with the next chunk of the
  // body; the last one goes out with the status in the same write.
  // A header too big to share a message with a whole chunk (many chunk
  // digests) goes alone, so no message passes kMaxMessageBytes.
  void SendNext() {
    if (header_sent_) message_.clear_header();
    const bool header_alone =
        !header_sent_ && next_chunk_ < record_.chunks_size() &&
        message_.header().ByteSizeLong() + record_.chunk_size() + kFramingBytes > kMaxMessageBytes;
    header_sent_ = true;
    message_.clear_data();
    if (!header_alone && next_chunk_ < record_.chunks_size()) {
      absl::StatusOr<std::string> chunk = view_->ReadChunk(record_, next_chunk_++, /*cache=*/true);
      if (!chunk.ok()) {
        Finish(ToGrpcStatus(chunk.status()));
        return;
      }
      if (skip_ > 0) {
        chunk->erase(0, std::min<uint64_t>(skip_, chunk->size()));
        skip_ = 0;
      }
      *message_.mutable_data() = std::move(*chunk);
    }
    guard_->WriteStarted();
    if (next_chunk_ >= record_.chunks_size()) {
      StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&message_);
    }
  }

  std::shared_ptr<const StoreView> view_;
  const std::string peer_;  // the connection: its share of transfer slots
  TransferGate* const gate_;
  StallSweeper* const sweeper_;
  const std::shared_ptr<StallSweeper::Guard> guard_;
  v1::FileRecord record_;
  int next_chunk_ = 0;
  uint64_t skip_ = 0;
  uint64_t ticket_ = 0;
  v1::FetchHeader header_;
  bool header_sent_ = false;
  v1::FetchResponse message_;
  absl::Mutex mu_;
  bool begun_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

UpdateServiceImpl::UpdateServiceImpl(VersionStore* store, AgentRegistry* agents,
                                     const UpdateServiceOptions& options)
    : store_(store),
      agents_(agents),
      catalog_(options.catalog),
      client_certificates_(options.client_certificates),
      push_memory_budget_(options.push_memory_budget),
      max_transfers_(options.max_transfers),
      gate_(options.max_transfers, options.max_queued, options.max_transfers_per_connection),
      sweeper_(options.stall_timeout) {
  if (auto held = store_->CurrentManifest()) {
    std::shared_ptr<const PushParts> parts = BuildPushParts(std::move(held));
    absl::MutexLock lock(&mu_);
    current_ = std::move(parts);
  }
  store_->SetCommitObserver(
      [this](std::shared_ptr<const v1::SignedManifest> m) { Announce(std::move(m)); });
}

UpdateServiceImpl::~UpdateServiceImpl() { store_->SetCommitObserver(nullptr); }

void UpdateServiceImpl::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
  }
  EndWatches();
}

void UpdateServiceImpl::EndWatches() {
  absl::MutexLock lock(&mu_);
  for (WatchReactor* w : watchers_) {
    w->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
}

size_t UpdateServiceImpl::WatcherCount() const {
  absl::MutexLock lock(&mu_);
  return watchers_.size();
}

void UpdateServiceImpl::Announce(std::shared_ptr<const v1::SignedManifest> manifest) {
  // On the committing thread, before any watcher hears of it.
  std::shared_ptr<const PushParts> parts = BuildPushParts(std::move(manifest));
  absl::MutexLock lock(&mu_);
  if (paused_) {
    held_back_ = std::move(parts);
    return;
  }
  current_ = parts;
  for (WatchReactor* w : watchers_) w->Offer(parts);
}

void UpdateServiceImpl::SetPushesPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  paused_ = paused;
  if (paused || held_back_ == nullptr) return;
  current_ = std::move(held_back_);
  held_back_ = nullptr;
  for (WatchReactor* w : watchers_) w->Offer(current_);
}

bool UpdateServiceImpl::pushes_paused() const {
  absl::MutexLock lock(&mu_);
  return paused_;
}

void UpdateServiceImpl::Remove(WatchReactor* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

grpc::ServerUnaryReactor* UpdateServiceImpl::GetManifest(grpc::CallbackServerContext* context,
                                                         const v1::GetManifestRequest*,
                                                         v1::SignedManifest* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (context->IsCancelled()) NoteCancel(context->peer());  // a rapid reset
  std::shared_ptr<const v1::SignedManifest> m = store_->CurrentManifest();
  if (m == nullptr) {
    reactor->Finish(ToGrpcStatus(NoManifestYet()));
  } else {
    *response = *m;
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* UpdateServiceImpl::Watch(
    grpc::CallbackServerContext* ctx) {
  auto* reactor = new WatchReactor(this, ctx);
  absl::MutexLock lock(&mu_);
  if (shut_down_) {
    reactor->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    return reactor;
  }
  watchers_.insert(reactor);
  // Under mu_, so a commit cannot slip between this read and the insert.
  if (current_ != nullptr) reactor->Offer(current_);
  return reactor;
}

namespace {

// Under mutual TLS, the identity of the client's certificate (its common
// name, else its first subject alternative name): what the node records as
// the agent's id, whatever the agent says. Empty without a client
// certificate.
std::string CertificateIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  for (const char* property : {"x509_common_name", "x509_subject_alternative_name"}) {
    std::vector<grpc::string_ref> values = auth->FindPropertyValues(property);
    if (!values.empty()) return std::string(values.front().data(), values.front().size());
  }
  return "";
}

// The first 8 bytes of an agent's key: what connections count agents by.
uint64_t KeyHash(const AgentKey& key) {
  uint64_t h = 0;
  std::memcpy(&h, key.data(), sizeof h);
  return h;
}

absl::Status TooManyAgents() {
  return absl::ResourceExhaustedError(
      "this connection reported too many agent ids (--max-agents-per-connection); a client "
      "that plays many agents opens a connection per group of them");
}

}  // namespace

absl::StatusOr<HeldVersions> UpdateServiceImpl::OnWatchRequest(
    const grpc::ServerContextBase& context, const v1::WatchRequest& request,
    std::optional<AgentKey>* agent) {
  HeldVersions held;
  for (const v1::ComponentVersion& cv : request.versions()) {
    if (absl::Status s = ValidateComponentName(cv.component()); !s.ok()) return s;
    // A component this node does not carry is no reason to end the stream:
    // the watcher gets what the node has. Version 0 means "holds nothing".
    held.emplace_back(cv.component(), cv.version());
  }
  std::sort(held.begin(), held.end());
  for (size_t i = 1; i < held.size(); ++i) {
    if (held[i].first == held[i - 1].first) {
      return absl::InvalidArgumentError(
          absl::StrCat("WatchRequest lists ", held[i].first, " twice; list each component once"));
    }
  }
  // A follower (a relay) says nothing about itself and is not an agent;
  // it reports its subtree.
  const std::string id = Identity(context, request.agent_id());
  if (id.empty()) {
    if (absl::Status s = OnFleetReport(&context, request.fleet()); !s.ok()) return s;
    return held;
  }
  absl::StatusOr<AgentKey> key = AgentRegistry::KeyOf(id);
  if (!key.ok()) return key.status();
  if (agent->has_value() && **agent != *key) {
    return absl::InvalidArgumentError(
        "a Watch stream reports for one agent: this one named another agent than before; open "
        "a stream per agent");
  }
  const bool first = !agent->has_value();
  if (first && !NoteAgent(context.peer(), KeyHash(*key))) return TooManyAgents();
  absl::Status s =
      agents_->Report(*key, request.versions(),
                      first ? AgentRegistry::Via::kStreamOpened : AgentRegistry::Via::kStream);
  if (s.ok()) {
    if (first) *agent = *key;
  } else if (!absl::IsResourceExhausted(s)) {
    return s;  // a full registry records nothing, but pushes go on
  }
  return held;
}

absl::Status UpdateServiceImpl::OnFleetReport(
    const void* stream, const google::protobuf::RepeatedPtrField<v1::FleetCount>& fleet) {
  if (static_cast<size_t>(fleet.size()) > kMaxFleetEntries) {
    return absl::InvalidArgumentError(absl::StrCat("a fleet report lists ", fleet.size(),
                                                   " versions; at most ", kMaxFleetEntries));
  }
  std::vector<v1::FleetCount> kept;
  const uint64_t cap = agents_->max_agents();
  for (const v1::FleetCount& c : fleet) {
    if (absl::Status s = ValidateComponentName(c.component()); !s.ok()) return s;
    v1::FleetCount& k = kept.emplace_back(c);
    k.set_agents(std::min(c.agents(), cap));
    k.set_healthy(std::min(c.healthy(), k.agents()));
    k.set_unhealthy(std::min(c.unhealthy(), k.agents() - k.healthy()));
    k.set_refused(std::min(c.refused(), cap));
    k.set_ring(c.ring().substr(0, 32));
  }
  absl::MutexLock lock(&fleet_mu_);
  if (kept.empty()) {
    downstream_fleet_.erase(stream);
  } else {
    downstream_fleet_[stream] = std::move(kept);
  }
  return absl::OkStatus();
}

std::vector<std::vector<v1::FleetCount>> UpdateServiceImpl::FleetBySource() const {
  std::vector<std::vector<v1::FleetCount>> out = {agents_->Fleet()};
  absl::MutexLock lock(&fleet_mu_);
  for (const auto& [stream, counts] : downstream_fleet_) out.push_back(counts);
  return out;
}

std::vector<v1::FleetCount> UpdateServiceImpl::Fleet() const {
  std::map<std::tuple<std::string, uint32_t, std::string>, v1::FleetCount> sum;
  auto add = [&](const v1::FleetCount& c) {
    v1::FleetCount& s = sum[{c.component(), c.version(), c.ring()}];
    s.set_component(c.component());
    s.set_version(c.version());
    s.set_ring(c.ring());
    s.set_agents(s.agents() + c.agents());
    s.set_healthy(s.healthy() + c.healthy());
    s.set_unhealthy(s.unhealthy() + c.unhealthy());
    s.set_refused(s.refused() + c.refused());
  };
  for (const v1::FleetCount& c : agents_->Fleet()) add(c);
  {
    absl::MutexLock lock(&fleet_mu_);
    for (const auto& [stream, counts] : downstream_fleet_) {
      for (const v1::FleetCount& c : counts) add(c);
    }
  }
  std::vector<v1::FleetCount> out;
  for (auto& [key, c] : sum) out.push_back(std::move(c));
  return out;
}

std::string UpdateServiceImpl::Identity(const grpc::ServerContextBase& context,
                                        const std::string& agent_id) const {
  if (!client_certificates_) return agent_id;
  const std::string identity = CertificateIdentity(context);
  return identity.empty() ? agent_id : identity;
}

std::shared_ptr<const PushParts> UpdateServiceImpl::BuildPushParts(
    std::shared_ptr<const v1::SignedManifest> manifest) const {
  auto parts = std::make_shared<PushParts>();
  parts->manifest = std::move(manifest);
  absl::StatusOr<v1::Manifest> parsed = ParseTrustedManifest(*parts->manifest);
  if (!parsed.ok()) {
    Log(LogLevel::kError, absl::StrCat("stored manifest unreadable, pushing it without "
                                       "incrementals: ",
                                       parsed.status().message()));
    return parts;
  }
  parts->parsed = std::move(*parsed);
  // Incrementals kept in memory for pushes, all together, at most this; the
  // rest are fetched.
  constexpr uint64_t kBudget = 64 << 20;
  uint64_t used = 0;
  std::shared_ptr<const StoreView> view = store_->Snapshot();
  for (const v1::ComponentEntry& entry : parts->parsed.components()) {
    for (const v1::IncrementalEntry& ie : entry.incrementals()) {
      v1::FetchRequest request;
      request.set_component(entry.name());
      request.set_have_version(ie.from_version());
      request.set_want_version(entry.version());
      // The snapshot may already hold a newer commit: keep only what matches.
      absl::StatusOr<FetchPlan> plan = PlanFetch(*view, catalog_, request);
      if (!plan.ok() || plan->header.kind() != v1::PAYLOAD_KIND_INCREMENTAL ||
          plan->header.version() != entry.version() || plan->record.chunks_size() != 1 ||
          plan->header.ByteSizeLong() + plan->record.size() + kFramingBytes > kMaxMessageBytes ||
          used + plan->record.size() > kBudget) {
        continue;  // not one message, not there, or over budget: watchers fetch it
      }
      absl::StatusOr<std::string> chunk = view->ReadChunk(plan->record, 0, /*cache=*/true);
      if (!chunk.ok()) {
        Log(LogLevel::kWarning,
            absl::StrCat("push of ", entry.name(), " v_", ie.from_version(), ".", entry.version(),
                         " left out (watchers fetch it): ", chunk.status().message()));
        continue;
      }
      used += chunk->size();
      v1::FetchResponse& payload = parts->incrementals[{entry.name(), ie.from_version()}];
      *payload.mutable_header() = std::move(plan->header);
      *payload.mutable_data() = std::move(*chunk);
    }
  }
  return parts;
}

namespace {

// Serialized push bytes that count against the service's push budget until
// gRPC lets go of them.
struct CountedBytes {
  std::string bytes;
  std::shared_ptr<std::atomic<int64_t>> live;
  ~CountedBytes() { *live -= static_cast<int64_t>(bytes.size()); }
};

}  // namespace

std::string HeldKey(const HeldVersions& held) {
  std::string key;
  for (const auto& [component, version] : held) {
    absl::StrAppend(&key, component, "=", version, ";");
  }
  return key;
}

std::shared_ptr<const WatchPush> UpdateServiceImpl::PushFor(const PushParts& parts,
                                                            const HeldVersions& held,
                                                            const std::string& held_key,
                                                            const std::string& agent_id,
                                                            const std::string& ring) {
  // Versions rolling out reach only agents of admitted rings: one push per
  // held versions and admission.
  std::string key = held_key;
  auto admitted = [&](const v1::ComponentEntry& entry) {
    return agent_id.empty() || &AdmittedEntry(entry, agent_id, ring) == &entry;
  };
  for (const auto& [component, have] : held) {
    const v1::ComponentEntry* entry = FindEntry(parts.parsed, component);
    if (entry != nullptr && entry->has_rollout())
      absl::StrAppend(&key, admitted(*entry) ? "+" : "-");
  }
  {
    // Ten thousand watchers share a few pushes: looked up under a shared
    // lock, no store reads.
    absl::ReaderMutexLock lock(&parts.mu);
    auto it = parts.pushes.find(key);
    if (it != parts.pushes.end()) return it->second;
  }
  absl::MutexLock lock(&parts.mu);  // this manifest's pushes only
  auto it = parts.pushes.find(key);
  if (it != parts.pushes.end()) return it->second;
  v1::WatchResponse built;
  *built.mutable_manifest() = *parts.manifest;
  for (const auto& [component, have] : held) {
    const v1::ComponentEntry* entry = FindEntry(parts.parsed, component);
    if (entry == nullptr || have == 0 || have >= entry->version() || !admitted(*entry)) continue;
    auto payload = parts.incrementals.find({component, have});
    if (payload == parts.incrementals.end()) continue;  // the watcher fetches
    // The whole push must fit a stock client's message limit.
    if (built.ByteSizeLong() + payload->second.ByteSizeLong() + kFramingBytes > kMaxMessageBytes) {
      continue;
    }
    *built.add_payloads() = payload->second;
  }
  // All pushes alive together stay under the budget: past it a watcher gets
  // the manifest alone and fetches (through the transfer gate).
  bool cache = true;
  if (built.payloads_size() > 0 &&
      push_live_bytes_->load() + static_cast<int64_t>(built.ByteSizeLong()) >
          static_cast<int64_t>(push_memory_budget_)) {
    built.clear_payloads();
    cache = false;
  }
  auto push = std::make_shared<WatchPush>();
  push->payloads = built.payloads_size();
  auto* wire = new CountedBytes{built.SerializeAsString(), push_live_bytes_};
  *push_live_bytes_ += static_cast<int64_t>(wire->bytes.size());
  grpc::Slice slice(
      wire->bytes.data(), wire->bytes.size(), [](void* p) { delete static_cast<CountedBytes*>(p); },
      wire);
  push->bytes = grpc::ByteBuffer(&slice, 1);
  constexpr size_t kMaxPushes = 256;  // distinct held-version sets kept per manifest
  if (cache && parts.pushes.size() < kMaxPushes) parts.pushes[key] = push;
  return push;
}

grpc::ServerWriteReactor<v1::FetchResponse>* UpdateServiceImpl::Fetch(
    grpc::CallbackServerContext* ctx, const v1::FetchRequest* request) {
  ++fetches_;
  return new FetchReactor(store_->Snapshot(), catalog_, *request, &gate_, &sweeper_, ctx);
}

grpc::ServerUnaryReactor* UpdateServiceImpl::ReportStatus(grpc::CallbackServerContext* context,
                                                          const v1::ReportStatusRequest* request,
                                                          v1::ReportStatusResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AgentKey> key = AgentRegistry::KeyOf(Identity(*context, request->agent_id()));
  absl::Status s = key.status();
  if (s.ok() && !NoteAgent(context->peer(), KeyHash(*key))) s = TooManyAgents();
  if (s.ok()) s = agents_->Report(*key, request->versions(), AgentRegistry::Via::kCall);
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace sigrelay
