#include "core/model/trust_root.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <memory>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/model/openssl_ptr.h"

namespace sigrelay {
namespace {

constexpr size_t kKeyBytes = 32;

}  // namespace

bool Ed25519Verifies(absl::string_view key, absl::string_view message,
                     absl::string_view signature) {
  if (key.size() != kKeyBytes) return false;
  EvpPkeyPtr pkey(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key.data()), key.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok =
      pkey && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  ERR_clear_error();
  return ok;
}

absl::StatusOr<std::string> RawPublicKeyFromPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  std::string raw(kKeyBytes, '\0');
  size_t len = raw.size();
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519 ||
      EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) !=
          1 ||
      len != kKeyBytes) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM Ed25519 public key; use the origin's origin.pub");
  }
  return raw;
}

std::string KeyFingerprint(absl::string_view key) {
  return absl::StrCat("k:", ToHex(Sha256::Of(key)).substr(0, 16));
}

TrustRoot OneKeyRoot(std::string key) {
  TrustRoot root;
  root.keys.push_back(std::move(key));
  return root;
}

absl::StatusOr<TrustRoot> ParseRoot(const v1::SignedRoot& signed_root) {
  v1::Root r;
  if (!r.ParseFromString(signed_root.root())) {
    return absl::DataLossError("trust root is not a valid sigrelay.v1.Root");
  }
  if (r.keys_size() == 0 || r.keys_size() > kMaxRootKeys) {
    return absl::InvalidArgumentError(absl::StrCat("trust root v", r.version(), " holds ",
                                                   r.keys_size(), " keys; 1 to ", kMaxRootKeys,
                                                   " are allowed"));
  }
  TrustRoot out;
  out.version = r.version();
  out.threshold = std::max<uint32_t>(r.threshold(), 1);
  std::set<std::string> seen;
  for (const std::string& k : r.keys()) {
    if (k.size() != kKeyBytes || !seen.insert(k).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trust root v", r.version(), ": every key must be a distinct 32-byte Ed25519 key"));
    }
    out.keys.push_back(k);
  }
  if (out.threshold > out.keys.size()) {
    return absl::InvalidArgumentError(absl::StrCat("trust root v", r.version(), " asks for ",
                                                   out.threshold, " signatures but holds ",
                                                   out.keys.size(), " keys"));
  }
  return out;
}

int CountSignatures(const TrustRoot& root, const v1::SignedRoot& signed_root) {
  std::set<std::string> signers;
  for (const v1::RootSignature& sig : signed_root.signatures()) {
    if (std::find(root.keys.begin(), root.keys.end(), sig.key()) == root.keys.end()) continue;
    if (signers.count(sig.key())) continue;
    if (Ed25519Verifies(sig.key(), signed_root.root(), sig.signature())) signers.insert(sig.key());
  }
  return static_cast<int>(signers.size());
}

absl::StatusOr<TrustRoot> LinkRoot(const TrustRoot& prev, const v1::SignedRoot& next) {
  if (next.signatures_size() > 2 * kMaxRootKeys) {
    return absl::InvalidArgumentError("trust root carries too many signatures");
  }
  absl::StatusOr<TrustRoot> root = ParseRoot(next);
  if (!root.ok()) return root.status();
  if (root->version != prev.version + 1) {
    return absl::FailedPreconditionError(absl::StrCat("trust root v", root->version,
                                                      " does not follow v", prev.version,
                                                      " held here; roots move one at a time"));
  }
  int by_prev = CountSignatures(prev, next);
  int by_own = CountSignatures(*root, next);
  if (by_prev < static_cast<int>(prev.threshold) || by_own < static_cast<int>(root->threshold)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "trust root v", root->version, " is signed by ", by_prev, " of the ", prev.threshold,
        " keys of v", prev.version, " needed and ", by_own, " of its own ", root->threshold,
        "; refused (sign it with `sigrelayctl root sign`)"));
  }
  return root;
}

TrustRoot AdvanceRoot(const TrustRoot& from,
                      const google::protobuf::RepeatedPtrField<v1::SignedRoot>& chain,
                      std::string* why) {
  TrustRoot held = from;
  int looked = 0;
  for (const v1::SignedRoot& next : chain) {
    if (++looked > kMaxChainRoots) {
      *why = absl::StrCat("more than ", kMaxChainRoots, " trust roots offered");
      break;
    }
    v1::Root peek;
    if (!peek.ParseFromString(next.root())) {
      *why = "an offered trust root is not a valid sigrelay.v1.Root";
      break;
    }
    if (peek.version() <= held.version) continue;
    absl::StatusOr<TrustRoot> linked = LinkRoot(held, next);
    if (!linked.ok()) {
      *why = std::string(linked.status().message());
      break;
    }
    held = std::move(*linked);
  }
  return held;
}

absl::StatusOr<v1::RootChain> ReadRootChainFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  v1::RootChain chain;
  if (!chain.ParseFromString(*bytes) || chain.roots_size() == 0 ||
      chain.roots_size() > kMaxChainRoots) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a trust root chain (1 to ", kMaxChainRoots,
                     " roots); make one with `sigrelayctl root create`"));
  }
  return chain;
}

uint64_t NewestRootVersion(const google::protobuf::RepeatedPtrField<v1::SignedRoot>& chain) {
  v1::Root newest;
  return !chain.empty() && newest.ParseFromString(chain.rbegin()->root()) ? newest.version() : 0;
}

absl::StatusOr<v1::RootChain> ReadRootChain(const std::string& path, TrustRoot* newest) {
  absl::StatusOr<v1::RootChain> read = ReadRootChainFile(path);
  if (!read.ok()) return read.status();
  const v1::RootChain& chain = *read;
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", what, "; write it with `sigrelayctl root create`"));
  };
  absl::StatusOr<TrustRoot> first = ParseRoot(chain.roots(0));
  if (!first.ok()) return fail(first.status().message());
  if (CountSignatures(*first, chain.roots(0)) < static_cast<int>(first->threshold)) {
    return fail(absl::StrCat("trust root v", first->version, " lacks its own ", first->threshold,
                             " signatures"));
  }
  TrustRoot held = *first;
  for (int i = 1; i < chain.roots_size(); ++i) {
    absl::StatusOr<TrustRoot> linked = LinkRoot(held, chain.roots(i));
    if (!linked.ok()) return fail(linked.status().message());
    held = std::move(*linked);
  }
  *newest = std::move(held);
  return read;
}

}  // namespace sigrelay
