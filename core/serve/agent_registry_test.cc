// The agent registry under a flood of made-up ids and names: memory and
// the cost of reading it stay bounded, counts stay right.
#include "core/serve/agent_registry.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

v1::ReportStatusRequest Report(const std::string& id,
                               std::vector<std::pair<std::string, uint32_t>> versions) {
  v1::ReportStatusRequest r;
  r.set_agent_id(id);
  for (const auto& [c, v] : versions) {
    v1::ComponentVersion* cv = r.add_versions();
    cv->set_component(c);
    cv->set_version(v);
  }
  return r;
}

TEST(AgentRegistryTest, CountsFollowEachAgentsLatestReport) {
  AgentRegistry registry;
  ASSERT_OK(registry.Report(Report("a", {{"virus", 1}, {"spyware", 3}})));
  ASSERT_OK(registry.Report(Report("b", {{"virus", 1}})));
  ASSERT_OK(registry.Report(Report("a", {{"virus", 3}, {"spyware", 3}})));
  auto counts = registry.VersionCounts();
  EXPECT_EQ(counts["virus"][1], 1u);
  EXPECT_EQ(counts["virus"][3], 1u);
  EXPECT_EQ(counts["spyware"][3], 1u);
  EXPECT_EQ(registry.AgentCount(), 2u);
}

// 300,000 made-up ids into a registry of 1,000: the least recently heard
// from go first, counts match the agents kept, and an honest agent that
// keeps reporting is never evicted.
TEST(AgentRegistryTest, AFloodOfFakeIdsEvictsTheOldestAndCountsStayRight) {
  AgentRegistry registry(1000);
  for (int i = 0; i < 300000; ++i) {
    ASSERT_OK(registry.Report(Report(absl::StrCat("fake-", i), {{"virus", 1 + (i % 40) * 2}})));
    if (i % 500 == 0) {
      ASSERT_OK(registry.Report(Report("honest", {{"virus", 999}})));
    }
  }
  EXPECT_EQ(registry.AgentCount(), 1000u);
  uint64_t total = 0;
  std::map<std::string, std::map<uint32_t, uint64_t>> counts = registry.VersionCounts();
  for (const auto& [version, n] : counts["virus"]) total += n;
  EXPECT_EQ(total, 1000u);
  EXPECT_EQ(counts["virus"][999], 1u) << "the honest agent was evicted";
}

TEST(AgentRegistryTest, MadeUpComponentNamesAreBounded) {
  AgentRegistry registry;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK(registry.Report(Report(absl::StrCat("a", i), {{absl::StrCat("c", i), 1}})));
  }
  EXPECT_EQ(registry.VersionCounts().size(), AgentRegistry::kMaxComponents);
  std::vector<std::pair<std::string, uint32_t>> many;
  for (size_t i = 0; i <= AgentRegistry::kMaxComponents; ++i)
    many.emplace_back(absl::StrCat("x", i), 1);
  EXPECT_THAT(registry.Report(Report("z", many)).message(), HasSubstr("at most 64"));
  EXPECT_FALSE(registry.Report(Report(std::string(300, 'i'), {})).ok());
  EXPECT_FALSE(registry.Report(Report("ok", {{"Bad/Name", 1}})).ok());
}

}  // namespace
}  // namespace sigrelay
