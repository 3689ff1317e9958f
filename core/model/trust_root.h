// Trust roots: which Ed25519 keys may sign manifests, and how that set
// changes (see Root in update.proto).
//
//   absl::StatusOr<TrustRoot> pinned = ReadPinnedRoot("/etc/sigrelay/root.binpb");
//   TrustRoot held = *pinned;
//   absl::StatusOr<TrustRoot> next = LinkRoot(held, signed_manifest.roots(0));
#ifndef SIGRELAY_CORE_MODEL_TRUST_ROOT_H_
#define SIGRELAY_CORE_MODEL_TRUST_ROOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

// Bounds on what a root may hold, checked before any signature work.
inline constexpr int kMaxRootKeys = 32;
inline constexpr int kMaxChainRoots = 64;

struct TrustRoot {
  uint64_t version = 0;
  std::vector<std::string> keys;  // raw Ed25519 public keys
  uint32_t threshold = 1;
};

// Ed25519 over `message` with the raw 32-byte public key `key`.
bool Ed25519Verifies(absl::string_view key, absl::string_view message, absl::string_view signature);

// The raw 32-byte key of a PEM Ed25519 public key (what origin.pub holds).
absl::StatusOr<std::string> RawPublicKeyFromPem(const std::string& pem);

// "k:" and the first 16 hex digits of the key's SHA-256: how keys are named
// in logs and `sigrelayctl root show`.
std::string KeyFingerprint(absl::string_view key);

// Root version 0 holding just `key`: what a single --origin-pubkey pins.
TrustRoot OneKeyRoot(std::string key);

// The Root inside `signed_root`, its shape checked (1..kMaxRootKeys keys of
// 32 bytes, none twice, 1 <= threshold <= keys) but no signature.
absl::StatusOr<TrustRoot> ParseRoot(const v1::SignedRoot& signed_root);

// How many distinct keys of `root` signed `signed_root.root()`.
int CountSignatures(const TrustRoot& root, const v1::SignedRoot& signed_root);

// `next`, once it is root prev.version+1 signed by prev.threshold keys of
// `prev` and by its own threshold: FailedPrecondition/Unauthenticated naming
// what is missing otherwise.
absl::StatusOr<TrustRoot> LinkRoot(const TrustRoot& prev, const v1::SignedRoot& next);

// The newest root reachable from `from` through `chain` (roots not newer
// than `from` are skipped). `why` gets the reason the walk stopped early, if
// it did.
TrustRoot AdvanceRoot(const TrustRoot& from,
                      const google::protobuf::RepeatedPtrField<v1::SignedRoot>& chain,
                      std::string* why);

// A RootChain file parsed (1 to kMaxChainRoots roots), nothing verified:
// for `sigrelayctl root`, which works on chains still being signed.
absl::StatusOr<v1::RootChain> ReadRootChainFile(const std::string& path);

// The version of the last root in `chain` (0: none, or not a Root).
uint64_t NewestRootVersion(const google::protobuf::RepeatedPtrField<v1::SignedRoot>& chain);

// A RootChain file: its first root is trusted as given once it carries its
// own threshold of signatures; each next one must link. Returns the chain
// and, in `newest`, the root it reaches.
absl::StatusOr<v1::RootChain> ReadRootChain(const std::string& path, TrustRoot* newest);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_MODEL_TRUST_ROOT_H_
