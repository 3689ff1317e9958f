#include "relay/upstream_sync.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/base/digest.h"
#include "core/base/grpc_status.h"
#include "core/base/log.h"
#include "core/base/transport.h"
#include "core/base/upstream_resolver.h"
#include "core/client/fetch_client.h"
#include "core/client/manifest_check.h"
#include "core/console/metrics.h"
#include "core/model/component.h"

namespace sigrelay {
namespace {

absl::Status Prefixed(const std::string& upstream, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("upstream ", upstream, ": ", s.message()));
}

absl::StatusOr<std::string> ReadFull(const StoreView& view, const std::string& component,
                                     uint32_t version) {
  absl::StatusOr<v1::FileRecord> record = view.Full(component, version);
  if (!record.ok()) return record.status();
  return view.ReadAll(*record);
}

// One partial download per component at most; its record's sha256 names the
// file it is part of, so a partial of a superseded version is dropped.
std::string PartialName(const v1::ComponentEntry& e) { return e.name(); }

}  // namespace

UpstreamSync::UpstreamSync(VersionStore* store, const ManifestVerifier* verifier,
                           const Clock* clock, UpstreamDialer* dialer, UpstreamSyncOptions options)
    : store_(store),
      verifier_(verifier),
      clock_(clock),
      dialer_(dialer),
      options_(std::move(options)),
      codec_(options_.zstd_level) {
  absl::MutexLock lock(&mu_);
  for (const std::string& u : dialer_->upstreams()) {
    v1::UpstreamStatus* us = status_.add_upstreams();
    us->set_address(u);
    us->set_state("unknown");
  }
}

// "upstream 127.0.0.1:7443 GetManifest: UNAVAILABLE: failed to connect ..."
absl::Status UpstreamSync::UpstreamError(const std::string& upstream, const absl::Status& s,
                                         absl::string_view doing) const {
  const std::string msg(s.message());
  const std::string proxy = dialer_->ProxyFor(upstream);
  if (std::optional<absl::Status> refused = ProxyRefusal(msg, proxy)) {
    return absl::Status(refused->code(),
                        absl::StrCat("upstream ", upstream, " ", doing, ": ", refused->message()));
  }
  std::string via = proxy.empty() ? "" : absl::StrCat(" (through proxy ", ProxyDisplay(proxy), ")");
  return absl::Status(
      s.code(), absl::StrCat("upstream ", upstream, via, " ", doing, ": ",
                             GrpcCodeName(static_cast<grpc::StatusCode>(s.code())), ": ", msg));
}

void UpstreamSync::NoteWatch(size_t i, const absl::Status& s) {
  Record(i, s.ok() ? s
                   : absl::Status(s.code(), absl::StrCat("upstream ", dialer_->upstreams()[i],
                                                         " watch: ", s.message())));
}

void UpstreamSync::Record(size_t i, const absl::Status& s) {
  absl::MutexLock lock(&mu_);
  v1::UpstreamStatus* us = status_.mutable_upstreams(static_cast<int>(i));
  if (s.ok()) {
    us->set_state("ok");
    us->clear_last_error();
    return;
  }
  us->set_state(s.code() == absl::StatusCode::kUnavailable ||
                        s.code() == absl::StatusCode::kDeadlineExceeded
                    ? "unreachable"
                    : "refused");
  us->set_last_error(std::string(s.message()));
}

absl::StatusOr<bool> UpstreamSync::WorthSyncing(const v1::SignedManifest& announced) const {
  std::shared_ptr<const v1::SignedManifest> held = store_->CurrentManifest();
  // Cheap checks before the signature: an announcement that is not newer
  // than what is held costs a parse, not a verification.
  if (held != nullptr) {
    v1::Manifest claimed;
    absl::StatusOr<v1::Manifest> have = ParseTrustedManifest(*held);
    if (!claimed.ParseFromString(announced.manifest())) {
      return absl::InvalidArgumentError("announcement is not a manifest");
    }
    if (have.ok() && claimed.serial() <= have->serial() && !verifier_->OffersNewerRoot(announced)) {
      return false;
    }
  }
  absl::StatusOr<OfferedManifest> offer =
      CheckOfferedManifest(*verifier_, announced, held.get(), clock_->Now());
  if (!offer.ok()) return offer.status();
  return offer->newer;
}

void UpstreamSync::FillStatus(v1::RelayStatus* status) const {
  absl::MutexLock lock(&mu_);
  status->MergeFrom(status_);
}

namespace {

// Why a sync failed, as /metrics counts it.
std::string FailureReason(const absl::Status& s) {
  if (IsManifestConflict(s)) return "conflict";
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return "unreachable";
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return "refused";
    case absl::StatusCode::kDataLoss:
      return "corrupt";
    case absl::StatusCode::kResourceExhausted:
      return "busy";
    default:
      return "other";
  }
}

}  // namespace

void UpstreamSync::ExpectBytes(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  status_.set_sync_bytes_total(status_.sync_bytes_total() + bytes);
}

absl::StatusOr<v1::SyncNowResponse> UpstreamSync::SyncOnce() {
  const absl::Time start = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    status_.set_sync_running(true);
    status_.set_sync_bytes_done(0);
    status_.set_sync_bytes_total(0);
  }
  absl::StatusOr<v1::SyncNowResponse> r = SyncEachUpstream();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  absl::MutexLock lock(&mu_);
  status_.set_sync_running(false);
  if (status_.sync_seconds_counts_size() != kSyncSecondsBuckets) {
    status_.mutable_sync_seconds_counts()->Resize(kSyncSecondsBuckets, 0);
  }
  int bucket = 0;
  while (bucket < kSyncSecondsBuckets - 1 && seconds > kSyncSecondsBounds[bucket]) ++bucket;
  status_.set_sync_seconds_counts(bucket, status_.sync_seconds_counts(bucket) + 1);
  status_.set_sync_seconds_sum(status_.sync_seconds_sum() + seconds);
  return r;
}

absl::StatusOr<v1::SyncNowResponse> UpstreamSync::SyncEachUpstream() {
  absl::Status last = absl::FailedPreconditionError("no upstream configured");
  for (size_t i = 0; i < dialer_->upstreams().size(); ++i) {
    absl::StatusOr<v1::SyncNowResponse> r = SyncFrom(i);
    Record(i, r.status());
    absl::MutexLock lock(&mu_);
    if (r.ok()) {
      status_.set_upstream_in_use(dialer_->upstreams()[i]);
      status_.set_last_success_unix(absl::ToUnixSeconds(clock_->Now()));
      status_.set_syncs_ok(status_.syncs_ok() + 1);
      status_.clear_last_error();
      return r;
    }
    const std::string reason = FailureReason(r.status());
    (*status_.mutable_syncs_failed_by_reason())[reason]++;
    Log(LogLevel::kWarning, absl::StrCat("sync: ", r.status().message()),
        {{"event", "sync_failed"},
         {"upstream", dialer_->upstreams()[i]},
         {"reason", reason},
         {"error", std::string(r.status().message())}});
    last = r.status();
  }
  absl::MutexLock lock(&mu_);
  status_.set_syncs_failed(status_.syncs_failed() + 1);
  status_.set_last_error(std::string(last.message()));
  return last;
}

absl::StatusOr<std::string> UpstreamSync::FetchIncremental(
    v1::UpdateService::Stub* stub, const std::string& upstream, const v1::ComponentEntry& entry,
    const v1::IncrementalEntry& signed_entry) {
  v1::FetchRequest req;
  req.set_component(entry.name());
  req.set_have_version(signed_entry.from_version());
  req.set_want_version(entry.version());
  absl::StatusOr<FetchedBody> body =
      FetchToMemory(stub, req, ExpectedBody::Incremental(entry, signed_entry),
                    absl::Now() + options_.max_download_time, options_.stall_timeout);
  if (!body.ok()) {
    return UpstreamError(upstream, body.status(), absl::StrCat("fetching ", entry.name()));
  }
  {
    absl::MutexLock lock(&mu_);
    status_.set_bytes_incremental(status_.bytes_incremental() + body->data.size());
    status_.set_sync_bytes_done(status_.sync_bytes_done() + body->data.size());
  }
  return std::move(body->data);
}

absl::StatusOr<v1::FileRecord> UpstreamSync::FetchFull(
    v1::UpdateService::Stub* stub, const std::string& upstream, const v1::ComponentEntry& entry,
    std::unique_ptr<VersionStore::FileWriter>* writer) {
  const std::string partial_name = PartialName(entry);
  absl::StatusOr<std::optional<v1::FileRecord>> partial = store_->LoadPartial(partial_name);
  if (!partial.ok()) {
    Log(LogLevel::kWarning, absl::StrCat("cannot read the partial download of ", entry.name(), " (",
                                         partial.status().message(), "); starting over"));
  } else if (partial->has_value() && (*partial)->sha256() != entry.sha256()) {
    // A leftover of a superseded version: start over.
    if (absl::Status dropped = store_->DropPartial(partial_name); !dropped.ok()) {
      Log(LogLevel::kWarning, absl::StrCat("cannot drop the partial download of ", entry.name(),
                                           ": ", dropped.message()));
    }
    partial = std::nullopt;
  }
  if (partial.ok() && partial->has_value()) {
    absl::StatusOr<std::unique_ptr<VersionStore::FileWriter>> resumed =
        store_->ResumeFileWriter(**partial);
    if (resumed.ok()) {
      *writer = std::move(*resumed);
      Log(LogLevel::kInfo, absl::StrCat("resuming ", entry.name(), " ", entry.version(),
                                        " at byte ", (*partial)->size()));
    } else {
      Log(LogLevel::kWarning,
          absl::StrCat("cannot resume ", entry.name(), ": ", resumed.status().message()));
    }
  }
  if (*writer == nullptr) *writer = store_->NewFileWriter();
  uint64_t offset = (*writer)->Flushed().size();
  // With signed chunks, only whole signed chunks are kept: a resume starts
  // on a signed chunk boundary (the partial cut back to one when the store's
  // chunks are smaller; dropped when the two sizes do not line up).
  const bool signed_chunks = entry.chunk_size() > 0 && entry.chunk_sha256_size() > 0;
  if (signed_chunks && offset % entry.chunk_size() != 0) {
    v1::FileRecord cut = (*writer)->Flushed();
    const uint64_t aligned = offset - offset % entry.chunk_size();
    absl::StatusOr<std::unique_ptr<VersionStore::FileWriter>> resumed =
        absl::FailedPreconditionError("chunk sizes do not line up");
    if (cut.chunk_size() > 0 && aligned % cut.chunk_size() == 0) {
      cut.set_size(aligned);
      const int keep = static_cast<int>(aligned / cut.chunk_size());
      cut.mutable_chunks()->DeleteSubrange(keep, cut.chunks_size() - keep);
      resumed = store_->ResumeFileWriter(cut);
    }
    *writer = resumed.ok() ? std::move(*resumed) : store_->NewFileWriter();
    offset = (*writer)->Flushed().size();
  }
  std::optional<SignedChunks> chunks;
  if (signed_chunks) chunks.emplace(ExpectedBody::Full(entry), offset);

  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.max_download_time));
  StallWatch watch(&ctx, options_.stall_timeout);
  v1::FetchRequest req;
  req.set_component(entry.name());
  req.set_want_version(entry.version());
  req.set_offset(offset);
  auto reader = stub->Fetch(&ctx, req);
  // Every message is checked (and each whole chunk against its digest)
  // before it is kept, so a resume starts from verified bytes only.
  FetchStreamCheck check(ExpectedBody::Full(entry), offset);
  v1::FetchResponse msg;
  int saved_chunks = (*writer)->Flushed().chunks_size();
  absl::Status problem;
  while (problem.ok() && reader->Read(&msg)) {
    watch.Progress();
    absl::StatusOr<absl::string_view> data = check.Take(msg);
    if (!data.ok()) {
      problem = data.status();
      continue;
    }
    absl::StatusOr<std::string> verified;
    if (chunks.has_value()) {
      verified = chunks->Add(*data);
      if (!verified.ok()) {
        problem = verified.status();
        continue;
      }
      data = absl::string_view(*verified);
    }
    if (data->empty()) continue;
    problem = (*writer)->Append(*data);
    {
      absl::MutexLock lock(&mu_);
      status_.set_bytes_full(status_.bytes_full() + data->size());
      status_.set_sync_bytes_done(status_.sync_bytes_done() + data->size());
    }
    v1::FileRecord flushed = (*writer)->Flushed();
    flushed.set_sha256(entry.sha256());
    if (problem.ok() && flushed.chunks_size() > saved_chunks) {
      saved_chunks = flushed.chunks_size();
      problem = store_->SavePartial(partial_name, flushed);
    }
  }
  if (!problem.ok()) {
    ctx.TryCancel();
    grpc::Status ignored = reader->Finish();  // refused either way; `problem` says why
    (void)ignored;
    return Prefixed(upstream, problem);
  }
  absl::Status s = FromGrpcStatus(reader->Finish());
  if (watch.fired()) s = StalledError(watch, check.received());
  if (s.ok()) s = check.Finish();
  if (!s.ok()) {
    return UpstreamError(upstream, s,
                         absl::StrCat("downloading ", entry.name(), " ", entry.version(), " (",
                                      check.received(), " of ", entry.size(), " bytes kept)"));
  }
  absl::StatusOr<v1::FileRecord> record = (*writer)->Finish();
  if (!record.ok()) return record.status();
  if (record->size() != entry.size() || record->sha256() != entry.sha256()) {
    // The download is refused either way; a partial left behind is
    // replaced by the next attempt's.
    if (absl::Status dropped = store_->DropPartial(partial_name); !dropped.ok()) {
      Log(LogLevel::kWarning, absl::StrCat("cannot drop the partial download of ", entry.name(),
                                           ": ", dropped.message()));
    }
    return Prefixed(upstream, absl::DataLossError(
                                  absl::StrCat(entry.name(), " ", entry.version(),
                                               " as downloaded does not match its signed digest; "
                                               "discarded, the next sync starts over")));
  }
  return record;
}

absl::StatusOr<v1::FileRecord> UpstreamSync::Put(
    absl::string_view bytes, std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers) {
  writers->push_back(store_->NewFileWriter());
  absl::Status s = writers->back()->Append(bytes);
  if (!s.ok()) return s;
  return writers->back()->Finish();
}

absl::StatusOr<v1::SyncNowResponse> UpstreamSync::SyncFrom(size_t i) {
  const std::string& upstream = dialer_->upstreams()[i];
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = dialer_->Channel(i);
  if (!channel.ok()) return channel.status();
  auto stub = v1::UpdateService::NewStub(*channel);
  v1::SignedManifest signed_manifest;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
    grpc::Status s = stub->GetManifest(&ctx, v1::GetManifestRequest(), &signed_manifest);
    if (!s.ok()) return UpstreamError(upstream, FromGrpcStatus(s), "GetManifest");
  }
  std::shared_ptr<const StoreView> view = store_->Snapshot();
  absl::StatusOr<OfferedManifest> offer = CheckOfferedManifest(
      *verifier_, signed_manifest, view->manifest() ? &*view->manifest() : nullptr, clock_->Now());
  if (!offer.ok()) {
    if (IsManifestConflict(offer.status())) {
      // Not a transfer failure: someone signs conflicting content.
      Log(LogLevel::kError,
          absl::StrCat("CONFLICT from upstream ", upstream, ": ", offer.status().message()),
          {{"event", "conflict"},
           {"upstream", upstream},
           {"error", std::string(offer.status().message())}});
      absl::MutexLock lock(&mu_);
      status_.set_conflicts(status_.conflicts() + 1);
      status_.set_last_conflict(absl::StrCat(upstream, ": ", offer.status().message()));
    }
    return Prefixed(upstream, offer.status());
  }
  if (offer->floor_reset) {
    Log(LogLevel::kWarning,
        absl::StrCat("upstream ", upstream, ": trust root v", verifier_->root_version(),
                     " no longer holds the key that signed serial ", offer->held->serial(),
                     " held here; taking serial ", offer->manifest.serial(), " signed by it"));
  }
  const v1::Manifest* manifest = &offer->manifest;
  const std::optional<v1::Manifest>& held = offer->held;
  v1::SyncNowResponse response;
  response.set_upstream(upstream);
  response.set_manifest_serial(manifest->serial());
  // Components this relay cannot take are skipped, said so, and the others
  // still taken; one missing that fits now (a raised limit) is taken even
  // from a manifest already held.
  std::set<std::string> skip;
  bool missing = false;
  for (const v1::ComponentEntry& e : manifest->components()) {
    // Any component the origin signed is carried, known here or not.
    if (absl::Status name = ValidateComponentName(e.name()); !name.ok()) {
      return Prefixed(upstream, name);
    }
    if (e.size() > options_.max_file_size) {
      skip.insert(e.name());
      response.add_skipped(absl::StrCat(e.name(), " ", e.version(), ": ", e.size(),
                                        " bytes, over this relay's --max-file-size of ",
                                        options_.max_file_size));
    } else if (!view->Full(e.name(), e.version()).ok()) {
      missing = true;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    *status_.mutable_skipped() = response.skipped();
  }
  for (const std::string& why : response.skipped()) {
    Log(LogLevel::kWarning,
        absl::StrCat("upstream ", upstream, ": skipping ", why, "; raise the limit to carry it"));
  }
  if (!offer->newer && ManifestFreshness(*manifest, clock_->Now()) == "stale") {
    // A frozen mirror or an upstream cut off from the origin: another
    // upstream may have a fresher one (the store keeps serving meanwhile).
    return Prefixed(
        upstream,
        absl::FailedPreconditionError(absl::StrCat(
            "offers only a stale manifest (serial ", manifest->serial(), ", issued ",
            absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixSeconds(manifest->issued_unix()),
                             absl::UTCTimeZone()),
            ", re-signed every ", manifest->resign_seconds(),
            "s): is the origin running? trying the other upstreams")));
  }
  if (!offer->newer && !missing) return response;  // current

  std::vector<std::unique_ptr<VersionStore::FileWriter>> writers;
  std::vector<VersionStore::ComponentCommit> commits;
  std::vector<std::string> partials;
  for (const v1::ComponentEntry& e : manifest->components()) {
    if (skip.count(e.name())) continue;
    const v1::ComponentEntry* old_entry = held ? FindEntry(*held, e.name()) : nullptr;
    if (old_entry != nullptr && old_entry->version() == e.version() &&
        old_entry->sha256() == e.sha256() && view->Full(e.name(), e.version()).ok()) {
      continue;  // unchanged; its stored files stay as they are
    }
    {
      // What this one should take: its incremental when one reaches it
      // from here, else the whole file (an estimate for the progress bar).
      uint64_t expect = e.size();
      for (const v1::IncrementalEntry& ie : e.incrementals()) {
        if (old_entry != nullptr && ie.from_version() == old_entry->version()) expect = ie.size();
      }
      ExpectBytes(expect);
    }
    v1::ComponentUpdate* update = response.add_updated();
    update->set_component(e.name());
    update->set_version(e.version());
    const std::vector<uint32_t> fulls = view->FullVersions(e.name());
    auto holds = [&](uint32_t v) {
      return std::find(fulls.begin(), fulls.end(), v) != fulls.end();
    };

    // The new full version: rebuilt from an incremental when one reaches it
    // from the version held here, else downloaded whole.
    std::optional<std::string> content;
    std::map<uint32_t, std::string> incrementals;  // from -> bytes, signed digest checked
    std::unique_ptr<VersionStore::FileWriter> full_writer;
    if (old_entry != nullptr && holds(old_entry->version())) {
      update->set_from_version(old_entry->version());
      for (const v1::IncrementalEntry& ie : e.incrementals()) {
        if (ie.from_version() != old_entry->version()) continue;
        absl::StatusOr<std::string> incr = FetchIncremental(stub.get(), upstream, e, ie);
        absl::StatusOr<std::string> rebuilt = absl::UnknownError("not rebuilt");
        if (!incr.ok()) {
          rebuilt = incr.status();
        } else {
          absl::StatusOr<std::string> old = ReadFull(*view, e.name(), ie.from_version());
          rebuilt = old.ok() ? ApplyVerified(codec_, *old, *incr, e) : old.status();
        }
        if (rebuilt.ok()) {
          content = std::move(*rebuilt);
          incrementals[ie.from_version()] = std::move(*incr);
          update->set_how("incremental");
          update->set_bytes(ie.size());
        } else {
          Log(LogLevel::kWarning,
              absl::StrCat("upstream ", upstream, ": incremental ", e.name(), " v_",
                           ie.from_version(), ".", e.version(), " failed (",
                           rebuilt.status().message(), "); downloading the full file"));
        }
      }
    }
    VersionStore::ComponentCommit commit;
    commit.component = e.name();
    commit.version = e.version();
    if (content) {
      absl::StatusOr<v1::FileRecord> r = Put(*content, &writers);
      if (!r.ok()) return r.status();
      commit.full = *r;
    } else {
      absl::StatusOr<v1::FileRecord> r = FetchFull(stub.get(), upstream, e, &full_writer);
      if (!r.ok()) return r.status();
      commit.full = *r;
      writers.push_back(std::move(full_writer));
      partials.push_back(PartialName(e));
      update->set_how("full");
      update->set_bytes(e.size());
    }

    // Every incremental the manifest names, so agents at any retained
    // version take only what they lack. Made here from a retained full
    // version when that reproduces the signed bytes (same codec and level as
    // the origin: no bytes on the wire), else fetched, so a relay serves
    // exactly what its upstream serves.
    commit.retained.push_back(e.version());
    std::vector<const v1::IncrementalEntry*> to_make;
    for (const v1::IncrementalEntry& ie : e.incrementals()) {
      if (!holds(ie.from_version())) continue;
      commit.retained.push_back(ie.from_version());
      if (!incrementals.count(ie.from_version())) to_make.push_back(&ie);
    }
    if (!to_make.empty() && !content) {
      absl::StatusOr<std::string> all = store_->Snapshot()->ReadAll(commit.full);
      if (!all.ok()) return all.status();
      content = std::move(*all);
    }
    // Encoding is the slow part of a hop: EncodeEach spreads it over the
    // cores. A result that is not the signed bytes is fetched below instead.
    std::vector<absl::StatusOr<std::string>> made = codec_.EncodeEach(
        to_make.size(),
        [&](size_t k) { return ReadFull(*view, e.name(), to_make[k]->from_version()); }, *content,
        /*verify=*/false);
    for (size_t k = 0; k < to_make.size(); ++k) {
      if (made[k].ok() && Sha256::Of(*made[k]) == to_make[k]->sha256()) {
        incrementals[to_make[k]->from_version()] = std::move(*made[k]);
      }
    }
    for (const v1::IncrementalEntry& ie : e.incrementals()) {
      auto it = incrementals.find(ie.from_version());
      if (it == incrementals.end()) {
        absl::StatusOr<std::string> fetched = FetchIncremental(stub.get(), upstream, e, ie);
        if (!fetched.ok()) return fetched.status();
        it = incrementals.emplace(ie.from_version(), std::move(*fetched)).first;
      }
      absl::StatusOr<v1::FileRecord> r = Put(it->second, &writers);
      if (!r.ok()) return r.status();
      commit.incrementals.emplace_back(ie.from_version(), *r);
    }
    commits.push_back(std::move(commit));
  }
  absl::Status committed = store_->Commit(commits, signed_manifest);
  if (!committed.ok()) return committed;
  for (const std::string& p : partials) {
    absl::Status s = store_->DropPartial(p);
    if (!s.ok())
      Log(LogLevel::kWarning, absl::StrCat("cannot drop partial ", p, ": ", s.message()));
  }
  for (const v1::ComponentUpdate& u : response.updated()) {
    Log(LogLevel::kInfo,
        absl::StrCat("synced ", u.component(), " ", u.version(), " from ", upstream, " by ",
                     u.how(), " (", u.bytes(), " bytes)"),
        {{"event", "sync"},
         {"component", u.component()},
         {"version", absl::StrCat(u.version())},
         {"from_version", absl::StrCat(u.from_version())},
         {"how", u.how()},
         {"bytes", absl::StrCat(u.bytes())},
         {"upstream", upstream}});
  }
  absl::MutexLock lock(&mu_);
  for (const v1::ComponentUpdate& u : response.updated()) {
    const v1::ComponentEntry* e = FindEntry(*manifest, u.component());
    if (u.how() == "incremental" && e != nullptr && e->size() > u.bytes()) {
      status_.set_bytes_saved(status_.bytes_saved() + e->size() - u.bytes());
    }
    auto* last = status_.mutable_last_updates();
    auto it = std::find_if(last->begin(), last->end(), [&](const v1::ComponentUpdate& x) {
      return x.component() == u.component();
    });
    if (it == last->end()) {
      *last->Add() = u;
    } else {
      *it = u;
    }
  }
  return response;
}

}  // namespace sigrelay
