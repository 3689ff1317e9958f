#include "core/store/chunk_cache.h"

#include "gtest/gtest.h"

namespace sigrelay {
namespace {

std::shared_ptr<const std::string> Bytes(size_t n, char c) {
  return std::make_shared<const std::string>(n, c);
}

TEST(ChunkCacheTest, KeepsWithinBudgetEvictingTheLeastRecentlyUsed) {
  ChunkCache cache(300);
  cache.Insert("a", Bytes(100, 'a'));
  cache.Insert("b", Bytes(100, 'b'));
  cache.Insert("c", Bytes(100, 'c'));
  ASSERT_NE(cache.Find("a"), nullptr);  // a is now the most recent
  cache.Insert("d", Bytes(100, 'd'));   // evicts b
  EXPECT_EQ(cache.Find("b"), nullptr);
  EXPECT_EQ(*cache.Find("a"), std::string(100, 'a'));
  EXPECT_NE(cache.Find("c"), nullptr);
  EXPECT_NE(cache.Find("d"), nullptr);
  cache.Insert("huge", Bytes(301, 'h'));  // larger than the budget: not kept
  EXPECT_EQ(cache.Find("huge"), nullptr);
  EXPECT_NE(cache.Find("a"), nullptr);
}

}  // namespace
}  // namespace sigrelay
