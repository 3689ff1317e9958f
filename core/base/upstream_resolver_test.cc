#include "core/base/upstream_resolver.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

TEST(UpstreamResolverTest, NumericAddressesNeedNoLookup) {
  auto t = ResolveUpstream("127.0.0.1:7443", "", absl::Seconds(5));
  ASSERT_OK(t);
  EXPECT_EQ(t->grpc_target, "ipv4:127.0.0.1:7443");
  EXPECT_THAT(t->usable, Contains("127.0.0.1"));
}

TEST(UpstreamResolverTest, EtcHostsIsReadFirst) {
  // localhost comes from /etc/hosts; no DNS server is asked (the one named
  // here listens nowhere).
  auto t = ResolveUpstream("localhost:7443", "127.0.0.1:9", absl::Seconds(5));
  ASSERT_OK(t);
  EXPECT_THAT(t->resolved, Contains(::testing::AnyOf("127.0.0.1", "::1")));
  EXPECT_THAT(t->grpc_target, ::testing::StartsWith("ipv"));
}

TEST(UpstreamResolverTest, UnresolvableNameIsNamed) {
  // A DNS server on a loopback port nobody serves: no traffic leaves the host.
  auto t = ResolveUpstream("no-such-origin.invalid:7443", "127.0.0.1:9", absl::Seconds(2));
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(t.status().code() == absl::StatusCode::kNotFound ||
              t.status().code() == absl::StatusCode::kUnavailable)
      << t.status();
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("no-such-origin.invalid"));
}

TEST(UpstreamResolverTest, BadInputIsExplained) {
  EXPECT_EQ(ResolveUpstream("no-port", "", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveUpstream("127.0.0.1:1", "not a server", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sigrelay
