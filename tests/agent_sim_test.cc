// sigrelay-agent-sim against a real origin and relay: hundreds of agents
// converge, byte counts match what each start version needs, admission
// control holds transfers to the cap, and failures name their cause.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/base/file_util.h"
#include "core/base/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sigrelay/v1/admin.grpc.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::AdminStatus;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

// The number after "key": in a flat JSON object.
double JsonNumber(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\":");
  double v = -1;
  if (at == std::string::npos) return v;
  size_t start = at + key.size() + 3, end = json.find_first_of(",}", start);
  absl::SimpleAtod(json.substr(start, end - start), &v);
  return v;
}

class AgentSimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = std::make_unique<Daemon>("sigrelay-origin", work_.File("origin"),
                                       std::vector<std::string>{});
    ASSERT_FALSE(origin_->address().empty()) << origin_->output();
    pub_ = origin_->data_dir() + "/origin.pub";
    p1_ = testing::GenPattern(work_.path(), "p1", 20000, 1);
    p2_ = testing::GenPattern(work_.path(), "p2", 0, 2, p1_);
    p3_ = testing::GenPattern(work_.path(), "p3", 0, 3, p2_);
    ASSERT_EQ(testing::Publish(*origin_, "virus", p1_), 1u);
    ASSERT_EQ(testing::Publish(*origin_, "virus", p2_), 3u);
  }

  std::unique_ptr<Daemon> StartRelay(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--origin-pubkey", pub_, "--upstream", origin_->address()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto relay = std::make_unique<Daemon>("sigrelay-relay", work_.File("relay"), args);
    EXPECT_FALSE(relay->address().empty()) << relay->output();
    EXPECT_TRUE(WaitFor([&] { return testing::ServedVersion(relay->address(), "virus") == 3; }));
    return relay;
  }

  std::vector<std::string> Sim(const Daemon& server, int agents, std::vector<std::string> extra) {
    std::vector<std::string> argv = {testing::BinDir() + "/sigrelay-agent-sim",
                                     "--server",
                                     server.address(),
                                     "--agents",
                                     std::to_string(agents),
                                     "--origin-pubkey",
                                     pub_,
                                     "--start-source",
                                     origin_->address(),
                                     "--json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  // A client whose reads stop at HTTP/2's first 64 KB window: BDP probing,
  // which would widen it, is off.
  static std::unique_ptr<v1::UpdateService::Stub> StallingStub(const Daemon& server) {
    ChannelOptions slow_reader;
    slow_reader.disable_bdp_probe = true;
    return v1::UpdateService::NewStub(MakeChannel(server.address(), slow_reader));
  }

  TempDir work_;
  std::unique_ptr<Daemon> origin_;
  std::string pub_, p1_, p2_, p3_;
};

// 300 agents on separate connections, started on a mix of versions, first
// catch up with what is served, then converge to a version published while
// they watch; each took exactly the bytes its start version needs, and the
// relay knows who holds what.
TEST_F(AgentSimTest, ThreeHundredAgentsConvergeWithExactByteCounts) {
  auto relay = StartRelay();
  auto incremental_size = [](const v1::GetStatusResponse& st, uint32_t from) {
    for (const auto& ie : st.components(0).incrementals()) {
      if (ie.from_version() == from) return ie.size();
    }
    return uint64_t{0};
  };
  const uint64_t v_1_3 = incremental_size(AdminStatus(*relay), 1);
  ASSERT_GT(v_1_3, 0u);
  // 240 agents at 3, 30 at 1 (they take v_1.3), 30 new (they take 3 whole).
  testing::ChildProcess sim(Sim(*relay, 300,
                                {"--connections", "per-agent", "--start", "current:80,1:10,none:10",
                                 "--until", "virus=5", "--timeout", "60s"}));
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::GetStatusResponse st = AdminStatus(*relay);
        return st.watchers() >= 300 && st.agent_versions_size() == 1 &&
               st.agent_versions(0).agents() == 300;
      },
      absl::Seconds(30)))
      << sim.Output();
  ASSERT_EQ(testing::Publish(*origin_, "virus", p3_), 5u);
  ASSERT_EQ(sim.Wait(), 0) << sim.Output();
  std::string json = sim.Output();
  EXPECT_EQ(JsonNumber(json, "agents"), 300);
  EXPECT_EQ(JsonNumber(json, "converged"), 300);
  EXPECT_GE(JsonNumber(json, "seconds_to_all"), 0);

  v1::GetStatusResponse st = AdminStatus(*relay);
  ASSERT_EQ(st.components(0).version(), 5u);
  const uint64_t v_3_5 = incremental_size(st, 3);
  ASSERT_GT(v_3_5, 0u);
  EXPECT_EQ(static_cast<uint64_t>(JsonNumber(json, "bytes_incremental")), 30 * v_1_3 + 300 * v_3_5);
  EXPECT_EQ(static_cast<uint64_t>(JsonNumber(json, "bytes_full")),
            30 * ReadFileToString(p2_)->size());
  // Incrementals rode on the Watch pushes (30 v_1.3 at connect, 300 v_3.5);
  // only the 30 new agents fetched.
  EXPECT_EQ(st.transfers().pushed(), 330u);
  EXPECT_EQ(st.transfers().fetches(), 30u);
  std::string out;
  ASSERT_EQ(testing::Ctl({"--data-dir", relay->data_dir(), "status", "--json"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("\"fetches\":30,\"pushed\":330,\"stalled\":0}"));
  EXPECT_EQ(st.agents_reported(), 300u);
  ASSERT_EQ(st.agent_versions_size(), 1);
  EXPECT_EQ(st.agent_versions(0).version(), 5u);
  EXPECT_EQ(st.agent_versions(0).agents(), 300u);
}

// Pushes that carry incrementals pass the same gate: with two slots, 100
// agents a version behind get theirs two at a time, and none fetches.
TEST_F(AgentSimTest, PushedIncrementalsPassTheTransferGate) {
  auto relay = StartRelay({"--max-transfers", "2"});
  testing::ChildProcess sim(Sim(*relay, 100, {"--start", "1:1", "--until", "virus=3"}));
  ASSERT_EQ(sim.Wait(), 0) << sim.Output();
  EXPECT_EQ(JsonNumber(sim.Output(), "converged"), 100);
  v1::TransferStatus t = AdminStatus(*relay).transfers();
  EXPECT_LE(t.peak_active(), 2u);
  EXPECT_GT(t.peak_queued(), 0u);
  EXPECT_EQ(t.pushed(), 100u);
  EXPECT_EQ(t.fetches(), 0u);
  EXPECT_EQ(t.active(), 0u);
}

// An agent that stops reading mid-transfer holds its slot only until the
// stall timeout: with one slot, the agents queued behind it still converge.
TEST_F(AgentSimTest, AStalledTransferIsCancelledAndFreesItsSlot) {
  auto relay = StartRelay({"--max-transfers", "1", "--stall-timeout", "1s"});
  auto stub = StallingStub(*relay);
  grpc::ClientContext ctx;
  v1::FetchRequest request;
  request.set_component("virus");  // the whole 1.3 MB file, never read
  auto stuck = stub->Fetch(&ctx, request);
  ASSERT_TRUE(WaitFor([&] { return AdminStatus(*relay).transfers().active() == 1; }));

  testing::ChildProcess sim(Sim(*relay, 5, {"--start", "none", "--timeout", "30s"}));
  ASSERT_EQ(sim.Wait(), 0) << sim.Output();
  v1::TransferStatus t = AdminStatus(*relay).transfers();
  EXPECT_EQ(t.stalled(), 1u);
  EXPECT_EQ(t.peak_active(), 1u);
  v1::FetchResponse m;
  while (stuck->Read(&m)) {
  }
  EXPECT_EQ(stuck->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_THAT(relay->output(), HasSubstr("no write progress for 1s"));
}

// The same for a push: a watcher that stops reading while its incremental is
// pushed loses its slot after the stall timeout, and the pushes queued behind
// it go out.
TEST_F(AgentSimTest, AStalledPushIsCancelledAndFreesItsSlot) {
  auto relay = StartRelay({"--max-transfers", "1", "--stall-timeout", "1s"});
  auto stub = StallingStub(*relay);
  grpc::ClientContext ctx;
  auto stuck = stub->Watch(&ctx);
  v1::WatchRequest report;
  report.set_agent_id("stuck");
  v1::ComponentVersion* cv = report.add_versions();
  cv->set_component("virus");
  cv->set_version(3);
  ASSERT_TRUE(stuck->Write(report));  // and never reads again
  ASSERT_TRUE(WaitFor([&] { return AdminStatus(*relay).agents_reported() == 1; }));
  // 30 % churn: an incremental of some hundred KB, pushed whole, stalls.
  const std::string big = testing::GenPattern(work_.path(), "big", 0, 9, p2_, 30.0);
  ASSERT_EQ(testing::Publish(*origin_, "virus", big), 5u);
  ASSERT_TRUE(WaitFor([&] {
    v1::TransferStatus t = AdminStatus(*relay).transfers();
    return t.pushed() == 1 && t.active() == 1;
  }));
  testing::ChildProcess sim(
      Sim(*relay, 5, {"--start", "3:1", "--until", "virus=5", "--timeout", "30s"}));
  ASSERT_EQ(sim.Wait(), 0) << sim.Output();
  v1::TransferStatus t = AdminStatus(*relay).transfers();
  EXPECT_EQ(t.stalled(), 1u);
  EXPECT_EQ(t.pushed(), 6u);
  EXPECT_EQ(t.fetches(), 0u);
  ctx.TryCancel();
}

// With two transfer slots, a burst of 100 new agents waits in the queue and
// still converges; never more than two transfers run at once.
TEST_F(AgentSimTest, AdmissionControlCapsConcurrentTransfers) {
  auto relay = StartRelay({"--max-transfers", "2"});
  testing::ChildProcess sim(Sim(*relay, 100, {"--start", "none"}));
  ASSERT_EQ(sim.Wait(), 0) << sim.Output();
  EXPECT_EQ(JsonNumber(sim.Output(), "converged"), 100);
  v1::TransferStatus t = AdminStatus(*relay).transfers();
  EXPECT_EQ(t.max_active(), 2u);
  EXPECT_LE(t.peak_active(), 2u);
  EXPECT_GT(t.peak_queued(), 0u);
  EXPECT_GE(t.admitted(), 100u);
  EXPECT_EQ(t.active(), 0u);
}

// Agents whose relay dies reconnect with backoff and still converge once it
// is back and a new version arrives.
TEST_F(AgentSimTest, AgentsReconnectAfterTheRelayRestarts) {
  auto relay = StartRelay();
  testing::ChildProcess sim(
      Sim(*relay, 50, {"--until", "virus=5", "--max-backoff", "500ms", "--timeout", "60s"}));
  ASSERT_TRUE(WaitFor([&] { return AdminStatus(*relay).watchers() >= 50; }, absl::Seconds(30)))
      << sim.Output();
  relay->Stop(SIGKILL);
  relay->Restart(/*same_port=*/true);
  ASSERT_FALSE(relay->address().empty()) << relay->output();
  ASSERT_TRUE(WaitFor([&] { return AdminStatus(*relay).watchers() >= 50; }, absl::Seconds(30)))
      << "agents did not come back: " << sim.Output();
  ASSERT_EQ(testing::Publish(*origin_, "virus", p3_), 5u);
  ASSERT_EQ(sim.Wait(), 0) << sim.Output();
  EXPECT_EQ(JsonNumber(sim.Output(), "converged"), 50);
  EXPECT_THAT(sim.Output(), HasSubstr("watch UNAVAILABLE"));  // the break was seen and counted
}

// A fleet that keeps its trust (--state-dir) refuses, in a later run, an
// older manifest a stale mirror still serves (valid, unexpired); without
// it, the replay would be taken.
TEST_F(AgentSimTest, AFleetWithAStateDirRefusesAStaleMirrorAfterARestart) {
  const std::string v1 = testing::GenPattern(work_.path(), "m1", 500, 11);
  Daemon origin("sigrelay-origin", work_.File("o2"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  Daemon mirror("sigrelay-relay", work_.File("mirror"),
                {"--upstream", origin.address(), "--origin-pubkey", pub});
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(mirror.address(), "virus") == 1; }));
  ASSERT_EQ(mirror.Stop(), 0);
  ASSERT_EQ(testing::Publish(origin, "virus", testing::GenPattern(work_.path(), "m3", 0, 12, v1)),
            3u);
  auto run = [&](const std::string& server, bool keep_state) {
    std::vector<std::string> args = {testing::BinDir() + "/sigrelay-agent-sim",
                                     "--server",
                                     server,
                                     "--agents",
                                     "2",
                                     "--start",
                                     "none",
                                     "--origin-pubkey",
                                     pub,
                                     "--json",
                                     "--timeout",
                                     "10s"};
    if (keep_state) args.insert(args.end(), {"--state-dir", work_.File("fleet-state")});
    std::string out;
    const int rc = testing::RunCommand(args, &out);
    return std::make_pair(rc, out);
  };
  auto [rc, out] = run(origin.address(), true);
  ASSERT_EQ(rc, 0) << out;
  Daemon stale(
      "sigrelay-relay", mirror.data_dir(),
      {"--upstream", absl::StrCat("127.0.0.1:", testing::UnusedPort()), "--origin-pubkey", pub});
  ASSERT_EQ(testing::ServedVersion(stale.address(), "virus"), 1u);
  std::tie(rc, out) = run(stale.address(), true);
  EXPECT_NE(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("rollback refused"));
  std::tie(rc, out) = run(stale.address(), false);
  EXPECT_EQ(rc, 0) << "without a state dir the replay is taken: " << out;
}

TEST_F(AgentSimTest, FailuresNameTheirCause) {
  std::string out;
  std::string dead = absl::StrCat("127.0.0.1:", testing::UnusedPort());
  EXPECT_NE(testing::RunCommand({testing::BinDir() + "/sigrelay-agent-sim", "--server", dead,
                                 "--agents", "3", "--origin-pubkey", pub_},
                                &out),
            0);
  EXPECT_THAT(out, HasSubstr(dead));
  EXPECT_THAT(out, HasSubstr("UNAVAILABLE"));

  // Waiting for a version nobody publishes: a timeout that says so.
  EXPECT_EQ(testing::RunCommand({testing::BinDir() + "/sigrelay-agent-sim", "--server",
                                 origin_->address(), "--agents", "5", "--origin-pubkey", pub_,
                                 "--until", "virus=99", "--timeout", "1s"},
                                &out),
            1);
  EXPECT_THAT(out, HasSubstr("5 of 5 agents did not converge"));

  // A pinned key that is not the origin's: every manifest is refused.
  testing::TempDir other;
  Daemon stranger("sigrelay-origin", other.File("o"), {});
  EXPECT_NE(testing::RunCommand(
                {testing::BinDir() + "/sigrelay-agent-sim", "--server", origin_->address(),
                 "--agents", "2", "--origin-pubkey", other.File("o") + "/origin.pub"},
                &out),
            0);
  EXPECT_THAT(out, HasSubstr("signature"));
}

// The fleet view counts only agents that are there: 40 agents converge
// through a relay and leave; once --agent-stale-after has passed they count
// as stale, not as holding the version; 10 of them come back (the same
// ids) and count again at once. Before (checked: the registry's sweep off)
// the 40 were counted as holding it for good.
TEST_F(AgentSimTest, AgentsThatLeaveCountAsStaleAndAgainWhenBack) {
  std::unique_ptr<Daemon> relay = StartRelay({"--agent-stale-after", "2s"});
  std::string out;
  ASSERT_EQ(testing::RunCommand({testing::BinDir() + "/sigrelay-agent-sim", "--server",
                                 relay->address(), "--agents", "40", "--start", "none",
                                 "--origin-pubkey", pub_, "--json", "--timeout", "30s"},
                                &out),
            0)
      << out;
  v1::GetStatusResponse status;
  ASSERT_TRUE(WaitFor([&] {
    status = AdminStatus(*relay);
    return status.agents_stale() == 40;
  })) << status.DebugString();
  EXPECT_EQ(status.agents_reported(), 0u);
  EXPECT_EQ(status.agent_versions_size(), 0) << "no live agent holds it";
  ASSERT_EQ(status.stale_versions_size(), 1);
  EXPECT_EQ(status.stale_versions(0).version(), 3u);
  EXPECT_EQ(status.stale_versions(0).agents(), 40u);
  // 10 come back and stay (waiting for a version not published).
  testing::ChildProcess back({testing::BinDir() + "/sigrelay-agent-sim", "--server",
                              relay->address(), "--agents", "10", "--start", "current",
                              "--origin-pubkey", pub_, "--until", "virus=99", "--timeout", "30s"});
  ASSERT_TRUE(WaitFor([&] {
    status = AdminStatus(*relay);
    return status.agents_reported() == 10;
  })) << status.DebugString();
  EXPECT_EQ(status.agents_stale(), 30u);
  ASSERT_EQ(status.agent_versions_size(), 1);
  EXPECT_EQ(status.agent_versions(0).agents(), 10u);
  back.Kill(SIGTERM);
  back.Wait();
}

// A fleet told to stop (SIGTERM, as a bench or an operator ends a run) ends
// its agents and removes its work directory, with every version its agents
// downloaded; killed outright it left them in TMPDIR.
TEST_F(AgentSimTest, ATermSignalEndsTheFleetAndRemovesItsWorkDirectory) {
  std::unique_ptr<Daemon> relay = StartRelay();
  const std::string tmp = work_.File("tmp");
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  std::vector<std::string> argv = {"/usr/bin/env", "TMPDIR=" + tmp};
  for (std::string& a :
       Sim(*relay, 10, {"--start", "1", "--until", "virus=99", "--timeout", "60s"})) {
    argv.push_back(std::move(a));
  }
  testing::ChildProcess fleet(argv);
  auto entries = [&] {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::recursive_directory_iterator(tmp)) {
      names.push_back(e.path().string());
    }
    return names;
  };
  ASSERT_TRUE(WaitFor([&] { return AdminStatus(*relay).agents_reported() == 10; }))
      << fleet.Output();
  // The work directory and the versions in it.
  ASSERT_GE(entries().size(), 2u) << fleet.Output();
  fleet.Kill(SIGTERM);
  EXPECT_EQ(fleet.Wait(), 128 + SIGTERM) << fleet.Output();
  EXPECT_THAT(entries(), ::testing::IsEmpty()) << fleet.Output();
}

}  // namespace
}  // namespace sigrelay
