#include "origin/publisher.h"

#include <algorithm>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/base/file_util.h"
#include "core/base/log.h"
#include "core/base/mapped_file.h"
#include "core/client/rebuild.h"
#include "core/model/rollout.h"

namespace sigrelay {

Publisher::Publisher(VersionStore* store, const ManifestSigner* signer, const Clock* clock,
                     const PublisherOptions& options)
    : store_(store), signer_(signer), clock_(clock), options_(options), codec_(options.zstd_level) {
  // Incrementals a stopped origin left pending are made now.
  if (std::shared_ptr<const v1::SignedManifest> held = store_->CurrentManifest()) {
    if (absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*held); m.ok()) {
      absl::MutexLock lock(&jobs_mu_);
      for (const v1::ComponentEntry& e : m->components()) {
        if (!e.pending_incrementals().empty()) jobs_.push_back({e.name(), e.version(), e.sha256()});
      }
    }
  }
  background_ = std::thread([this] { Background(); });
}

Publisher::~Publisher() {
  {
    absl::MutexLock lock(&jobs_mu_);
    stopping_ = true;
  }
  stop_encodes_ = true;
  background_.join();
}

absl::StatusOr<v1::SignedManifest> Publisher::SignNext(const v1::Manifest* previous,
                                                       const v1::ComponentEntry* replace,
                                                       uint64_t serial_floor) {
  const uint64_t last = std::max<uint64_t>(previous ? previous->serial() : 0, serial_floor);
  if (last == std::numeric_limits<uint64_t>::max()) {
    return absl::FailedPreconditionError(
        "the manifest serial is at its maximum and would wrap to 0, which every relay and "
        "agent would refuse as a rollback; nothing was signed");
  }
  v1::Manifest next;
  next.set_serial(last + 1);
  absl::Time now = clock_->Now();
  next.set_issued_unix(absl::ToUnixSeconds(now));
  next.set_expires_unix(absl::ToUnixSeconds(now + options_.manifest_validity));
  next.set_resign_seconds(absl::ToInt64Seconds(options_.resign_every));
  // Catalog order, so manifests are stable whatever the publish order; a
  // component dropped from the catalog keeps its entry (after the others):
  // what agents hold is never withdrawn by a config edit.
  auto in_catalog = [&](const std::string& name) { return options_.catalog.Find(name).ok(); };
  for (const ComponentSpec& spec : options_.catalog.specs()) {
    if (replace != nullptr && replace->name() == spec.name) {
      *next.add_components() = *replace;
    } else if (previous != nullptr) {
      if (const v1::ComponentEntry* e = FindEntry(*previous, spec.name)) {
        *next.add_components() = *e;
      }
    }
  }
  if (previous != nullptr) {
    for (const v1::ComponentEntry& e : previous->components()) {
      if (!in_catalog(e.name())) *next.add_components() = e;
    }
    *next.mutable_withdrawn() = previous->withdrawn();
  }
  if (withdrawing_.has_value()) *next.add_withdrawn() = *withdrawing_;
  return signer_->Sign(next);
}

absl::StatusOr<std::unique_ptr<StagedFile>> Publisher::Scratch(const std::string& name) const {
  if (absl::Status s = MakeDirs(options_.work_dir); !s.ok()) return s;
  return StagedFile::Create(options_.work_dir + "/" + name, 0600);
}

absl::StatusOr<v1::PublishResponse> Publisher::Publish(const std::string& component,
                                                       const std::string& path,
                                                       const std::vector<v1::Ring>* plan) {
  absl::StatusOr<ComponentSpec> spec = options_.catalog.Find(component);
  if (!spec.ok()) return spec.status();
  absl::MutexLock lock(&mu_);
  return PublishLocked(*spec, path, 0, 0, plan != nullptr ? *plan : options_.rollout);
}

std::optional<v1::Manifest> Publisher::Current() const {
  std::shared_ptr<const v1::SignedManifest> held = store_->CurrentManifest();
  if (held == nullptr) return std::nullopt;
  absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*held);
  if (!m.ok()) return std::nullopt;
  return std::move(*m);
}

absl::StatusOr<v1::ComponentEntry> Publisher::ChangeRollout(
    const std::string& component, uint32_t version,
    const std::function<absl::Status(v1::Rollout*)>& change) {
  absl::MutexLock lock(&mu_);
  std::optional<v1::Manifest> current = Current();
  const v1::ComponentEntry* entry = current ? FindEntry(*current, component) : nullptr;
  if (entry == nullptr || !entry->has_rollout() || (version != 0 && entry->version() != version)) {
    return absl::FailedPreconditionError(
        absl::StrCat(component, version != 0 ? absl::StrCat(" ", version) : "",
                     " is not rolling out; nothing changed"));
  }
  v1::ComponentEntry next = *entry;
  if (absl::Status s = change(next.mutable_rollout()); !s.ok()) return s;
  if (next.rollout().admitted() >= static_cast<uint32_t>(next.rollout().rings_size())) {
    next.clear_rollout();  // every ring admitted: the version is everyone's
  }
  absl::StatusOr<v1::SignedManifest> signed_manifest = SignNext(&*current, &next, 0);
  if (!signed_manifest.ok()) return signed_manifest.status();
  if (absl::Status s = store_->Commit({}, *signed_manifest); !s.ok()) return s;
  return next;
}

namespace {

// Incrementals in a manifest entry in ascending order of their versions,
// whatever order they were made in.
void SortIncrementals(v1::ComponentEntry* entry) {
  std::sort(entry->mutable_incrementals()->begin(), entry->mutable_incrementals()->end(),
            [](const v1::IncrementalEntry& a, const v1::IncrementalEntry& b) {
              return a.from_version() < b.from_version();
            });
}

// Writes to the store and, beside it, to a staged file the verification
// maps; refuses more once the publisher stops.
class TeeSink final : public ByteSink {
 public:
  TeeSink(ByteSink* a, ByteSink* b, const std::atomic<bool>* stop) : a_(a), b_(b), stop_(stop) {}
  absl::Status Write(absl::string_view data) override {
    if (stop_->load()) return absl::CancelledError("the origin is stopping");
    if (absl::Status s = a_->Write(data); !s.ok()) return s;
    return b_->Write(data);
  }

 private:
  ByteSink* const a_;
  ByteSink* const b_;
  const std::atomic<bool>* const stop_;
};

// Rebuilds the new version from `old` and `incremental` into a scratch
// file, as a node would, and checks it (size and digest).
absl::Status VerifyIncremental(const IncrementalCodec& codec, const MappedFile& old,
                               const MappedFile& incremental, uint64_t size,
                               const std::string& sha256, const std::string& scratch) {
  v1::ComponentEntry entry;
  entry.set_size(size);
  entry.set_sha256(sha256);
  absl::StatusOr<std::unique_ptr<StagedFile>> out = StagedFile::Create(scratch, 0600);
  if (!out.ok()) return out.status();
  absl::Status s = RebuildInto(codec, old, incremental.view(), entry, out->get());
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("the incremental made does not rebuild the new version (", s.message(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

size_t Publisher::Parallel(uint64_t old_size, uint64_t new_size, uint64_t* mapped_cap) const {
  // Each encode needs zstd's tables and its window mapped: the old version
  // and the new one so far. At the small-file level matches reach all of
  // it (capping it would refault without end); at the big-file level they
  // stay near, so 64 MiB of it is enough. The cap covers all encodes.
  const uint64_t tables = std::max<uint64_t>(1, codec_.EncodeMemory(old_size, new_size));
  const uint64_t window = codec_.LevelFor(new_size) == IncrementalCodec::kBigFileLevel
                              ? uint64_t{64} << 20
                              : old_size + new_size;
  const size_t parallel = static_cast<size_t>(
      std::clamp<uint64_t>(options_.encode_memory / (tables + window), 1,
                           std::max<unsigned>(1, std::thread::hardware_concurrency())));
  *mapped_cap = ResidentMappedBytes() + parallel * window;
  return parallel;
}

std::vector<absl::StatusOr<v1::FileRecord>> Publisher::EncodeAll(
    const StoreView& view, const std::string& component, uint32_t version,
    const MappedFile& content, const std::vector<uint32_t>& from,
    std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers) {
  std::vector<absl::StatusOr<v1::FileRecord>> out(from.size(), absl::UnknownError("not made"));
  std::vector<std::unique_ptr<VersionStore::FileWriter>> made(from.size());
  const std::string sha256 = HashMapped(content);
  uint64_t cap = 0;  // set below, before any encode starts
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < from.size(); i = next++) {
      const std::string name = absl::StrCat(component, ".v_", from[i], ".", version);
      absl::StatusOr<v1::FileRecord> old_record = view.Full(component, from[i]);
      absl::StatusOr<std::unique_ptr<MappedFile>> old =
          old_record.ok() ? CopyOutMapped(view, *old_record, options_.work_dir, name + ".old")
                          : absl::StatusOr<std::unique_ptr<MappedFile>>(old_record.status());
      if (!old.ok()) {
        out[i] = old.status();
        continue;
      }
      absl::StatusOr<std::unique_ptr<StagedFile>> copy =
          StagedFile::Create(options_.work_dir + "/" + name, 0600);
      if (!copy.ok()) {
        out[i] = copy.status();
        continue;
      }
      made[i] = store_->NewFileWriter();
      TeeSink tee(made[i].get(), copy->get(), &stop_encodes_);
      const MappedFile* o = old->get();
      absl::Status s =
          codec_.Encode(o->view(), content.view(), &tee, TrimAbove(cap, {o, &content}));
      absl::StatusOr<v1::FileRecord> record = s.ok() ? made[i]->Finish() : s;
      absl::StatusOr<std::unique_ptr<MappedFile>> incr =
          record.ok() ? MappedFile::Open((*copy)->temp_path())
                      : absl::StatusOr<std::unique_ptr<MappedFile>>(record.status());
      // Never sign an incremental that does not rebuild the file.
      if (incr.ok()) {
        s = VerifyIncremental(codec_, *o, **incr, content.size(), sha256,
                              options_.work_dir + "/" + name + ".check");
        if (!s.ok()) record = s;
      } else {
        record = incr.status();
      }
      out[i] = record;
    }
  };
  // As many at once as cores and the encoders' memory allow.
  uint64_t biggest = content.size();
  for (uint32_t v : from) {
    if (absl::StatusOr<v1::FileRecord> r = view.Full(component, v); r.ok()) {
      biggest = std::max<uint64_t>(biggest, r->size());
    }
  }
  const size_t threads = std::min(Parallel(biggest, content.size(), &cap), from.size());
  std::vector<std::thread> workers;
  for (size_t t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (std::thread& t : workers) t.join();
  for (auto& w : made) {
    if (w != nullptr) writers->push_back(std::move(w));
  }
  return out;
}

absl::StatusOr<v1::PublishResponse> Publisher::PublishLocked(const ComponentSpec& spec,
                                                             const std::string& path,
                                                             uint32_t forced_version,
                                                             uint64_t serial_floor,
                                                             const std::vector<v1::Ring>& rings) {
  const std::string& component = spec.name;
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  const MappedFile& content = **mapped;
  if (content.size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", component, " file is empty; a pattern must have content"));
  }
  if (content.size() > options_.max_file_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", component, " file is ", content.size(), " bytes, over the limit of ",
        options_.max_file_size, "; raise the origin's --max-file-size if it is right"));
  }
  if (absl::Status s = MakeDirs(options_.work_dir); !s.ok()) return s;
  std::shared_ptr<const StoreView> view = store_->Snapshot();
  std::optional<v1::Manifest> previous;
  if (view->manifest()) {
    absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*view->manifest());
    if (!m.ok()) return m.status();
    previous = std::move(*m);
  }
  const v1::ComponentEntry* newest = previous ? FindEntry(*previous, component) : nullptr;
  const std::string sha256 = HashMapped(content);
  if (newest != nullptr && newest->sha256() == sha256) {
    return absl::AlreadyExistsError(absl::StrCat("this file is identical to ", component, " ",
                                                 newest->version(), "; nothing was published"));
  }
  absl::StatusOr<uint32_t> version = forced_version != 0
                                         ? absl::StatusOr<uint32_t>(forced_version)
                                         : options_.policy.Next(newest ? newest->version() : 0);
  if (!version.ok()) return version.status();

  // Keep every writer alive until the commit so its chunks are not collected.
  std::vector<std::unique_ptr<VersionStore::FileWriter>> writers;
  writers.push_back(store_->NewFileWriter());
  if (absl::Status s = WriteInPieces(content.view(), writers.back().get(), 1 << 20,
                                     IncrementalCodec::kTrimEvery, [&] { content.Trim(); });
      !s.ok()) {
    return s;
  }
  absl::StatusOr<v1::FileRecord> full = writers.back()->Finish();
  if (!full.ok()) return full.status();
  VersionStore::ComponentCommit commit;
  commit.component = component;
  commit.version = *version;
  commit.full = *full;
  commit.retained = options_.policy.Retained(view->FullVersions(component), *version);

  // Staged: the first ring takes this version; the others keep the last
  // version that reached everyone, described whole so an agent that holds
  // nothing can install it.
  std::optional<v1::ComponentEntry> held_back;
  if (rings.size() > 1 && newest != nullptr) {
    held_back = newest->has_rollout() && newest->rollout().previous().version() != 0
                    ? newest->rollout().previous()
                    : *newest;
    held_back->clear_rollout();
    held_back->clear_incrementals();
    held_back->clear_pending_incrementals();
    if (std::find(commit.retained.begin(), commit.retained.end(), held_back->version()) ==
        commit.retained.end()) {
      commit.retained.push_back(held_back->version());
    }
  }

  v1::ComponentEntry entry;
  entry.set_name(component);
  entry.set_full_only(!spec.incrementals);
  entry.set_version(*version);
  entry.set_size(content.size());
  entry.set_sha256(sha256);
  entry.set_chunk_size(full->chunk_size());
  *entry.mutable_chunk_sha256() = full->chunks();
  if (spec.incrementals) {
    std::vector<uint32_t> from;
    for (uint32_t v : commit.retained) {
      if (v != *version) from.push_back(v);
    }
    std::sort(from.rbegin(), from.rend());  // nearest first: most nodes hold those
    const uint64_t each =
        std::max<uint64_t>(1, codec_.EncodeMemory(content.size(), content.size()));
    const size_t round = std::min<size_t>(std::max<size_t>(1, std::thread::hardware_concurrency()),
                                          std::max<uint64_t>(1, options_.encode_memory / each));
    const size_t now = std::min(
        from.size(), options_.incrementals_first > 0 ? options_.incrementals_first : round);
    const std::vector<uint32_t> first(from.begin(), from.begin() + now);
    std::vector<absl::StatusOr<v1::FileRecord>> made =
        EncodeAll(*view, component, *version, content, first, &writers);
    for (size_t i = 0; i < first.size(); ++i) {
      if (!made[i].ok()) {
        return absl::Status(
            made[i].status().code(),
            absl::StrCat("incremental ", component, " v_", first[i], ".", *version, ": ",
                         made[i].status().message(), "; nothing was published"));
      }
      commit.incrementals.emplace_back(first[i], *made[i]);
      v1::IncrementalEntry* ie = entry.add_incrementals();
      ie->set_from_version(first[i]);
      ie->set_size(made[i]->size());
      ie->set_sha256(made[i]->sha256());
    }
    for (size_t i = now; i < from.size(); ++i) entry.add_pending_incrementals(from[i]);
    SortIncrementals(&entry);
  }
  if (held_back) {
    v1::Rollout* r = entry.mutable_rollout();
    r->mutable_rings()->Add(rings.begin(), rings.end());
    r->set_admitted(1);
    r->set_admitted_unix(absl::ToUnixSeconds(clock_->Now()));
    *r->mutable_previous() = std::move(*held_back);
  }
  absl::StatusOr<v1::SignedManifest> signed_manifest =
      SignNext(previous ? &*previous : nullptr, &entry, serial_floor);
  if (!signed_manifest.ok()) return signed_manifest.status();
  absl::Status committed = store_->Commit({commit}, *signed_manifest);
  if (!committed.ok()) return committed;

  Log(LogLevel::kInfo,
      absl::StrCat(
          "published ", component, " ", *version, " (", content.size(), " bytes, ",
          entry.incrementals_size(), " incrementals",
          entry.pending_incrementals().empty()
              ? ""
              : absl::StrCat(", ", entry.pending_incrementals_size(), " more to follow"),
          ")",
          entry.has_rollout()
              ? absl::StrCat("; rolling out to ring ", entry.rollout().rings(0).name(), " first (",
                             FormatRolloutPlan(entry.rollout().rings()), "), the others keep ",
                             component, " ", entry.rollout().previous().version())
              : ""),
      {{"event", "publish"},
       {"component", component},
       {"version", absl::StrCat(*version)},
       {"bytes", absl::StrCat(content.size())},
       {"incrementals", absl::StrCat(entry.incrementals_size())},
       {"pending", absl::StrCat(entry.pending_incrementals_size())}});
  if (!entry.pending_incrementals().empty()) {
    absl::MutexLock lock(&jobs_mu_);
    jobs_.push_back({component, *version, sha256});
  }
  v1::PublishResponse response;
  response.set_component(component);
  response.set_version(*version);
  response.set_size(content.size());
  response.set_sha256(sha256);
  return response;
}

absl::Status Publisher::Finish(const Job& job) {
  std::shared_ptr<const StoreView> view = store_->Snapshot();
  if (!view->manifest()) return absl::OkStatus();
  absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*view->manifest());
  if (!m.ok()) return m.status();
  const v1::ComponentEntry* entry = FindEntry(*m, job.component);
  if (entry == nullptr || entry->version() != job.version || entry->sha256() != job.sha256 ||
      entry->pending_incrementals().empty()) {
    return absl::OkStatus();  // superseded by a later publish
  }
  const std::vector<uint32_t> from(entry->pending_incrementals().begin(),
                                   entry->pending_incrementals().end());
  absl::StatusOr<v1::FileRecord> full = view->Full(job.component, job.version);
  if (!full.ok()) return full.status();
  absl::StatusOr<std::unique_ptr<MappedFile>> content =
      CopyOutMapped(*view, *full, options_.work_dir, absl::StrCat(job.component, ".", job.version));
  if (!content.ok()) return content.status();
  std::vector<std::unique_ptr<VersionStore::FileWriter>> writers;
  std::vector<absl::StatusOr<v1::FileRecord>> made =
      EncodeAll(*view, job.component, job.version, **content, from, &writers);

  absl::MutexLock lock(&mu_);
  std::shared_ptr<const StoreView> now = store_->Snapshot();
  absl::StatusOr<v1::Manifest> current = ParseTrustedManifest(*now->manifest());
  if (!current.ok()) return current.status();
  const v1::ComponentEntry* still = FindEntry(*current, job.component);
  if (still == nullptr || still->version() != job.version || still->sha256() != job.sha256) {
    return absl::OkStatus();  // a publish or withdraw came first
  }
  v1::ComponentEntry next = *still;
  next.clear_pending_incrementals();
  VersionStore::ComponentCommit commit;
  commit.component = job.component;
  commit.version = job.version;
  commit.full = *full;
  commit.retained = now->FullVersions(job.component);
  for (const v1::IncrementalEntry& ie : still->incrementals()) {
    absl::StatusOr<v1::FileRecord> r =
        now->Incremental(job.component, ie.from_version(), job.version);
    if (!r.ok()) return r.status();
    commit.incrementals.emplace_back(ie.from_version(), *r);
  }
  std::vector<std::string> failed;
  for (size_t i = 0; i < from.size(); ++i) {
    if (!made[i].ok()) {
      // Left out: nodes at that version take the full file.
      failed.push_back(
          absl::StrCat("v_", from[i], ".", job.version, ": ", made[i].status().message()));
      continue;
    }
    commit.incrementals.emplace_back(from[i], *made[i]);
    v1::IncrementalEntry* ie = next.add_incrementals();
    ie->set_from_version(from[i]);
    ie->set_size(made[i]->size());
    ie->set_sha256(made[i]->sha256());
  }
  SortIncrementals(&next);
  absl::StatusOr<v1::SignedManifest> signed_manifest = SignNext(&*current, &next, 0);
  if (!signed_manifest.ok()) return signed_manifest.status();
  if (absl::Status s = store_->Commit({commit}, *signed_manifest); !s.ok()) return s;
  Log(LogLevel::kInfo, absl::StrCat("signed in ", from.size() - failed.size(),
                                    " more incrementals of ", job.component, " ", job.version));
  if (!failed.empty()) {
    return absl::InternalError(absl::StrCat("incrementals of ", job.component,
                                            " left out: ", absl::StrJoin(failed, "; ")));
  }
  return absl::OkStatus();
}

void Publisher::Background() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&jobs_mu_);
      jobs_mu_.Await(absl::Condition(
          +[](Publisher* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->jobs_mu_) {
            return p->stopping_ || !p->jobs_.empty();
          },
          this));
      if (stopping_) return;
      job = jobs_.front();
      jobs_.pop_front();
      busy_ = true;
    }
    if (absl::Status s = Finish(job); !s.ok() && !absl::IsCancelled(s)) {
      Log(LogLevel::kError, absl::StrCat("making the pending incrementals of ", job.component, " ",
                                         job.version, ": ", s.message()));
    }
    absl::MutexLock lock(&jobs_mu_);
    busy_ = false;
  }
}

void Publisher::WaitForPendingIncrementals() {
  absl::MutexLock lock(&jobs_mu_);
  jobs_mu_.Await(absl::Condition(
      +[](Publisher* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->jobs_mu_) {
        return p->stopping_ || (p->jobs_.empty() && !p->busy_);
      },
      this));
}

absl::Status Publisher::RefreshIfDue() {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const v1::SignedManifest> current = store_->CurrentManifest();
  if (current == nullptr) return absl::OkStatus();
  absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*current);
  if (!m.ok()) return m.status();
  // Also at once when the signing key or the trust root changed.
  if (clock_->Now() < absl::FromUnixSeconds(m->issued_unix()) + options_.resign_every &&
      signer_->SignedHere(*current)) {
    return absl::OkStatus();
  }
  absl::StatusOr<v1::SignedManifest> next = SignNext(&*m, nullptr, 0);
  if (!next.ok()) return next.status();
  absl::Status s = store_->Commit({}, *next);
  if (s.ok()) {
    Log(LogLevel::kInfo, absl::StrCat("re-signed the manifest as serial ", m->serial() + 1));
  }
  return s;
}

absl::StatusOr<v1::ResumeResult> Publisher::ResumeFrom(const v1::SignedManifest& remote,
                                                       const FetchFull& fetch_full) {
  absl::StatusOr<std::unique_ptr<ManifestVerifier>> verifier =
      ManifestVerifier::FromPem(signer_->PublicKeyPem());
  if (!verifier.ok()) return verifier.status();
  // Signed with this origin's key is what counts; an expired one still
  // says which serials and versions were signed before.
  absl::StatusOr<v1::Manifest> theirs = (*verifier)->Verify(remote, absl::InfinitePast());
  if (!theirs.ok()) {
    return absl::Status(theirs.status().code(),
                        absl::StrCat("the manifest to resume from is not this origin's: ",
                                     theirs.status().message()));
  }
  absl::MutexLock lock(&mu_);
  v1::ResumeResult result;
  result.set_remote_serial(theirs->serial());
  std::optional<v1::Manifest> ours;
  if (std::shared_ptr<const v1::SignedManifest> current = store_->CurrentManifest()) {
    absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*current);
    if (!m.ok()) return m.status();
    ours = std::move(*m);
  }
  for (const v1::ComponentEntry& e : theirs->components()) {
    const v1::ComponentEntry* mine = ours ? FindEntry(*ours, e.name()) : nullptr;
    if (mine != nullptr && mine->version() >= e.version()) continue;
    absl::StatusOr<std::unique_ptr<StagedFile>> file = Scratch(e.name() + ".resume");
    if (!file.ok()) return file.status();
    if (absl::Status got = fetch_full(e, file->get()); !got.ok()) {
      return absl::Status(got.code(), absl::StrCat("fetching ", e.name(), " ", e.version(),
                                                   " to resume from: ", got.message()));
    }
    absl::StatusOr<ComponentSpec> spec = options_.catalog.Find(e.name());
    ComponentSpec taken = spec.ok() ? *spec : ComponentSpec{e.name(), !e.full_only()};
    absl::StatusOr<v1::PublishResponse> r =
        PublishLocked(taken, (*file)->temp_path(), e.version(), theirs->serial());
    if (!r.ok()) return r.status();
    *result.add_taken() = *r;
  }
  // Serials continue after the one resumed from even when no content was
  // newer there.
  std::shared_ptr<const v1::SignedManifest> now = store_->CurrentManifest();
  absl::StatusOr<v1::Manifest> m =
      now ? ParseTrustedManifest(*now) : absl::StatusOr<v1::Manifest>(v1::Manifest());
  if (!m.ok()) return m.status();
  if (m->serial() <= theirs->serial()) {
    absl::StatusOr<v1::SignedManifest> next =
        SignNext(now ? &*m : nullptr, nullptr, theirs->serial());
    if (!next.ok()) return next.status();
    if (absl::Status s = store_->Commit({}, *next); !s.ok()) return s;
  }
  now = store_->CurrentManifest();
  result.set_serial(ParseTrustedManifest(*now)->serial());
  Log(LogLevel::kInfo,
      absl::StrCat("resumed after serial ", theirs->serial(), ": ", result.taken_size(),
                   " newer component version(s) taken; now at serial ", result.serial()));
  return result;
}

absl::StatusOr<v1::WithdrawResponse> Publisher::Withdraw(const std::string& component,
                                                         uint32_t version,
                                                         const std::string& reason) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const StoreView> view = store_->Snapshot();
  if (!view->manifest()) return absl::NotFoundError("nothing is published yet");
  absl::StatusOr<v1::Manifest> current = ParseTrustedManifest(*view->manifest());
  if (!current.ok()) return current.status();
  const v1::ComponentEntry* entry = FindEntry(*current, component);
  if (entry == nullptr || version == 0 || version > entry->version()) {
    return absl::NotFoundError(absl::StrCat(component, " ", version,
                                            " was never published; the newest is ",
                                            entry ? entry->version() : 0));
  }
  auto withdrawn = [&](uint32_t v) {
    for (const v1::Withdrawal& w : current->withdrawn()) {
      if (w.component() == component && w.version() == v) return true;
    }
    return false;
  };
  if (withdrawn(version)) {
    return absl::AlreadyExistsError(absl::StrCat(component, " ", version, " is withdrawn already"));
  }
  v1::Withdrawal w;
  w.set_component(component);
  w.set_version(version);
  w.set_reason(reason.empty() ? "withdrawn by the operator" : reason);
  w.set_withdrawn_unix(absl::ToUnixSeconds(clock_->Now()));
  v1::WithdrawResponse response;
  absl::Status done;
  withdrawing_ = w;
  if (version == entry->version()) {
    // Roll forward to the last good content: versions only grow.
    uint32_t good = 0;
    for (uint32_t v : view->FullVersions(component)) {
      if (v < version && !withdrawn(v)) good = std::max(good, v);
    }
    if (good == 0) {
      withdrawing_.reset();
      return absl::FailedPreconditionError(absl::StrCat(
          "no earlier good version of ", component,
          " is retained to roll forward to; publish a fixed file instead (nothing changed)"));
    }
    // The good version's content, copied out of the store to publish again.
    absl::StatusOr<v1::FileRecord> record = view->Full(component, good);
    absl::StatusOr<std::unique_ptr<StagedFile>> file = Scratch(component + ".withdraw");
    absl::Status copied = !record.ok() ? record.status()
                          : !file.ok() ? file.status()
                                       : view->CopyTo(*record, file->get());
    absl::StatusOr<ComponentSpec> spec = options_.catalog.Find(component);
    absl::StatusOr<v1::PublishResponse> r =
        copied.ok()
            ? PublishLocked(spec.ok() ? *spec : ComponentSpec{component, !entry->full_only()},
                            (*file)->temp_path(), 0, 0)
            : absl::StatusOr<v1::PublishResponse>(copied);
    if (r.ok()) {
      *response.mutable_published() = *r;
      response.set_content_of(good);
    }
    done = r.status();
  } else {
    absl::StatusOr<v1::SignedManifest> next = SignNext(&*current, nullptr, 0);
    done = next.ok() ? store_->Commit({}, *next) : next.status();
  }
  withdrawing_.reset();
  if (!done.ok()) return done;
  Log(LogLevel::kWarning,
      absl::StrCat(
          "withdrew ", component, " ", version, " (", w.reason(), ")",
          response.has_published()
              ? absl::StrCat("; published ", component, " ", response.published().version(),
                             " with the content of ", response.content_of())
              : ""));
  return response;
}

}  // namespace sigrelay
