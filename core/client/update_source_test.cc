// The rules every transfer is held to, written once in UpdateSource and
// TransferMeter: tested here through an in-memory source (the transports'
// own tests run them behind real servers).
#include "core/client/update_source.h"

#include "absl/synchronization/notification.h"
#include "core/base/digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_source.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay {
namespace {

using testing::FakeSource;
using ::testing::HasSubstr;

// A full file of `size` bytes in 4 KiB signed chunks.
v1::ComponentEntry Entry(const std::string& file) {
  v1::ComponentEntry e;
  e.set_name("virus");
  e.set_version(5);
  e.set_size(file.size());
  e.set_sha256(Sha256::Of(file));
  e.set_chunk_size(4096);
  for (size_t at = 0; at < file.size(); at += 4096) {
    e.add_chunk_sha256(Sha256::Of(absl::string_view(file).substr(at, 4096)));
  }
  return e;
}

std::string File(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 2654435761u) >> 13);
  return out;
}

TEST(TransferMeterTest, ASlowLinkPassesAndADribbleIsCutForRate) {
  TransferLimits limits;
  limits.min_rate = 1024;
  limits.min_rate_window = absl::Seconds(60);
  limits.stall_timeout = absl::Seconds(60);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  // 256 kbit/s: 32 KB a second, in 1 MiB messages every 32 s.
  TransferMeter slow(limits, t0);
  for (int s = 0; s <= 600; ++s) {
    if (s % 32 == 31) slow.Progress(1 << 20, t0 + absl::Seconds(s));
    ASSERT_OK(slow.Check(t0 + absl::Seconds(s))) << s;
  }
  // One byte a second: fine for the first window, then cut.
  TransferMeter dribble(limits, t0);
  absl::Status cut;
  int at = 0;
  for (at = 1; at <= 120 && cut.ok(); ++at) {
    dribble.Progress(1, t0 + absl::Seconds(at));
    cut = dribble.Check(t0 + absl::Seconds(at));
  }
  EXPECT_EQ(at - 1, 60) << "cut once a whole window passed";
  EXPECT_TRUE(IsTransferCut(cut));
  EXPECT_THAT(cut.message(), HasSubstr("below 1 KiB/s over 1m"));
}

TEST(TransferMeterTest, SilenceDeadlineAndStopEachCut) {
  TransferLimits limits;
  limits.min_rate = 0;
  limits.stall_timeout = absl::Seconds(10);
  limits.deadline = absl::FromUnixSeconds(2000);
  absl::Notification stop;
  limits.stop = &stop;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  TransferMeter m(limits, t0);
  m.Progress(10, t0 + absl::Seconds(5));
  EXPECT_OK(m.Check(t0 + absl::Seconds(15)));
  absl::Status silent = m.Check(t0 + absl::Seconds(16));
  EXPECT_TRUE(IsTransferCut(silent));
  EXPECT_THAT(silent.message(), HasSubstr("no bytes for 10s after 10 bytes"));
  m.Progress(10, t0 + absl::Seconds(999));
  EXPECT_EQ(m.Check(t0 + absl::Seconds(1000)).code(), absl::StatusCode::kDeadlineExceeded);
  stop.Notify();
  absl::Status stopped = m.Check(t0 + absl::Seconds(999));
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(IsTransferCut(stopped)) << "a stop is not the upstream's fault";
  EXPECT_THAT(TransferLimits{.min_rate_window = absl::Hours(2)}.Validate().message(),
              HasSubstr("--min-rate/--min-rate-window: the window must be 1s..1h"));
}

class UpdateSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = File(100000);
    entry_ = Entry(file_);
    source_.Put(entry_.sha256(), file_);
    limits_.min_rate = 0;
  }
  std::string file_;
  v1::ComponentEntry entry_;
  FakeSource source_;
  TransferLimits limits_;
};

TEST_F(UpdateSourceTest, OnlyVerifiedWholeChunksReachTheSinkAndTheDigestIsChecked) {
  std::string got;
  StringSink sink(&got);
  ASSERT_OK(source_.Fetch(ExpectedBody::Full(entry_), 0, limits_, &sink));
  EXPECT_TRUE(got == file_);

  source_.flip_byte = true;
  got.clear();
  absl::Status s = source_.Fetch(ExpectedBody::Full(entry_), 0, limits_, &sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), HasSubstr("does not match the signed manifest"));
  EXPECT_EQ(got.size() % 4096, 0u) << "whole verified chunks only";
  EXPECT_TRUE(got == file_.substr(0, got.size()));
}

TEST_F(UpdateSourceTest, ACutReadResumesFromAChunkBoundaryAndNeverPassesTheSignedSize) {
  source_.piece = 1000;
  source_.cut_after = 50000;
  std::string got;
  StringSink sink(&got);
  absl::Status s = source_.Fetch(ExpectedBody::Full(entry_), 0, limits_, &sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(got.size(), 49152u) << "12 whole chunks of 4 KiB kept";
  source_.cut_after = -1;
  ASSERT_OK(source_.Fetch(ExpectedBody::Full(entry_), got.size(), limits_, &sink));
  EXPECT_TRUE(got == file_);
  EXPECT_THAT(source_.offsets(), ::testing::ElementsAre(0u, 49152u));

  // A body that claims to be smaller than it is: never more than signed.
  v1::ComponentEntry small = entry_;
  small.set_size(60000);
  small.clear_chunk_sha256();
  small.set_chunk_size(0);
  source_.Put(small.sha256(), file_);
  std::string bounded;
  StringSink b(&bounded);
  s = source_.Fetch(ExpectedBody::Full(small), 0, limits_, &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_LE(bounded.size(), 60000u);
}

TEST_F(UpdateSourceTest, ADribblingSourceIsCutForRateAndAStopEndsAReadAtOnce) {
  source_.dribble_after = 8192;
  source_.dribble_every = absl::Milliseconds(50);
  limits_.min_rate = 1024;
  limits_.min_rate_window = absl::Seconds(1);
  std::string got;
  StringSink sink(&got);
  const absl::Time start = absl::Now();
  absl::Status s = source_.Fetch(ExpectedBody::Full(entry_), 0, limits_, &sink);
  EXPECT_TRUE(IsTransferCut(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("below 1 KiB/s over 1s"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(got.size(), 8192u) << "the verified part is kept";

  source_.silent = true;
  absl::Notification stop;
  limits_.min_rate = 0;
  limits_.stop = &stop;
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(300));
    stop.Notify();
  });
  s = source_.Fetch(ExpectedBody::Full(entry_), 0, limits_, &sink);
  stopper.join();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
}

}  // namespace
}  // namespace sigrelay
