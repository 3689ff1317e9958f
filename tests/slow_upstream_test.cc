// A hostile or slow upstream against the real daemons (TUF's slow-retrieval
// attack): a mirror that serves the real signed manifest and then sends its
// bytes one a second cannot hold a sync, an install or a shutdown, and the
// minimum rate that cuts it leaves an honest slow link alone.
#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/dribbling_upstream.h"
#include "tests/testutil/rapid_reset.h"
#include "tests/testutil/tcp_forwarder.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

std::vector<std::string> AgentArgs(const TempDir& work, const std::string& name,
                                   const std::vector<std::string>& servers,
                                   const std::string& pub) {
  std::vector<std::string> args = {testing::BinDir() + "/sigrelay-agent",
                                   "--origin-pubkey",
                                   pub,
                                   "--dir",
                                   work.File(name),
                                   "--state-dir",
                                   work.File(name + "-state"),
                                   "--components",
                                   "virus"};
  for (const std::string& s : servers) args.insert(args.end(), {"--server", s});
  return args;
}

// The dribbling mirror is first, the origin second, every flag at its
// default: the relay and `sigrelay-agent --once` cut the mirror once it
// has sent less than 1 KiB/s over 60 s, take the file from the origin, and
// the relay resumes from the last chunk it verified and stored (the origin
// sends the rest, not the whole file). Status names the cut upstream and why. With
// the minimum rate off (checked: --upstream-min-rate 0) the relay still
// had nothing after 150 s: the mirror decides when a sync ends.
TEST(SlowUpstreamTest, ADribblingFirstUpstreamIsCutAndTheNextOneDelivers) {
  TempDir work;
  Daemon origin("sigrelay-origin", work.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work.path(), "v1", 40000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  const uint64_t size = ReadFileToString(v1)->size();
  ASSERT_GT(size, 2u << 20);
  // A chunk and a half at once (1 MiB chunks), then a byte a second.
  testing::DribblingUpstream mirror(origin.address(), 3 << 19);
  testing::TcpForwarder to_origin(origin.address());
  Daemon relay(
      "sigrelay-relay", work.File("relay"),
      {"--upstream", mirror.address(), "--upstream", to_origin.address(), "--origin-pubkey", pub});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  std::string agent_out;
  int agent_rc = -1;
  std::thread agent([&] {
    std::vector<std::string> args =
        AgentArgs(work, "agent", {mirror.address(), origin.address()}, pub);
    args.push_back("--once");
    agent_rc = testing::RunCommand(args, &agent_out);
  });
  const bool relay_took = WaitFor(
      [&] { return testing::ServedVersion(relay.address(), "virus") == 1; }, absl::Minutes(2));
  agent.join();
  ASSERT_TRUE(relay_took) << relay.output();
  EXPECT_EQ(testing::FetchFull(relay.address(), "virus"), *ReadFileToString(v1));
  // The relay: the mirror cut for rate, named with its flag, tried last.
  v1::GetStatusResponse status = testing::AdminStatus(relay);
  ASSERT_EQ(status.relay().upstreams_size(), 2);
  const v1::UpstreamStatus& cut = status.relay().upstreams(0);
  EXPECT_EQ(cut.address(), mirror.address());
  EXPECT_GE(cut.cuts(), 1u);
  EXPECT_THAT(cut.last_cut(), HasSubstr("below 1 KiB/s over 1m"));
  EXPECT_GT(cut.demoted_until_unix(), absl::ToUnixSeconds(absl::Now()));
  EXPECT_EQ(status.relay().upstream_in_use(), to_origin.address());
  EXPECT_THAT(relay.output(), HasSubstr("--upstream-min-rate"));
  // Resumed at 1 MiB: the origin sent the rest and a few KB of calls.
  EXPECT_LT(to_origin.bytes_from_target(), size - (1 << 20) + (32 << 10))
      << "the relay fetched the whole file again";
  // The agent: cut, then installed from the origin.
  EXPECT_EQ(agent_rc, 0) << agent_out;
  EXPECT_THAT(agent_out, HasSubstr("below 1 KiB/s over 1m"));
  EXPECT_THAT(agent_out, HasSubstr("--min-rate"));
  EXPECT_EQ(*ReadFileToString(work.File("agent/virus.pattern")), *ReadFileToString(v1));
}

// An honest 256 kbit/s link (32,000 bytes a second from the origin, 1 MiB
// chunks: one every 33 s) with every flag at its default: the relay takes
// a 2.7 MB file in about 90 s, judged by the minimum rate over more than
// one window, and is never cut.
TEST(SlowUpstreamTest, A256KbitLinkConvergesWithTheDefaults) {
  TempDir work;
  Daemon origin("sigrelay-origin", work.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work.path(), "v1", 40000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  const uint64_t size = ReadFileToString(v1)->size();
  ASSERT_GT(size, 2u << 20) << "the transfer lasts more than one 60 s window";
  testing::TcpForwarder link(origin.address(), 32000);
  const absl::Time start = absl::Now();
  Daemon relay("sigrelay-relay", work.File("relay"),
               {"--upstream", link.address(), "--origin-pubkey", pub});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay.address(), "virus") == 1; },
                      absl::Minutes(3)))
      << relay.output();
  const absl::Duration took = absl::Now() - start;
  std::cerr << size << " bytes over 256 kbit/s in " << took << "\n";
  EXPECT_GT(took, absl::Seconds(60)) << "the link was not as slow as it should be";
  v1::GetStatusResponse status = testing::AdminStatus(relay);
  EXPECT_EQ(status.relay().upstreams(0).cuts(), 0u) << status.relay().upstreams(0).last_cut();
  EXPECT_THAT(relay.output(), ::testing::Not(HasSubstr("was cut")));
}

// SIGTERM in the middle of 1 B/s downloads and of a hung hook: the relay,
// the origin (its Fetch stuck behind a reader that takes a byte a second),
// sigrelay-agent as a daemon, as --once, and with a hung --on-update, and
// agent-sim all exit within 2 s; the restarted relay serves what it had
// committed; the agents' directories hold only the whole old file.
TEST(SlowUpstreamTest, ShutdownIsPromptInTheMiddleOfADribble) {
  TempDir work;
  Daemon origin("sigrelay-origin", work.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work.path(), "v1", 2000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  // Everyone holds version 1, taken from the origin directly.
  auto relay_args = [&](const std::string& upstream) {
    return std::vector<std::string>{"--upstream", upstream, "--origin-pubkey", pub};
  };
  {
    Daemon relay("sigrelay-relay", work.File("relay"), relay_args(origin.address()));
    ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay.address(), "virus") == 1; }))
        << relay.output();
    ASSERT_EQ(relay.Stop(), 0);
  }
  for (const char* name : {"daemon", "once", "hook"}) {
    std::vector<std::string> args = AgentArgs(work, name, {origin.address()}, pub);
    args.push_back("--once");
    std::string out;
    ASSERT_EQ(testing::RunCommand(args, &out), 0) << out;
  }
  // Version 3, 8 MB of new content: the origin's Fetch of it outlasts the
  // HTTP/2 windows of a reader that takes a byte a second.
  const std::string v3 = testing::GenPattern(work.path(), "v3", 120000, 3);
  ASSERT_EQ(testing::Publish(origin, "virus", v3), 3u);
  testing::DribblingUpstream mirror(origin.address(), 1 << 10);
  Daemon relay("sigrelay-relay", work.File("relay"), relay_args(mirror.address()));
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  testing::ChildProcess daemon(AgentArgs(work, "daemon", {mirror.address()}, pub));
  std::vector<std::string> once_args = AgentArgs(work, "once", {mirror.address()}, pub);
  once_args.push_back("--once");
  testing::ChildProcess once(once_args);
  testing::ChildProcess sim({testing::BinDir() + "/sigrelay-agent-sim", "--server",
                             mirror.address(), "--agents", "1", "--start", "none",
                             "--origin-pubkey", pub, "--timeout", "300s"});
  // The hook: an update from the origin whose --on-update hangs.
  std::vector<std::string> hook_args = AgentArgs(work, "hook", {origin.address()}, pub);
  hook_args.insert(hook_args.end(), {"--once", "--on-update", "sleep 300"});
  testing::ChildProcess hook(hook_args);
  ASSERT_TRUE(WaitFor([&] { return mirror.dribbling() >= 4; }, absl::Seconds(30)))
      << mirror.dribbling() << " downloads under way\n"
      << relay.output() << daemon.Output() << once.Output() << sim.Output();
  ASSERT_TRUE(WaitFor([&] {
    return FileExists(work.File("hook/virus.version")) &&
           *ReadFileToString(work.File("hook/virus.version")) == "3\n";
  })) << hook.Output();

  struct Stopping {
    const char* name;
    testing::ChildProcess* process;
  };
  const std::vector<Stopping> all = {{"relay", relay.process()},   {"origin", origin.process()},
                                     {"agent daemon", &daemon},    {"agent --once", &once},
                                     {"agent --on-update", &hook}, {"agent-sim", &sim}};
  const absl::Duration bound = absl::Seconds(2) * testing::kSanitizerSlowdown;
  const absl::Time t0 = absl::Now();
  for (const Stopping& s : all) s.process->Kill(SIGTERM);
  for (const Stopping& s : all) {
    EXPECT_TRUE(WaitFor([&] { return !s.process->Running(); }, bound - (absl::Now() - t0)))
        << s.name << " still running " << absl::Now() - t0 << " after SIGTERM";
    std::cerr << s.name << " exited " << absl::Now() - t0 << " after SIGTERM\n";
  }
  // Nothing half-installed: the agents hold the whole version 1.
  for (const char* name : {"daemon", "once"}) {
    EXPECT_EQ(*ReadFileToString(work.File(absl::StrCat(name, "/virus.pattern"))),
              *ReadFileToString(v1))
        << name;
    EXPECT_EQ(*ReadFileToString(work.File(absl::StrCat(name, "/virus.version"))), "1\n");
  }
  // The store is intact: restarted with nothing to reach, the relay serves
  // version 1.
  Daemon again("sigrelay-relay", work.File("relay"),
               relay_args(absl::StrCat("127.0.0.1:", testing::UnusedPort())));
  ASSERT_FALSE(again.address().empty()) << again.output();
  EXPECT_EQ(testing::ServedVersion(again.address(), "virus"), 1u);
  EXPECT_EQ(testing::FetchFull(again.address(), "virus"), *ReadFileToString(v1));
}

}  // namespace
}  // namespace sigrelay
