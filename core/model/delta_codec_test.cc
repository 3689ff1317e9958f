#include "core/model/delta_codec.h"

#include <fcntl.h>
#include <unistd.h>

#include <random>

#include "core/base/file_util.h"
#include "core/base/mapped_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::Edited;
using ::testing::HasSubstr;
using testing::PeakResident;
using testing::RandomBytes;
using testing::ResetPeak;
using testing::WriteBigFile;

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

// A file sink that never holds what it writes.
class FileSink final : public ByteSink {
 public:
  explicit FileSink(StagedFile* f) : f_(f) {}
  absl::Status Write(absl::string_view d) override { return f_->Write(d); }

 private:
  StagedFile* f_;
};

// Encode and decode through mapped files trimmed as the codec goes. The
// encode holds its cap of mapped pages and the zstd state, not the 2 x 64
// MiB of inputs (it trims within the one call where zstd indexes the old
// version, too); the decode holds the zstd state and a few MiB, not the
// 64 MiB output nor the old version. Without the trims (checked: trim =
// nullptr) the inputs or the output stay resident and each bound fails.
TEST(IncrementalCodecTest, MappedFilesTrimmedAsTheCodecGoesKeepMemoryBounded) {
  testing::TempDir dir;
  constexpr size_t kSize = 64 << 20;
  WriteBigFile(dir.File("old"), kSize, 1, 0);
  WriteBigFile(dir.File("new"), kSize, 1, 9);
  IncrementalCodec codec(3);
  auto old_file = MappedFile::Open(dir.File("old"));
  auto new_file = MappedFile::Open(dir.File("new"));
  ASSERT_OK(old_file);
  ASSERT_OK(new_file);
  (*old_file)->Trim();
  (*new_file)->Trim();
  ResetPeak();
  const uint64_t before = PeakResident();
  auto incr_file = StagedFile::Create(dir.File("incr"));
  ASSERT_OK(incr_file);
  FileSink sink(incr_file->get());
  // Mapped pages capped at 24 MiB over what is mapped now.
  ASSERT_OK(codec.Encode(
      (*old_file)->view(), (*new_file)->view(), &sink,
      TrimAbove(ResidentMappedBytes() + (24 << 20), {old_file->get(), new_file->get()})));
  ASSERT_OK((*incr_file)->Commit());
  const uint64_t encode_peak = PeakResident() - before;

  auto incr = MappedFile::Open(dir.File("incr"));
  ASSERT_OK(incr);
  EXPECT_LT((*incr)->size(), kSize / 8);
  absl::StatusOr<uint64_t> size = IncrementalCodec::DecodedSize((*incr)->view(), 2 * kSize);
  ASSERT_OK(size);
  ASSERT_EQ(*size, (*new_file)->size());
  auto out_file = StagedFile::Create(dir.File("out"));
  ASSERT_OK(out_file);
  auto out = MappedFile::Writable((*out_file)->fd(), (*out_file)->temp_path(), *size);
  ASSERT_OK(out);
  ResetPeak();
  const uint64_t before_decode = PeakResident();
  const std::function<void()> trim =
      TrimAbove(ResidentMappedBytes() + (16 << 20), {old_file->get(), out->get()});
  ASSERT_OK(codec.DecodeInto((*old_file)->view(), (*incr)->view(), (*out)->data(), *size,
                             [&](uint64_t) { trim(); }));
  const uint64_t decode_peak = PeakResident() - before_decode;
  EXPECT_TRUE((*out)->view() == (*new_file)->view());
  // Cap, zstd state and what a 10 ms offer interval lets through (measured
  // 71-80 MiB; without trimming 136 MiB). The decode: 16 MiB cap, what one
  // piece between offers writes and reads, the zstd state (measured 22 MiB
  // here, 35 MiB once on a loaded CI machine); without trimming it holds the
  // whole 64 MiB output and what it read of the old version.
  EXPECT_LT(encode_peak, 96u << 20) << "encode peak " << encode_peak;
  EXPECT_LT(decode_peak, 48u << 20) << "decode peak " << decode_peak;
}

TEST(IncrementalCodecTest, TruncatedOrPaddedIncrementalsAreRefused) {
  IncrementalCodec codec(3);
  std::string old_v = RandomBytes(1 << 18, 30);
  std::string new_v = Edited(old_v, 31);
  std::string incr = *codec.Encode(old_v, new_v);
  auto cut = codec.Decode(old_v, incr.substr(0, incr.size() - 10), new_v.size());
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(cut.status().message(), HasSubstr("ends inside its frame"));
  auto padded = codec.Decode(old_v, incr + "trailing", new_v.size());
  EXPECT_EQ(padded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(padded.status().message(), HasSubstr("past its frame"));
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
