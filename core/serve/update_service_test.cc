// UpdateServiceImpl in process: a real store, an in-process gRPC channel,
// raw Watch streams as a client would open them.
#include "core/serve/update_service.h"

#include "absl/strings/str_cat.h"
#include "core/base/transport.h"
#include "core/client/fetch_client.h"
#include "core/model/manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/store_test_util.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;

class UpdateServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }
  void Start(const UpdateServiceOptions& options) {
    store_ = *VersionStore::Open(dir_.File("store"), {.chunk_size = 1 << 20});
    service_ = std::make_unique<UpdateServiceImpl>(store_.get(), &agents_, options);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1::UpdateService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    service_->Shutdown();
    server_->Shutdown();
  }

  // Opens a Watch reporting `held` and returns its first push.
  v1::WatchResponse FirstPush(const std::vector<std::pair<std::string, uint32_t>>& held,
                              const std::string& agent = "agent") {
    grpc::ClientContext ctx;
    auto stream = stub_->Watch(&ctx);
    v1::WatchRequest report;
    report.set_agent_id(agent);
    for (const auto& [c, v] : held) {
      v1::ComponentVersion* cv = report.add_versions();
      cv->set_component(c);
      cv->set_version(v);
    }
    EXPECT_TRUE(stream->Write(report));
    v1::WatchResponse push;
    EXPECT_TRUE(stream->Read(&push)) << stream->Finish().error_message();
    ctx.TryCancel();
    return push;
  }

  testing::TempDir dir_;
  std::unique_ptr<VersionStore> store_;
  AgentRegistry agents_;
  std::unique_ptr<UpdateServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::UpdateService::Stub> stub_;
};

TEST_F(UpdateServiceTest, APushCarriesTheIncrementalsAWatcherNeedsAndIsShared) {
  const VersionPolicy policy;
  for (uint32_t v : {1u, 3u}) ASSERT_OK(testing::CommitTestVersion(store_.get(), v, policy));
  v1::WatchResponse a = FirstPush({{"virus", 1}, {"spyware", 1}}, "a");
  v1::WatchResponse b = FirstPush({{"virus", 1}, {"spyware", 1}}, "b");
  ASSERT_EQ(a.payloads_size(), 2);
  for (const v1::FetchResponse& p : a.payloads()) {
    EXPECT_EQ(p.header().kind(), v1::PAYLOAD_KIND_INCREMENTAL);
    EXPECT_EQ(p.header().from_version(), 1u);
    EXPECT_EQ(p.header().version(), 3u);
    EXPECT_EQ(p.data().size(), p.header().size());
  }
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  // Current on one component, nothing of the other: no payloads.
  v1::WatchResponse c = FirstPush({{"virus", 3}}, "c");
  EXPECT_EQ(c.payloads_size(), 0);
  EXPECT_EQ(agents_.AgentCount(), 3u);
}

// Past the push memory budget a watcher gets the manifest alone (and
// fetches): many watchers on distinct versions cannot pin a copy each.
TEST_F(UpdateServiceTest, PushesStayWithinTheMemoryBudget) {
  TearDown();
  stub_.reset();
  server_.reset();
  service_.reset();
  store_.reset();
  UpdateServiceOptions tight;
  tight.push_memory_budget = 1;
  Start(tight);
  for (uint32_t v : {1u, 3u})
    ASSERT_OK(testing::CommitTestVersion(store_.get(), v, VersionPolicy()));
  v1::WatchResponse push = FirstPush({{"virus", 1}, {"spyware", 1}});
  EXPECT_EQ(push.payloads_size(), 0);
  EXPECT_FALSE(push.manifest().manifest().empty());
}

// The client library takes a pushed incremental only when it is exactly the
// signed one from the version held, as it would a fetched one.
TEST_F(UpdateServiceTest, PushedIncrementalsAreHeldToTheSignedEntry) {
  for (uint32_t v : {1u, 3u})
    ASSERT_OK(testing::CommitTestVersion(store_.get(), v, VersionPolicy()));
  v1::WatchResponse push = FirstPush({{"virus", 1}});
  ASSERT_EQ(push.payloads_size(), 1);
  absl::StatusOr<v1::Manifest> manifest = ParseTrustedManifest(push.manifest());
  ASSERT_OK(manifest);
  const v1::ComponentEntry& virus = *FindEntry(*manifest, "virus");
  EXPECT_OK(CheckPushedIncremental(push.payloads(0), virus, 1));
  EXPECT_EQ(CheckPushedIncremental(push.payloads(0), virus, 3).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::FetchResponse flipped = push.payloads(0);
  (*flipped.mutable_data())[0] ^= 1;
  EXPECT_EQ(CheckPushedIncremental(flipped, virus, 1).status().code(), absl::StatusCode::kDataLoss);
  v1::FetchResponse cut = push.payloads(0);
  cut.mutable_data()->pop_back();
  EXPECT_EQ(CheckPushedIncremental(cut, virus, 1).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(UpdateServiceTest, AReportNamingAComponentNotCarriedIsAnswered) {
  ASSERT_OK(testing::CommitTestVersion(store_.get(), 1, VersionPolicy()));
  ASSERT_OK(testing::CommitTestVersion(store_.get(), 3, VersionPolicy()));
  v1::WatchResponse push = FirstPush({{"virus", 1}, {"engine-from-the-future", 7}});
  EXPECT_EQ(push.payloads_size(), 1);
  EXPECT_FALSE(push.manifest().manifest().empty());
}

TEST_F(UpdateServiceTest, HoldingNothingIsNotCountedAsAnAgentAtVersionZero) {
  ASSERT_OK(testing::CommitTestVersion(store_.get(), 1, VersionPolicy()));
  FirstPush({{"virus", 0}, {"spyware", 1}});
  auto counts = agents_.VersionCounts();
  EXPECT_EQ(counts.count("virus"), 0u);
  EXPECT_EQ(counts["spyware"][1], 1u);
}

TEST_F(UpdateServiceTest, NoManifestYetIsToldByItsCode) {
  grpc::ClientContext ctx;
  v1::SignedManifest m;
  grpc::Status s = stub_->GetManifest(&ctx, {}, &m);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no manifest yet"));
}

}  // namespace
}  // namespace sigrelay
