#include "core/model/component.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ComponentCatalogTest, DefaultKnowsIncrementalAndFullOnlyComponents) {
  const ComponentCatalog& catalog = ComponentCatalog::Default();
  for (const char* name :
       {"virus", "smartscan-agent", "damage-cleanup", "intellitrap-exception", "spyware"}) {
    auto spec = catalog.Find(name);
    ASSERT_OK(spec) << name;
    EXPECT_TRUE(spec->incrementals) << name;
  }
  auto policy = catalog.Find("outbreak-policy");
  ASSERT_OK(policy);
  EXPECT_FALSE(policy->incrementals);
}

TEST(ComponentCatalogTest, SpecsParseFromConfigText) {
  auto engine = ComponentCatalog::ParseSpec("scan-engine:full");
  ASSERT_OK(engine);
  EXPECT_EQ(engine->name, "scan-engine");
  EXPECT_FALSE(engine->incrementals);
  auto virus = ComponentCatalog::ParseSpec("virus");
  ASSERT_OK(virus);
  EXPECT_TRUE(virus->incrementals);
  EXPECT_THAT(ComponentCatalog::ParseSpec("x:partial").status().message(), HasSubstr("NAME:full"));
  EXPECT_THAT(ComponentCatalog::ParseSpec("../etc").status().message(), HasSubstr("a-z"));
  EXPECT_THAT(ComponentCatalog::ParseSpec("Virus").status().message(), HasSubstr("a-z"));
  EXPECT_FALSE(ComponentCatalog::ParseSpec(std::string(65, 'a')).ok());
  auto twice = ComponentCatalog::FromSpecs({{"a", true}, {"a", false}});
  EXPECT_THAT(twice.status().message(), HasSubstr("listed twice"));
  EXPECT_FALSE(ComponentCatalog::FromSpecs({}).ok());
}

TEST(ComponentCatalogTest, UnknownComponentNamesTheKnownOnes) {
  auto spec = ComponentCatalog::Default().Find("virusx");
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(spec.status().message(), HasSubstr("\"virusx\""));
  EXPECT_THAT(spec.status().message(), HasSubstr("outbreak-policy"));
}

TEST(VersionPolicyTest, StepsFromFirstVersion) {
  VersionPolicy p{.first = 171, .step = 2, .retain = 8};
  EXPECT_EQ(*p.Next(0), 171u);
  EXPECT_EQ(*p.Next(171), 173u);
  EXPECT_EQ(*p.Next(173), 175u);
  VersionPolicy defaults;
  EXPECT_EQ(*defaults.Next(0), 1u);
  EXPECT_EQ(*defaults.Next(1), 3u);
}

TEST(VersionPolicyTest, OverflowIsAnError) {
  VersionPolicy p;
  EXPECT_EQ(p.Next(0xFFFFFFFEu).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(VersionPolicyTest, RejectsZeroStepOrRetention) {
  EXPECT_FALSE((VersionPolicy{.first = 1, .step = 0, .retain = 8}).Validate().ok());
  EXPECT_FALSE((VersionPolicy{.first = 0, .step = 2, .retain = 8}).Validate().ok());
  EXPECT_FALSE((VersionPolicy{.first = 1, .step = 2, .retain = 0}).Validate().ok());
  EXPECT_OK(VersionPolicy{}.Validate());
}

TEST(VersionPolicyTest, RetainsNewestAndKBelowIt) {
  VersionPolicy p{.first = 1, .step = 2, .retain = 3};
  EXPECT_THAT(p.Retained({1, 3, 5, 7, 9}, 11), ElementsAre(5, 7, 9, 11));
  EXPECT_THAT(p.Retained({9, 1, 3}, 11), ElementsAre(1, 3, 9, 11));
  EXPECT_THAT(p.Retained({}, 1), ElementsAre(1));
  // A version above the newest (never expected) is not kept.
  EXPECT_THAT(p.Retained({13, 5}, 11), ElementsAre(5, 11));
}

}  // namespace
}  // namespace sigrelay
