// Manifest parse, verify and the offered-manifest rules: the input is two
// Manifests (held, offered), signed here with a fixed key so the checks past
// the signature (rollback, conflicts, versions) are reached; a third part is
// tried as a SignedManifest with a garbage signature.
#include "core/client/manifest_check.h"
#include "core/model/manifest.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct Keys {
  std::unique_ptr<sigrelay::ManifestSigner> signer;
  std::unique_ptr<sigrelay::ManifestVerifier> verifier;
};

const Keys& TheKeys() {
  static Keys* keys = [] {
    auto* k = new Keys;
    k->signer = std::move(*sigrelay::ManifestSigner::Generate());
    k->verifier = std::move(*sigrelay::ManifestVerifier::FromPem(k->signer->PublicKeyPem()));
    return k;
  }();
  return *keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> parts = sigrelay::fuzz::Split(data, size);
  if (parts.size() < 2) return 0;
  const Keys& keys = TheKeys();
  sigrelay::v1::Manifest held, offered;
  if (!held.ParseFromString(parts[0]) || !offered.ParseFromString(parts[1])) return 0;
  absl::StatusOr<sigrelay::v1::SignedManifest> h = keys.signer->Sign(held);
  absl::StatusOr<sigrelay::v1::SignedManifest> o = keys.signer->Sign(offered);
  if (!h.ok() || !o.ok()) return 0;
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  (void)sigrelay::CheckOfferedManifest(*keys.verifier, *o, &*h, now);
  (void)sigrelay::ManifestFreshness(offered, now);
  if (parts.size() > 2) {
    sigrelay::v1::SignedManifest raw;
    raw.set_manifest(parts[2]);
    raw.set_signature(parts.size() > 3 ? parts[3] : std::string(64, '\0'));
    (void)keys.verifier->Verify(raw, now);
    (void)sigrelay::ParseTrustedManifest(raw);
  }
  return 0;
}
