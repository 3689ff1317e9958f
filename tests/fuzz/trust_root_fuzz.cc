// Trust root parse, link and verify: each input part is a Root whose
// one-byte keys name fixed test keys (so links can verify) and whose
// issued_unix low bits say which of those keys sign it; the parts form the
// chain a manifest carries to a verifier pinned on key 0. Each part is also
// tried as a raw SignedRoot.
#include "core/model/manifest.h"
#include "core/model/trust_root.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr int kKeys = 3;

const std::vector<std::unique_ptr<sigrelay::ManifestSigner>>& TheKeys() {
  static auto* keys = [] {
    auto* k = new std::vector<std::unique_ptr<sigrelay::ManifestSigner>>;
    for (int i = 0; i < kKeys; ++i) k->push_back(std::move(*sigrelay::ManifestSigner::Generate()));
    return k;
  }();
  return *keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& keys = TheKeys();
  std::vector<std::string> parts = sigrelay::fuzz::Split(data, size);
  if (parts.size() > 2 * sigrelay::kMaxChainRoots) return 0;
  sigrelay::v1::SignedManifest offered;
  for (const std::string& part : parts) {
    sigrelay::v1::SignedRoot raw;
    if (raw.ParseFromString(part)) {
      (void)sigrelay::ParseRoot(raw);
      (void)sigrelay::LinkRoot(sigrelay::OneKeyRoot(keys[0]->RawPublicKey()), raw);
    }
    sigrelay::v1::Root root;
    if (!root.ParseFromString(part)) continue;
    for (std::string& k : *root.mutable_keys()) {
      if (k.size() == 1) k = keys[static_cast<uint8_t>(k[0]) % kKeys]->RawPublicKey();
    }
    sigrelay::v1::SignedRoot* signed_root = offered.add_roots();
    signed_root->set_root(root.SerializeAsString());
    for (int i = 0; i < kKeys; ++i) {
      if (!(root.issued_unix() & (1 << i))) continue;
      sigrelay::v1::RootSignature* sig = signed_root->add_signatures();
      sig->set_key(keys[i]->RawPublicKey());
      sig->set_signature(*keys[i]->SignBytes(signed_root->root()));
    }
  }
  sigrelay::v1::Manifest m;
  m.set_serial(1);
  m.set_expires_unix(1700000600);
  sigrelay::v1::SignedManifest body = *keys[parts.size() % kKeys]->Sign(m);
  offered.set_manifest(body.manifest());
  offered.set_signature(body.signature());
  sigrelay::ManifestVerifier verifier(sigrelay::OneKeyRoot(keys[0]->RawPublicKey()));
  (void)verifier.Verify(offered, absl::FromUnixSeconds(1700000000));
  (void)verifier.SignedByTrustedKey(offered);
  (void)verifier.OffersNewerRoot(offered);
  return 0;
}
