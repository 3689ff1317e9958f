#include "core/model/manifest.h"

#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

v1::Manifest SampleManifest(absl::Time now) {
  v1::Manifest m;
  m.set_serial(7);
  m.set_issued_unix(absl::ToUnixSeconds(now));
  m.set_expires_unix(absl::ToUnixSeconds(now + absl::Hours(24)));
  v1::ComponentEntry* e = m.add_components();
  e->set_name("virus");
  e->set_version(175);
  e->set_size(1234);
  e->set_sha256(std::string(32, 'a'));
  v1::IncrementalEntry* i = e->add_incrementals();
  i->set_from_version(173);
  i->set_size(99);
  i->set_sha256(std::string(32, 'b'));
  return m;
}

class ManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto signer = ManifestSigner::LoadOrCreate(dir_.File("origin.key"), dir_.File("origin.pub"));
    ASSERT_OK(signer);
    signer_ = std::move(*signer);
    auto verifier = ManifestVerifier::FromPemFile(dir_.File("origin.pub"));
    ASSERT_OK(verifier);
    verifier_ = std::move(*verifier);
  }

  testing::TempDir dir_;
  std::unique_ptr<ManifestSigner> signer_;
  std::unique_ptr<ManifestVerifier> verifier_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(ManifestTest, SignedManifestVerifiesAndRoundTrips) {
  auto signed_m = signer_->Sign(SampleManifest(now_));
  ASSERT_OK(signed_m);
  auto m = verifier_->Verify(*signed_m, now_);
  ASSERT_OK(m);
  EXPECT_EQ(m->serial(), 7u);
  ASSERT_NE(FindEntry(*m, "virus"), nullptr);
  EXPECT_EQ(FindEntry(*m, "virus")->incrementals(0).from_version(), 173u);
  EXPECT_EQ(FindEntry(*m, "spyware"), nullptr);
}

TEST_F(ManifestTest, EveryFlippedBitFailsVerification) {
  v1::SignedManifest good = *signer_->Sign(SampleManifest(now_));
  for (size_t byte = 0; byte < good.manifest().size(); ++byte) {
    v1::SignedManifest bad = good;
    (*bad.mutable_manifest())[byte] ^= 1 << (byte % 8);
    auto m = verifier_->Verify(bad, now_);
    ASSERT_EQ(m.status().code(), absl::StatusCode::kUnauthenticated) << byte;
  }
  v1::SignedManifest bad_sig = good;
  (*bad_sig.mutable_signature())[5] ^= 0x10;
  auto m = verifier_->Verify(bad_sig, now_);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(m.status().message(), HasSubstr("--origin-pubkey"));
}

TEST_F(ManifestTest, AnotherKeysSignatureIsRefused) {
  testing::TempDir other;
  auto forger = ManifestSigner::LoadOrCreate(other.File("k"), other.File("p"));
  ASSERT_OK(forger);
  auto forged = (*forger)->Sign(SampleManifest(now_));
  EXPECT_EQ(verifier_->Verify(*forged, now_).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(ManifestTest, ExpiredManifestIsRefused) {
  auto signed_m = signer_->Sign(SampleManifest(now_));
  auto m = verifier_->Verify(*signed_m, now_ + absl::Hours(25));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(m.status().message(), HasSubstr("expired"));
}

TEST_F(ManifestTest, KeyFilesArePrivateAndReloadToTheSameKey) {
  struct stat st;
  ASSERT_EQ(stat(dir_.File("origin.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = ManifestSigner::LoadOrCreate(dir_.File("origin.key"), dir_.File("origin.pub"));
  ASSERT_OK(again);
  EXPECT_EQ((*again)->PublicKeyPem(), signer_->PublicKeyPem());
  auto signed_m = (*again)->Sign(SampleManifest(now_));
  EXPECT_OK(verifier_->Verify(*signed_m, now_));
}

TEST_F(ManifestTest, GarbageKeyFilesGiveClearErrors) {
  testing::TempDir d;
  std::string junk = d.File("junk");
  FILE* f = fopen(junk.c_str(), "w");
  fputs("not a key\n", f);
  fclose(f);
  auto signer = ManifestSigner::Load(junk);
  EXPECT_EQ(signer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(signer.status().message(), HasSubstr(junk));
  auto verifier = ManifestVerifier::FromPemFile(junk);
  EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ManifestVerifier::FromPemFile(d.File("missing")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sigrelay
