// Turns an uploaded file into the next version of a component: numbers it,
// computes an incremental from each retained older version straight to it,
// checks each incremental rebuilds the file, signs the new manifest and
// commits everything in one store commit.
//
//   Publisher publisher(store, signer, RealClock::Get(), options);
//   absl::StatusOr<v1::PublishResponse> r = publisher.Publish("virus", path);
#ifndef SIGRELAY_ORIGIN_PUBLISHER_H_
#define SIGRELAY_ORIGIN_PUBLISHER_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/base/clock.h"
#include "core/model/component.h"
#include "core/model/delta_codec.h"
#include "core/model/manifest.h"
#include "core/store/version_store.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

struct PublisherOptions {
  VersionPolicy policy;
  ComponentCatalog catalog = ComponentCatalog::Default();
  uint64_t max_file_size = 1ull << 30;
  int zstd_level = IncrementalCodec::kDefaultLevel;
  absl::Duration manifest_validity = absl::Hours(24);
  // Re-signed (new serial, fresh expiry) this often while nothing is
  // published; signed into the manifest so nodes can tell a stale one.
  absl::Duration resign_every = absl::Hours(1);
};

// Thread-safe; publishes serialize.
class Publisher {
 public:
  Publisher(VersionStore* store, const ManifestSigner* signer, const Clock* clock,
            const PublisherOptions& options);

  // Publishes the content of the file at `path` as the next version of
  // `component`. InvalidArgument for an unknown component, an empty file or
  // one over the size limit; AlreadyExists when it equals the newest version.
  // On any error nothing stored changes.
  absl::StatusOr<v1::PublishResponse> Publish(const std::string& component,
                                              const std::string& path);

  // Re-signs the manifest with a higher serial and a fresh expiry once it
  // was issued `resign_every` ago, so a quiet origin never lets it go stale.
  absl::Status RefreshIfDue();

  // The trust root the signed manifests carry (0: none).
  uint64_t root_version() const { return signer_->root_version(); }

  // Brings an origin restored from an old copy forward: `remote` (the
  // newest manifest a relay or mirror holds) must verify with this origin's
  // key; every component version newer there is fetched with `fetch_full`
  // (checked against its signed entry) and published here under the same
  // version, and serials continue after the remote one. Versions and serials
  // this origin signs afterwards are above everything signed before.
  using FetchFull = std::function<absl::StatusOr<std::string>(const v1::ComponentEntry&)>;

  // Withdraws `version` of `component`: signed into the manifest, so no node
  // serves it as a target. When it is the newest, the newest earlier
  // retained version that is not withdrawn is published again as the next
  // version (FailedPrecondition when there is none: publish a fixed file).
  // NotFound for a version never published; AlreadyExists when withdrawn.
  absl::StatusOr<v1::WithdrawResponse> Withdraw(const std::string& component, uint32_t version,
                                                const std::string& reason);
  absl::StatusOr<v1::ResumeResult> ResumeFrom(const v1::SignedManifest& remote,
                                              const FetchFull& fetch_full);

  const PublisherOptions& options() const { return options_; }

 private:
  // The next manifest: serial above both `previous` and `serial_floor`;
  // refuses to wrap.
  absl::StatusOr<v1::SignedManifest> SignNext(const v1::Manifest* previous,
                                              const v1::ComponentEntry* replace,
                                              uint64_t serial_floor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes `content` as `forced_version` (0: the policy's next).
  absl::StatusOr<v1::PublishResponse> PublishLocked(const ComponentSpec& spec,
                                                    const std::string& content,
                                                    uint32_t forced_version, uint64_t serial_floor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  VersionStore* const store_;
  const ManifestSigner* const signer_;
  const Clock* const clock_;
  const PublisherOptions options_;
  const IncrementalCodec codec_;
  absl::Mutex mu_;  // one publish or refresh at a time
  // Signed into the next manifest with the previous ones (Withdraw).
  std::optional<v1::Withdrawal> withdrawing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_ORIGIN_PUBLISHER_H_
