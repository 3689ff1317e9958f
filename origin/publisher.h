// Turns an uploaded file into the next version of a component: numbers it,
// computes an incremental from each retained older version straight to it,
// checks each incremental rebuilds the file, signs the new manifest and
// commits everything in one store commit.
//
// Memory is bounded by the chunk and the encoders, not the file: the upload
// is mapped where it was spooled, hashed and stored in chunks as it is read,
// and each old version is copied out of the store to a mapped file for the
// encoder; mapped pages are handed back as the work goes. Encodes run in
// parallel as far as cores and `encode_memory` allow.
//
// Time to servable is one round of encodes, not K: a publish signs the full
// file with the incrementals from the nearest versions (as many as run at
// once) and lists the others as pending; a background worker makes them and
// signs them in with one more manifest. Nodes holding a pending version
// wait for it instead of taking the full file.
//
//   Publisher publisher(store, signer, RealClock::Get(), options);
//   absl::StatusOr<v1::PublishResponse> r = publisher.Publish("virus", path);
#ifndef SIGRELAY_ORIGIN_PUBLISHER_H_
#define SIGRELAY_ORIGIN_PUBLISHER_H_

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/base/byte_sink.h"
#include "core/base/clock.h"
#include "core/base/file_util.h"
#include "core/base/mapped_file.h"
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
  // Where old versions are copied out of the store for the encoder
  // (required; emptied by the origin at start).
  std::string work_dir;
  // Memory the encodes running at once may take (IncrementalCodec::
  // EncodeMemory: zstd's estimate and the old version each one holds):
  // parallel encodes are bounded by this and by the cores, at least one.
  uint64_t encode_memory = 256ull << 20;
  // Incrementals made before a publish is signed, nearest versions first;
  // 0: one round (as many as run at once). The rest follow in the
  // background. Tests that want every incremental at once set it high.
  size_t incrementals_first = 0;
  // The rollout plan of a publish that names none (core/model/rollout.h);
  // empty: every agent at once.
  std::vector<v1::Ring> rollout;
};

// Thread-safe; publishes serialize.
class Publisher {
 public:
  Publisher(VersionStore* store, const ManifestSigner* signer, const Clock* clock,
            const PublisherOptions& options);
  // Stops the background encodes (a later start finishes them).
  ~Publisher();

  // Publishes the content of the file at `path` as the next version of
  // `component`. InvalidArgument for an unknown component, an empty file or
  // one over the size limit; AlreadyExists when it equals the newest version.
  // On any error nothing stored changes.
  // A version published with a rollout plan of two or more rings (`plan`,
  // else options().rollout) reaches the first ring only; the others keep
  // the last version that reached everyone (ChangeRollout widens it).
  absl::StatusOr<v1::PublishResponse> Publish(const std::string& component, const std::string& path,
                                              const std::vector<v1::Ring>* plan = nullptr);

  // Changes the rollout of `component` (at `version`, 0: whichever) with
  // `change` and signs the result; a rollout whose rings are all admitted
  // ends (the entry goes to everyone). FailedPrecondition when it is not
  // rolling out (or is at another version); `change`'s error otherwise,
  // nothing signed then.
  absl::StatusOr<v1::ComponentEntry> ChangeRollout(
      const std::string& component, uint32_t version,
      const std::function<absl::Status(v1::Rollout*)>& change);

  // The newest signed manifest, parsed (nullopt before any publish).
  std::optional<v1::Manifest> Current() const;

  // Re-signs the manifest with a higher serial and a fresh expiry once it
  // was issued `resign_every` ago, so a quiet origin never lets it go stale.
  absl::Status RefreshIfDue();

  // The trust root the signed manifests carry (0: none).
  uint64_t root_version() const { return signer_->root_version(); }

  // Brings an origin restored from an old copy forward: `remote` (the
  // newest manifest a relay or mirror holds) must verify with this origin's
  // key; every component version newer there is fetched with `fetch_full`
  // into the sink it is given (checked against its signed entry) and
  // published here under the same version, and serials continue after the
  // remote one. Versions and serials this origin signs afterwards are above
  // everything signed before.
  using FetchFull = std::function<absl::Status(const v1::ComponentEntry&, ByteSink*)>;
  absl::StatusOr<v1::ResumeResult> ResumeFrom(const v1::SignedManifest& remote,
                                              const FetchFull& fetch_full);

  // Withdraws `version` of `component`: signed into the manifest, so no node
  // serves it as a target. When it is the newest, the newest earlier
  // retained version that is not withdrawn is published again as the next
  // version (FailedPrecondition when there is none: publish a fixed file).
  // NotFound for a version never published; AlreadyExists when withdrawn.
  absl::StatusOr<v1::WithdrawResponse> Withdraw(const std::string& component, uint32_t version,
                                                const std::string& reason);

  // Blocks until no incremental is pending (tests, tools).
  void WaitForPendingIncrementals();

  const PublisherOptions& options() const { return options_; }

 private:
  struct Job {
    std::string component;
    uint32_t version = 0;
    std::string sha256;
  };

  // The next manifest: serial above both `previous` and `serial_floor`;
  // refuses to wrap.
  absl::StatusOr<v1::SignedManifest> SignNext(const v1::Manifest* previous,
                                              const v1::ComponentEntry* replace,
                                              uint64_t serial_floor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the file at `path` as `forced_version` (0: the policy's next).
  absl::StatusOr<v1::PublishResponse> PublishLocked(const ComponentSpec& spec,
                                                    const std::string& path,
                                                    uint32_t forced_version, uint64_t serial_floor,
                                                    const std::vector<v1::Ring>& rings = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How many encodes of files of these sizes run at once within
  // options_.encode_memory, and the cap on the mapped pages they may hold
  // all together.
  size_t Parallel(uint64_t old_size, uint64_t new_size, uint64_t* mapped_cap) const;
  // Incrementals from each of `from` to `content` (version `version` of
  // `component`), each verified, in parallel as memory and cores allow.
  std::vector<absl::StatusOr<v1::FileRecord>> EncodeAll(
      const StoreView& view, const std::string& component, uint32_t version,
      const MappedFile& content, const std::vector<uint32_t>& from,
      std::vector<std::unique_ptr<VersionStore::FileWriter>>* writers);
  // A file in the work dir, removed unless committed.
  absl::StatusOr<std::unique_ptr<StagedFile>> Scratch(const std::string& name) const;
  // Makes a job's pending incrementals and signs them in.
  absl::Status Finish(const Job& job);
  void Background();

  VersionStore* const store_;
  const ManifestSigner* const signer_;
  const Clock* const clock_;
  const PublisherOptions options_;
  const IncrementalCodec codec_;
  absl::Mutex mu_;  // one publish or refresh at a time
  // Signed into the next manifest with the previous ones (Withdraw).
  std::optional<v1::Withdrawal> withdrawing_ ABSL_GUARDED_BY(mu_);

  absl::Mutex jobs_mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(jobs_mu_);
  bool busy_ ABSL_GUARDED_BY(jobs_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(jobs_mu_) = false;
  std::atomic<bool> stop_encodes_{false};
  std::thread background_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_ORIGIN_PUBLISHER_H_
