// The console in a real browser: starts an origin, a relay and simulated
// agents, then runs tests/browser/console.mjs (Debian's chromium driven by
// playwright-core) against them; restarts the relay between its two phases.
// Screenshots: build/test-output/browser/.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Url(const Daemon& d) { return absl::StrCat("http://", d.console_address(), "/"); }

TEST(BrowserTest, ConsoleSignInPublishUpdatePeriodAndProxy) {
  const std::string script = std::string(SIGRELAY_SOURCE_DIR) + "/tests/browser/console.mjs";
  if (access((std::string(SIGRELAY_SOURCE_DIR) + "/tests/browser/node_modules/playwright-core")
                 .c_str(),
             F_OK) != 0 ||
      access("/usr/bin/chromium", X_OK) != 0) {
    const char* ci = std::getenv("CI");
    const std::string why = "playwright-core or chromium missing: run scripts/install-deps.sh";
    if (ci != nullptr && std::string(ci) == "true") FAIL() << "in CI: " << why;
    GTEST_SKIP() << why;
  }
  testing::TempDir work;
  const std::string out = std::string(SIGRELAY_BINARY_DIR) + "/test-output/browser";
  ASSERT_OK(MakeDirs(out));
  Daemon origin("sigrelay-origin", work.File("origin"), {"--console", "127.0.0.1:0"});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string p1 = testing::GenPattern(work.path(), "p1", 3000, 1);
  const std::string p3 = testing::GenPattern(work.path(), "p3", 0, 3, p1);
  ASSERT_EQ(testing::Publish(origin, "virus", p1), 1u);
  const std::string pub = origin.data_dir() + "/origin.pub";
  Daemon relay("sigrelay-relay", work.File("relay"),
               {"--console", "127.0.0.1:0", "--upstream", origin.address(), "--origin-pubkey", pub,
                "--schedule", "1h"});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  ASSERT_TRUE(
      testing::WaitFor([&] { return testing::ServedVersion(relay.address(), "virus") == 1; }));
  // Agents that report virus 1 now and virus 3 once it is pushed.
  testing::ChildProcess agents({testing::BinDir() + "/sigrelay-agent-sim", "--server",
                                relay.address(), "--agents", "6", "--origin-pubkey", pub,
                                "--components", "virus", "--until", "virus=3", "--timeout", "120s",
                                "--unhealthy", "50"});

  const std::string password = "hunter2-Browser-Pa55";
  std::string output;
  int rc = testing::RunCommand({"node", script, "main", Url(relay), relay.token(), Url(origin),
                                origin.token(), p3, out, password},
                               &output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(agents.Wait(), 0) << agents.Output();
  EXPECT_THAT(relay.output(), Not(HasSubstr(password)));
  EXPECT_THAT(origin.output(), Not(HasSubstr(password)));

  // A staged rollout of virus 5 at the origin, seen and steered from its console.
  testing::ChildProcess more({testing::BinDir() + "/sigrelay-agent-sim", "--server",
                              relay.address(), "--agents", "40", "--origin-pubkey", pub,
                              "--components", "virus", "--until", "virus=99", "--timeout", "180s",
                              "--unhealthy", "0", "--id-prefix", "ring-"});
  ASSERT_TRUE(testing::WaitFor([&] { return testing::AdminStatus(relay).agents_reported() >= 40; },
                               absl::Seconds(30)));
  ASSERT_EQ(testing::Publish(origin, "virus", testing::GenPattern(work.path(), "p5", 0, 5, p3),
                             {"--rollout", "canary=50%:1h,broad"}),
            5u);
  output.clear();
  rc = testing::RunCommand({"node", script, "rollout", Url(origin), origin.token(), out}, &output);
  auto tail = [](const std::string& s) {
    return s.substr(s.size() - std::min<size_t>(s.size(), 3000));
  };
  EXPECT_EQ(rc, 0) << output << "\norigin:\n"
                   << tail(origin.output()) << "\nrelay:\n"
                   << tail(relay.output()) << "\nagents:\n"
                   << tail(more.Output());

  relay.Restart();
  output.clear();
  rc = testing::RunCommand({"node", script, "restart", Url(relay), relay.token(), out}, &output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_THAT(relay.output(), Not(HasSubstr(password)));
}

}  // namespace
}  // namespace sigrelay
