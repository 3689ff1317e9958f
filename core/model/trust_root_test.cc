#include "core/model/trust_root.h"

#include "core/base/file_util.h"
#include "core/model/manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

class TrustRootTest : public ::testing::Test {
 protected:
  ManifestSigner& Key(const std::string& name) {
    auto& k = keys_[name];
    if (!k) k = *ManifestSigner::LoadOrCreate(dir_.File(name + ".key"), dir_.File(name + ".pub"));
    return *k;
  }

  // Root `version` holding `holders`, signed by `signers`.
  v1::SignedRoot MakeRoot(uint64_t version, std::vector<std::string> holders, uint32_t threshold,
                          std::vector<std::string> signers) {
    v1::Root root;
    root.set_version(version);
    root.set_threshold(threshold);
    for (const std::string& h : holders) root.add_keys(Key(h).RawPublicKey());
    v1::SignedRoot out;
    out.set_root(root.SerializeAsString());
    for (const std::string& s : signers) {
      v1::RootSignature* sig = out.add_signatures();
      sig->set_key(Key(s).RawPublicKey());
      sig->set_signature(*Key(s).SignBytes(out.root()));
    }
    return out;
  }

  v1::SignedManifest SignedBy(const std::string& key, uint64_t serial,
                              std::vector<v1::SignedRoot> roots = {}) {
    v1::Manifest m;
    m.set_serial(serial);
    m.set_expires_unix(absl::ToUnixSeconds(now_ + absl::Hours(1)));
    v1::SignedManifest out = *Key(key).Sign(m);
    for (auto& r : roots) *out.add_roots() = r;
    return out;
  }

  testing::TempDir dir_;
  std::map<std::string, std::unique_ptr<ManifestSigner>> keys_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(TrustRootTest, ANextRootNeedsTheThresholdOfThePreviousKeysAndOfItsOwn) {
  TrustRoot v1 = *ParseRoot(MakeRoot(1, {"a", "b"}, 2, {"a", "b"}));
  EXPECT_OK(LinkRoot(v1, MakeRoot(2, {"c", "b"}, 2, {"a", "b", "c"})));
  // One of the previous two (a leaked "a" alone cannot rotate).
  absl::StatusOr<TrustRoot> r = LinkRoot(v1, MakeRoot(2, {"x", "y"}, 1, {"a", "x"}));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("1 of the 2 keys of v1")));
  // Its own keys too: nobody can name keys that never agreed.
  r = LinkRoot(v1, MakeRoot(2, {"c", "d"}, 2, {"a", "b", "c"}));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("1 of its own 2")));
  // One step at a time, never back.
  EXPECT_THAT(LinkRoot(v1, MakeRoot(3, {"c"}, 1, {"a", "b", "c"})),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("one at a time")));
  EXPECT_THAT(LinkRoot(v1, MakeRoot(1, {"c"}, 1, {"a", "b", "c"})),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
}

TEST_F(TrustRootTest, ASignatureCountsOnceAndOnlyOverTheRootBytes) {
  TrustRoot v1 = *ParseRoot(MakeRoot(1, {"a", "b"}, 2, {"a", "b"}));
  v1::SignedRoot next = MakeRoot(2, {"c"}, 1, {"a", "c"});
  *next.add_signatures() = next.signatures(0);  // "a" twice is still one of two
  EXPECT_THAT(LinkRoot(v1, next), StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
  v1::SignedRoot flipped = MakeRoot(2, {"c"}, 1, {"a", "b", "c"});
  flipped.mutable_root()->back() ^= 1;
  EXPECT_FALSE(LinkRoot(v1, flipped).ok());
}

TEST_F(TrustRootTest, MalformedRootsAreRefusedBeforeAnySignatureWork) {
  v1::SignedRoot none = MakeRoot(1, {}, 1, {});
  EXPECT_THAT(ParseRoot(none), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0 keys")));
  EXPECT_THAT(ParseRoot(MakeRoot(1, {"a"}, 2, {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("asks for 2")));
  EXPECT_THAT(ParseRoot(MakeRoot(1, {"a", "a"}, 1, {})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("distinct")));
  v1::SignedRoot garbage;
  garbage.set_root("\xff\xff\xff");
  EXPECT_THAT(ParseRoot(garbage), StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
}

TEST_F(TrustRootTest, AVerifierPinnedOnOneKeyFollowsRotationsAndDropsTheOldKey) {
  Key("a");
  auto verifier = ManifestVerifier::FromPemFile(dir_.File("a.pub"));
  ASSERT_OK(verifier);
  EXPECT_EQ((*verifier)->root_version(), 0u);
  EXPECT_OK((*verifier)->Verify(SignedBy("a", 1), now_));
  EXPECT_THAT((*verifier)->Verify(SignedBy("b", 2), now_),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("trust root v0")));

  // Root v1 {b, c} threshold 2, signed by a (root v0) and its own; root v2
  // {d, c} signed by b+c and d+c.
  v1::SignedRoot r1 = MakeRoot(1, {"b", "c"}, 2, {"a", "b", "c"});
  v1::SignedRoot r2 = MakeRoot(2, {"d", "c"}, 2, {"b", "c", "d"});
  EXPECT_OK((*verifier)->Verify(SignedBy("d", 3, {r1, r2}), now_));
  EXPECT_EQ((*verifier)->root_version(), 2u);
  // The old keys sign nothing any more, with or without the chain.
  EXPECT_THAT((*verifier)->Verify(SignedBy("a", 4), now_),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
  EXPECT_THAT((*verifier)->Verify(SignedBy("b", 4, {r1}), now_),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
  EXPECT_FALSE((*verifier)->SignedByTrustedKey(SignedBy("a", 1)));
}

TEST_F(TrustRootTest, ARootThatDoesNotLinkIsRefusedAndSaysWhy) {
  Key("a");
  auto verifier = *ManifestVerifier::FromPemFile(dir_.File("a.pub"));
  // A thief of "b" making itself a root without the pinned key's signature.
  v1::SignedRoot forged = MakeRoot(1, {"b"}, 1, {"b"});
  EXPECT_THAT(verifier->Verify(SignedBy("b", 9, {forged}), now_),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("offered trust root refused: trust root v1 is signed by 0 of")));
  EXPECT_EQ(verifier->root_version(), 0u);
}

TEST_F(TrustRootTest, ARootChainFileIsTrustedFromItsFirstRoot) {
  v1::RootChain chain;
  *chain.add_roots() = MakeRoot(1, {"a", "b"}, 1, {"a"});
  *chain.add_roots() = MakeRoot(2, {"c"}, 1, {"b", "c"});
  ASSERT_OK(WriteFileAtomically(dir_.File("root.binpb"), chain.SerializeAsString(), 0644));
  auto verifier = ManifestVerifier::FromRootFile(dir_.File("root.binpb"));
  ASSERT_OK(verifier);
  EXPECT_EQ((*verifier)->root_version(), 2u);
  EXPECT_OK((*verifier)->Verify(SignedBy("c", 1), now_));

  *chain.add_roots() = MakeRoot(3, {"d"}, 1, {"d"});  // not signed by v2's key
  ASSERT_OK(WriteFileAtomically(dir_.File("bad.binpb"), chain.SerializeAsString(), 0644));
  EXPECT_THAT(ManifestVerifier::FromRootFile(dir_.File("bad.binpb")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad.binpb: trust root v3")));
  EXPECT_THAT(ManifestVerifier::FromFlags(dir_.File("a.pub"), dir_.File("root.binpb")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one")));
}

}  // namespace
}  // namespace sigrelay
