#include "core/client/rebuild.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/mapped_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

// An old version, the new one and the incremental between them, all as
// files in `dir`; the output is a writable mapping of a staged file.
struct Versions {
  Versions(const testing::TempDir& dir, size_t size, int level) {
    testing::WriteBigFile(dir.File("old"), size, 1, 0);
    testing::WriteBigFile(dir.File("new"), size, 1, 9);
    old_file = *MappedFile::Open(dir.File("old"));
    new_file = *MappedFile::Open(dir.File("new"));
    incremental = *IncrementalCodec(level).Encode(old_file->view(), new_file->view());
    old_file->Trim();
    new_file->Trim();
    out = *StagedFile::Create(dir.File("out"));
    target = *MappedFile::Writable(out->fd(), out->temp_path(), new_file->size());
  }
  std::unique_ptr<MappedFile> old_file, new_file;
  std::string incremental;
  std::unique_ptr<StagedFile> out;
  std::unique_ptr<MappedFile> target;
};

TEST(DecodeAndConsumeTest, HandsOverTheWholeOutputInOrderAtMostAMiBAtATime) {
  testing::TempDir dir;
  Versions v(dir, 6 << 20, 12);
  std::string seen;
  size_t biggest = 0;
  ASSERT_OK(DecodeAndConsume(IncrementalCodec(), *v.old_file, v.incremental, v.target.get(),
                             [&](absl::string_view piece) {
                               seen.append(piece.data(), piece.size());
                               biggest = std::max(biggest, piece.size());
                               return absl::OkStatus();
                             }));
  EXPECT_TRUE(seen == v.new_file->view());
  EXPECT_TRUE(v.target->view() == v.new_file->view());
  EXPECT_LE(biggest, 1u << 20);
}

TEST(DecodeAndConsumeTest, TheConsumersErrorIsReturnedAndItIsNotCalledAgain) {
  testing::TempDir dir;
  Versions v(dir, 6 << 20, 12);
  int calls = 0;
  absl::Status s = DecodeAndConsume(
      IncrementalCodec(), *v.old_file, v.incremental, v.target.get(), [&](absl::string_view) {
        return ++calls == 2 ? absl::ResourceExhaustedError("disk full") : absl::OkStatus();
      });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("disk full"));
  EXPECT_EQ(calls, 2);
}

TEST(DecodeAndConsumeTest, ACorruptIncrementalIsTheDecodersDataLoss) {
  testing::TempDir dir;
  Versions v(dir, 6 << 20, 12);
  std::string broken = v.incremental.substr(0, v.incremental.size() / 2);
  uint64_t consumed = 0;
  absl::Status s = DecodeAndConsume(IncrementalCodec(), *v.old_file, broken, v.target.get(),
                                    [&](absl::string_view piece) {
                                      consumed += piece.size();
                                      return absl::OkStatus();
                                    });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_LT(consumed, v.new_file->size());
}

// A big pattern (over IncrementalCodec::kBigFile, level 1) decoded while a
// slow consumer (a store's pace: it digests each piece 16 times) reads it:
// the process holds the mapped-page cap and a few MiB, not the 64 MiB
// output nor the old version. Without the consumer handing back what it
// read (checked), the output it reads after the decoder is done stays
// resident and the bound fails.
TEST(DecodeAndConsumeTest, ABigPatternsRebuildHoldsTheCapNotTheFile) {
  testing::TempDir dir;
  constexpr size_t kSize = 64 << 20;
  static_assert(kSize >= IncrementalCodec::kBigFile);
  Versions v(dir, kSize, IncrementalCodec::kBigFileLevel);
  Sha256 sha;
  testing::ResetPeak();
  const uint64_t before = testing::PeakResident();
  ASSERT_OK(DecodeAndConsume(IncrementalCodec(), *v.old_file, v.incremental, v.target.get(),
                             [&](absl::string_view piece) {
                               sha.Update(piece);
                               for (int i = 0; i < 15; ++i) Sha256::Of(piece);
                               return absl::OkStatus();
                             }));
  const uint64_t peak = testing::PeakResident() - before;
  EXPECT_EQ(sha.Finish(), Sha256::Of(v.new_file->view()));
  // The cap (8 MiB), the output's window ahead of and behind the decoder
  // (4 MiB), the zstd state; measured 12-14 MiB.
  EXPECT_LT(peak, 28u << 20) << "peak " << (peak >> 20) << " MiB";
}

// A disk with no room for the rebuilt file: a clear error before anything
// is written, not SIGBUS from a page fault in the middle of the decode.
// Runs as root (a 4 MiB tmpfs in a mount namespace of this process's own,
// gone with it).
TEST(RebuildTest, ADiskWithNoRoomIsAClearErrorNotACrash) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a tmpfs mount)";
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << std::strerror(errno);
  ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
  testing::TempDir dir;
  Versions v(dir, 6 << 20, 12);
  const std::string small = dir.File("small");
  ASSERT_EQ(mkdir(small.c_str(), 0700), 0);
  ASSERT_EQ(mount("tmpfs", small.c_str(), "tmpfs", 0, "size=4m"), 0) << std::strerror(errno);
  v1::ComponentEntry entry;
  entry.set_name("virus");
  entry.set_version(3);
  entry.set_size(v.new_file->size());
  entry.set_sha256(Sha256::Of(v.new_file->view()));
  auto out = StagedFile::Create(small + "/virus");
  ASSERT_OK(out);
  absl::Status s = RebuildInto(IncrementalCodec(), *v.old_file, v.incremental, entry, out->get());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("free some space"));
  out->reset();
  EXPECT_EQ(umount(small.c_str()), 0);
}

}  // namespace
}  // namespace sigrelay
