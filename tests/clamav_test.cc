// ClamAV, a real scanner no one here wrote, takes its signature databases
// from sigrelay: clamd fed by sigrelay-agent (--file names the database as
// clamd expects it, --on-update reloads clamd, --verify-cmd keeps a
// database clamscan cannot load out), and stock freshclam following a
// static tree's current/NAME through nginx. The databases are custom ones
// (.ndb, one hex signature per line); the official ones are never asked
// for. Network-namespace tests run as root (in CI they must run).
#include <sys/stat.h>

#include <cstdlib>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/testutil.h"
#include "tests/topology/netns.h"

namespace sigrelay {
namespace {

using testing::ChildProcess;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::Netns;
using ::testing::Not;
using testing::TempDir;
using testing::WaitFor;

constexpr char kComponent[] = "company-sigs";
constexpr char kDatabase[] = "company.ndb";

std::vector<std::string> With(std::vector<std::string> prefix,
                              const std::vector<std::string>& argv) {
  prefix.insert(prefix.end(), argv.begin(), argv.end());
  return prefix;
}

std::string Hex(absl::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) absl::StrAppend(&out, absl::Hex(c, absl::kZeroPad2));
  return out;
}

// A ClamAV database (.ndb) of `filler` random signatures from `seed`
// (records i in `churned` drawn from seed+1 instead, the 0.5 % a new
// version changes), plus one signature for each marker text.
std::string Database(int filler, int seed, const std::vector<std::string>& markers,
                     const std::vector<int>& churned = {}) {
  std::string out;
  std::mt19937_64 rng(seed), other(seed + 1);
  size_t next_churned = 0;
  for (int i = 0; i < filler; ++i) {
    std::mt19937_64& r = next_churned < churned.size() && churned[next_churned] == i ? other : rng;
    if (&r == &other) ++next_churned;
    absl::StrAppend(&out, "Company.Filler.", i, ":0:*:", absl::Hex(r(), absl::kZeroPad16),
                    absl::Hex(r(), absl::kZeroPad16), "\n");
  }
  for (const std::string& m : markers) {
    absl::StrAppend(&out, "Company.Test.", m, ":0:*:", Hex(absl::StrCat("SIGRELAYMARKER", m)),
                    "\n");
  }
  return out;
}

// Records changed by version 3: 0.5 % of 4,000.
std::vector<int> Churn() {
  std::vector<int> out;
  for (int i = 0; i < 4000; i += 200) out.push_back(i);
  return out;
}

// clamd in the foreground on a unix socket in `dir`, reading `db`, behind
// `prefix` (a network namespace or nothing). Self-checks are off (an hour),
// so only an explicit reload (the agent's --on-update) loads new databases.
class Clamd {
 public:
  Clamd(const std::string& dir, const std::string& db, std::vector<std::string> prefix)
      : conf_(dir + "/clamd.conf"), prefix_(std::move(prefix)) {
    MakeDirs(dir).IgnoreError();
    EXPECT_TRUE(WriteFileAtomically(conf_, absl::StrCat("DatabaseDirectory ", db, "\nLocalSocket ",
                                                        dir, "/clamd.sock\nForeground yes\n",
                                                        "SelfCheck 3600\nTemporaryDirectory ", dir,
                                                        "\nLogFile ", dir, "/clamd.log\n"))
                    .ok());
  }
  ~Clamd() {
    if (process_ != nullptr) {
      process_->Kill(SIGTERM);
      process_->Wait();
    }
  }
  const std::string& conf() const { return conf_; }
  // Starts it and waits until it answers.
  bool Start() {
    process_ = std::make_unique<ChildProcess>(With(prefix_, {"clamd", "-c", conf_}));
    return WaitFor(
        [&] {
          return testing::RunCommand(
                     With(prefix_, {"clamdscan", "--config-file=" + conf_, "--ping", "1"})) == 0;
        },
        absl::Seconds(60));
  }
  // clamdscan's verdict on `file`: "FOUND ..." or "OK" (or the error).
  std::string Scan(const std::string& file) {
    std::string out;
    testing::RunCommand(
        With(prefix_, {"clamdscan", "--config-file=" + conf_, "--no-summary", "--fdpass", file}),
        &out);
    return std::string(absl::StripAsciiWhitespace(out.substr(out.find(':') + 1)));
  }
  std::string output() const { return process_ ? process_->Output() : ""; }

 private:
  const std::string conf_;
  const std::vector<std::string> prefix_;
  std::unique_ptr<ChildProcess> process_;
};

class ClamavTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* m : {"A", "B"}) {
      ASSERT_TRUE(WriteFileAtomically(work_.File(absl::StrCat("sample-", m)),
                                      absl::StrCat("a file holding SIGRELAYMARKER", m, " inside\n"))
                      .ok());
    }
    ASSERT_TRUE(WriteFileAtomically(clean_, "nothing to see here\n").ok());
  }
  std::string Sample(const char* m) { return work_.File(absl::StrCat("sample-", m)); }
  // Writes database text to a file named `name` and returns its path.
  std::string Db(const std::string& name, const std::string& text) {
    const std::string path = work_.File(name);
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }

  // sigrelayctl behind `prefix`.
  int Ctl(const std::vector<std::string>& prefix, const std::vector<std::string>& args,
          std::string* out = nullptr) {
    std::string ignored;
    if (out != nullptr) out->clear();
    return testing::RunCommand(With(prefix, With({testing::BinDir() + "/sigrelayctl"}, args)),
                               out != nullptr ? out : &ignored);
  }
  uint32_t Publish(const std::vector<std::string>& prefix, const Daemon& origin,
                   const std::string& file) {
    std::string out;
    if (Ctl(prefix, {"--data-dir", origin.data_dir(), "publish", kComponent, file}, &out) != 0) {
      ADD_FAILURE() << out;
      return 0;
    }
    return static_cast<uint32_t>(std::atoi(out.substr(out.rfind(' ') + 1).c_str()));
  }
  std::vector<std::string> AgentArgs(const std::string& server, const std::string& pub,
                                     const std::string& dir, const std::string& clamd_conf) {
    return {testing::BinDir() + "/sigrelay-agent",
            "--server",
            server,
            "--origin-pubkey",
            pub,
            "--dir",
            dir,
            "--state-dir",
            state_,
            "--components",
            kComponent,
            "--file",
            absl::StrCat(kComponent, "=", kDatabase),
            "--max-backoff",
            "1s",
            "--on-update",
            "clamdscan --config-file=" + clamd_conf + " --reload",
            "--verify-cmd",
            absl::StrCat("echo \"$SIGRELAY_VERSION $SIGRELAY_STAGED\" >> ", verify_log_,
                         "; clamscan --no-summary --database=\"$SIGRELAY_STAGED\" ", clean_)};
  }
  std::string Installed(const std::string& dir) {
    absl::StatusOr<std::string> v =
        ReadFileToString(absl::StrCat(dir, "/", kComponent, ".version"));
    return v.ok() ? std::string(absl::StripAsciiWhitespace(*v)) : "";
  }
  // How many times --verify-cmd ran.
  size_t Checks() {
    std::vector<std::string> lines =
        absl::StrSplit(*ReadFileToString(verify_log_), '\n', absl::SkipEmpty());
    return lines.size();
  }
  std::string AgentStatus() {
    std::string out;
    testing::RunCommand({testing::BinDir() + "/sigrelay-agent", "status", "--state-dir", state_},
                        &out);
    return out;
  }

  // The whole way: origin (behind `o`) publishes company.ndb with a
  // signature for A; the relay (behind `r`, following `upstream`) carries
  // it; sigrelay-agent and clamd (behind `a`, agent on `server`) install
  // it, and clamd finds A and not B. Version 3 adds B (0.5 % of the
  // records changed): the agent takes an incremental, clamd reloads, B is
  // found. Version 3 withdrawn: the roll-forward reaches clamd and B is
  // clean again.
  void EndToEnd(const std::vector<std::string>& o, const Daemon& origin,
                const std::vector<std::string>& a, const std::string& server) {
    const std::string pub = origin.data_dir() + "/origin.pub";
    const std::string db = work_.File("clamav-db");
    Clamd clamd(work_.File("clamd"), db, a);
    ChildProcess agent(With(a, AgentArgs(server, pub, db, clamd.conf())));
    ASSERT_TRUE(WaitFor([&] { return Installed(db) == "1"; })) << agent.Output();
    EXPECT_EQ(*ReadFileToString(db + "/" + kDatabase), *ReadFileToString(v1_));
    ASSERT_TRUE(clamd.Start()) << clamd.output();
    EXPECT_THAT(clamd.Scan(Sample("A")), HasSubstr("Company.Test.A.UNOFFICIAL FOUND"));
    EXPECT_EQ(clamd.Scan(Sample("B")), "OK");

    ASSERT_EQ(Publish(o, origin, v3_), 3u);
    ASSERT_TRUE(WaitFor([&] { return Installed(db) == "3"; })) << agent.Output();
    EXPECT_THAT(AgentStatus(), HasSubstr("incremental"));
    EXPECT_THAT(AgentStatus(), Not(HasSubstr("full")));
    // The reload runs in clamd's background; scans go on with the old
    // databases until it is done.
    ASSERT_TRUE(WaitFor([&] { return absl::StrContains(clamd.Scan(Sample("B")), "FOUND"); }))
        << clamd.Scan(Sample("B")) << agent.Output();
    EXPECT_THAT(clamd.Scan(Sample("A")), HasSubstr("FOUND"));

    std::string out;
    ASSERT_EQ(Ctl(o,
                  {"--data-dir", origin.data_dir(), "withdraw", kComponent, "3", "--reason",
                   "false positives on B"},
                  &out),
              0)
        << out;
    ASSERT_TRUE(WaitFor([&] { return Installed(db) == "5"; })) << agent.Output();
    EXPECT_EQ(*ReadFileToString(db + "/" + kDatabase), *ReadFileToString(v1_));
    ASSERT_TRUE(WaitFor([&] { return clamd.Scan(Sample("B")) == "OK"; }))
        << clamd.Scan(Sample("B")) << agent.Output();
    EXPECT_THAT(clamd.Scan(Sample("A")), HasSubstr("FOUND"));
    // Every version was checked by clamscan before clamd saw it.
    EXPECT_EQ(Checks(), 3u) << *ReadFileToString(verify_log_);
  }

  TempDir work_;
  const std::string state_ = work_.File("agent-state");
  const std::string verify_log_ = work_.File("verify.log");
  const std::string clean_ = work_.File("clean-file");
  const std::string v1_ = Db("v1.ndb", Database(4000, 1, {"A"}));
  const std::string v3_ = Db("v3.ndb", Database(4000, 1, {"A", "B"}, Churn()));
};

TEST_F(ClamavTest, ClamdFollowsTheAgentThroughIncrementalAndWithdraw) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {"--component", kComponent});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  ASSERT_EQ(Publish({}, origin, v1_), 1u);
  Daemon relay("sigrelay-relay", work_.File("relay"),
               {"--upstream", origin.address(), "--origin-pubkey",
                origin.data_dir() + "/origin.pub", "--max-backoff", "1s"});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  EndToEnd({}, origin, {}, relay.address());
}

// A version whose database clamscan cannot load is refused by --verify-cmd:
// the installed database stays (clamd still finds A), the agent's status
// and its relay say which version and why, --once fails, and the version
// is not checked again; the next good version goes in.
TEST_F(ClamavTest, VerifyCmdKeepsADatabaseClamavCannotLoadOut) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {"--component", kComponent});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  ASSERT_EQ(Publish({}, origin, v1_), 1u);
  Daemon relay("sigrelay-relay", work_.File("relay"),
               {"--upstream", origin.address(), "--origin-pubkey", pub, "--max-backoff", "1s"});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  const std::string db = work_.File("clamav-db");
  Clamd clamd(work_.File("clamd"), db, {});
  std::vector<std::string> args = AgentArgs(relay.address(), pub, db, clamd.conf());
  {
    ChildProcess agent(args);
    ASSERT_TRUE(WaitFor([&] { return Installed(db) == "1"; })) << agent.Output();
    ASSERT_TRUE(clamd.Start()) << clamd.output();
    EXPECT_THAT(clamd.Scan(Sample("A")), HasSubstr("FOUND"));

    const std::string broken =
        Db("v3-broken.ndb", Database(4000, 1, {"A"}, Churn()) + "Company.Broken:0:*:zz\n");
    ASSERT_EQ(Publish({}, origin, broken), 3u);
    ASSERT_TRUE(WaitFor([&] {
      return absl::StrContains(AgentStatus(), "refused: company-sigs 3");
    })) << agent.Output();
    const std::string status = AgentStatus();
    EXPECT_THAT(status, HasSubstr("exit 2"));
    EXPECT_THAT(status, HasSubstr("Malformed database")) << status;
    EXPECT_EQ(Installed(db), "1");
    EXPECT_EQ(*ReadFileToString(db + "/" + kDatabase), *ReadFileToString(v1_));
    struct stat st {};
    EXPECT_NE(stat((db + "/.sigrelay-staging/" + kDatabase).c_str(), &st), 0)
        << "the refused file is not left behind";
    // clamd keeps the old databases, and a reload now loads them again.
    EXPECT_EQ(testing::RunCommand({"clamdscan", "--config-file=" + clamd.conf(), "--reload"}), 0);
    EXPECT_THAT(clamd.Scan(Sample("A")), HasSubstr("FOUND"));
    // The relay hears of it on the agent's Watch stream.
    std::string relay_status;
    ASSERT_TRUE(WaitFor([&] {
      Ctl({}, {"--data-dir", relay.data_dir(), "status", "--json"}, &relay_status);
      return absl::StrContains(relay_status,
                               "\"agents_refused\":[{\"component\":\"company-sigs\","
                               "\"version\":3,\"agents\":1,");
    })) << relay_status;
    EXPECT_THAT(relay_status, HasSubstr("Malformed database"));
    agent.Kill(SIGTERM);
    EXPECT_EQ(agent.Wait(), 0) << agent.Output();
  }
  // --once fails while the newest version is one it refused, without
  // checking it again (one check of v1, one of v3).
  std::vector<std::string> once = args;
  once.push_back("--once");
  std::string out;
  EXPECT_NE(testing::RunCommand(once, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("--verify-cmd refused company-sigs 3"));
  EXPECT_EQ(Checks(), 2u) << *ReadFileToString(verify_log_);

  // The next good version is taken, and the refusal is gone from status.
  ASSERT_EQ(Publish({}, origin, v3_), 5u);
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay.address(), kComponent) == 5; }));
  out.clear();
  EXPECT_EQ(testing::RunCommand(once, &out), 0) << out;
  EXPECT_EQ(Installed(db), "5");
  EXPECT_THAT(AgentStatus(), Not(HasSubstr("refused:")));
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(clamd.Scan(Sample("B")), "FOUND"); }));
}

// --file names are checked at start: a path, "..", a hidden name or one
// name for two components is refused saying what to give instead.
TEST_F(ClamavTest, FileNamesThatLeaveTheDirectoryAreRefused) {
  struct Case {
    std::vector<std::string> files;
    std::string components;
    std::string says;
  } cases[] = {
      {{"company-sigs=../company.ndb"}, "company-sigs", "plain file name"},
      {{"company-sigs=sub/company.ndb"}, "company-sigs", "plain file name"},
      {{"company-sigs=.hidden.ndb"}, "company-sigs", "not hidden"},
      {{"company-sigs=x.ndb", "daily=x.ndb"}, "company-sigs,daily", "both have the name x.ndb"},
      {{"company-sigs=daily.pattern"}, "company-sigs,daily", "is already daily's file"},
      {{"other=x.ndb"}, "company-sigs", "other is not in --components"},
      {{"company-sigs"}, "company-sigs", "give COMPONENT=NAME"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {testing::BinDir() + "/sigrelay-agent",
                                     "--server",
                                     "127.0.0.1:1",
                                     "--origin-pubkey",
                                     work_.File("none.pub"),
                                     "--dir",
                                     work_.File("d"),
                                     "--components",
                                     c.components,
                                     "--once"};
    for (const std::string& f : c.files) args.insert(args.end(), {"--file", f});
    std::string out;
    EXPECT_NE(testing::RunCommand(args, &out), 0) << out;
    EXPECT_THAT(out, HasSubstr(c.says)) << absl::StrJoin(c.files, " ");
  }
  EXPECT_FALSE(FileExists(work_.File("d"))) << "nothing is made before the flags are checked";
}

class ClamavNetnsTest : public ClamavTest {
 protected:
  void SetUp() override {
    SIGRELAY_REQUIRE_NETNS();
    ClamavTest::SetUp();
  }
};

// Stock freshclam, which knows nothing of sigrelay, follows the origin's
// tree through nginx: current/company.ndb downloaded, then 304 and
// "up-to-date" until the next publish, then the new file, which clamscan
// uses to find B. freshclam and nginx run in a namespace of their own with
// loopback only: freshclam can reach nothing but this nginx.
TEST_F(ClamavNetnsTest, FreshclamFollowsTheTreesCurrentFile) {
  const std::string tree = work_.File("tree");
  Daemon origin("sigrelay-origin", work_.File("origin"),
                {"--component", kComponent, "--http-tree", tree, "--http-tree-name",
                 absl::StrCat(kComponent, "=", kDatabase)});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string current = tree + "/current/" + kDatabase;
  ASSERT_EQ(Publish({}, origin, v1_), 1u);
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<std::string> c = ReadFileToString(current);
    return c.ok() && *c == *ReadFileToString(v1_);
  })) << origin.output();

  Netns ns("fc");
  ASSERT_TRUE(ns.ok());
  ASSERT_TRUE(ns.SetResolvConf("nameserver 127.0.0.1\n"));
  ASSERT_EQ(testing::RunCommand(With(ns.prefix(), {"ip", "link", "set", "lo", "up"})), 0);
  const std::string ng = work_.File("nginx");
  ASSERT_TRUE(MakeDirs(ng).ok());
  const std::string port = absl::StrCat(testing::UnusedPort());
  // The README's recipe: if_modified_since before, as freshclam sends the
  // time of its own download.
  ASSERT_TRUE(
      WriteFileAtomically(
          ng + "/nginx.conf",
          absl::StrCat("daemon off;\nuser root;\nworker_processes 1;\npid ", ng,
                       "/nginx.pid;\nerror_log stderr warn;\nevents {}\nhttp {\n", "  access_log ",
                       ng, "/access.log;\n  server {\n", "    listen 127.0.0.1:", port,
                       ";\n    root ", tree, ";\n", "    if_modified_since before;\n  }\n}\n"))
          .ok());
  ChildProcess nginx(With(ns.prefix(), {"nginx", "-p", ng, "-c", ng + "/nginx.conf"}));
  const std::string db = work_.File("freshclam-db");
  ASSERT_TRUE(MakeDirs(db).ok());
  const std::string conf = work_.File("freshclam.conf");
  ASSERT_TRUE(WriteFileAtomically(
                  conf, absl::StrCat("DatabaseDirectory ", db, "\nDatabaseOwner root\n",
                                     "DatabaseMirror http://127.0.0.1:", port, "\n",
                                     "DatabaseCustomURL http://127.0.0.1:", port, "/current/",
                                     kDatabase, "\nExcludeDatabase main\nExcludeDatabase daily\n",
                                     "ExcludeDatabase bytecode\nDNSDatabaseInfo disabled\n"))
                  .ok());
  auto freshclam = [&](std::string* out) {
    out->clear();
    return testing::RunCommand(
        With(ns.prefix(), {"freshclam", "--config-file=" + conf, "--stdout"}), out);
  };
  std::string out;
  ASSERT_TRUE(WaitFor([&] {
    return testing::RunCommand(
               With(ns.prefix(), {"curl", "-fsS", "-o", "/dev/null",
                                  "http://127.0.0.1:" + port + "/sigrelay-tree"})) == 0;
  })) << nginx.Output();
  // current/ is stamped a second ahead (a client that took the previous
  // file in the same second must still see this one as newer); a download
  // before that second has passed is taken again once. Past it, one
  // download and then 304s.
  struct stat st {};
  ASSERT_EQ(stat(current.c_str(), &st), 0);
  ASSERT_TRUE(WaitFor([&] { return absl::ToUnixSeconds(absl::Now()) > st.st_mtime; }));
  // (freshclam puts itself on a day's cool-down after an error: one try.)
  ASSERT_EQ(freshclam(&out), 0) << out;
  EXPECT_THAT(out, HasSubstr("company.ndb updated"));
  EXPECT_EQ(*ReadFileToString(db + "/" + kDatabase), *ReadFileToString(v1_));

  EXPECT_EQ(freshclam(&out), 0) << out;
  EXPECT_THAT(out, HasSubstr("company.ndb is up-to-date"));
  EXPECT_THAT(*ReadFileToString(ng + "/access.log"),
              HasSubstr("\"GET /current/company.ndb HTTP/1.1\" 304"));

  ASSERT_EQ(Publish({}, origin, v3_), 3u);
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<std::string> c = ReadFileToString(current);
    return c.ok() && *c == *ReadFileToString(v3_);
  })) << origin.output();
  EXPECT_EQ(freshclam(&out), 0) << out;
  EXPECT_THAT(out, HasSubstr("company.ndb updated"));
  out.clear();
  EXPECT_EQ(
      testing::RunCommand(
          {"clamscan", "--no-summary", "--database=" + db + "/" + kDatabase, Sample("B")}, &out),
      1)
      << out;
  EXPECT_THAT(out, HasSubstr("Company.Test.B.UNOFFICIAL FOUND"));
  nginx.Kill(SIGTERM);
  nginx.Wait();
}

// The clamd test across the bridge: the origin on an IPv4-only segment, a
// dual-stack relay, and the agent with its clamd on an IPv6-only one.
TEST_F(ClamavNetnsTest, ClamdAcrossAnIpv4ToIpv6Bridge) {
  Netns origin_ns("co4"), relay_ns("cr"), agent_ns("ca6");
  ASSERT_TRUE(origin_ns.ok() && relay_ns.ok() && agent_ns.ok());
  ASSERT_TRUE(testing::Link(origin_ns, {"198.18.7.1/24"}, relay_ns, {"198.18.7.2/24"}));
  ASSERT_TRUE(testing::Link(relay_ns, {"fd00:7::1/64"}, agent_ns, {"fd00:7::2/64"}));
  Daemon origin("sigrelay-origin", work_.File("origin"), {"--component", kComponent},
                {"198.18.7.1:0"}, origin_ns.prefix());
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  ASSERT_EQ(Publish(origin_ns.prefix(), origin, v1_), 1u);
  Daemon relay("sigrelay-relay", work_.File("relay"),
               {"--upstream", origin.address(), "--origin-pubkey",
                origin.data_dir() + "/origin.pub", "--max-backoff", "1s"},
               {"198.18.7.2:0", "[fd00:7::1]:0"}, relay_ns.prefix());
  ASSERT_EQ(relay.addresses().size(), 2u) << relay.output();
  EndToEnd(origin_ns.prefix(), origin, agent_ns.prefix(), relay.addresses()[1]);
}

}  // namespace
}  // namespace sigrelay
