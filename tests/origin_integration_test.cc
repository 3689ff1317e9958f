// Starts the real sigrelay-origin on a free loopback port and drives it with
// the real sigrelayctl and a raw gRPC client.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/base/admin_token.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/model/manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sigrelay/v1/admin.grpc.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;

std::string LastLine(const std::string& out) {
  std::vector<std::string> lines = absl::StrSplit(absl::StripTrailingAsciiWhitespace(out), '\n');
  return lines.empty() ? "" : lines.back();
}

class OriginTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    origin_ = std::make_unique<testing::ChildProcess>(std::vector<std::string>{
        Bin("sigrelay-origin"), "--data-dir", data_.path(), "--listen", "127.0.0.1:0",
        "--max-file-size", "4MiB", "--chunk-size", "64KiB"});
    addr_ = testing::WaitForListening(data_.path());
    ASSERT_FALSE(addr_.empty()) << origin_->Output();
  }

  void Restart() {
    origin_->Kill(SIGTERM);
    ASSERT_EQ(origin_->Wait(), 0) << origin_->Output();
    unlink(data_.File("listening").c_str());
    unlink(data_.File("admin.listening").c_str());
    Start();
  }

  static std::string Bin(const std::string& name) { return testing::BinDir() + "/" + name; }

  std::string AdminAddr() {
    absl::StatusOr<std::string> text = ReadFileToString(data_.File("admin.listening"));
    return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : "";
  }

  // Runs sigrelayctl against the origin; returns its exit code.
  int Ctl(std::vector<std::string> args, std::string* out, bool with_token = true) {
    std::vector<std::string> argv = {Bin("sigrelayctl"), "--server", addr_};
    if (with_token) {
      argv.push_back("--data-dir");
      argv.push_back(data_.path());
    }
    argv.insert(argv.end(), args.begin(), args.end());
    out->clear();
    return RunCommand(argv, out);
  }

  std::string Publish(const std::string& component, const std::string& file) {
    std::string out;
    EXPECT_EQ(Ctl({"publish", component, file}, &out), 0) << out;
    return LastLine(out);
  }

  std::string GenPattern(const std::string& name, const std::string& from, int seed) {
    std::string path = work_.File(name), out;
    std::vector<std::string> argv = {Bin("sigrelayctl"),   "gen-pattern", "--seed",
                                     std::to_string(seed), "--out",       path};
    if (from.empty()) {
      argv.insert(argv.end(), {"--records", "20000"});
    } else {
      argv.insert(argv.end(), {"--from", from, "--churn", "1"});
    }
    EXPECT_EQ(RunCommand(argv, &out), 0) << out;
    return path;
  }

  uint64_t Serial() {
    auto stub =
        v1::UpdateService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::SignedManifest m;
    if (!stub->GetManifest(&ctx, {}, &m).ok()) return 0;
    return ParseTrustedManifest(m)->serial();
  }

  testing::TempDir data_;
  testing::TempDir work_;
  std::unique_ptr<testing::ChildProcess> origin_;
  std::string addr_;
};

TEST_F(OriginTest, PublishesVersionsAndServesIncrementalsAndFullsByteForByte) {
  std::string p1 = GenPattern("p1", "", 1);
  std::string p2 = GenPattern("p2", p1, 2);
  std::string p3 = GenPattern("p3", p2, 3);
  EXPECT_EQ(Publish("virus", p1), "virus 1");
  EXPECT_EQ(Publish("virus", p2), "virus 3");
  EXPECT_EQ(Publish("virus", p3), "virus 5");

  std::string out;
  ASSERT_EQ(Ctl({"fetch", "virus", "--have", "0", "--out", work_.File("full")}, &out), 0) << out;
  EXPECT_EQ(LastLine(out), absl::StrCat("full 5 ", ReadFileToString(p3)->size()));
  EXPECT_EQ(*ReadFileToString(work_.File("full")), *ReadFileToString(p3));

  for (auto [have, old_file] : {std::pair{1, p1}, std::pair{3, p2}}) {
    std::string incr = work_.File(absl::StrCat("v_", have, ".5"));
    ASSERT_EQ(Ctl({"fetch", "virus", "--have", std::to_string(have), "--out", incr}, &out), 0)
        << out;
    EXPECT_THAT(LastLine(out), HasSubstr(absl::StrCat("incremental ", have, "->5 ")));
    uint64_t incr_size = ReadFileToString(incr)->size();
    EXPECT_LT(incr_size * 10, ReadFileToString(p3)->size()) << "an incremental must be small";
    // Stock zstd rebuilds the newest version from the incremental.
    std::string rebuilt = incr + ".new";
    ASSERT_EQ(
        RunCommand({"zstd", "-q", "-d", "--patch-from=" + old_file, incr, "-o", rebuilt}, &out), 0)
        << out;
    EXPECT_EQ(*ReadFileToString(rebuilt), *ReadFileToString(p3));
  }

  // An older retained version can still be fetched whole.
  ASSERT_EQ(Ctl({"fetch", "virus", "--want", "3", "--out", work_.File("v3")}, &out), 0) << out;
  EXPECT_EQ(*ReadFileToString(work_.File("v3")), *ReadFileToString(p2));

  ASSERT_EQ(Ctl({"status", "--json"}, &out, /*with_token=*/false), 0) << out;
  EXPECT_THAT(out, HasSubstr("\"name\":\"virus\",\"version\":5"));
  EXPECT_THAT(out, HasSubstr("\"incrementals_from\":[1,3]"));
  EXPECT_THAT(out, HasSubstr(ToHex(Sha256::Of(*ReadFileToString(p3)))));
}

TEST_F(OriginTest, ManifestIsSignedWithTheKeyInTheDataDir) {
  std::string p1 = GenPattern("p1", "", 1);
  Publish("outbreak-policy", p1);
  struct stat st;
  ASSERT_EQ(stat(data_.File("origin.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(data_.File("admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto verifier = ManifestVerifier::FromPemFile(data_.File("origin.pub"));
  ASSERT_OK(verifier);
  auto stub =
      v1::UpdateService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::SignedManifest m;
  ASSERT_OK(stub->GetManifest(&ctx, {}, &m));
  auto manifest = (*verifier)->Verify(m, absl::Now());
  ASSERT_OK(manifest);
  const v1::ComponentEntry* e = FindEntry(*manifest, "outbreak-policy");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->incrementals_size(), 0) << "outbreak-policy is full-only";
  // Valid 24 h by default, re-signed every hour (signed in, for staleness).
  EXPECT_GT(manifest->expires_unix(), absl::ToUnixSeconds(absl::Now() + absl::Hours(23)));
  EXPECT_LE(manifest->expires_unix(), absl::ToUnixSeconds(absl::Now() + absl::Hours(24)));
  EXPECT_EQ(manifest->resign_seconds(), 3600);
}

TEST_F(OriginTest, WatchPushesEachNewManifest) {
  std::string p1 = GenPattern("p1", "", 1);
  std::string p2 = GenPattern("p2", p1, 2);
  Publish("spyware", p1);
  auto stub =
      v1::UpdateService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto reader = stub->Watch(&ctx);
  ASSERT_TRUE(reader->WritesDone());  // a watcher that says nothing about itself
  v1::WatchResponse pushed;
  ASSERT_TRUE(reader->Read(&pushed));
  EXPECT_EQ(ParseTrustedManifest(pushed.manifest())->serial(), 1u);
  EXPECT_EQ(pushed.payloads_size(), 0);
  Publish("spyware", p2);
  ASSERT_TRUE(reader->Read(&pushed));
  EXPECT_EQ(pushed.payloads_size(), 0);
  auto manifest = ParseTrustedManifest(pushed.manifest());
  EXPECT_EQ(manifest->serial(), 2u);
  EXPECT_EQ(FindEntry(*manifest, "spyware")->version(), 3u);
  ctx.TryCancel();
}

// A watcher whose report is malformed (a bad name, a component listed twice)
// hears what is wrong, and nothing changes; one that names a component this
// node does not carry (a newer agent, an older origin) gets what the node has.
TEST_F(OriginTest, WatchRefusesABadReport) {
  Publish("spyware", GenPattern("p1", "", 1));
  auto stub =
      v1::UpdateService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  auto refused = [&](std::vector<std::string> components) {
    grpc::ClientContext ctx;
    auto stream = stub->Watch(&ctx);
    v1::WatchRequest report;
    report.set_agent_id("agent-1");
    for (const std::string& c : components) {
      v1::ComponentVersion* cv = report.add_versions();
      cv->set_component(c);
      cv->set_version(1);
    }
    EXPECT_TRUE(stream->Write(report));
    stream->WritesDone();
    v1::WatchResponse pushed;
    EXPECT_FALSE(stream->Read(&pushed));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    return s.error_message();
  };
  EXPECT_THAT(refused({"Spyware/.."}), HasSubstr("component name"));
  EXPECT_THAT(refused({"spyware", "spyware"}), HasSubstr("lists spyware twice"));
  {
    grpc::ClientContext ctx;
    auto stream = stub->Watch(&ctx);
    v1::WatchRequest report;
    report.set_agent_id("agent-2");
    for (const char* c : {"spyware", "scan-engine-from-the-future"}) {
      v1::ComponentVersion* cv = report.add_versions();
      cv->set_component(c);
      cv->set_version(1);
    }
    ASSERT_TRUE(stream->Write(report));
    v1::WatchResponse pushed;
    ASSERT_TRUE(stream->Read(&pushed)) << "the stream ended instead of answering";
    EXPECT_EQ(ParseTrustedManifest(pushed.manifest())->serial(), 1u);
    ctx.TryCancel();
  }
  EXPECT_EQ(Serial(), 1u);  // nothing changed
}

TEST_F(OriginTest, BadInputGetsClearErrorsAndChangesNothing) {
  std::string p1 = GenPattern("p1", "", 1);
  ASSERT_EQ(Publish("virus", p1), "virus 1");
  const uint64_t serial = Serial();
  std::string out;

  EXPECT_EQ(Ctl({"publish", "virusx", p1}, &out), 1);
  EXPECT_THAT(out, HasSubstr("unknown component \"virusx\""));

  ASSERT_OK(WriteFileAtomically(work_.File("empty"), ""));
  EXPECT_EQ(Ctl({"publish", "virus", work_.File("empty")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("empty"));

  ASSERT_OK(WriteFileAtomically(work_.File("big"), std::string(5 << 20, 'x')));
  EXPECT_EQ(Ctl({"publish", "virus", work_.File("big")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("over the limit of 4194304"));

  EXPECT_EQ(Ctl({"publish", "virus", p1}, &out), 1);
  EXPECT_THAT(out, HasSubstr("identical to virus 1"));

  ASSERT_OK(WriteFileAtomically(work_.File("bad.token"), "0123456789abcdef0123\n"));
  out.clear();
  EXPECT_EQ(RunCommand({Bin("sigrelayctl"), "--admin", AdminAddr(), "--token-file",
                        work_.File("bad.token"), "publish", "virus", p1},
                       &out),
            1);
  EXPECT_THAT(out, HasSubstr("wrong admin token"));

  EXPECT_EQ(Ctl({"publish", "virus", p1}, &out, /*with_token=*/false), 1);
  EXPECT_THAT(out, HasSubstr("--token-file"));

  EXPECT_EQ(Ctl({"fetch", "virusx", "--out", work_.File("x")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("unknown component"));
  EXPECT_EQ(Ctl({"fetch", "virus", "--want", "9", "--out", work_.File("x")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("not published"));
  EXPECT_EQ(Ctl({"fetch", "spyware", "--out", work_.File("x")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("no version of spyware"));
  EXPECT_EQ(Ctl({"fetch", "virus", "--offset", "99999999", "--out", work_.File("x")}, &out), 1);
  EXPECT_THAT(out, HasSubstr("past the end"));

  // Malformed uploads from a raw client: data before the component, no
  // component at all.
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel(AdminAddr(), grpc::InsecureChannelCredentials()));
  std::string token =
      std::string(absl::StripAsciiWhitespace(*ReadFileToString(data_.File("admin.token"))));
  for (bool send_component : {false, true}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    v1::PublishResponse resp;
    auto writer = admin->Publish(&ctx, &resp);
    v1::PublishRequest req;
    if (send_component) {
      req.set_component("virus");
      writer->Write(req);
      writer->Write(req);  // named twice
    } else {
      req.set_data("abc");
      writer->Write(req);
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("component"));
  }

  EXPECT_EQ(Serial(), serial) << "a refused request changed the manifest";
  ASSERT_EQ(Ctl({"fetch", "virus", "--out", work_.File("after")}, &out), 0) << out;
  EXPECT_EQ(*ReadFileToString(work_.File("after")), *ReadFileToString(p1));
}

TEST_F(OriginTest, RestartKeepsStoreKeyAndToken) {
  std::string p1 = GenPattern("p1", "", 1);
  Publish("damage-cleanup", p1);
  std::string pub = *ReadFileToString(data_.File("origin.pub"));
  std::string token = *ReadFileToString(data_.File("admin.token"));
  Restart();
  EXPECT_EQ(*ReadFileToString(data_.File("origin.pub")), pub);
  EXPECT_EQ(*ReadFileToString(data_.File("admin.token")), token);
  EXPECT_EQ(Serial(), 1u);
  std::string p2 = GenPattern("p2", p1, 2);
  EXPECT_EQ(Publish("damage-cleanup", p2), "damage-cleanup 3");
}

TEST(OriginFlagsTest, ClearErrorsForBadFlags) {
  testing::TempDir dir;
  std::string out;
  std::string origin = testing::BinDir() + "/sigrelay-origin";
  EXPECT_EQ(RunCommand({origin, "--data-dir", dir.path()}, &out), 1);
  EXPECT_THAT(out, HasSubstr("--listen"));
  EXPECT_EQ(RunCommand({origin, "--data-dir", dir.path(), "--listen", "127.0.0.1:0",
                        "--version-step", "0"},
                       &out),
            1);
  EXPECT_THAT(out, HasSubstr("step"));
  EXPECT_EQ(RunCommand({origin, "--bogus"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("unknown flag --bogus"));
  EXPECT_EQ(RunCommand({origin, "--data-dir", dir.path(), "--listen", "::1:0"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("brackets"));
}

// AdminService is not served on the agents' port: there it is UNIMPLEMENTED,
// whatever the token. Refused admin calls are logged with the peer and
// counted, and a peer refused five times in a minute is refused at once.
TEST_F(OriginTest, AdminIsOffTheAgentsPortAndRefusalsAreLoggedCountedAndSlowed) {
  std::string token =
      std::string(absl::StripAsciiWhitespace(*ReadFileToString(data_.File("admin.token"))));
  auto on_agents_port =
      v1::AdminService::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    v1::GetStatusResponse r;
    EXPECT_EQ(on_agents_port->GetStatus(&ctx, {}, &r).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  ASSERT_NE(AdminAddr(), addr_);
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel(AdminAddr(), grpc::InsecureChannelCredentials()));
  v1::GetStatusResponse r;
  auto status = [&](const std::string& bearer) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + bearer);
    return admin->GetStatus(&ctx, {}, &r).error_code();
  };
  EXPECT_EQ(status("guess"), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_EQ(status(token), grpc::StatusCode::OK);
  EXPECT_EQ(r.admin_refused(), 1u);
  for (int i = 1; i < AdminToken::kMaxRefusals; ++i) {
    EXPECT_EQ(status("guess-" + std::to_string(i)), grpc::StatusCode::UNAUTHENTICATED);
  }
  // Now even the right token waits out the minute: guessing is slow.
  EXPECT_EQ(status(token), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(origin_->Output(), HasSubstr("admin: refused a call from ipv4:127.0.0.1:"));
  EXPECT_THAT(origin_->Output(), HasSubstr("wrong admin token"));
}

}  // namespace
}  // namespace sigrelay
