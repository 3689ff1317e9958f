// Fleet health up the tree (issue 18's evidence): agents report their own
// check of what they installed (sigrelay-agent --health-check, agent-sim
// --unhealthy) on their Watch streams; each relay sums its subtree and
// reports the sums on its own Watch stream upstream, so the origin sees
// every agent's version and health without any per-agent traffic crossing
// to it. A hostile downstream can inflate only its own report, capped.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "core/client/watch_stream.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::ChildProcess;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

std::string Status(const Daemon& node) {
  std::string out;
  testing::Ctl({"--data-dir", node.data_dir(), "status", "--json"}, &out);
  return out;
}

std::string FleetEntry(uint32_t version, uint64_t agents, uint64_t healthy, uint64_t unhealthy) {
  return absl::StrCat("{\"component\":\"virus\",\"version\":", version, ",\"agents\":", agents,
                      ",\"healthy\":", healthy, ",\"unhealthy\":", unhealthy);
}

class FleetHealthTest : public ::testing::Test {
 protected:
  std::vector<std::string> AgentSim(const std::string& server, const std::string& pub, int agents,
                                    const std::string& unhealthy, const std::string& prefix) {
    return {testing::BinDir() + "/sigrelay-agent-sim",
            "--server",
            server,
            "--agents",
            absl::StrCat(agents),
            "--origin-pubkey",
            pub,
            "--start",
            "none",
            "--unhealthy",
            unhealthy,
            "--id-prefix",
            prefix,
            "--until",
            "virus=5",  // never published: they stay connected
            "--timeout",
            "60s",
            "--json"};
  }
  TempDir work_;
};

// origin <- L1 <- L2. Under L2, 20 simulated agents of which 25 % report
// unhealthy and a real sigrelay-agent whose --health-check hangs; under
// L1, 10 healthy ones. The origin's status (and L1's) counts all 31 on
// version 1: 25 healthy, 6 unhealthy; after version 3, the simulated
// all 31 are counted on 3 and none on 1.
TEST_F(FleetHealthTest, HealthSumsReachTheOriginThroughTwoRelays) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work_.path(), "v1", 3000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  Daemon l1("sigrelay-relay", work_.File("l1"),
            {"--upstream", origin.address(), "--origin-pubkey", pub, "--max-backoff", "1s"});
  ASSERT_FALSE(l1.address().empty()) << l1.output();
  Daemon l2("sigrelay-relay", work_.File("l2"),
            {"--upstream", l1.address(), "--origin-pubkey", pub, "--max-backoff", "1s"});
  ASSERT_FALSE(l2.address().empty()) << l2.output();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(l2.address(), "virus") == 1; }));

  ChildProcess below(AgentSim(l2.address(), pub, 20, "25", "l2-"));
  ChildProcess beside(AgentSim(l1.address(), pub, 10, "0", "l1-"));
  // A real agent two relays down whose check hangs: killed at its
  // --health-timeout, it reports unhealthy.
  ChildProcess agent({testing::BinDir() + "/sigrelay-agent", "--server", l2.address(),
                      "--origin-pubkey", pub, "--dir", work_.File("patterns"), "--components",
                      "virus", "--max-backoff", "1s", "--health-check", "sleep 600",
                      "--health-timeout", "1s"});
  std::string status;
  ASSERT_TRUE(WaitFor(
      [&] {
        status = Status(origin);
        return absl::StrContains(status, FleetEntry(1, 31, 25, 6));
      },
      absl::Seconds(30)))
      << status << below.Output() << beside.Output() << agent.Output();
  EXPECT_THAT(Status(l1), HasSubstr(FleetEntry(1, 31, 25, 6)));
  EXPECT_THAT(Status(l2), HasSubstr(FleetEntry(1, 21, 15, 6)));
  // The origin has no agent of its own: every one of them came up as sums.
  EXPECT_THAT(status, HasSubstr("\"agents_reported\":0"));
  std::string text;
  testing::Ctl({"--data-dir", origin.data_dir(), "status"}, &text);
  EXPECT_THAT(text, HasSubstr("virus 1: 31 agents (25 healthy, 6 unhealthy)"));
  testing::RunCommand({testing::BinDir() + "/sigrelay-agent", "status", "--state-dir",
                       work_.File("patterns") + "/.sigrelay-state"},
                      &text);
  EXPECT_THAT(text, HasSubstr("UNHEALTHY"));
  EXPECT_THAT(agent.Output(), HasSubstr("UNHEALTHY (did not finish within 1s; killed)"));

  const std::string v3 = testing::GenPattern(work_.path(), "v3", 0, 3, v1);
  ASSERT_EQ(testing::Publish(origin, "virus", v3), 3u);
  ASSERT_TRUE(WaitFor(
      [&] {
        status = Status(origin);
        return absl::StrContains(status, "\"fleet\":[" + FleetEntry(3, 31, 25, 6) + ",");
      },
      absl::Seconds(30)))
      << status << agent.Output();
  EXPECT_THAT(status, ::testing::Not(HasSubstr(FleetEntry(1, 0, 0, 0).substr(0, 40))));
}

// A downstream that lies about its subtree: counts past the origin's
// --max-agents are capped, healthy and unhealthy never exceed the agents,
// an oversized report ends its stream saying why, and what it claimed is
// gone when its stream ends.
TEST_F(FleetHealthTest, AHostileDownstreamInflatesOnlyItsOwnCountsCapped) {
  Daemon origin("sigrelay-origin", work_.File("origin"), {"--max-agents", "1000"});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  auto channel = grpc::CreateChannel(origin.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::UpdateService::NewStub(channel);
  {
    v1::WatchRequest lie;
    v1::FleetCount* c = lie.add_fleet();
    c->set_component("virus");
    c->set_version(1);
    c->set_agents(uint64_t{1} << 60);
    c->set_healthy(uint64_t{1} << 60);
    c->set_unhealthy(uint64_t{1} << 60);
    WatchStream watch(stub.get(), lie);
    std::string status;
    ASSERT_TRUE(WaitFor([&] {
      status = Status(origin);
      return absl::StrContains(status, FleetEntry(1, 1000, 1000, 0));
    })) << status;
    watch.Cancel();
  }
  std::string status;
  ASSERT_TRUE(WaitFor([&] {
    status = Status(origin);
    return absl::StrContains(status, "\"fleet\":[]");
  })) << status;

  v1::WatchRequest flood;
  for (uint32_t v = 1; v <= 300; ++v) {
    v1::FleetCount* c = flood.add_fleet();
    c->set_component("virus");
    c->set_version(v);
    c->set_agents(1);
  }
  WatchStream watch(stub.get(), flood);
  absl::StatusOr<v1::WatchResponse> next = watch.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_THAT(std::string(next.status().message()), HasSubstr("at most 256"));
}

}  // namespace
}  // namespace sigrelay
