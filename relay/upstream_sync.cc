#include "relay/upstream_sync.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/grpc_status.h"
#include "core/base/log.h"
#include "core/base/mapped_file.h"
#include "core/base/transport.h"
#include "core/client/grpc_source.h"
#include "core/client/rebuild.h"
#include "core/client/tree.h"
#include "core/console/metrics.h"
#include "core/model/component.h"

namespace sigrelay {
namespace {

absl::Status Prefixed(const std::string& upstream, const absl::Status& s) {
  absl::Status out(s.code(), absl::StrCat("upstream ", upstream, ": ", s.message()));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
  return out;
}

// One partial download per component at most; its record's sha256 names the
// file it is part of, so a partial of a superseded version is dropped.
std::string PartialName(const v1::ComponentEntry& e) { return e.name(); }

// Why a sync failed, as /metrics counts it.
std::string FailureReason(const absl::Status& s) {
  if (IsManifestConflict(s)) return "conflict";
  if (IsTransferCut(s)) return "cut";
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return "unreachable";
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
      return "refused";
    case absl::StatusCode::kDataLoss:
      return "corrupt";
    case absl::StatusCode::kResourceExhausted:
      return "busy";
    case absl::StatusCode::kCancelled:
      return "stopped";
    default:
      return "other";
  }
}

// Whether a failed fetch is this upstream's fault about that one file (a
// corrupt or missing body): the rest of the sync may go on without it. Not
// so for a link that is down, cut or stopping: the next upstream then.
bool UpstreamsFault(const absl::Status& s) {
  if (IsTransferCut(s)) return false;
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return false;
    default:
      return true;
  }
}

// Writes into a store file and keeps the partial download record current
// as whole chunks land, so a cut download resumes from there.
class PartialSink final : public ByteSink {
 public:
  PartialSink(VersionStore* store, std::string name, std::string sha256,
              VersionStore::FileWriter* writer)
      : store_(store),
        name_(std::move(name)),
        sha256_(std::move(sha256)),
        writer_(writer),
        saved_(writer->Flushed().chunks_size()) {}
  absl::Status Write(absl::string_view data) override {
    if (absl::Status s = writer_->Append(data); !s.ok()) return s;
    v1::FileRecord flushed = writer_->Flushed();
    if (flushed.chunks_size() <= saved_) return absl::OkStatus();
    saved_ = flushed.chunks_size();
    flushed.set_sha256(sha256_);
    return store_->SavePartial(name_, flushed);
  }

 private:
  VersionStore* const store_;
  const std::string name_;
  const std::string sha256_;
  VersionStore::FileWriter* const writer_;
  int saved_;
};

// Counts bytes into the sync's progress as they pass.
class CountingSink final : public ByteSink {
 public:
  CountingSink(std::function<void(uint64_t)> count, ByteSink* next)
      : count_(std::move(count)), next_(next) {}
  absl::Status Write(absl::string_view data) override {
    count_(data.size());
    return next_->Write(data);
  }

 private:
  const std::function<void(uint64_t)> count_;
  ByteSink* const next_;
};

}  // namespace

UpstreamSync::UpstreamSync(VersionStore* store, const ManifestVerifier* verifier,
                           const Clock* clock, UpstreamDialer* dialer, UpstreamSyncOptions options)
    : store_(store),
      verifier_(verifier),
      clock_(clock),
      dialer_(dialer),
      options_(std::move(options)) {
  for (size_t i = 0; i < dialer_->upstreams().size(); ++i) {
    const std::string& u = dialer_->upstreams()[i];
    names_.push_back(u);
    if (IsTreeUrl(u)) {
      // Checked at start (relay/main.cc): a well-formed tree URL.
      sources_.push_back(*OpenTreeSource(u, {.proxy = [this, u] { return dialer_->ProxyFor(u); },
                                             .tls_ca = options_.tree_tls_ca}));
      continue;
    }
    sources_.push_back(std::make_unique<GrpcSource>(
        u, [this, i] { return dialer_->Channel(i); }, options_.rpc_timeout));
  }
  absl::MutexLock lock(&mu_);
  cuts_in_a_row_.assign(sources_.size(), 0);
  demoted_until_.assign(sources_.size(), absl::InfinitePast());
  for (const std::string& u : dialer_->upstreams()) {
    v1::UpstreamStatus* us = status_.add_upstreams();
    us->set_address(u);
    us->set_state("unknown");
  }
}

// "upstream 127.0.0.1:7443 GetManifest: UNAVAILABLE: failed to connect ..."
absl::Status UpstreamSync::UpstreamError(size_t i, const absl::Status& s,
                                         absl::string_view doing) const {
  const std::string& upstream = names_[i];
  const std::string msg(s.message());
  const std::string proxy = dialer_->ProxyFor(upstream);
  absl::Status out;
  if (std::optional<absl::Status> refused = ProxyRefusal(msg, proxy)) {
    out = absl::Status(refused->code(),
                       absl::StrCat("upstream ", upstream, " ", doing, ": ", refused->message()));
  } else {
    std::string via =
        proxy.empty() ? "" : absl::StrCat(" (through proxy ", ProxyDisplay(proxy), ")");
    out = absl::Status(
        s.code(), absl::StrCat("upstream ", upstream, via, " ", doing, ": ",
                               GrpcCodeName(static_cast<grpc::StatusCode>(s.code())), ": ", msg));
  }
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
  return out;
}

void UpstreamSync::NoteWatch(size_t i, const absl::Status& s) {
  Record(i, s.ok() ? s
                   : absl::Status(s.code(),
                                  absl::StrCat("upstream ", names_[i], " watch: ", s.message())));
}

void UpstreamSync::Record(size_t i, const absl::Status& s) {
  absl::MutexLock lock(&mu_);
  if (i >= static_cast<size_t>(status_.upstreams_size())) return;  // an import
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

void UpstreamSync::ExpectBytes(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  status_.set_sync_bytes_total(status_.sync_bytes_total() + bytes);
}

void UpstreamSync::CountBytes(bool incremental, uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (incremental) {
    status_.set_bytes_incremental(status_.bytes_incremental() + bytes);
  } else {
    status_.set_bytes_full(status_.bytes_full() + bytes);
  }
  status_.set_sync_bytes_done(status_.sync_bytes_done() + bytes);
}

TransferLimits UpstreamSync::Limits() const {
  TransferLimits limits = options_.transfer;
  limits.deadline = absl::Now() + options_.max_download_time;
  return limits;
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

std::vector<size_t> UpstreamSync::Order() const {
  // In list order; those cut lately after the others, longest-demoted last.
  const absl::Time now = clock_->Now();
  std::vector<size_t> order(sources_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  absl::MutexLock lock(&mu_);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const absl::Time da = demoted_until_[a] > now ? demoted_until_[a] : absl::InfinitePast();
    const absl::Time db = demoted_until_[b] > now ? demoted_until_[b] : absl::InfinitePast();
    return da < db;
  });
  return order;
}

absl::StatusOr<v1::SyncNowResponse> UpstreamSync::SyncEachUpstream() {
  absl::Status last = absl::FailedPreconditionError("no upstream configured");
  for (size_t i : Order()) {
    absl::StatusOr<v1::SyncNowResponse> r = SyncFrom(i);
    Record(i, r.status());
    const std::string& upstream = names_[i];
    absl::MutexLock lock(&mu_);
    v1::UpstreamStatus* us = status_.mutable_upstreams(static_cast<int>(i));
    if (r.ok()) {
      cuts_in_a_row_[i] = 0;
      demoted_until_[i] = absl::InfinitePast();
      us->set_demoted_until_unix(0);
      status_.set_upstream_in_use(upstream);
      status_.set_last_success_unix(absl::ToUnixSeconds(clock_->Now()));
      status_.set_syncs_ok(status_.syncs_ok() + 1);
      status_.clear_last_error();
      return r;
    }
    const std::string reason = FailureReason(r.status());
    (*status_.mutable_syncs_failed_by_reason())[reason]++;
    if (IsTransferCut(r.status())) {
      // A dribbling or silent upstream goes to the back, for longer each
      // time in a row; its verified bytes stay for the next upstream.
      absl::Duration wait = options_.cut_backoff;
      for (int k = 0; k < cuts_in_a_row_[i] && wait < options_.cut_backoff_max; ++k) wait *= 2;
      wait = std::min(wait, options_.cut_backoff_max);
      ++cuts_in_a_row_[i];
      demoted_until_[i] = clock_->Now() + wait;
      us->set_cuts(us->cuts() + 1);
      us->set_last_cut(std::string(r.status().message()));
      us->set_demoted_until_unix(absl::ToUnixSeconds(demoted_until_[i]));
      Log(LogLevel::kWarning,
          absl::StrCat("sync: ", r.status().message(), "; ", upstream, " is tried after the ",
                       "other upstreams for ", absl::FormatDuration(wait)),
          {{"event", "upstream_cut"},
           {"upstream", upstream},
           {"error", std::string(r.status().message())}});
    } else {
      Log(LogLevel::kWarning, absl::StrCat("sync: ", r.status().message()),
          {{"event", "sync_failed"},
           {"upstream", upstream},
           {"reason", reason},
           {"error", std::string(r.status().message())}});
    }
    last = r.status();
    if (r.status().code() == absl::StatusCode::kCancelled) break;  // stopping
  }
  absl::MutexLock lock(&mu_);
  status_.set_syncs_failed(status_.syncs_failed() + 1);
  status_.set_last_error(std::string(last.message()));
  return last;
}

absl::StatusOr<v1::SyncNowResponse> UpstreamSync::ImportTree(const std::string& dir) {
  const std::string url = absl::StrCat("file://", dir);
  absl::StatusOr<std::unique_ptr<UpdateSource>> source = OpenTreeSource(url);
  if (!source.ok()) return source.status();
  // For this one sync, a source past the upstreams.
  sources_.push_back(std::move(*source));
  names_.push_back(url);
  absl::StatusOr<v1::SyncNowResponse> r = SyncFrom(sources_.size() - 1);
  sources_.pop_back();
  names_.pop_back();
  Log(r.ok() ? LogLevel::kInfo : LogLevel::kWarning,
      r.ok() ? absl::StrCat("imported ", url, ": serial ", r->manifest_serial(), ", ",
                            r->updated_size(), " components updated")
             : absl::StrCat("import: ", r.status().message()),
      {{"event", r.ok() ? "import" : "import_failed"}, {"tree", url}});
  if (r.ok()) {
    absl::MutexLock lock(&mu_);
    status_.set_last_success_unix(absl::ToUnixSeconds(clock_->Now()));
  }
  return r;
}

absl::StatusOr<OfferedManifest> UpstreamSync::TakeOffer(size_t i, const v1::SignedManifest& offered,
                                                        const StoreView& view) {
  const std::string& upstream = names_[i];
  absl::StatusOr<OfferedManifest> offer = CheckOfferedManifest(
      *verifier_, offered, view.manifest() ? &*view.manifest() : nullptr, clock_->Now());
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
  if (!offer->newer && ManifestFreshness(offer->manifest, clock_->Now()) == "stale") {
    // A frozen mirror or an upstream cut off from the origin: another
    // upstream may have a fresher one (the store keeps serving meanwhile).
    const v1::Manifest& m = offer->manifest;
    return Prefixed(
        upstream, absl::FailedPreconditionError(absl::StrCat(
                      "offers only a stale manifest (serial ", m.serial(), ", issued ",
                      absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixSeconds(m.issued_unix()),
                                       absl::UTCTimeZone()),
                      ", re-signed every ", m.resign_seconds(),
                      "s): is the origin running? trying the other upstreams")));
  }
  return offer;
}

absl::StatusOr<v1::FileRecord> UpstreamSync::FetchToStore(
    size_t i, const ExpectedBody& want,
    std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers) {
  writers->push_back(store_->NewFileWriter());
  VersionStore::FileWriter* writer = writers->back().get();
  const bool incremental = want.kind == v1::PAYLOAD_KIND_INCREMENTAL;
  CountingSink counted([this, incremental](uint64_t n) { CountBytes(incremental, n); }, writer);
  absl::Status s = sources_[i]->Fetch(want, 0, Limits(), &counted);
  if (!s.ok()) return UpstreamError(i, s, absl::StrCat("fetching ", want.Describe()));
  absl::StatusOr<v1::FileRecord> record = writer->Finish();
  if (!record.ok()) return record.status();
  if (record->sha256() != want.sha256) {
    return Prefixed(names_[i],
                    absl::DataLossError(absl::StrCat(
                        want.Describe(), " as stored does not match its signed digest")));
  }
  return record;
}

absl::StatusOr<v1::FileRecord> UpstreamSync::Rebuild(
    const v1::ComponentEntry& entry, const v1::FileRecord& old, const v1::FileRecord& incremental,
    const StoreView& view, std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers) {
  // The codec needs both inputs whole and in place: copied out of the
  // store to mapped files, never held in memory.
  absl::StatusOr<std::unique_ptr<MappedFile>> old_file =
      CopyOutMapped(view, old, options_.work_dir, entry.name() + ".old");
  if (!old_file.ok()) return old_file.status();
  // Written by this sync, after `view` was taken.
  absl::StatusOr<std::unique_ptr<MappedFile>> incr_file =
      CopyOutMapped(*store_->Snapshot(), incremental, options_.work_dir, entry.name() + ".incr");
  if (!incr_file.ok()) return incr_file.status();
  absl::StatusOr<uint64_t> size = IncrementalCodec::DecodedSize((*incr_file)->view(), entry.size());
  if (!size.ok()) return size.status();
  if (*size != entry.size()) {
    return absl::DataLossError(absl::StrCat("the incremental decodes to ", *size,
                                            " bytes where the signed file has ", entry.size()));
  }
  absl::StatusOr<std::unique_ptr<StagedFile>> out =
      StagedFile::Create(options_.work_dir + "/" + entry.name() + ".new", 0600);
  if (!out.ok()) return out.status();
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped =
      MappedFile::Writable((*out)->fd(), (*out)->temp_path(), *size);
  if (!mapped.ok()) return mapped.status();
  writers->push_back(store_->NewFileWriter());
  VersionStore::FileWriter* writer = writers->back().get();
  absl::Status decoded = DecodeAndConsume(
      codec_, **old_file, (*incr_file)->view(), mapped->get(),
      [writer](absl::string_view piece) { return writer->Write(piece); }, {incr_file->get()});
  if (!decoded.ok()) return decoded;
  absl::StatusOr<v1::FileRecord> record = writer->Finish();
  if (!record.ok()) return record.status();
  if (record->size() != entry.size() || record->sha256() != entry.sha256()) {
    return absl::DataLossError(
        absl::StrCat(entry.name(), " ", entry.version(), " does not match its signed digest"));
  }
  return record;
}

absl::StatusOr<v1::FileRecord> UpstreamSync::FetchFull(
    size_t i, const v1::ComponentEntry& entry, std::unique_ptr<VersionStore::FileWriter>* writer) {
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
  const ExpectedBody want = ExpectedBody::Full(entry);
  if (partial.ok() && partial->has_value()) {
    v1::FileRecord kept = **partial;
    // With signed chunks a resume starts on a signed chunk boundary (the
    // partial cut back to one when the store's chunks are smaller; dropped
    // when the two sizes do not line up).
    if (want.signed_chunks() && kept.size() % want.chunk_size != 0 && kept.chunk_size() > 0) {
      const uint64_t aligned = kept.size() / want.chunk_size * want.chunk_size;
      if (aligned % kept.chunk_size() == 0) {
        const int keep = static_cast<int>(aligned / kept.chunk_size());
        kept.set_size(aligned);
        kept.mutable_chunks()->DeleteSubrange(keep, kept.chunks_size() - keep);
      } else {
        kept.set_size(0);
        kept.clear_chunks();
      }
    }
    absl::StatusOr<std::unique_ptr<VersionStore::FileWriter>> resumed =
        store_->ResumeFileWriter(kept);
    if (resumed.ok()) {
      *writer = std::move(*resumed);
      if (kept.size() > 0) {
        Log(LogLevel::kInfo, absl::StrCat("resuming ", entry.name(), " ", entry.version(),
                                          " at byte ", kept.size(), " from upstream ", names_[i]));
      }
    } else {
      Log(LogLevel::kWarning,
          absl::StrCat("cannot resume ", entry.name(), ": ", resumed.status().message()));
    }
  }
  if (*writer == nullptr) *writer = store_->NewFileWriter(VersionStore::Resumable::kYes);
  const uint64_t offset = (*writer)->Flushed().size();
  PartialSink keep_partial(store_, partial_name, entry.sha256(), writer->get());
  CountingSink counted([this](uint64_t n) { CountBytes(false, n); }, &keep_partial);
  absl::Status s = sources_[i]->Fetch(want, offset, Limits(), &counted);
  if (!s.ok()) {
    return UpstreamError(
        i, s,
        absl::StrCat("downloading ", entry.name(), " ", entry.version(), " (",
                     (*writer)->Flushed().size(), " of ", entry.size(), " bytes kept)"));
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
    return Prefixed(names_[i],
                    absl::DataLossError(absl::StrCat(
                        entry.name(), " ", entry.version(),
                        " as downloaded does not match its signed digest; discarded, the next "
                        "sync starts over")));
  }
  return record;
}

absl::StatusOr<UpstreamSync::Fetched> UpstreamSync::FetchComponent(
    size_t i, const v1::ComponentEntry& e, const v1::ComponentEntry* held, const StoreView& view,
    std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers) {
  const std::string& upstream = names_[i];
  Fetched out;
  out.update.set_component(e.name());
  out.update.set_version(e.version());
  out.commit.component = e.name();
  out.commit.version = e.version();
  const std::vector<uint32_t> fulls = view.FullVersions(e.name());
  auto holds = [&](uint32_t v) { return std::find(fulls.begin(), fulls.end(), v) != fulls.end(); };
  std::map<uint32_t, v1::FileRecord> incrementals;  // from -> stored, signed digest checked

  // The new full version: held already (a sync that left incrementals
  // out), rebuilt from the incremental from the version held here when
  // there is one, else downloaded whole.
  std::optional<v1::FileRecord> full;
  if (absl::StatusOr<v1::FileRecord> r = view.Full(e.name(), e.version());
      r.ok() && r->sha256() == e.sha256()) {
    full = *r;
    out.update.set_how("held");
  }
  if (!full && held != nullptr && holds(held->version())) {
    for (const v1::IncrementalEntry& ie : e.incrementals()) {
      if (ie.from_version() != held->version()) continue;
      out.update.set_from_version(held->version());
      absl::StatusOr<v1::FileRecord> incr =
          FetchToStore(i, ExpectedBody::Incremental(e, ie), writers);
      // An upstream that cannot deliver (gone, cut, stopping) is left for
      // the next one; a corrupt or refused incremental falls back to the full file.
      if (!incr.ok() && !UpstreamsFault(incr.status())) return incr.status();
      absl::StatusOr<v1::FileRecord> old = view.Full(e.name(), held->version());
      absl::StatusOr<v1::FileRecord> rebuilt = !incr.ok()  ? incr.status()
                                               : !old.ok() ? old.status()
                                                           : Rebuild(e, *old, *incr, view, writers);
      if (rebuilt.ok()) {
        full = *rebuilt;
        incrementals[ie.from_version()] = *incr;
        out.update.set_how("incremental");
        out.update.set_bytes(ie.size());
      } else {
        Log(LogLevel::kWarning,
            absl::StrCat("upstream ", upstream, ": incremental ", e.name(), " v_",
                         ie.from_version(), ".", e.version(), " failed (",
                         rebuilt.status().message(), "); downloading the full file"));
      }
    }
  }
  if (!full) {
    std::unique_ptr<VersionStore::FileWriter> writer;
    absl::StatusOr<v1::FileRecord> r = FetchFull(i, e, &writer);
    if (!r.ok()) return r.status();
    full = *r;
    writers->push_back(std::move(writer));
    out.resumed_full = true;
    out.update.set_how("full");
    out.update.set_bytes(e.size());
  }
  out.commit.full = *full;

  // Every incremental the manifest names, held or fetched, so agents at any
  // retained version take only what they lack and this relay serves what
  // its upstream serves (making them here would cost a compressor's memory
  // and seconds per hop). One the upstream cannot give intact is left out:
  // agents at that version get the full file, and the next sync tries again.
  out.commit.retained.push_back(e.version());
  // A staged rollout's previous version, whole: what agents of the rings
  // not yet admitted take (a relay that joined during the rollout fetches
  // it).
  if (e.has_rollout() && e.rollout().previous().version() != 0) {
    const v1::ComponentEntry& prev = e.rollout().previous();
    absl::StatusOr<v1::FileRecord> stored = view.Full(e.name(), prev.version());
    absl::StatusOr<v1::FileRecord> r = stored.ok() && stored->sha256() == prev.sha256()
                                           ? stored
                                           : FetchToStore(i, ExpectedBody::Full(prev), writers);
    if (!r.ok() && !UpstreamsFault(r.status())) return r.status();
    if (r.ok()) {
      if (!stored.ok() || stored->sha256() != prev.sha256()) {
        out.commit.older_fulls.emplace_back(prev.version(), *r);
      }
      out.commit.retained.push_back(prev.version());
    } else {
      Log(LogLevel::kWarning,
          absl::StrCat(r.status().message(), "; agents of rings not yet admitted to ", e.name(),
                       " ", e.version(), " cannot take ", prev.version(),
                       " here until the next sync"));
      out.missing.push_back(absl::StrCat(e.name(), " ", prev.version()));
    }
  }
  for (const v1::IncrementalEntry& ie : e.incrementals()) {
    if (holds(ie.from_version())) out.commit.retained.push_back(ie.from_version());
    auto it = incrementals.find(ie.from_version());
    if (it == incrementals.end()) {
      absl::StatusOr<v1::FileRecord> stored =
          view.Incremental(e.name(), ie.from_version(), e.version());
      if (stored.ok() && stored->sha256() == ie.sha256()) {
        it = incrementals.emplace(ie.from_version(), *stored).first;
      }
    }
    if (it == incrementals.end()) {
      absl::StatusOr<v1::FileRecord> r = FetchToStore(i, ExpectedBody::Incremental(e, ie), writers);
      if (!r.ok() && !UpstreamsFault(r.status())) return r.status();
      if (!r.ok()) {
        Log(LogLevel::kWarning,
            absl::StrCat(r.status().message(), "; left out (agents at ", ie.from_version(),
                         " take the full file), tried again at the next sync"));
        out.missing.push_back(absl::StrCat(e.name(), " v_", ie.from_version(), ".", e.version()));
        continue;
      }
      it = incrementals.emplace(ie.from_version(), *r).first;
    }
    out.commit.incrementals.emplace_back(ie.from_version(), it->second);
  }
  return out;
}

absl::StatusOr<v1::SyncNowResponse> UpstreamSync::SyncFrom(size_t i) {
  const std::string& upstream = names_[i];
  TransferLimits manifest_limits = Limits();
  manifest_limits.deadline = absl::Now() + options_.rpc_timeout;
  absl::StatusOr<v1::SignedManifest> signed_manifest = sources_[i]->Manifest(manifest_limits);
  if (!signed_manifest.ok()) return UpstreamError(i, signed_manifest.status(), "GetManifest");
  std::shared_ptr<const StoreView> view = store_->Snapshot();
  absl::StatusOr<OfferedManifest> offer = TakeOffer(i, *signed_manifest, *view);
  if (!offer.ok()) return offer.status();
  const v1::Manifest& manifest = offer->manifest;
  const std::optional<v1::Manifest>& held = offer->held;
  v1::SyncNowResponse response;
  response.set_upstream(upstream);
  response.set_manifest_serial(manifest.serial());

  // The plan: components this relay cannot take are skipped, said so, and
  // the others still taken; one missing that fits now (a raised limit) is
  // taken even from a manifest already held.
  std::vector<const v1::ComponentEntry*> changed;
  for (const v1::ComponentEntry& e : manifest.components()) {
    // Any component the origin signed is carried, known here or not.
    if (absl::Status name = ValidateComponentName(e.name()); !name.ok()) {
      return Prefixed(upstream, name);
    }
    if (e.size() > options_.max_file_size) {
      response.add_skipped(absl::StrCat(e.name(), " ", e.version(), ": ", e.size(),
                                        " bytes, over this relay's --max-file-size of ",
                                        options_.max_file_size));
      continue;
    }
    const v1::ComponentEntry* old = held ? FindEntry(*held, e.name()) : nullptr;
    bool have = view->Full(e.name(), e.version()).ok();
    for (const v1::IncrementalEntry& ie : e.incrementals()) {
      have = have && view->Incremental(e.name(), ie.from_version(), e.version()).ok();
    }
    if (old != nullptr && old->version() == e.version() && old->sha256() == e.sha256() && have) {
      continue;  // unchanged; its stored files stay as they are
    }
    if (!offer->newer && have) continue;
    changed.push_back(&e);
  }
  {
    absl::MutexLock lock(&mu_);
    *status_.mutable_skipped() = response.skipped();
  }
  for (const std::string& why : response.skipped()) {
    Log(LogLevel::kWarning,
        absl::StrCat("upstream ", upstream, ": skipping ", why, "; raise the limit to carry it"));
  }
  for (const v1::ComponentEntry* e : changed) {
    const v1::ComponentEntry* old = held ? FindEntry(*held, e->name()) : nullptr;
    if (old != nullptr && WaitForPendingIncremental(manifest, *e, old->version(), clock_->Now())) {
      response.add_waiting(absl::StrCat(e->name(), " ", e->version(), ": the incremental from ",
                                        old->version(), " is still being made at the origin"));
    }
  }
  if (!response.waiting().empty()) {
    // Taking this manifest would mean its full files; the next one brings
    // the incrementals (a publish signs the nearest ones first).
    Log(LogLevel::kInfo, absl::StrCat("upstream ", upstream, ": waiting for the next manifest (",
                                      response.waiting(0), ")"));
    return response;
  }
  if (!offer->newer && changed.empty()) return response;  // current
  for (const v1::ComponentEntry* e : changed) {
    // What it should take: its incremental when one reaches it from here,
    // else the whole file (an estimate for the progress bar).
    const v1::ComponentEntry* old = held ? FindEntry(*held, e->name()) : nullptr;
    uint64_t expect = e->size();
    for (const v1::IncrementalEntry& ie : e->incrementals()) {
      if (old != nullptr && ie.from_version() == old->version()) expect = ie.size();
    }
    ExpectBytes(expect);
  }

  std::vector<std::unique_ptr<VersionStore::FileWriter>> writers;
  std::vector<VersionStore::ComponentCommit> commits;
  std::vector<std::string> partials;
  for (const v1::ComponentEntry* e : changed) {
    const v1::ComponentEntry* old = held ? FindEntry(*held, e->name()) : nullptr;
    absl::StatusOr<Fetched> fetched = FetchComponent(i, *e, old, *view, &writers);
    if (!fetched.ok()) return fetched.status();
    if (fetched->update.how() != "held") *response.add_updated() = fetched->update;
    for (const std::string& m : fetched->missing) response.add_incrementals_missing(m);
    if (fetched->resumed_full) partials.push_back(PartialName(*e));
    commits.push_back(std::move(fetched->commit));
  }
  absl::Status committed = store_->Commit(commits, *signed_manifest);
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
  *status_.mutable_incrementals_missing() = response.incrementals_missing();
  for (const v1::ComponentUpdate& u : response.updated()) {
    const v1::ComponentEntry* e = FindEntry(manifest, u.component());
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
