// Signing and verifying manifests with Ed25519 (OpenSSL EVP).
//
// The origin signs the serialized Manifest; relays pass the SignedManifest
// through unchanged; relays and agents verify it with the origin's pinned
// public key before they believe a byte of it.
//
//   auto signer = ManifestSigner::LoadOrCreate(dir + "/origin.key", dir + "/origin.pub");
//   auto signed_manifest = (*signer)->Sign(manifest);
//   auto verifier = ManifestVerifier::FromPemFile(dir + "/origin.pub");
//   absl::StatusOr<v1::Manifest> m = (*verifier)->Verify(*signed_manifest, now);
#ifndef SIGRELAY_CORE_MODEL_MANIFEST_H_
#define SIGRELAY_CORE_MODEL_MANIFEST_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/model/openssl_ptr.h"
#include "core/model/trust_root.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// Holds the origin's private key. Thread-safe after construction.
class ManifestSigner {
 public:
  // Loads the PEM private key at `key_path`; when it does not exist, creates
  // a new pair: `key_path` (mode 0600) and `pub_path` (0644).
  static absl::StatusOr<std::unique_ptr<ManifestSigner>> LoadOrCreate(const std::string& key_path,
                                                                      const std::string& pub_path);
  // A new key held in memory only (tests, fuzzing).
  static absl::StatusOr<std::unique_ptr<ManifestSigner>> Generate();
  // Loads an existing PEM private key; NotFound/InvalidArgument otherwise.
  static absl::StatusOr<std::unique_ptr<ManifestSigner>> Load(const std::string& key_path);

  // The manifest signed, with the trust roots set by SetRoots.
  absl::StatusOr<v1::SignedManifest> Sign(const v1::Manifest& manifest) const;
  // Ed25519 over `message` (a Root, for `sigrelayctl root sign`).
  absl::StatusOr<std::string> SignBytes(absl::string_view message) const;
  std::string PublicKeyPem() const;
  std::string RawPublicKey() const;

  // Whether `signed_manifest` is signed by this key and carries the roots
  // set here (else the origin re-signs it: a rotated key or root).
  bool SignedHere(const v1::SignedManifest& signed_manifest) const;

  // The chain every signed manifest carries (set before signing starts).
  void SetRoots(v1::RootChain chain) { roots_ = std::move(chain); }
  // The newest root of that chain (0: none, nodes pin this key).
  uint64_t root_version() const;

 private:
  explicit ManifestSigner(EvpPkeyPtr key) : key_(std::move(key)) {}
  EvpPkeyPtr key_;
  v1::RootChain roots_;
};

// Holds the trust root: a pinned public key (root version 0) or a pinned
// root chain. Learns newer roots that link to the one held (from the
// `roots` of the manifests it verifies). Thread-safe.
class ManifestVerifier {
 public:
  static absl::StatusOr<std::unique_ptr<ManifestVerifier>> FromPem(const std::string& pem);
  static absl::StatusOr<std::unique_ptr<ManifestVerifier>> FromPemFile(const std::string& path);
  // A RootChain file written by `sigrelayctl root`.
  static absl::StatusOr<std::unique_ptr<ManifestVerifier>> FromRootFile(const std::string& path);
  // Exactly one of the two flags' values given: --origin-pubkey or --root.
  static absl::StatusOr<std::unique_ptr<ManifestVerifier>> FromFlags(const std::string& pubkey_path,
                                                                     const std::string& root_path);
  explicit ManifestVerifier(TrustRoot root);

  // The manifest inside `signed_manifest`, after moving to any newer root
  // it carries that links to the one held, checking that a key of the root
  // signed it, and that it has not expired at `now`. Unauthenticated for a
  // bad signature, FailedPrecondition for an expired one, DataLoss for
  // undecodable bytes.
  absl::StatusOr<v1::Manifest> Verify(const v1::SignedManifest& signed_manifest,
                                      absl::Time now) const;

  // Moves to the newest root in `roots` that links to the one held;
  // returns why the walk stopped short of the last one ("" when it did not).
  std::string Learn(const google::protobuf::RepeatedPtrField<v1::SignedRoot>& roots) const;

  // Whether a key of the root held signed `signed_manifest` (expiry aside).
  bool SignedByTrustedKey(const v1::SignedManifest& signed_manifest) const;

  uint64_t root_version() const;

  // Whether `signed_manifest` carries a root newer than the one held (a
  // parse, no signature work): an announcement worth a full check even when
  // its serial is not higher.
  bool OffersNewerRoot(const v1::SignedManifest& signed_manifest) const;

 private:
  mutable absl::Mutex mu_;
  mutable std::shared_ptr<const TrustRoot> root_ ABSL_GUARDED_BY(mu_);
};

// Parses a SignedManifest's body without checking the signature: only for
// data that was verified before it was stored.
absl::StatusOr<v1::Manifest> ParseTrustedManifest(const v1::SignedManifest& signed_manifest);

// "fresh"; "stale" once two re-sign periods passed since it was issued (a
// newer one should have arrived: an origin down, a frozen mirror);
// "expired" from its expiry on (agents refuse it; a relay keeps serving what
// it holds).
std::string ManifestFreshness(const v1::Manifest& manifest, absl::Time now);

// The entry for `component`, or nullptr.
const v1::ComponentEntry* FindEntry(const v1::Manifest& manifest, absl::string_view component);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_MODEL_MANIFEST_H_
