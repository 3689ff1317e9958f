// The daemons' one config path: a NodeConfig text file whose fields are the
// daemons' flags, read with a size bound, overridden by the command line.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sigrelay/v1/config.pb.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::TempDir;

std::string Bin(const std::string& name) { return testing::BinDir() + "/" + name; }

// Every field of the config schema is a flag of the origin or the relay.
TEST(ConfigTest, EveryConfigFieldIsADaemonFlag) {
  std::string origin_help, relay_help;
  ASSERT_EQ(RunCommand({Bin("sigrelay-origin"), "--help"}, &origin_help), 0);
  ASSERT_EQ(RunCommand({Bin("sigrelay-relay"), "--help"}, &relay_help), 0);
  const google::protobuf::Descriptor* d = v1::NodeConfig::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const std::string flag = "--" + absl::StrReplaceAll(d->field(i)->name(), {{"_", "-"}}) + " ";
    EXPECT_TRUE(origin_help.find(flag) != std::string::npos ||
                relay_help.find(flag) != std::string::npos)
        << d->field(i)->name() << " is in config.proto but no daemon has " << flag;
  }
}

TEST(ConfigTest, EveryAgentConfigFieldIsAnAgentFlag) {
  std::string help;
  ASSERT_EQ(RunCommand({Bin("sigrelay-agent"), "--help"}, &help), 0);
  const google::protobuf::Descriptor* d = v1::AgentConfig::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const std::string flag = "--" + absl::StrReplaceAll(d->field(i)->name(), {{"_", "-"}}) + " ";
    EXPECT_THAT(help, HasSubstr(flag)) << d->field(i)->name() << " is in AgentConfig only";
  }
}

// sigrelay-agent reads its settings from a config file like the daemons,
// and refuses a daemon's setting there, naming it.
TEST(ConfigTest, AgentTakesItsSettingsFromTheFile) {
  TempDir work;
  std::string out;
  ASSERT_TRUE(WriteFileAtomically(work.File("agent.textpb"),
                                  "server: \"127.0.0.1:1\"\ncomponents: \"virus\"\n"
                                  "origin_pubkey: \"/nonexistent.pub\"\ndir: \"" +
                                      work.File("d") + "\"\n")
                  .ok());
  EXPECT_EQ(
      RunCommand({Bin("sigrelay-agent"), "--config", work.File("agent.textpb"), "--once"}, &out),
      1);
  EXPECT_THAT(out, HasSubstr("/nonexistent.pub")) << "the file's settings were not read";
  ASSERT_TRUE(WriteFileAtomically(work.File("bad.textpb"), "listen: \"127.0.0.1:1\"\n").ok());
  EXPECT_EQ(RunCommand({Bin("sigrelay-agent"), "--config", work.File("bad.textpb")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("is not a valid sigrelay.v1.AgentConfig"));
}

TEST(ConfigTest, OriginTakesItsSettingsFromTheFileAndFlagsWin) {
  TempDir work;
  const std::string config = work.File("origin.conf");
  ASSERT_OK(WriteFileAtomically(
      config, absl::StrCat("data_dir: \"", work.File("data"), "\"\n", "component: \"virus\"\n",
                           "component: \"engine:full\"\n", "first_version: 171\n")));
  // --first-version on the command line wins over the file's 171.
  Daemon origin("sigrelay-origin", work.File("data"), {"--config", config, "--first-version", "5"});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  std::string p = testing::GenPattern(work.path(), "p", 500, 1);
  EXPECT_EQ(testing::Publish(origin, "engine", p), 5u);
  EXPECT_EQ(testing::Publish(origin, "spyware", p), 0u) << "not in the file's catalog";
}

TEST(ConfigTest, BadFilesAreRefusedSayingWhat) {
  TempDir work;
  std::string out;
  // Endless: refused at the bound, not read until memory runs out.
  EXPECT_EQ(RunCommand({Bin("sigrelay-relay"), "--config", "/dev/zero"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("over 1048576 bytes"));
  // A relay's setting given to an origin.
  ASSERT_OK(WriteFileAtomically(work.File("o.conf"), "upstream: \"127.0.0.1:1\"\n"));
  EXPECT_EQ(RunCommand({Bin("sigrelay-origin"), "--config", work.File("o.conf"), "--data-dir",
                        work.File("d"), "--listen", "127.0.0.1:0"},
                       &out),
            1);
  EXPECT_THAT(out, HasSubstr("upstream is not a setting of this daemon"));
  // A bad value in the file names the file.
  ASSERT_OK(WriteFileAtomically(work.File("r.conf"), "max_transfers: 0\n"));
  EXPECT_EQ(RunCommand({Bin("sigrelay-origin"), "--config", work.File("r.conf"), "--data-dir",
                        work.File("d"), "--listen", "127.0.0.1:0"},
                       &out),
            1);
  EXPECT_THAT(out, HasSubstr("--max-transfers must be at least 1"));
  EXPECT_EQ(RunCommand({Bin("sigrelay-origin"), "--config", work.File("missing.conf")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("cannot open config file"));
}

TEST(ConfigTest, NumericFlagsAreChecked) {
  TempDir work;
  std::string out;
  const std::vector<std::string> base = {Bin("sigrelay-origin"), "--data-dir", work.File("d"),
                                         "--listen", "127.0.0.1:0"};
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv, &out);
  };
  EXPECT_EQ(run({"--max-transfers", "0"}), 1);
  EXPECT_THAT(out, HasSubstr("--max-transfers must be at least 1"));
  EXPECT_EQ(run({"--max-agents", "0"}), 1);
  EXPECT_THAT(out, HasSubstr("--max-agents must be at least 1"));
  EXPECT_EQ(run({"--zstd-level", "99"}), 1);
  EXPECT_THAT(out, HasSubstr("--zstd-level 99 is outside zstd's levels 1..22"));
  EXPECT_EQ(run({"--stall-timeout", "-5s"}), 1);
  EXPECT_THAT(out, HasSubstr("--stall-timeout=\"-5s\""));
  EXPECT_EQ(run({"--front", "nginx.local"}), 1);
  EXPECT_THAT(out, HasSubstr("--front nginx.local is not an IP address"));
}

}  // namespace
}  // namespace sigrelay
