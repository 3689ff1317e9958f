#include "core/model/delta_codec.h"

#include <random>

#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    memcpy(&out[i], &v, 8);
  }
  return out;
}

// `base` with a few regions rewritten, some bytes inserted and some removed.
std::string Edited(std::string base, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 16; ++i) {
    size_t at = rng() % (base.size() - 4096);
    base.replace(at, 512, RandomBytes(700, rng()));
    base.erase(rng() % (base.size() - 4096), 300);
  }
  return base;
}

void RoundTrip(const IncrementalCodec& codec, const std::string& old_v, const std::string& new_v) {
  auto incr = codec.Encode(old_v, new_v);
  ASSERT_OK(incr);
  auto rebuilt = codec.Decode(old_v, *incr, new_v.size());
  ASSERT_OK(rebuilt);
  EXPECT_TRUE(*rebuilt == new_v);
}

TEST(IncrementalCodecTest, RoundTripsEmptyInputs) {
  IncrementalCodec codec;
  RoundTrip(codec, "", "");
  RoundTrip(codec, "", "new content");
  RoundTrip(codec, "old content", "");
}

TEST(IncrementalCodecTest, IdenticalVersionsGiveATinyIncremental) {
  IncrementalCodec codec;
  std::string v = RandomBytes(1 << 20, 1);
  auto incr = codec.Encode(v, v);
  ASSERT_OK(incr);
  EXPECT_LT(incr->size(), 1024u);
  RoundTrip(codec, v, v);
}

TEST(IncrementalCodecTest, DisjointVersionsRoundTrip) {
  IncrementalCodec codec;
  RoundTrip(codec, RandomBytes(1 << 20, 2), RandomBytes(1 << 20, 3));
}

TEST(IncrementalCodecTest, SmallEditsGiveSmallIncrementals) {
  IncrementalCodec codec;
  std::string old_v = RandomBytes(4 << 20, 4);
  std::string new_v = Edited(old_v, 5);
  auto incr = codec.Encode(old_v, new_v);
  ASSERT_OK(incr);
  // 16 rewritten regions of 700 random bytes each cannot be smaller than that.
  EXPECT_LT(incr->size(), 16 * 700 + 4096u);
  RoundTrip(codec, old_v, new_v);
}

TEST(IncrementalCodecTest, CorruptIncrementalIsDataLoss) {
  IncrementalCodec codec;
  std::string old_v = RandomBytes(1 << 20, 6);
  std::string new_v = Edited(old_v, 7);
  std::string incr = *codec.Encode(old_v, new_v);
  incr[incr.size() / 2] ^= 0x40;
  auto rebuilt = codec.Decode(old_v, incr, new_v.size());
  EXPECT_EQ(rebuilt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(rebuilt.status().message(), HasSubstr("full file"));

  auto garbage = codec.Decode(old_v, "definitely not zstd", 1 << 20);
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(garbage.status().message(), HasSubstr("not a zstd frame"));
}

TEST(IncrementalCodecTest, WrongOldVersionIsDataLoss) {
  IncrementalCodec codec;
  std::string old_v = RandomBytes(1 << 20, 8);
  std::string new_v = Edited(old_v, 9);
  std::string incr = *codec.Encode(old_v, new_v);
  auto rebuilt = codec.Decode(RandomBytes(1 << 20, 10), incr, new_v.size());
  EXPECT_EQ(rebuilt.status().code(), absl::StatusCode::kDataLoss);
}

TEST(IncrementalCodecTest, OversizedResultIsRefusedBeforeDecoding) {
  IncrementalCodec codec;
  std::string incr = *codec.Encode("", std::string(100000, 'x'));
  auto rebuilt = codec.Decode("", incr, 99999);
  EXPECT_EQ(rebuilt.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(rebuilt.status().message(), HasSubstr("100000"));
}

TEST(IncrementalCodecTest, EncodeEachKeepsOrderAndReportsLoadErrors) {
  IncrementalCodec codec;
  std::vector<std::string> olds = {RandomBytes(1 << 18, 20), RandomBytes(1 << 18, 21),
                                   RandomBytes(1 << 18, 22)};
  std::string new_v = Edited(olds[1], 23);
  auto made = codec.EncodeEach(
      4,
      [&](size_t i) -> absl::StatusOr<std::string> {
        if (i == 3) return absl::NotFoundError("old version 3 is gone");
        return olds[i];
      },
      new_v, /*verify=*/true);
  ASSERT_EQ(made.size(), 4u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_OK(made[i]);
    EXPECT_EQ(*codec.Decode(olds[i], *made[i], new_v.size()), new_v) << i;
  }
  EXPECT_LT(made[1]->size(), made[0]->size()) << "the close old version gives the small one";
  EXPECT_EQ(made[3].status().code(), absl::StatusCode::kNotFound);
}

// 64 MiB inputs round-trip, and stock `zstd -d --patch-from` rebuilds them
// byte for byte: incrementals are plain zstd frames.
TEST(IncrementalCodecTest, LargeInputsDecodeWithStockZstd) {
  IncrementalCodec codec(3);
  std::string old_v = RandomBytes(64 << 20, 11);
  std::string new_v = Edited(old_v, 12);
  auto incr = codec.Encode(old_v, new_v);
  ASSERT_OK(incr);
  EXPECT_LT(incr->size(), 64u << 10);
  auto rebuilt = codec.Decode(old_v, *incr, new_v.size());
  ASSERT_OK(rebuilt);
  ASSERT_TRUE(*rebuilt == new_v);

  testing::TempDir dir;
  ASSERT_OK(WriteFileAtomically(dir.File("old"), old_v));
  ASSERT_OK(WriteFileAtomically(dir.File("incr"), *incr));
  std::string out;
  ASSERT_EQ(testing::RunCommand({"zstd", "-q", "-d", "--patch-from=" + dir.File("old"),
                                 dir.File("incr"), "-o", dir.File("new")},
                                &out),
            0)
      << out;
  auto from_cli = ReadFileToString(dir.File("new"));
  ASSERT_OK(from_cli);
  EXPECT_TRUE(*from_cli == new_v);
}

}  // namespace
}  // namespace sigrelay
