// Proxy URLs as operators write them: taken apart for clients that need the
// parts, refused with what to write when malformed, never shown with the
// password.
#include "core/base/transport.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

TEST(ProxyUrlTest, PartsOfWhatOperatorsWrite) {
  absl::StatusOr<ProxyUrl> p = ParseProxyUrl("http://relay:s3cr:et@proxy.example:3128");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->host, "proxy.example");
  EXPECT_EQ(p->port, 3128);
  EXPECT_EQ(p->user, "relay");
  EXPECT_EQ(p->password, "s3cr:et");  // the first colon splits user from password

  p = ParseProxyUrl("http://[fd00:1::5]:8080/");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->host, "fd00:1::5");
  EXPECT_EQ(p->port, 8080);
  EXPECT_EQ(p->user, "");

  p = ParseProxyUrl("http://alone@proxy:3128");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->user, "alone");
  EXPECT_EQ(p->password, "");
  EXPECT_EQ(ProxyDisplay("http://relay:secret@proxy.example:3128"), "proxy.example:3128");
}

TEST(ProxyUrlTest, MalformedOnesSayWhatToWrite) {
  EXPECT_TRUE(CheckProxyUrl("").ok());
  for (const char* bad : {"proxy:3128", "https://proxy:3128", "socks5://proxy:1080"}) {
    EXPECT_THAT(std::string(ParseProxyUrl(bad).status().message()),
                HasSubstr("http://[user:password@]HOST:PORT"))
        << bad;
  }
  for (const char* bad : {"http://proxy", "http://user:pw@:3128", "http://proxy:0"}) {
    EXPECT_THAT(std::string(CheckProxyUrl(bad).message()), HasSubstr("needs HOST:PORT")) << bad;
  }
}

}  // namespace
}  // namespace sigrelay
