// The Publisher in process: real store on disk, real signing key, a fake
// clock for re-signing.
#include "origin/publisher.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "core/model/delta_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_clock.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using ::testing::ElementsAre;
using testing::FakeClock;
using ::testing::HasSubstr;

class PublisherTest : public ::testing::Test {
 protected:
  void Open(PublisherOptions options) {
    store_ = *VersionStore::Open(dir_.File("store"), {.chunk_size = 16 << 10});
    signer_ = *ManifestSigner::LoadOrCreate(dir_.File("k"), dir_.File("p"));
    verifier_ = *ManifestVerifier::FromPem(signer_->PublicKeyPem());
    options.zstd_level = 3;
    options.work_dir = dir_.File("tmp");
    // Every incremental before the publish returns, unless a test says.
    if (options.incrementals_first == 0) options.incrementals_first = 100;
    publisher_ = std::make_unique<Publisher>(store_.get(), signer_.get(), &clock_, options);
  }
  absl::StatusOr<v1::PublishResponse> Publish(const std::string& component, int seed) {
    std::string content;
    for (int i = 0; i < 3000; ++i) {
      absl::StrAppend(&content, component, "-", i, "-", i % 97 == seed % 97 ? seed : 0, "\n");
    }
    const std::string path = dir_.File(absl::StrCat("upload-", ++uploads_));
    EXPECT_OK(WriteFileAtomically(path, content));
    return publisher_->Publish(component, path);
  }
  v1::Manifest Current() {
    absl::StatusOr<v1::Manifest> m = verifier_->Verify(*store_->CurrentManifest(), clock_.Now());
    EXPECT_OK(m);
    return m.ok() ? *m : v1::Manifest();
  }
  std::vector<uint32_t> IncrementalsFrom(const std::string& component) {
    std::vector<uint32_t> out;
    v1::Manifest m = Current();
    for (const v1::IncrementalEntry& ie : FindEntry(m, component)->incrementals()) {
      out.push_back(ie.from_version());
    }
    return out;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  int uploads_ = 0;
  std::unique_ptr<VersionStore> store_;
  std::unique_ptr<ManifestSigner> signer_;
  std::unique_ptr<ManifestVerifier> verifier_;
  std::unique_ptr<Publisher> publisher_;
};

TEST_F(PublisherTest, KeepsKOlderVersionsEachWithAnIncrementalToTheNewest) {
  PublisherOptions options;
  options.policy.retain = 2;
  Open(options);
  for (int seed = 1; seed <= 4; ++seed) ASSERT_OK(Publish("virus", seed));
  EXPECT_EQ(FindEntry(Current(), "virus")->version(), 7u);
  EXPECT_THAT(IncrementalsFrom("virus"), ElementsAre(3u, 5u));
  EXPECT_THAT(store_->Snapshot()->FullVersions("virus"), ElementsAre(3u, 5u, 7u));
  EXPECT_EQ(Current().serial(), 4u);
}

// A publish is signed and servable after the incrementals from the nearest
// versions; the others are listed as pending and signed in by one more
// manifest, each one verified like the first.
TEST_F(PublisherTest, TheNearestIncrementalsComeFirstAndTheRestInOneMoreManifest) {
  PublisherOptions options;
  options.policy.retain = 4;
  options.incrementals_first = 1;
  Open(options);
  for (int seed = 1; seed <= 4; ++seed) {
    ASSERT_OK(Publish("virus", seed));
    publisher_->WaitForPendingIncrementals();
  }
  const uint64_t before = Current().serial();
  ASSERT_OK(Publish("virus", 5));
  // Right after the publish: v_7.9 signed, the rest pending (or already
  // signed in by the background worker; then one more serial).
  publisher_->WaitForPendingIncrementals();
  v1::Manifest m = Current();
  const v1::ComponentEntry* e = FindEntry(m, "virus");
  EXPECT_EQ(e->version(), 9u);
  EXPECT_THAT(IncrementalsFrom("virus"), ElementsAre(1u, 3u, 5u, 7u));
  EXPECT_EQ(e->pending_incrementals_size(), 0);
  EXPECT_EQ(m.serial(), before + 2) << "the publish, then one manifest for the rest";
  auto view = store_->Snapshot();
  const std::string newest = *view->ReadAll(*view->Full("virus", 9));
  for (uint32_t from : {1u, 3u, 5u, 7u}) {
    auto incr = view->ReadAll(*view->Incremental("virus", from, 9));
    ASSERT_OK(incr);
    auto old = view->ReadAll(*view->Full("virus", from));
    ASSERT_OK(old);
    EXPECT_EQ(*IncrementalCodec().Decode(*old, *incr, newest.size()), newest) << from;
  }
}

// A version published while the incrementals of the one before are still
// being made: those are dropped (they lead to a version no longer newest).
TEST_F(PublisherTest, APendingJobForASupersededVersionSignsNothing) {
  PublisherOptions options;
  options.policy.retain = 4;
  options.incrementals_first = 1;
  Open(options);
  for (int seed = 1; seed <= 6; ++seed) ASSERT_OK(Publish("virus", seed));
  publisher_->WaitForPendingIncrementals();
  v1::Manifest m = Current();
  const v1::ComponentEntry* e = FindEntry(m, "virus");
  EXPECT_EQ(e->version(), 11u);
  EXPECT_THAT(IncrementalsFrom("virus"), ElementsAre(3u, 5u, 7u, 9u));
  EXPECT_EQ(e->pending_incrementals_size(), 0);
}

TEST_F(PublisherTest, FullOnlyComponentsSayIt) {
  PublisherOptions options;
  options.catalog = *ComponentCatalog::FromSpecs({{"virus", true}, {"engine", false}});
  Open(options);
  ASSERT_OK(Publish("engine", 1));
  ASSERT_OK(Publish("engine", 2));
  ASSERT_OK(Publish("virus", 1));
  ASSERT_OK(Publish("virus", 2));
  v1::Manifest m = Current();
  EXPECT_TRUE(FindEntry(m, "engine")->full_only());
  EXPECT_EQ(FindEntry(m, "engine")->incrementals_size(), 0);
  EXPECT_FALSE(FindEntry(m, "virus")->full_only());
  EXPECT_THAT(IncrementalsFrom("virus"), ElementsAre(1u));
  // Catalog order, whatever the publish order.
  EXPECT_EQ(m.components(0).name(), "virus");
  absl::StatusOr<v1::PublishResponse> unknown = Publish("spyware", 1);
  EXPECT_THAT(unknown.status().message(), HasSubstr("known components: virus, engine"));
}

TEST_F(PublisherTest, TheSameFileTwiceIsRefusedAndChangesNothing) {
  Open({});
  ASSERT_OK(Publish("virus", 1));
  absl::StatusOr<v1::PublishResponse> again = Publish("virus", 1);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Current().serial(), 1u);
}

TEST_F(PublisherTest, ReSignsEveryPeriodAndSaysSoInTheManifest) {
  PublisherOptions options;
  options.manifest_validity = absl::Hours(24);
  options.resign_every = absl::Hours(1);
  Open(options);
  ASSERT_OK(Publish("virus", 1));
  const v1::Manifest first = Current();
  EXPECT_EQ(first.resign_seconds(), 3600);
  EXPECT_EQ(ManifestFreshness(first, clock_.Now()), "fresh");
  clock_.Advance(absl::Minutes(59));
  ASSERT_OK(publisher_->RefreshIfDue());
  EXPECT_EQ(Current().serial(), first.serial()) << "re-signed before the period";
  EXPECT_EQ(ManifestFreshness(first, clock_.Now() + absl::Minutes(62)), "stale");
  EXPECT_EQ(ManifestFreshness(first, clock_.Now() + absl::Hours(24)), "expired");
  clock_.Advance(absl::Minutes(2));
  ASSERT_OK(publisher_->RefreshIfDue());
  const v1::Manifest refreshed = Current();
  EXPECT_EQ(refreshed.serial(), first.serial() + 1);
  EXPECT_EQ(refreshed.expires_unix(), absl::ToUnixSeconds(clock_.Now() + absl::Hours(24)));
  EXPECT_EQ(FindEntry(refreshed, "virus")->sha256(), FindEntry(first, "virus")->sha256());
}

// A manifest at the largest serial (signed with the origin's key, as a
// compromised key could): resuming after it refuses to wrap to 0 rather
// than sign a serial every node would take for a rollback; with another
// key it is not this origin's and is refused as such.
TEST_F(PublisherTest, ResumingRefusesToWrapTheSerialAndAnotherKeysManifest) {
  Open({});
  ASSERT_OK(Publish("virus", 1));
  v1::Manifest top = Current();
  top.set_serial(std::numeric_limits<uint64_t>::max());
  absl::StatusOr<v1::SignedManifest> forged = signer_->Sign(top);
  ASSERT_OK(forged);
  auto no_fetch = [](const v1::ComponentEntry&, ByteSink*) {
    return absl::InternalError("not expected");
  };
  absl::StatusOr<v1::ResumeResult> r = publisher_->ResumeFrom(*forged, no_fetch);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("would wrap to 0"));
  EXPECT_EQ(Current().serial(), 1u) << "nothing signed";

  auto other = *ManifestSigner::LoadOrCreate(dir_.File("k2"), dir_.File("p2"));
  top.set_serial(7);
  r = publisher_->ResumeFrom(*other->Sign(top), no_fetch);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("not this origin's"));
}

}  // namespace
}  // namespace sigrelay
