#include "core/client/manifest_check.h"

#include "absl/strings/str_cat.h"

namespace sigrelay {

absl::StatusOr<OfferedManifest> CheckOfferedManifest(const ManifestVerifier& verifier,
                                                     const v1::SignedManifest& offered,
                                                     const v1::SignedManifest* held,
                                                     absl::Time now) {
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
    if (out.manifest.serial() < h->serial()) {
      return absl::FailedPreconditionError(
          absl::StrCat("offers manifest serial ", out.manifest.serial(), ", older than serial ",
                       h->serial(), " held here; rollback refused"));
    }
    out.newer = out.manifest.serial() > h->serial();
    out.held = std::move(*h);
  }
  return out;
}

}  // namespace sigrelay
