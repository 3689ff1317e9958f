#include "ctl/pattern_gen.h"

#include <set>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(PatternGenTest, DeterministicSortedRecordsOfRealisticSize) {
  std::string a = GeneratePattern(10000, 42);
  EXPECT_EQ(a, GeneratePattern(10000, 42));
  EXPECT_NE(a, GeneratePattern(10000, 43));
  std::vector<std::string> lines = Lines(a);
  ASSERT_EQ(lines.size(), 10000u);
  EXPECT_TRUE(std::is_sorted(lines.begin(), lines.end()));
  // 400,000 records make about 26 MB.
  EXPECT_NEAR(a.size() / 10000.0, 65.0, 6.0);
}

TEST(PatternGenTest, NextVersionChurnsExactlyThePercentage) {
  std::string a = GeneratePattern(20000, 1);
  auto b = NextPattern(a, 0.5, 2);
  ASSERT_OK(b);
  std::vector<std::string> la = Lines(a), lb = Lines(*b);
  ASSERT_EQ(lb.size(), la.size());
  EXPECT_TRUE(std::is_sorted(lb.begin(), lb.end()));
  std::set<std::string> sa(la.begin(), la.end());
  size_t kept = 0;
  for (const std::string& l : lb) kept += sa.count(l);
  EXPECT_EQ(la.size() - kept, 100u);  // 0.5 % of 20,000
}

TEST(PatternGenTest, RejectsNonPatternInputAndBadChurn) {
  EXPECT_EQ(NextPattern("hello world\n", 1, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NextPattern(GeneratePattern(10, 1), 101, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sigrelay
