// Staged rollouts (issue 18): a version widens ring by ring on the health
// agents report up the relay tree, halts itself at the canary ring when
// it is bad (and rolls the canaries forward with --auto-withdraw), and no
// relay, lying or inflating, can widen it: only the origin's signed
// manifest admits a ring.
#include <grpcpp/grpcpp.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "core/client/watch_stream.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sigrelay/v1/admin.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::AdminStatus;
using testing::ChildProcess;
using testing::Daemon;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

// Live agents on `version` of virus in `ring` ("" for any), as `s` counts them.
uint64_t On(const v1::GetStatusResponse& s, uint32_t version, const std::string& ring = "") {
  uint64_t n = 0;
  for (const v1::FleetCount& c : s.fleet()) {
    if (c.component() == "virus" && c.version() == version && (ring.empty() || c.ring() == ring)) {
      n += c.agents();
    }
  }
  return n;
}

// Whether `ring` may take the newest virus: admitted, or no rollout.
bool Admitted(const v1::GetStatusResponse& s, const std::string& ring) {
  for (const v1::RolloutStatus& r : s.rollouts()) {
    for (const v1::RingStatus& g : r.rings()) {
      if (g.name() == ring) return g.admitted();
    }
  }
  return true;
}

bool Decided(const v1::GetStatusResponse& s, const std::string& action, const std::string& ring) {
  for (const v1::RolloutDecision& d : s.rollout_decisions()) {
    if (d.action() == action && d.ring() == ring) return true;
  }
  return false;
}

class RolloutTest : public ::testing::Test {
 protected:
  // An origin with `flags` that published virus 1 (v1_); sets pub_.
  std::unique_ptr<Daemon> Origin(const std::vector<std::string>& flags) {
    auto d = std::make_unique<Daemon>("sigrelay-origin", work_.File("origin"), flags);
    EXPECT_FALSE(d->address().empty()) << d->output();
    pub_ = d->data_dir() + "/origin.pub";
    v1_ = testing::GenPattern(work_.path(), "v1", 2000, 1);
    EXPECT_EQ(testing::Publish(*d, "virus", v1_), 1u);
    return d;
  }
  std::unique_ptr<Daemon> Relay(const std::string& name, const std::string& upstream) {
    auto d =
        std::make_unique<Daemon>("sigrelay-relay", work_.File(name),
                                 std::vector<std::string>{"--upstream", upstream, "--origin-pubkey",
                                                          pub_, "--max-backoff", "1s"});
    EXPECT_FALSE(d->address().empty()) << d->output();
    return d;
  }
  std::vector<std::string> Sims(const std::string& server, int agents,
                                const std::string& unhealthy) {
    return {testing::BinDir() + "/sigrelay-agent-sim",
            "--server",
            server,
            "--agents",
            absl::StrCat(agents),
            "--origin-pubkey",
            pub_,
            "--start",
            "none",
            "--unhealthy",
            unhealthy,
            "--until",
            "virus=99",  // never published: they stay connected
            "--timeout",
            "100s"};
  }
  // Publishes the next version of v1_ at `origin` (staged by its --rollout).
  uint32_t PublishV3(const Daemon& origin) {
    return testing::Publish(origin, "virus", testing::GenPattern(work_.path(), "v3", 0, 3, v1_));
  }
  TempDir work_;
  std::string pub_, v1_;
};

// origin <- relay <- relay <- 1,000 agents, all healthy. Version 3 goes to
// canary (10 %), then early (40 %), then everyone, by itself, and at no
// moment does an agent of a ring not yet admitted hold it: the first
// install seen per ring comes in ring order.
TEST_F(RolloutTest, AHealthyVersionWidensRingByRingThroughTwoRelays) {
  auto started = Origin({"--rollout", "canary=10%:1s,early=40%:1s,broad"});
  Daemon& origin = *started;
  auto l1 = Relay("l1", origin.address());
  auto l2 = Relay("l2", l1->address());
  ChildProcess sims(Sims(l2->address(), 1000, "0"));
  ASSERT_TRUE(WaitFor([&] { return On(AdminStatus(origin), 1) == 1000; }, absl::Seconds(60)))
      << AdminStatus(origin).DebugString() << sims.Output();

  ASSERT_EQ(PublishV3(origin), 3u);
  std::map<std::string, absl::Time> first;
  v1::GetStatusResponse s;
  ASSERT_TRUE(WaitFor(
      [&] {
        s = AdminStatus(origin);
        for (const char* ring : {"canary", "early", "broad"}) {
          // Once broad is admitted the rollout ends: agents report no ring.
          const bool done = s.rollouts().empty() && std::string(ring) == "broad";
          if (On(s, 3, done ? "" : ring) == 0) continue;
          EXPECT_TRUE(Admitted(s, ring)) << ring << " holds 3 before it was admitted\n"
                                         << s.DebugString();
          first.emplace(ring, absl::Now());
        }
        return s.rollouts().empty() && On(s, 3) == 1000;
      },
      absl::Seconds(90)))
      << s.DebugString();
  ASSERT_EQ(first.size(), 3u) << s.DebugString();
  EXPECT_LE(first["canary"], first["early"]);
  EXPECT_LE(first["early"], first["broad"]);
  EXPECT_TRUE(Decided(s, "promote", "early")) << s.DebugString();
  EXPECT_TRUE(Decided(s, "complete", "broad")) << s.DebugString();
  EXPECT_THAT(origin.output(), HasSubstr("rollout of virus 3: promote early: ring canary"));
}

// 20 % of the agents report version 3 unhealthy. The canary ring (10 %)
// holds some of them: the rollout halts there, no agent outside the canary
// ring ever holds 3, and --auto-withdraw publishes 5 with 1's content, to
// which every agent moves. Status says why, with the counts.
TEST_F(RolloutTest, AnUnhealthyCanaryHaltsTheRolloutAndIsRolledForward) {
  auto started = Origin({"--rollout", "canary=10%:30s,broad", "--auto-withdraw"});
  Daemon& origin = *started;
  const std::string& v1 = v1_;
  auto relay = Relay("relay", origin.address());
  ChildProcess sims(Sims(relay->address(), 1000, "20"));
  ASSERT_TRUE(WaitFor([&] { return On(AdminStatus(origin), 1) == 1000; }, absl::Seconds(60)))
      << AdminStatus(origin).DebugString() << sims.Output();

  ASSERT_EQ(PublishV3(origin), 3u);
  v1::GetStatusResponse s;
  ASSERT_TRUE(WaitFor(
      [&] {
        s = AdminStatus(origin);
        EXPECT_EQ(On(s, 3, "broad"), 0u) << s.DebugString();
        return On(s, 5) == 1000;
      },
      absl::Seconds(60)))
      << s.DebugString() << origin.output();
  EXPECT_TRUE(Decided(s, "halt", "canary")) << s.DebugString();
  EXPECT_TRUE(Decided(s, "withdraw", "canary")) << s.DebugString();
  EXPECT_EQ(testing::FetchFull(origin.address(), "virus"), *ReadFileToString(v1));
  std::string text;
  testing::Ctl({"--data-dir", origin.data_dir(), "status"}, &text);
  EXPECT_THAT(text, ::testing::ContainsRegex(
                        "virus 3 halt canary \\(ring canary \\(this origin's own agents\\)|"
                        "virus 3 halt canary \\(ring canary \\(downstream relay 1\\): [0-9]+ "
                        "agents, [0-9]+ installed, [0-9]+ healthy, [1-9][0-9]* unhealthy"));
  EXPECT_THAT(text, HasSubstr("virus 3 withdraw canary (--auto-withdraw: published virus 5 with "
                              "the content of 1)"));
}

// A downstream claiming a million healthy canary agents cannot outvote
// the origin's own canaries, a fifth of them unhealthy: each source is
// judged apart, and the rollout halts.
TEST_F(RolloutTest, InflatedHealthyCountsCannotPromoteARing) {
  auto started = Origin({"--rollout", "canary=10%:2s,broad"});
  Daemon& origin = *started;
  auto stub = v1::UpdateService::NewStub(
      grpc::CreateChannel(origin.address(), grpc::InsecureChannelCredentials()));
  v1::WatchRequest lie;
  v1::FleetCount* c = lie.add_fleet();
  c->set_component("virus");
  c->set_version(3);
  c->set_ring("canary");
  c->set_agents(1000000);
  c->set_healthy(1000000);
  WatchStream liar(stub.get(), lie);
  ChildProcess sims(Sims(origin.address(), 300, "20"));
  ASSERT_TRUE(WaitFor([&] { return On(AdminStatus(origin), 1) == 300; }, absl::Seconds(30)))
      << sims.Output();
  ASSERT_EQ(PublishV3(origin), 3u);
  v1::GetStatusResponse s;
  ASSERT_TRUE(WaitFor(
      [&] {
        s = AdminStatus(origin);
        return !s.rollouts().empty() && s.rollouts(0).state() == "halted";
      },
      absl::Seconds(30)))
      << s.DebugString();
  EXPECT_THAT(s.rollouts(0).reason(), HasSubstr("this origin's own agents"));
  EXPECT_FALSE(Admitted(s, "broad"));
  EXPECT_EQ(On(s, 3, "broad"), 0u);
  liar.Cancel();
}

// A relay that lies: it answers every Fetch with the newest version
// whatever was asked. An agent of a ring not admitted refuses what it
// sends; a canary takes it. The operator halts, resumes and promotes by
// hand, each a signed manifest the agents follow.
class LyingRelay final : public v1::UpdateService::Service {
 public:
  explicit LyingRelay(const std::string& honest)
      : stub_(v1::UpdateService::NewStub(
            grpc::CreateChannel(honest, grpc::InsecureChannelCredentials()))) {}
  grpc::Status GetManifest(grpc::ServerContext*, const v1::GetManifestRequest* request,
                           v1::SignedManifest* response) override {
    grpc::ClientContext ctx;
    return stub_->GetManifest(&ctx, *request, response);
  }
  grpc::Status Fetch(grpc::ServerContext*, const v1::FetchRequest* request,
                     grpc::ServerWriter<v1::FetchResponse>* writer) override {
    v1::FetchRequest newest = *request;
    newest.set_want_version(0);
    newest.set_have_version(0);
    grpc::ClientContext ctx;
    auto reader = stub_->Fetch(&ctx, newest);
    v1::FetchResponse m;
    while (reader->Read(&m)) {
      // It even claims the version asked for.
      if (m.has_header()) m.mutable_header()->set_version(request->want_version());
      writer->Write(m);
    }
    return reader->Finish();
  }

 private:
  std::unique_ptr<v1::UpdateService::Stub> stub_;
};

TEST_F(RolloutTest, ALyingRelayCannotMakeAnAgentOfAHeldRingInstall) {
  auto started = Origin({"--rollout", "canary=10%:1h,broad"});
  Daemon& origin = *started;
  const std::string& v1 = v1_;
  const std::string v3 = testing::GenPattern(work_.path(), "v3", 0, 3, v1);
  ASSERT_EQ(testing::Publish(origin, "virus", v3), 3u);
  LyingRelay lying(origin.address());
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&lying);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  const std::string liar = absl::StrCat("127.0.0.1:", port);

  std::string out;
  auto agent_once = [&](const std::string& server_address, const std::string& ring,
                        const std::string& dir) {
    out.clear();
    return testing::RunCommand(
        {testing::BinDir() + "/sigrelay-agent", "--server", server_address, "--origin-pubkey", pub_,
         "--dir", work_.File(dir), "--components", "virus", "--ring", ring, "--once"},
        &out);
  };
  EXPECT_EQ(agent_once(liar, "broad", "broad"), 1) << out;
  EXPECT_THAT(out, HasSubstr("virus"));
  EXPECT_FALSE(FileExists(work_.File("broad") + "/virus.pattern")) << out;
  // From the honest origin the same agent takes what its ring may: 1.
  ASSERT_EQ(agent_once(origin.address(), "broad", "broad"), 0) << out;
  EXPECT_EQ(*ReadFileToString(work_.File("broad") + "/virus.pattern"), *ReadFileToString(v1));
  // So does it from a relay started during the rollout: it fetched 1 whole.
  {
    Daemon late("sigrelay-relay", work_.File("late"),
                {"--upstream", origin.address(), "--origin-pubkey", pub_});
    ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(late.address(), "virus") == 3; }))
        << late.output();
    ASSERT_EQ(agent_once(late.address(), "broad", "broad-late"), 0) << out;
    EXPECT_EQ(*ReadFileToString(work_.File("broad-late") + "/virus.pattern"),
              *ReadFileToString(v1));
  }
  // A canary takes 3, even from the liar.
  ASSERT_EQ(agent_once(liar, "canary", "canary"), 0) << out;
  EXPECT_EQ(*ReadFileToString(work_.File("canary") + "/virus.pattern"), *ReadFileToString(v3));

  // By hand: halt, resume, promote; the last admits broad and the rollout ends.
  for (const char* action : {"halt", "resume", "promote"}) {
    ASSERT_EQ(testing::Ctl({"--data-dir", origin.data_dir(), "rollout", action, "virus", "--reason",
                            "change ticket 42"},
                           &out),
              0)
        << action << ": " << out;
  }
  EXPECT_THAT(out, HasSubstr("virus 3: reaches every agent"));
  EXPECT_EQ(testing::Ctl({"--data-dir", origin.data_dir(), "rollout", "halt", "virus"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("virus is not rolling out"));
  ASSERT_EQ(agent_once(liar, "broad", "broad"), 0) << out;
  EXPECT_EQ(*ReadFileToString(work_.File("broad") + "/virus.pattern"), *ReadFileToString(v3));
  const v1::GetStatusResponse s = AdminStatus(origin);
  EXPECT_TRUE(Decided(s, "halt", "canary")) << s.DebugString();
  EXPECT_TRUE(Decided(s, "complete", "broad")) << s.DebugString();
  server->Shutdown();
}

}  // namespace
}  // namespace sigrelay
