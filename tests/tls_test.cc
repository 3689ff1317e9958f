// TLS on every gRPC link, with certificates made by openssl at test time:
// origin -> relay -> agents over TLS, mutual TLS, clear refusals, and what a
// recording middlebox on the path sees (no token, no pattern bytes).
#include "absl/strings/str_cat.h"
#include "core/base/admin_token.h"
#include "core/base/file_util.h"
#include "core/base/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/tcp_forwarder.h"
#include "tests/testutil/test_pki.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::TempDir;
using testing::TestPki;
using testing::WaitFor;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.ok());
    ASSERT_TRUE(pki_.Issue("server"));
    ASSERT_TRUE(pki_.Issue("client"));
    ASSERT_TRUE(other_.ok());
    pattern_ = testing::GenPattern(work_.path(), "p1", 3000, 1);
  }
  std::vector<std::string> ServerTls() const {
    return {"--tls-cert", pki_.File("server.pem"), "--tls-key", pki_.File("server.key")};
  }
  // sigrelayctl against `server` with `extra` flags first; exit code.
  int Ctl(const std::string& server, std::vector<std::string> args, std::string* out) {
    args.insert(args.begin(), {"--server", server});
    return testing::Ctl(args, out);
  }

  TempDir work_;
  TestPki pki_{work_.path(), "good"};
  TestPki other_{work_.path(), "other"};
  std::string pattern_;
};

TEST_F(TlsTest, OriginRelayAndAgentsConvergeOverTls) {
  Daemon origin("sigrelay-origin", work_.File("origin"), ServerTls());
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  std::string out;
  const std::vector<std::string> tls = {"--tls-ca", pki_.File("ca.pem")};
  auto publish = tls;
  publish.insert(publish.end(), {"--admin", origin.admin_address(), "--token-file",
                                 origin.token_file(), "publish", "virus", pattern_});
  ASSERT_EQ(Ctl(origin.address(), publish, &out), 0) << out;

  std::vector<std::string> relay_args = ServerTls();
  relay_args.insert(relay_args.end(),
                    {"--upstream", origin.address(), "--origin-pubkey",
                     origin.data_dir() + "/origin.pub", "--upstream-tls-ca", pki_.File("ca.pem")});
  Daemon relay("sigrelay-relay", work_.File("relay"), relay_args);
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  auto status = tls;
  status.insert(status.end(), {"--admin", relay.admin_address(), "--token-file", relay.token_file(),
                               "status", "--json"});
  ASSERT_TRUE(WaitFor([&] {
    return Ctl(relay.address(), status, &out) == 0 &&
           out.find("\"name\":\"virus\",\"version\":1") != std::string::npos;
  })) << out
      << relay.output();
  EXPECT_THAT(out, HasSubstr("\"listener_security\":\"TLS\""));

  ASSERT_EQ(RunCommand(
                {testing::BinDir() + "/sigrelay-agent-sim", "--server", relay.address(), "--agents",
                 "20", "--start", "none", "--origin-pubkey", origin.data_dir() + "/origin.pub",
                 "--tls-ca", pki_.File("ca.pem"), "--json", "--timeout", "30s"},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"converged\":20"));
}

TEST_F(TlsTest, WrongOrMissingTrustIsRefusedSayingWhatToFix) {
  Daemon origin("sigrelay-origin", work_.File("origin"), ServerTls());
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  std::string out;
  EXPECT_EQ(Ctl(origin.address(), {"status"}, &out), 1);  // plaintext to a TLS port
  EXPECT_EQ(Ctl(origin.address(), {"--tls-ca", other_.File("ca.pem"), "status"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("TLS with " + origin.address() + " failed"));
  EXPECT_THAT(out, HasSubstr("--tls-ca"));

  // A relay that does not trust its upstream's CA takes nothing and says so.
  Daemon relay("sigrelay-relay", work_.File("relay"),
               {"--upstream", origin.address(), "--origin-pubkey",
                origin.data_dir() + "/origin.pub", "--upstream-tls-ca", other_.File("ca.pem")});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  ASSERT_TRUE(WaitFor([&] { return testing::AdminStatus(relay).relay().syncs_failed() > 0; }))
      << relay.output();
  EXPECT_THAT(testing::AdminStatus(relay).relay().last_error(), HasSubstr(origin.address()));
  EXPECT_EQ(testing::ServedVersion(relay.address(), "virus"), 0u);
  EXPECT_EQ(testing::AdminStatus(relay).listener_security(), "plaintext");
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificate) {
  std::vector<std::string> args = ServerTls();
  args.insert(args.end(), {"--tls-client-ca", pki_.File("ca.pem")});
  Daemon origin("sigrelay-origin", work_.File("origin"), args);
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  // The node's listener watchdog can tell this listener answers (it
  // presents no certificate), and tells one that is not there.
  EXPECT_TRUE(ListenerAnswers(origin.address(), /*tls=*/true, absl::Seconds(3)));
  EXPECT_FALSE(ListenerAnswers(origin.address(), /*tls=*/false, absl::Seconds(1)));
  std::string out;
  EXPECT_EQ(Ctl(origin.address(), {"--tls-ca", pki_.File("ca.pem"), "status"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("--tls-cert and --tls-key"));
  // A certificate from another CA is refused too.
  ASSERT_TRUE(other_.Issue("stranger"));
  EXPECT_EQ(Ctl(origin.address(),
                {"--tls-ca", pki_.File("ca.pem"), "--tls-cert", other_.File("stranger.pem"),
                 "--tls-key", other_.File("stranger.key"), "status"},
                &out),
            1);
  ASSERT_EQ(Ctl(origin.address(),
                {"--tls-ca", pki_.File("ca.pem"), "--tls-cert", pki_.File("client.pem"),
                 "--tls-key", pki_.File("client.key"), "--admin", origin.admin_address(),
                 "--token-file", origin.token_file(), "status", "--json"},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"listener_security\":\"mutual TLS\""));
}

// Under mutual TLS the node records an agent by its certificate's identity,
// not by the id it claims: twenty simulated agents sharing one client
// certificate are one agent.
TEST_F(TlsTest, UnderMutualTlsAgentsAreKnownByTheirCertificate) {
  std::vector<std::string> args = ServerTls();
  args.insert(args.end(), {"--tls-client-ca", pki_.File("ca.pem")});
  Daemon origin("sigrelay-origin", work_.File("origin"), args);
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::vector<std::string> client = {"--tls-ca",   pki_.File("ca.pem"),
                                           "--tls-cert", pki_.File("client.pem"),
                                           "--tls-key",  pki_.File("client.key")};
  std::string out;
  auto publish = client;
  publish.insert(publish.end(), {"--admin", origin.admin_address(), "--token-file",
                                 origin.token_file(), "publish", "virus", pattern_});
  ASSERT_EQ(Ctl(origin.address(), publish, &out), 0) << out;
  std::vector<std::string> sim = {testing::BinDir() + "/sigrelay-agent-sim",
                                  "--server",
                                  origin.address(),
                                  "--agents",
                                  "20",
                                  "--start",
                                  "none",
                                  "--origin-pubkey",
                                  origin.data_dir() + "/origin.pub",
                                  "--json",
                                  "--timeout",
                                  "30s"};
  sim.insert(sim.end(), client.begin(), client.end());
  ASSERT_EQ(RunCommand(sim, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("\"converged\":20"));
  auto status = client;
  status.insert(status.end(), {"--admin", origin.admin_address(), "--token-file",
                               origin.token_file(), "status", "--json"});
  ASSERT_EQ(Ctl(origin.address(), status, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("\"agents_reported\":1"));
  // What sigrelay-agent hashes for its rollout ring under mutual TLS: the
  // identity the server records.
  absl::StatusOr<std::string> identity = CertificateIdentityOf(pki_.File("client.pem"));
  ASSERT_OK(identity);
  EXPECT_EQ(*identity, "client");
  EXPECT_THAT(CertificateIdentityOf(pki_.File("client.key")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert")));
}

// What a middlebox recording every byte sees: with TLS neither the admin
// token nor pattern bytes; without TLS (the control) both.
TEST_F(TlsTest, ARecordingMiddleboxSeesNoTokenAndNoPatternBytes) {
  const std::string line = testing::GenPattern(work_.path(), "probe", 1, 9);  // a one-record file
  const std::string secret_line = *ReadFileToString(line);
  for (bool tls : {true, false}) {
    SCOPED_TRACE(tls ? "TLS" : "plaintext control");
    Daemon origin("sigrelay-origin", work_.File(tls ? "o-tls" : "o-plain"),
                  tls ? ServerTls() : std::vector<std::string>{});
    ASSERT_FALSE(origin.address().empty()) << origin.output();
    testing::TcpForwarder wire(origin.address());
    testing::TcpForwarder admin_wire(origin.admin_address());
    std::vector<std::string> base;
    if (tls) base = {"--tls-ca", pki_.File("ca.pem")};
    std::string out;
    auto publish = base;
    publish.insert(publish.end(), {"--admin", admin_wire.address(), "--token-file",
                                   origin.token_file(), "publish", "spyware", line});
    ASSERT_EQ(Ctl(wire.address(), publish, &out), 0) << out;
    auto fetch = base;
    fetch.insert(fetch.end(), {"fetch", "spyware", "--out", work_.File("fetched")});
    ASSERT_EQ(Ctl(wire.address(), fetch, &out), 0) << out;
    const std::string token = *ReadTokenFile(origin.token_file());
    const std::string seen = wire.Recorded() + admin_wire.Recorded();
    ASSERT_GT(seen.size(), 1000u);
    if (tls) {
      EXPECT_EQ(seen.find(token), std::string::npos) << "the admin token crossed in clear";
      EXPECT_EQ(seen.find(secret_line.substr(0, 24)), std::string::npos)
          << "pattern bytes crossed in clear";
    } else {
      EXPECT_NE(seen.find(token), std::string::npos) << "the recorder should see plaintext";
      EXPECT_NE(seen.find(secret_line.substr(0, 24)), std::string::npos);
    }
  }
}

// A renewed certificate is taken without a restart: the files are re-read
// when they change.
TEST_F(TlsTest, ARenewedCertificateIsTakenWithoutARestart) {
  const std::string cert = work_.File("live.pem"), key = work_.File("live.key");
  ASSERT_OK(WriteFileAtomically(cert, *ReadFileToString(pki_.File("server.pem"))));
  ASSERT_OK(WriteFileAtomically(key, *ReadFileToString(pki_.File("server.key"))));
  Daemon origin("sigrelay-origin", work_.File("origin"), {"--tls-cert", cert, "--tls-key", key});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  std::string out;
  ASSERT_EQ(Ctl(origin.address(), {"--tls-ca", pki_.File("ca.pem"), "status"}, &out), 0) << out;
  // Renewed under another CA (a CA change is the visible kind of renewal).
  ASSERT_TRUE(other_.Issue("renewed"));
  ASSERT_OK(WriteFileAtomically(key, *ReadFileToString(other_.File("renewed.key"))));
  ASSERT_OK(WriteFileAtomically(cert, *ReadFileToString(other_.File("renewed.pem"))));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Ctl(origin.address(), {"--tls-ca", other_.File("ca.pem"), "status"}, &out) == 0;
      },
      absl::Seconds(30)))
      << out;
  EXPECT_TRUE(origin.running());
}

TEST_F(TlsTest, BadTlsFilesAreRefusedAtStart) {
  std::string out;
  const std::string origin = testing::BinDir() + "/sigrelay-origin";
  const std::vector<std::string> base = {origin, "--data-dir", work_.File("d"), "--listen",
                                         "127.0.0.1:0"};
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv, &out);
  };
  EXPECT_EQ(run({"--tls-cert", pki_.File("server.pem")}), 1);
  EXPECT_THAT(out, HasSubstr("--tls-cert and --tls-key go together"));
  EXPECT_EQ(run({"--tls-cert", pki_.File("server.pem"), "--tls-key", pki_.File("client.key")}), 1);
  EXPECT_THAT(out, HasSubstr("is not the key of the certificate"));
  EXPECT_EQ(run({"--tls-cert", pki_.File("ca.key"), "--tls-key", pki_.File("server.key")}), 1);
  EXPECT_THAT(out, HasSubstr("holds no PEM certificate"));
  EXPECT_EQ(run({"--tls-cert", work_.File("missing.pem"), "--tls-key", pki_.File("server.key")}),
            1);
  EXPECT_THAT(out, HasSubstr("missing.pem"));
}

}  // namespace
}  // namespace sigrelay
