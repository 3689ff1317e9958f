#include "core/client/manifest_check.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace sigrelay {
namespace {

constexpr char kConflictPayload[] = "sigrelay.dev/manifest-conflict";

absl::Status Conflict(const std::string& message) {
  absl::Status s = absl::FailedPreconditionError(message);
  s.SetPayload(kConflictPayload, absl::Cord("1"));
  return s;
}

}  // namespace

bool WaitForPendingIncremental(const v1::Manifest& manifest, const v1::ComponentEntry& entry,
                               uint32_t held_version, absl::Time now) {
  if (held_version == 0 || held_version >= entry.version()) return false;
  if (now > absl::FromUnixSeconds(manifest.issued_unix()) + kPendingIncrementalWait) return false;
  for (uint32_t v : entry.pending_incrementals()) {
    if (v == held_version) return true;
  }
  return false;
}

bool IsManifestConflict(const absl::Status& s) {
  return s.GetPayload(kConflictPayload).has_value();
}

absl::StatusOr<OfferedManifest> CheckOfferedManifest(const ManifestVerifier& verifier,
                                                     const v1::SignedManifest& offered,
                                                     const v1::SignedManifest* held,
                                                     absl::Time now) {
  // The roots that came with the held manifest were taken before (a
  // restarted node pinned on an older root learns them again here).
  if (held != nullptr) verifier.Learn(held->roots());
  absl::StatusOr<v1::Manifest> manifest = verifier.Verify(offered, now);
  if (!manifest.ok()) {
    return absl::Status(manifest.status().code(),
                        absl::StrCat("manifest refused: ", manifest.status().message()));
  }
  OfferedManifest out;
  out.manifest = std::move(*manifest);
  out.newer = true;
  if (held != nullptr) {
    // Held data was verified before it was stored.
    absl::StatusOr<v1::Manifest> h = ParseTrustedManifest(*held);
    if (!h.ok()) return h.status();
    if (!verifier.SignedByTrustedKey(*held)) {
      // The root held now dropped the key that signed it (a key leaked and
      // rotated out): what it claimed sets no floor.
      out.floor_reset = true;
      out.held = std::move(*h);
      return out;
    }
    if (out.manifest.serial() < h->serial()) {
      return absl::FailedPreconditionError(
          absl::StrCat("offers manifest serial ", out.manifest.serial(), ", older than serial ",
                       h->serial(), " held here; rollback refused"));
    }
    if (out.manifest.serial() == h->serial() && offered.manifest() != held->manifest()) {
      return Conflict(absl::StrCat(
          "offers a manifest with serial ", h->serial(), " that differs from the serial ",
          h->serial(),
          " held here: two signers with the origin's key, or an origin restored from an old "
          "copy (run it with --resume-from); refused"));
    }
    // Content never goes back, whatever the serial: a component's version
    // only grows, and one version is one content.
    for (const v1::ComponentEntry& was : h->components()) {
      const v1::ComponentEntry* now = FindEntry(out.manifest, was.name());
      if (now == nullptr) continue;
      if (now->version() < was.version()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "offers ", was.name(), " ", now->version(), ", older than ", was.name(), " ",
            was.version(), " held here (serial ", out.manifest.serial(),
            "); rollback refused: an origin restored from an old copy re-signing old content? "
            "run it with --resume-from"));
      }
      if (now->version() == was.version() && now->sha256() != was.sha256()) {
        return Conflict(absl::StrCat("offers ", was.name(), " ", was.version(),
                                     " with other content than the ", was.name(), " ",
                                     was.version(), " held here; refused"));
      }
    }
    out.newer = out.manifest.serial() > h->serial();
    out.held = std::move(*h);
  }
  return out;
}

}  // namespace sigrelay
