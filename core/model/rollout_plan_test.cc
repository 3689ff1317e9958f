#include "absl/strings/str_cat.h"
#include "core/model/rollout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

v1::Rollout RolloutOf(const std::string& plan) {
  v1::Rollout rollout;
  absl::StatusOr<std::vector<v1::Ring>> rings = ParseRolloutPlan(plan);
  EXPECT_TRUE(rings.ok()) << rings.status();
  if (rings.ok()) rollout.mutable_rings()->Add(rings->begin(), rings->end());
  return rollout;
}

TEST(RolloutPlanTest, ParsesRingsAndSaysWhatIsWrong) {
  absl::StatusOr<std::vector<v1::Ring>> rings =
      ParseRolloutPlan("canary=0.5%:30m:99%, early=10%:1h,broad");
  ASSERT_TRUE(rings.ok()) << rings.status();
  ASSERT_EQ(rings->size(), 3u);
  EXPECT_EQ((*rings)[0].name(), "canary");
  EXPECT_EQ((*rings)[0].share_bp(), 50u);
  EXPECT_EQ((*rings)[0].bake_seconds(), 1800);
  EXPECT_EQ((*rings)[0].min_healthy_bp(), 9900u);
  EXPECT_EQ((*rings)[1].min_healthy_bp(), 9500u);
  EXPECT_EQ((*rings)[2].share_bp(), 10000u);
  EXPECT_EQ(FormatRolloutPlan(RolloutOf("canary=0.5%:30m:99%, early=10%:1h,broad").rings()),
            "canary=0.50%:30m:99%,early=10%:1h:95%,broad");
  EXPECT_EQ(ParseRolloutPlan("none")->size(), 0u);
  EXPECT_EQ(ParseRolloutPlan("staged")->size(), 3u);

  for (const char* bad : {"canary", "canary=1%:30m", "a=10%:1m,b=5%:1m,c", "a=1%,b", "a=1%:soon,b",
                          "a=1%:1m,a", "a b=1%:1m,c", "a=101%:1m,b"}) {
    absl::StatusOr<std::vector<v1::Ring>> r = ParseRolloutPlan(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("NAME=SHARE%:BAKE")) << bad;
  }
}

TEST(RolloutPlanTest, RingsTakeTheirShareOfIdsAndAChosenRingWins) {
  const v1::Rollout rollout = RolloutOf("canary=5%:1m,early=30%:1m,broad");
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 20000; ++i) ++counts[RingIndex(rollout, absl::StrCat("agent-", i), "")];
  EXPECT_NEAR(counts[0], 1000, 150);
  EXPECT_NEAR(counts[1], 5000, 300);
  EXPECT_NEAR(counts[2], 14000, 400);
  EXPECT_EQ(RingIndex(rollout, "agent-1", "canary"), 0);
  EXPECT_EQ(RingIndex(rollout, "agent-1", "no-such-ring"), RingIndex(rollout, "agent-1", ""));
}

TEST(RolloutPlanTest, OnlyAdmittedRingsTakeTheNewVersion) {
  v1::ComponentEntry entry;
  entry.set_name("virus");
  entry.set_version(5);
  v1::Rollout* rollout = entry.mutable_rollout();
  *rollout = RolloutOf("canary=10%:1m,broad");
  rollout->set_admitted(1);
  rollout->mutable_previous()->set_version(3);
  EXPECT_EQ(AdmittedEntry(entry, "x", "canary").version(), 5u);
  EXPECT_EQ(AdmittedEntry(entry, "x", "broad").version(), 3u);
  EXPECT_EQ(RingName(entry, "x", "broad"), "broad");
  rollout->set_admitted(2);
  EXPECT_EQ(AdmittedEntry(entry, "x", "broad").version(), 5u);
  entry.clear_rollout();
  EXPECT_EQ(AdmittedEntry(entry, "x", "broad").version(), 5u);
  EXPECT_EQ(RingName(entry, "x", "broad"), "");
}

}  // namespace
}  // namespace sigrelay
