// The wire contract as an independent client meets it: stock gRPC defaults
// (4 MiB receive limit), and an origin whose catalog a relay has never heard
// of. Real origin and relay binaries on loopback.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>

#include <random>

#include "core/base/file_util.h"
#include "core/model/manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sigrelay/v1/update.grpc.pb.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

TEST(WireContractTest, ChunksOverAStockClientsLimitAreRefusedAtStartSayingWhy) {
  TempDir work;
  std::string out;
  EXPECT_EQ(testing::RunCommand({testing::BinDir() + "/sigrelay-origin", "--data-dir",
                                 work.File("o"), "--listen", "127.0.0.1:0", "--chunk-size", "4MiB"},
                                &out),
            1);
  EXPECT_THAT(out, HasSubstr("--chunk-size 4194304"));
  EXPECT_THAT(out, HasSubstr("4 MiB receive limit"));
  // Small chunks of big files: the digests would not fit one header.
  EXPECT_EQ(
      testing::RunCommand({testing::BinDir() + "/sigrelay-relay", "--data-dir", work.File("r"),
                           "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1",
                           "--origin-pubkey", work.File("none"), "--chunk-size", "4KiB"},
                          &out),
      1);
  EXPECT_THAT(out, HasSubstr("raise --chunk-size or lower --max-file-size"));
}

TEST(WireContractTest, StockClientFetchesFromTheLargestChunkSizeAccepted) {
  TempDir work;
  Daemon origin("sigrelay-origin", work.File("origin"), {"--chunk-size", "4095KiB"});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string content = RandomBytes(9 << 20, 7);  // three chunks, none compressible
  ASSERT_OK(WriteFileAtomically(work.File("big"), content));
  ASSERT_EQ(testing::Publish(origin, "virus", work.File("big")), 1u);
  // FetchFull reads on a stock channel: default 4 MiB receive limit.
  EXPECT_EQ(testing::FetchFull(origin.address(), "virus"), content);

  // A relay takes it over its own transport and serves it on.
  Daemon relay(
      "sigrelay-relay", work.File("relay"),
      {"--upstream", origin.address(), "--origin-pubkey", origin.data_dir() + "/origin.pub"});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay.address(), "virus") == 1; },
                      absl::Seconds(30)))
      << relay.output();
  EXPECT_EQ(testing::FetchFull(relay.address(), "virus"), content);
}

TEST(WireContractTest, RelayCarriesAComponentItHasNeverHeardOf) {
  TempDir work;
  Daemon origin("sigrelay-origin", work.File("origin"),
                {"--component", "virus", "--component", "scan-engine:full"});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string engine = RandomBytes(300 << 10, 3);
  ASSERT_OK(WriteFileAtomically(work.File("engine"), engine));
  ASSERT_EQ(testing::Publish(origin, "scan-engine", work.File("engine")), 1u);
  std::string p1 = testing::GenPattern(work.path(), "v1", 2000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", p1), 1u);
  // Outside the origin's catalog: refused, naming what it publishes.
  std::string out;
  EXPECT_EQ(testing::Ctl({"--data-dir", origin.data_dir(), "publish", "spyware", p1}, &out), 1);
  EXPECT_THAT(out, HasSubstr("known components: virus, scan-engine"));

  // A relay with a default config has never heard of scan-engine.
  Daemon relay(
      "sigrelay-relay", work.File("relay"),
      {"--upstream", origin.address(), "--origin-pubkey", origin.data_dir() + "/origin.pub"});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay.address(), "scan-engine") == 1; },
                      absl::Seconds(30)))
      << relay.output();
  EXPECT_EQ(testing::FetchFull(relay.address(), "scan-engine"), engine);

  // The signed entry says it is full-only.
  auto stub = v1::UpdateService::NewStub(
      grpc::CreateChannel(relay.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::SignedManifest signed_manifest;
  ASSERT_OK(stub->GetManifest(&ctx, {}, &signed_manifest));
  auto verifier = ManifestVerifier::FromPemFile(origin.data_dir() + "/origin.pub");
  ASSERT_OK(verifier);
  auto manifest = (*verifier)->Verify(signed_manifest, absl::Now());
  ASSERT_OK(manifest);
  const v1::ComponentEntry* e = FindEntry(*manifest, "scan-engine");
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->full_only());
  EXPECT_FALSE(FindEntry(*manifest, "virus")->full_only());

  // A second version moves down too, as a full file.
  const std::string engine2 = RandomBytes(300 << 10, 4);
  ASSERT_OK(WriteFileAtomically(work.File("engine2"), engine2));
  ASSERT_EQ(testing::Publish(origin, "scan-engine", work.File("engine2")), 3u);
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay.address(), "scan-engine") == 3; },
                      absl::Seconds(30)))
      << relay.output();
  EXPECT_EQ(testing::FetchFull(relay.address(), "scan-engine"), engine2);
}

// gRPC health checking answers on the agents' port, as load balancers and
// orchestrators expect (a stock client, raw bytes: HealthCheckRequest{} in,
// HealthCheckResponse{status: SERVING} = 08 01 out).
TEST(WireContractTest, TheAgentsPortAnswersGrpcHealthChecks) {
  TempDir work;
  Daemon origin("sigrelay-origin", work.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  auto channel = grpc::CreateChannel(origin.address(), grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer request, response;
  grpc::Slice empty("", 0);
  request = grpc::ByteBuffer(&empty, 1);
  grpc::Status s = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel.get(),
      grpc::internal::RpcMethod("/grpc.health.v1.Health/Check",
                                grpc::internal::RpcMethod::NORMAL_RPC),
      &ctx, request, &response);
  ASSERT_OK(s);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "not SERVING";
}

// gRPC server reflection answers on the agents' port (grpcurl and other
// operators' tools list and call UpdateService) and does not list the admin
// API, which is not served there. Raw bytes: ServerReflectionRequest
// {list_services: "*"} (field 7) in; the service names come back as strings.
TEST(WireContractTest, ReflectionListsUpdateServiceAndNotTheAdminApi) {
  TempDir work;
  Daemon origin("sigrelay-origin", work.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  auto channel = grpc::CreateChannel(origin.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  auto Tag = [](intptr_t i) { return reinterpret_cast<void*>(i); };
  auto Next = [&](void* want) {
    void* tag = nullptr;
    bool ok = false;
    return cq.Next(&tag, &ok) && tag == want && ok;
  };
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(Tag(1));
  ASSERT_TRUE(Next(Tag(1)));
  grpc::Slice list("\x3a\x01*", 3);
  grpc::ByteBuffer request(&list, 1);
  call->Write(request, Tag(2));
  ASSERT_TRUE(Next(Tag(2)));
  grpc::ByteBuffer response;
  call->Read(&response, Tag(3));
  ASSERT_TRUE(Next(Tag(3))) << "no reflection answer";
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_THAT(bytes, ::testing::HasSubstr("sigrelay.v1.UpdateService"));
  EXPECT_THAT(bytes, ::testing::HasSubstr("grpc.health.v1.Health"));
  EXPECT_THAT(bytes, ::testing::Not(::testing::HasSubstr("AdminService")));
  ctx.TryCancel();
  grpc::Status ignored;
  call->Finish(&ignored, Tag(4));
  Next(Tag(4));
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace
}  // namespace sigrelay
