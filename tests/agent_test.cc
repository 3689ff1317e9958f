// sigrelay-agent against real daemons: installs into a pattern directory,
// later versions by incremental, --on-update, SIGKILL at random instants,
// rollback refused across restarts, --once exit codes and fallback.
#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"

namespace sigrelay {
namespace {

using testing::ChildProcess;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

class AgentTest : public ::testing::Test {
 protected:
  std::vector<std::string> AgentArgs(const std::vector<std::string>& servers,
                                     const std::string& pubkey,
                                     const std::string& components = "virus") {
    std::vector<std::string> args = {testing::BinDir() + "/sigrelay-agent",
                                     "--origin-pubkey",
                                     pubkey,
                                     "--dir",
                                     dir_,
                                     "--state-dir",
                                     state_,
                                     "--components",
                                     components,
                                     "--max-backoff",
                                     "1s"};
    for (const std::string& s : servers) args.insert(args.end(), {"--server", s});
    return args;
  }
  // --once; exit status, output in *out.
  int Once(const std::vector<std::string>& servers, const std::string& pubkey, std::string* out) {
    std::vector<std::string> args = AgentArgs(servers, pubkey);
    args.push_back("--once");
    out->clear();
    return testing::RunCommand(args, out);
  }
  std::string Installed(const std::string& component) {
    absl::StatusOr<std::string> v = ReadFileToString(dir_ + "/" + component + ".version");
    return v.ok() ? std::string(absl::StripAsciiWhitespace(*v)) : "";
  }
  std::string Pattern(const std::string& component) {
    absl::StatusOr<std::string> p = ReadFileToString(dir_ + "/" + component + ".pattern");
    return p.ok() ? *p : "";
  }

  // Names, sizes and change times of everything in DIR (hidden files too).
  std::string WriteState() {
    std::string out;
    DIR* d = opendir(dir_.c_str());
    if (d == nullptr) return out;
    while (dirent* e = readdir(d)) {
      struct stat st {};
      if (stat((dir_ + "/" + e->d_name).c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
      absl::StrAppend(&out, e->d_name, ":", st.st_size, ":", st.st_mtim.tv_nsec, ";");
    }
    closedir(d);
    return out;
  }

  TempDir work_;
  const std::string dir_ = work_.File("patterns");
  const std::string state_ = work_.File("state");
};

// Origin -> relay -> agent: the first install takes full files, a later
// publish arrives by incremental; the files are the published bytes; the
// --on-update command runs once per update with the versions in its
// environment; status says what is installed, how and from where.
TEST_F(AgentTest, InstallsFullThenIncrementalAndRunsOnUpdateOncePerUpdate) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work_.path(), "v1", 20000, 1);
  const std::string s1 = testing::GenPattern(work_.path(), "s1", 3000, 7);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  ASSERT_EQ(testing::Publish(origin, "spyware", s1), 1u);
  Daemon relay("sigrelay-relay", work_.File("relay"),
               {"--upstream", origin.address(), "--origin-pubkey", pub});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  ASSERT_TRUE(WaitFor([&] {
    return testing::ServedVersion(relay.address(), "virus") == 1 &&
           testing::ServedVersion(relay.address(), "spyware") == 1;
  }));

  const std::string log = work_.File("on-update.log");
  std::vector<std::string> args = AgentArgs({relay.address()}, pub, "virus,spyware");
  args.insert(args.end(),
              {"--on-update",
               "echo \"$SIGRELAY_UPDATED|$SIGRELAY_VERSION_VIRUS|$SIGRELAY_DIR\" >> " + log});
  ChildProcess agent(args);
  ASSERT_TRUE(WaitFor([&] { return Installed("virus") == "1" && Installed("spyware") == "1"; }))
      << agent.Output();
  EXPECT_EQ(Pattern("virus"), *ReadFileToString(v1));
  EXPECT_EQ(Pattern("spyware"), *ReadFileToString(s1));
  ASSERT_TRUE(WaitFor([&] { return FileExists(log); })) << agent.Output();

  const std::string v3 = testing::GenPattern(work_.path(), "v3", 0, 3, v1);
  ASSERT_EQ(testing::Publish(origin, "virus", v3), 3u);
  ASSERT_TRUE(WaitFor([&] { return Installed("virus") == "3"; })) << agent.Output();
  EXPECT_EQ(Pattern("virus"), *ReadFileToString(v3));
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<std::string> l = ReadFileToString(log);
    return l.ok() && absl::StrContains(*l, "virus=3");
  }));
  std::vector<std::string> runs = absl::StrSplit(*ReadFileToString(log), '\n', absl::SkipEmpty());
  ASSERT_EQ(runs.size(), 2u) << *ReadFileToString(log);
  EXPECT_EQ(runs[0], absl::StrCat("virus=1 spyware=1|1|", dir_));
  EXPECT_EQ(runs[1], absl::StrCat("virus=3|3|", dir_));
  EXPECT_THAT(agent.Output(), HasSubstr("installed virus 3 from " + relay.address() + " by "));
  EXPECT_THAT(agent.Output(),
              ::testing::ContainsRegex("installed virus 3 .* by (pushed )?incremental"));
  // The relay knows the agent at its versions.
  ASSERT_TRUE(WaitFor([&] {
    const v1::GetStatusResponse now = testing::AdminStatus(relay);
    for (const v1::AgentVersionCount& c : now.agent_versions()) {
      if (c.component() == "virus" && c.version() == 3 && c.agents() == 1) return true;
    }
    return false;
  })) << testing::AdminStatus(relay).DebugString();

  std::string status;
  ASSERT_EQ(testing::RunCommand(
                {testing::BinDir() + "/sigrelay-agent", "status", "--state-dir", state_}, &status),
            0)
      << status;
  EXPECT_THAT(status,
              ::testing::ContainsRegex("virus +3 +(pushed )?incremental +" + relay.address()));
  EXPECT_THAT(status, ::testing::ContainsRegex("spyware +1 +full"));
  agent.Kill(SIGTERM);
  EXPECT_EQ(agent.Wait(), 0) << agent.Output();
}

// --on-update also runs after an update by --once; a command that fails is
// logged and not retried, one that hangs is killed at --on-update-timeout,
// and neither undoes the install.
TEST_F(AgentTest, OnUpdateFailuresAndHangsAreLoggedAndBounded) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work_.path(), "v1", 2000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  std::vector<std::string> args = AgentArgs({origin.address()}, pub);
  args.insert(args.end(), {"--once", "--on-update", "exit 3"});
  std::string out;
  ASSERT_EQ(testing::RunCommand(args, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("--on-update \"exit 3\" failed (exit 3) for virus=1; not retried"));
  EXPECT_EQ(Installed("virus"), "1");

  ASSERT_EQ(testing::Publish(origin, "virus", testing::GenPattern(work_.path(), "v3", 0, 3, v1)),
            3u);
  args = AgentArgs({origin.address()}, pub);
  args.insert(args.end(), {"--once", "--on-update", "sleep 30", "--on-update-timeout", "1s"});
  const absl::Time start = absl::Now();
  ASSERT_EQ(testing::RunCommand(args, &out), 0) << out;
  EXPECT_LT(absl::Now() - start, absl::Seconds(20)) << "the hung command was not killed";
  EXPECT_THAT(out, HasSubstr("did not finish within 1s; killed"));
  EXPECT_EQ(Installed("virus"), "3");

  // The hook gets the signals the agent blocks for itself: a SIGTERM ends
  // it (with them still blocked it would sleep until the timeout).
  ASSERT_EQ(testing::Publish(origin, "virus", testing::GenPattern(work_.path(), "v5", 0, 5, v1)),
            5u);
  args = AgentArgs({origin.address()}, pub);
  args.insert(args.end(),
              {"--once", "--on-update", "kill -TERM $$; sleep 30", "--on-update-timeout", "20s"});
  ASSERT_EQ(testing::RunCommand(args, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("failed (signal 15) for virus=5"));
}

// Only complete, verified pattern files ever appear in DIR, whatever instant
// the agent is killed at; after restart it converges.
TEST_F(AgentTest, SigkillAtRandomInstantsLeavesOnlyCompleteFiles) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  std::set<std::string> published;  // SHA-256 of every version
  std::string prev = testing::GenPattern(work_.path(), "p0", 40000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", prev), 1u);
  published.insert(Sha256::Of(*ReadFileToString(prev)));
  std::mt19937 rng(20261129);
  int killed_mid_update = 0;
  uint32_t newest = 1;
  for (int round = 0; round < 24; ++round) {
    if (round % 2 == 1) {  // a new version every other round: incrementals and fulls
      const std::string next =
          testing::GenPattern(work_.path(), absl::StrCat("p", round), 0, round, prev, 20);
      newest = testing::Publish(origin, "virus", next);
      ASSERT_NE(newest, 0u);
      published.insert(Sha256::Of(*ReadFileToString(next)));
      prev = next;
    }
    const std::string before = Installed("virus");
    {
      ChildProcess agent(AgentArgs({origin.address()}, pub));
      if (round % 4 == 1) {
        // The instant a write into DIR starts: a temporary beside the file,
        // or the file itself changing.
        // Polled tightly (WaitFor's 10 ms would miss a write of a few ms).
        const std::string seen = WriteState();
        const absl::Time deadline = absl::Now() + absl::Seconds(5);
        while (WriteState() == seen && absl::Now() < deadline) {
          absl::SleepFor(absl::Microseconds(100));  // polling interval, not synchronisation
        }
      } else {  // a random instant
        absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(0, 300)(rng)));
      }
      agent.Kill(SIGKILL);
      agent.Wait();
    }
    const std::string want = absl::StrCat(newest);
    if (before != want && Installed("virus") != want) ++killed_mid_update;
    // Whatever the instant: the pattern is absent or one published file,
    // and nothing else is visible in DIR.
    if (FileExists(dir_ + "/virus.pattern")) {
      EXPECT_TRUE(published.count(Sha256::Of(Pattern("virus"))))
          << "round " << round << ": a torn file of " << Pattern("virus").size() << " bytes";
    }
    // (DIR itself is absent while the first kill lands before the agent made it.)
    DIR* d = opendir(dir_.c_str());
    ASSERT_TRUE(d != nullptr || (errno == ENOENT && round == 0)) << strerror(errno);
    while (dirent* e = d != nullptr ? readdir(d) : nullptr) {
      const std::string name = e->d_name;
      if (name[0] == '.') continue;
      EXPECT_TRUE(name == "virus.pattern" || name == "virus.version") << name;
    }
    if (d != nullptr) closedir(d);
  }
  RecordProperty("killed_before_an_install_finished", killed_mid_update);
  EXPECT_GT(killed_mid_update, 0) << "no kill landed during an update";
  std::string out;
  EXPECT_EQ(Once({origin.address()}, pub, &out), 0) << out;
  EXPECT_EQ(Pattern("virus"), *ReadFileToString(prev));
}

// An agent that accepted a newer manifest and restarted refuses an older,
// still valid one that a stale mirror replays, and keeps its files.
TEST_F(AgentTest, ARestartedAgentRefusesAnOlderManifestFromAStaleMirror) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work_.path(), "v1", 3000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  // The mirror syncs version 1, then is cut off from the origin.
  Daemon mirror("sigrelay-relay", work_.File("mirror"),
                {"--upstream", origin.address(), "--origin-pubkey", pub});
  ASSERT_FALSE(mirror.address().empty()) << mirror.output();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(mirror.address(), "virus") == 1; }));
  ASSERT_EQ(mirror.Stop(), 0);
  const std::string v3 = testing::GenPattern(work_.path(), "v3", 0, 3, v1);
  ASSERT_EQ(testing::Publish(origin, "virus", v3), 3u);
  std::string out;
  ASSERT_EQ(Once({origin.address()}, pub, &out), 0) << out;
  ASSERT_EQ(Installed("virus"), "3");
  // The mirror comes back serving its old (valid, unexpired) manifest.
  Daemon stale(
      "sigrelay-relay", mirror.data_dir(),
      {"--upstream", absl::StrCat("127.0.0.1:", testing::UnusedPort()), "--origin-pubkey", pub});
  ASSERT_FALSE(stale.address().empty()) << stale.output();
  ASSERT_EQ(testing::ServedVersion(stale.address(), "virus"), 1u);
  EXPECT_EQ(Once({stale.address()}, pub, &out), 1) << out;
  EXPECT_THAT(out, HasSubstr("rollback refused"));
  EXPECT_EQ(Installed("virus"), "3");
  EXPECT_EQ(Pattern("virus"), *ReadFileToString(v3));
}

// --once: 0 when current; non-zero with the reason when no server can give
// an update (unreachable, wrong key); the next --server when one is down.
TEST_F(AgentTest, OnceExitsZeroWhenCurrentAndSaysWhyWhenItCannotUpdate) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  ASSERT_EQ(testing::Publish(origin, "virus", testing::GenPattern(work_.path(), "v1", 3000, 1)),
            1u);
  const std::string dead = absl::StrCat("127.0.0.1:", testing::UnusedPort());
  std::string out;
  EXPECT_EQ(Once({dead, origin.address()}, pub, &out), 0) << out;
  EXPECT_EQ(Installed("virus"), "1");
  EXPECT_THAT(out, HasSubstr(dead + ": "));
  EXPECT_THAT(out, HasSubstr("trying the next server"));
  EXPECT_EQ(Once({origin.address()}, pub, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("current at serial"));

  EXPECT_EQ(Once({dead}, pub, &out), 1);
  EXPECT_THAT(out, HasSubstr("cannot update: " + dead + ": "));
  // A proxy in the way is named.
  std::vector<std::string> via = AgentArgs({origin.address()}, pub);
  via.insert(via.end(), {"--once", "--proxy", "http://user:secret@" + dead});
  EXPECT_EQ(testing::RunCommand(via, &out), 1);
  EXPECT_THAT(out, HasSubstr(origin.address() + " (through proxy " + dead + "): "));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("secret")));
  // Another origin's key: every manifest is refused, saying so.
  Daemon other("sigrelay-origin", work_.File("other"), {});
  ASSERT_FALSE(other.address().empty()) << other.output();
  EXPECT_EQ(Once({origin.address()}, other.data_dir() + "/origin.pub", &out), 1);
  EXPECT_THAT(out, HasSubstr("manifest refused"));
  EXPECT_EQ(Installed("virus"), "1");
}

}  // namespace
}  // namespace sigrelay
