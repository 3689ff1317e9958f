#include "origin/publisher.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/log.h"

namespace sigrelay {

Publisher::Publisher(VersionStore* store, const ManifestSigner* signer, const Clock* clock,
                     const PublisherOptions& options)
    : store_(store),
      signer_(signer),
      clock_(clock),
      options_(options),
      codec_(options.zstd_level) {}

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

absl::StatusOr<v1::PublishResponse> Publisher::Publish(const std::string& component,
                                                       const std::string& path) {
  absl::StatusOr<ComponentSpec> spec = options_.catalog.Find(component);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::string> content = ReadFileToString(path);
  if (!content.ok()) return content.status();
  if (content->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", component, " file is empty; a pattern must have content"));
  }
  if (content->size() > options_.max_file_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", component, " file is ", content->size(), " bytes, over the limit of ",
        options_.max_file_size, "; raise the origin's --max-file-size if it is right"));
  }

  absl::MutexLock lock(&mu_);
  return PublishLocked(*spec, *content, 0, 0);
}

absl::StatusOr<v1::PublishResponse> Publisher::PublishLocked(const ComponentSpec& spec,
                                                             const std::string& content_bytes,
                                                             uint32_t forced_version,
                                                             uint64_t serial_floor) {
  const std::string& component = spec.name;
  const std::string* content = &content_bytes;
  std::shared_ptr<const StoreView> view = store_->Snapshot();
  std::optional<v1::Manifest> previous;
  if (view->manifest()) {
    absl::StatusOr<v1::Manifest> m = ParseTrustedManifest(*view->manifest());
    if (!m.ok()) return m.status();
    previous = std::move(*m);
  }
  const v1::ComponentEntry* newest = previous ? FindEntry(*previous, component) : nullptr;
  const std::string sha256 = Sha256::Of(*content);
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
  auto put = [&](absl::string_view bytes) -> absl::StatusOr<v1::FileRecord> {
    writers.push_back(store_->NewFileWriter());
    absl::Status s = writers.back()->Append(bytes);
    if (!s.ok()) return s;
    return writers.back()->Finish();
  };
  VersionStore::ComponentCommit commit;
  commit.component = component;
  commit.version = *version;
  absl::StatusOr<v1::FileRecord> full = put(*content);
  if (!full.ok()) return full.status();
  commit.full = *full;
  commit.retained = options_.policy.Retained(view->FullVersions(component), *version);

  v1::ComponentEntry entry;
  entry.set_name(component);
  entry.set_full_only(!spec.incrementals);
  entry.set_version(*version);
  entry.set_size(content->size());
  entry.set_sha256(sha256);
  entry.set_chunk_size(full->chunk_size());
  *entry.mutable_chunk_sha256() = full->chunks();
  if (spec.incrementals) {
    std::vector<uint32_t> from;
    for (uint32_t v : commit.retained) {
      if (v != *version) from.push_back(v);
    }
    // Never sign an incremental that does not rebuild the file: verify.
    std::vector<absl::StatusOr<std::string>> made = codec_.EncodeEach(
        from.size(),
        [&](size_t i) -> absl::StatusOr<std::string> {
          absl::StatusOr<v1::FileRecord> old_record = view->Full(component, from[i]);
          if (!old_record.ok()) return old_record.status();
          return view->ReadAll(*old_record);
        },
        *content, /*verify=*/true);
    for (size_t i = 0; i < from.size(); ++i) {
      if (!made[i].ok()) {
        return absl::Status(
            made[i].status().code(),
            absl::StrCat("incremental ", component, " v_", from[i], ".", *version, ": ",
                         made[i].status().message(), "; nothing was published"));
      }
      absl::StatusOr<v1::FileRecord> record = put(*made[i]);
      if (!record.ok()) return record.status();
      commit.incrementals.emplace_back(from[i], *record);
      v1::IncrementalEntry* ie = entry.add_incrementals();
      ie->set_from_version(from[i]);
      ie->set_size(record->size());
      ie->set_sha256(record->sha256());
    }
  }
  absl::StatusOr<v1::SignedManifest> signed_manifest =
      SignNext(previous ? &*previous : nullptr, &entry, serial_floor);
  if (!signed_manifest.ok()) return signed_manifest.status();
  absl::Status committed = store_->Commit({commit}, *signed_manifest);
  if (!committed.ok()) return committed;

  Log(LogLevel::kInfo,
      absl::StrCat("published ", component, " ", *version, " (", content->size(), " bytes, ",
                   entry.incrementals_size(), " incrementals)"),
      {{"event", "publish"},
       {"component", component},
       {"version", absl::StrCat(*version)},
       {"bytes", absl::StrCat(content->size())},
       {"incrementals", absl::StrCat(entry.incrementals_size())}});
  v1::PublishResponse response;
  response.set_component(component);
  response.set_version(*version);
  response.set_size(content->size());
  response.set_sha256(sha256);
  return response;
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
    absl::StatusOr<std::string> content = fetch_full(e);
    if (!content.ok()) {
      return absl::Status(content.status().code(),
                          absl::StrCat("fetching ", e.name(), " ", e.version(),
                                       " to resume from: ", content.status().message()));
    }
    absl::StatusOr<ComponentSpec> spec = options_.catalog.Find(e.name());
    ComponentSpec taken = spec.ok() ? *spec : ComponentSpec{e.name(), !e.full_only()};
    absl::StatusOr<v1::PublishResponse> r =
        PublishLocked(taken, *content, e.version(), theirs->serial());
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
    absl::StatusOr<v1::FileRecord> record = view->Full(component, good);
    absl::StatusOr<std::string> content =
        record.ok() ? view->ReadAll(*record) : absl::StatusOr<std::string>(record.status());
    absl::StatusOr<ComponentSpec> spec = options_.catalog.Find(component);
    absl::StatusOr<v1::PublishResponse> r =
        content.ok()
            ? PublishLocked(spec.ok() ? *spec : ComponentSpec{component, !entry->full_only()},
                            *content, 0, 0)
            : absl::StatusOr<v1::PublishResponse>(content.status());
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
