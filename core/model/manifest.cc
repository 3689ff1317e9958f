#include "core/model/manifest.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/base/file_util.h"

namespace sigrelay {

namespace {

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<EvpPkeyPtr> ParsePrivateKey(const std::string& pem, const std::string& path) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a PEM Ed25519 private key (", OpenSslError(),
                     "); give the origin's origin.key, or remove it to generate a new pair"));
  }
  return key;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ManifestSigner>> ManifestSigner::Load(const std::string& key_path) {
  absl::StatusOr<std::string> pem = ReadFileToString(key_path);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<EvpPkeyPtr> key = ParsePrivateKey(*pem, key_path);
  if (!key.ok()) return key.status();
  return std::unique_ptr<ManifestSigner>(new ManifestSigner(std::move(*key)));
}

absl::StatusOr<std::unique_ptr<ManifestSigner>> ManifestSigner::Generate() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) {
    return absl::InternalError(absl::StrCat("cannot generate an Ed25519 key: ", OpenSslError()));
  }
  return std::unique_ptr<ManifestSigner>(new ManifestSigner(std::move(key)));
}

absl::StatusOr<std::unique_ptr<ManifestSigner>> ManifestSigner::LoadOrCreate(
    const std::string& key_path, const std::string& pub_path) {
  if (FileExists(key_path)) return Load(key_path);
  absl::StatusOr<std::unique_ptr<ManifestSigner>> generated = Generate();
  if (!generated.ok()) return generated.status();
  std::unique_ptr<ManifestSigner> signer = std::move(*generated);
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), signer->key_.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return absl::InternalError(absl::StrCat("cannot encode the key: ", OpenSslError()));
  }
  // The public half first: a crash in between leaves no private key, so the
  // next start makes a fresh, consistent pair.
  absl::Status s = WriteFileAtomically(pub_path, signer->PublicKeyPem(), 0644);
  if (s.ok()) s = WriteFileAtomically(key_path, BioContents(bio.get()), 0600);
  if (!s.ok()) return s;
  return signer;
}

std::string ManifestSigner::PublicKeyPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key_.get());
  return BioContents(bio.get());
}

absl::StatusOr<std::string> ManifestSigner::SignBytes(absl::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  const auto* msg = reinterpret_cast<const unsigned char*>(message.data());
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len, msg, message.size()) != 1) {
    return absl::InternalError(absl::StrCat("Ed25519 sign: ", OpenSslError()));
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len, msg,
                     message.size()) != 1) {
    return absl::InternalError(absl::StrCat("Ed25519 sign: ", OpenSslError()));
  }
  sig.resize(sig_len);
  return sig;
}

std::string ManifestSigner::RawPublicKey() const {
  std::string raw(32, '\0');
  size_t len = raw.size();
  EVP_PKEY_get_raw_public_key(key_.get(), reinterpret_cast<unsigned char*>(raw.data()), &len);
  raw.resize(len);
  return raw;
}

uint64_t ManifestSigner::root_version() const { return NewestRootVersion(roots_.roots()); }

bool ManifestSigner::SignedHere(const v1::SignedManifest& signed_manifest) const {
  if (signed_manifest.roots_size() != roots_.roots_size()) return false;
  for (int i = 0; i < roots_.roots_size(); ++i) {
    if (signed_manifest.roots(i).SerializeAsString() != roots_.roots(i).SerializeAsString()) {
      return false;
    }
  }
  return Ed25519Verifies(RawPublicKey(), signed_manifest.manifest(), signed_manifest.signature());
}

absl::StatusOr<v1::SignedManifest> ManifestSigner::Sign(const v1::Manifest& manifest) const {
  v1::SignedManifest out;
  if (!manifest.SerializeToString(out.mutable_manifest())) {
    return absl::InternalError("cannot serialize the manifest");
  }
  absl::StatusOr<std::string> sig = SignBytes(out.manifest());
  if (!sig.ok()) return sig.status();
  out.set_signature(std::move(*sig));
  *out.mutable_roots() = roots_.roots();
  return out;
}

ManifestVerifier::ManifestVerifier(TrustRoot root)
    : root_(std::make_shared<const TrustRoot>(std::move(root))) {}

absl::StatusOr<std::unique_ptr<ManifestVerifier>> ManifestVerifier::FromPem(
    const std::string& pem) {
  absl::StatusOr<std::string> key = RawPublicKeyFromPem(pem);
  if (!key.ok()) return key.status();
  return std::make_unique<ManifestVerifier>(OneKeyRoot(std::move(*key)));
}

absl::StatusOr<std::unique_ptr<ManifestVerifier>> ManifestVerifier::FromPemFile(
    const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok()) return pem.status();
  auto verifier = FromPem(*pem);
  if (!verifier.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", verifier.status().message()));
  }
  return verifier;
}

absl::StatusOr<std::unique_ptr<ManifestVerifier>> ManifestVerifier::FromRootFile(
    const std::string& path) {
  TrustRoot newest;
  absl::StatusOr<v1::RootChain> chain = ReadRootChain(path, &newest);
  if (!chain.ok()) return chain.status();
  return std::make_unique<ManifestVerifier>(std::move(newest));
}

absl::StatusOr<std::unique_ptr<ManifestVerifier>> ManifestVerifier::FromFlags(
    const std::string& pubkey_path, const std::string& root_path) {
  if (pubkey_path.empty() == root_path.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of --origin-pubkey (the origin's origin.pub) and --root (a trust root "
        "chain from `sigrelayctl root`)");
  }
  return root_path.empty() ? FromPemFile(pubkey_path) : FromRootFile(root_path);
}

std::string ManifestVerifier::Learn(
    const google::protobuf::RepeatedPtrField<v1::SignedRoot>& roots) const {
  std::string why;
  if (roots.empty()) return why;
  std::shared_ptr<const TrustRoot> held;
  {
    absl::MutexLock lock(&mu_);
    held = root_;
  }
  TrustRoot next = AdvanceRoot(*held, roots, &why);
  if (next.version == held->version) return why;
  absl::MutexLock lock(&mu_);
  if (next.version > root_->version) root_ = std::make_shared<const TrustRoot>(std::move(next));
  return why;
}

bool ManifestVerifier::SignedByTrustedKey(const v1::SignedManifest& signed_manifest) const {
  std::shared_ptr<const TrustRoot> root;
  {
    absl::MutexLock lock(&mu_);
    root = root_;
  }
  for (const std::string& key : root->keys) {
    if (Ed25519Verifies(key, signed_manifest.manifest(), signed_manifest.signature())) return true;
  }
  return false;
}

bool ManifestVerifier::OffersNewerRoot(const v1::SignedManifest& signed_manifest) const {
  return NewestRootVersion(signed_manifest.roots()) > root_version();
}

uint64_t ManifestVerifier::root_version() const {
  absl::MutexLock lock(&mu_);
  return root_->version;
}

absl::StatusOr<v1::Manifest> ManifestVerifier::Verify(const v1::SignedManifest& signed_manifest,
                                                      absl::Time now) const {
  const std::string why = Learn(signed_manifest.roots());
  if (!SignedByTrustedKey(signed_manifest)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "manifest signature does not verify with any key of trust root v", root_version(),
        " pinned here: it was altered or signed by another key; check --origin-pubkey or --root",
        why.empty() ? "" : absl::StrCat(" (offered trust root refused: ", why, ")")));
  }
  absl::StatusOr<v1::Manifest> manifest = ParseTrustedManifest(signed_manifest);
  if (!manifest.ok()) return manifest.status();
  absl::Time expires = absl::FromUnixSeconds(manifest->expires_unix());
  if (now >= expires) {
    return absl::FailedPreconditionError(
        absl::StrCat("manifest serial ", manifest->serial(), " expired at ",
                     absl::FormatTime(expires, absl::UTCTimeZone()),
                     "; the origin must re-sign it (is the origin running?)"));
  }
  return manifest;
}

absl::StatusOr<v1::Manifest> ParseTrustedManifest(const v1::SignedManifest& signed_manifest) {
  v1::Manifest manifest;
  if (!manifest.ParseFromString(signed_manifest.manifest())) {
    return absl::DataLossError("manifest body is not a valid sigrelay.v1.Manifest");
  }
  return manifest;
}

const v1::ComponentEntry* FindEntry(const v1::Manifest& manifest, absl::string_view component) {
  for (const v1::ComponentEntry& e : manifest.components()) {
    if (e.name() == component) return &e;
  }
  return nullptr;
}

std::string ManifestFreshness(const v1::Manifest& manifest, absl::Time now) {
  if (now >= absl::FromUnixSeconds(manifest.expires_unix())) return "expired";
  if (manifest.resign_seconds() > 0 && now >= absl::FromUnixSeconds(manifest.issued_unix()) +
                                                  2 * absl::Seconds(manifest.resign_seconds())) {
    return "stale";
  }
  return "fresh";
}

}  // namespace sigrelay
