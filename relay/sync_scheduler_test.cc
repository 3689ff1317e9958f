// SyncScheduler's arithmetic with a fake clock: backoff grows, is capped and
// jittered within its bounds; a schedule change moves the next sync at once.
#include "relay/sync_scheduler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/fake_clock.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::FakeClock;

class NoDialer final : public UpstreamDialer {
 public:
  const std::vector<std::string>& upstreams() const override { return names_; }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(size_t) override {
    return absl::UnavailableError("no network in this test");
  }
  std::string ProxyFor(const std::string&) const override { return ""; }

 private:
  std::vector<std::string> names_ = {"nowhere:1"};
};

class SyncSchedulerTest : public ::testing::Test {
 protected:
  SyncSchedulerTest()
      : store_(*VersionStore::Open(dir_.File("store"))),
        verifier_(*ManifestVerifier::FromPem(
            (*ManifestSigner::LoadOrCreate(dir_.File("k"), dir_.File("p")))->PublicKeyPem())),
        sync_(store_.get(), verifier_.get(), &clock_, &dialer_, {}) {}

  std::unique_ptr<SyncScheduler> Make(uint64_t seed) {
    SchedulerOptions o;
    o.period = absl::Minutes(60);
    o.jitter = 0.1;
    o.initial_backoff = absl::Seconds(1);
    o.max_backoff = absl::Minutes(5);
    o.seed = seed;
    return std::make_unique<SyncScheduler>(&sync_, store_.get(), &clock_, o);
  }

  testing::TempDir dir_;
  FakeClock clock_;
  NoDialer dialer_;
  std::unique_ptr<VersionStore> store_;
  std::unique_ptr<ManifestVerifier> verifier_;
  UpstreamSync sync_;
};

TEST_F(SyncSchedulerTest, BackoffDoublesWithJitterAndIsCapped) {
  auto scheduler = Make(1);
  for (int failures = 1; failures <= 12; ++failures) {
    const absl::Duration base =
        std::min(absl::Seconds(1) * (1 << std::min(failures - 1, 20)), absl::Minutes(5));
    const absl::Duration d = scheduler->BackoffFor(failures);
    EXPECT_GE(d, base * 0.9) << failures;
    EXPECT_LE(d, base * 1.1) << failures;
  }
}

TEST_F(SyncSchedulerTest, JitterSpreadsRelaysAndIsRepeatableForASeed) {
  auto a = Make(1), b = Make(2), a_again = Make(1);
  const absl::Duration da = a->BackoffFor(6), db = b->BackoffFor(6);
  EXPECT_NE(da, db) << "two relays should not retry in lockstep";
  EXPECT_EQ(da, a_again->BackoffFor(6));
}

TEST_F(SyncSchedulerTest, AScheduleChangeMovesTheNextSyncAtOnce) {
  auto scheduler = Make(3);
  const absl::Time now = clock_.Now();
  const absl::Time next = scheduler->SetPeriod(absl::Minutes(15));
  EXPECT_GE(next, now + absl::Minutes(15) * 0.9);
  EXPECT_LE(next, now + absl::Minutes(15) * 1.1);
  v1::RelayStatus status;
  scheduler->FillStatus(&status);
  EXPECT_EQ(status.schedule_seconds(), 900);
  EXPECT_EQ(status.next_scheduled_unix(), absl::ToUnixSeconds(next));

  clock_.Advance(absl::Minutes(5));
  const absl::Time later = scheduler->SetPeriod(absl::Hours(2));
  EXPECT_GE(later, clock_.Now() + absl::Hours(2) * 0.9) << "a longer period also applies at once";
}

}  // namespace
}  // namespace sigrelay
