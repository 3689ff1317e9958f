// Whether a client takes a manifest an upstream offers: what relays (sync
// and Watch follower) and agents decide the same way.
//
//   absl::StatusOr<OfferedManifest> offer =
//       CheckOfferedManifest(verifier, signed_manifest, held.get(), clock->Now());
//   if (offer.ok() && offer->newer) { ... download what changed ... }
#ifndef SIGRELAY_CORE_CLIENT_MANIFEST_CHECK_H_
#define SIGRELAY_CORE_CLIENT_MANIFEST_CHECK_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/model/manifest.h"

namespace sigrelay {

struct OfferedManifest {
  v1::Manifest manifest;             // verified
  bool newer = false;                // false: the serial held already
  std::optional<v1::Manifest> held;  // the held one, parsed, when given
  // The held one was signed by a key the trust root no longer holds: its
  // serial and versions were no floor for this one.
  bool floor_reset = false;
};

// The offered manifest once it verifies with the pinned key and has not
// expired at `now` (Unauthenticated / FailedPrecondition from the verifier,
// prefixed "manifest refused: "), and is not older than `held` (when given):
// FailedPrecondition "... rollback refused".
//
// Also refused (FailedPrecondition): a component at a lower version than
// held, whatever the serial ("rollback refused"); and, reported as a
// conflict (IsManifestConflict), a manifest with the held serial but other
// bytes, or a held version with other content: two signers, or an origin
// restored from an old copy.
//
// None of that holds when a newer trust root (learnt from `held` or
// `offered`) no longer lists the key that signed `held`: floor_reset.
absl::StatusOr<OfferedManifest> CheckOfferedManifest(const ManifestVerifier& verifier,
                                                     const v1::SignedManifest& offered,
                                                     const v1::SignedManifest* held,
                                                     absl::Time now);

// How long after a manifest was issued a node holding a version whose
// incremental is pending (ComponentEntry.pending_incrementals) waits for it
// before it takes the full file instead.
inline constexpr absl::Duration kPendingIncrementalWait = absl::Minutes(10);

// Whether a node holding `held_version` of `entry` (from `manifest`) should
// wait for the next manifest, which brings the incremental from it, rather
// than download the full file now.
bool WaitForPendingIncremental(const v1::Manifest& manifest, const v1::ComponentEntry& entry,
                               uint32_t held_version, absl::Time now);

// Whether `s` (from CheckOfferedManifest) is a conflict: the same serial or
// version signed over different content.
bool IsManifestConflict(const absl::Status& s);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_MANIFEST_CHECK_H_
