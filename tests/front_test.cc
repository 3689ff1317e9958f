// The hardened front of deploy/nginx (nginx terminating TLS and HTTP/2 with
// its own limits) in front of a real relay: an HTTP/2 rapid-reset client
// (CVE-2023-44487) attacks the front for 10 s while agents converge through
// it, and the relay's memory stays flat.
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/base/file_util.h"
#include "core/base/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/rapid_reset.h"
#include "tests/testutil/test_pki.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using testing::TempDir;
using testing::WaitFor;

constexpr char kNginx[] = "/usr/sbin/nginx";

// nginx in the foreground with the shipped front config, its listen
// address, certificate and relay replaced for this test.
class Front {
 public:
  Front(const TempDir& work, const testing::TestPki& pki, const std::string& relay) {
    const std::string shipped =
        *ReadFileToString(std::string(SIGRELAY_SOURCE_DIR) + "/deploy/nginx/sigrelay-front.conf");
    address_ = absl::StrCat("127.0.0.1:", testing::UnusedPort());
    const std::string conf = absl::StrReplaceAll(
        shipped, {{"listen 443 ssl http2;", absl::StrCat("listen ", address_, " ssl http2;")},
                  {"listen [::]:443 ssl http2;", ""},
                  {"/etc/sigrelay/tls/front.pem", pki.File("front.pem")},
                  {"/etc/sigrelay/tls/front.key", pki.File("front.key")},
                  {"server 127.0.0.1:7443;", absl::StrCat("server ", relay, ";")}});
    EXPECT_NE(conf, shipped);
    const std::string dir = work.File("nginx");
    EXPECT_TRUE(MakeDirs(dir).ok());
    EXPECT_TRUE(WriteFileAtomically(dir + "/front.conf", conf).ok());
    EXPECT_TRUE(WriteFileAtomically(
                    dir + "/nginx.conf",
                    absl::StrCat("daemon off;\nworker_processes 1;\npid ", dir,
                                 "/nginx.pid;\nerror_log stderr warn;\n",
                                 "events { worker_connections 1024; }\n",
                                 "http { access_log off; include ", dir, "/front.conf; }\n"))
                    .ok());
    process_ = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{kNginx, "-p", dir, "-c", dir + "/nginx.conf"});
  }
  // nginx's fast shutdown: the master stops its workers, then exits; waited
  // for, so no worker outlives the test.
  ~Front() {
    process_->Kill(SIGTERM);
    process_->Wait();
  }
  const std::string& address() const { return address_; }
  std::string output() const { return process_->Output(); }

 private:
  std::string address_;
  std::unique_ptr<testing::ChildProcess> process_;
};

TEST(FrontTest, RapidResetAtTheFrontLeavesTheRelayFlatAndAgentsConverge) {
  if (access(kNginx, X_OK) != 0) GTEST_SKIP() << "nginx not installed (scripts/install-deps.sh)";
  TempDir work;
  testing::TestPki pki(work.path(), "front");
  ASSERT_TRUE(pki.ok());
  ASSERT_TRUE(pki.Issue("front"));
  Daemon origin("sigrelay-origin", work.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  const std::string v1 = testing::GenPattern(work.path(), "p1", 3000, 1);
  ASSERT_EQ(testing::Publish(origin, "virus", v1), 1u);
  Daemon relay("sigrelay-relay", work.File("relay"),
               {"--upstream", origin.address(), "--origin-pubkey", pub});
  ASSERT_FALSE(relay.address().empty()) << relay.output();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay.address(), "virus") == 1; }));
  Front front(work, pki, relay.address());
  ASSERT_TRUE(WaitFor([&] { return ListenerAnswers(front.address(), true, absl::Seconds(1)); }))
      << front.output();

  auto agents = [&](int n) {
    std::string out;
    testing::RunCommand(
        {testing::BinDir() + "/sigrelay-agent-sim", "--server", front.address(), "--tls-ca",
         pki.File("ca.pem"), "--agents", absl::StrCat(n), "--connections", "per-agent", "--start",
         "none", "--origin-pubkey", pub, "--json", "--timeout", "30s"},
        &out);
    return out;
  };
  ASSERT_THAT(agents(3), ::testing::HasSubstr("\"converged\":3")) << front.output();

  const int pid = relay.process()->pid();
  const uint64_t before = testing::ResidentBytes(pid);
  uint64_t peak = before;
  std::atomic<bool> done{false};
  testing::RapidResetResult attack;
  std::thread attacker([&] {
    attack =
        testing::RapidReset(front.address(), "127.0.0.2", /*tls=*/true, absl::Seconds(10), 1000000);
    done = true;
  });
  // During the attack: a new version published, agents converge through
  // the front (from 127.0.0.1: the front's per-address limits hold the
  // attacker at 127.0.0.2, not them).
  ASSERT_EQ(testing::Publish(origin, "virus", testing::GenPattern(work.path(), "p2", 3000, 2, v1)),
            3u);
  std::string during = agents(5);
  const bool attack_running = !done;
  while (!done) {
    peak = std::max(peak, testing::ResidentBytes(pid));
    absl::SleepFor(absl::Milliseconds(100));  // sampling, not synchronisation
  }
  attacker.join();
  peak = std::max(peak, testing::ResidentBytes(pid));
  std::cerr << "rapid reset at the front: " << attack.streams << " streams on "
            << attack.connections << " connections; relay RSS " << before / 1000000
            << " MB before, peak " << peak / 1000000 << " MB\n";
  ASSERT_TRUE(attack.error.empty()) << attack.error << front.output();
  EXPECT_GT(attack.streams, 20000u) << "the attack did not run";
  EXPECT_TRUE(attack_running) << "agents converged only after the attack";
  EXPECT_THAT(during, ::testing::HasSubstr("\"converged\":5")) << during;
  if (testing::kMemoryMeasurable) {
    EXPECT_LT(peak - before, 16u << 20) << "the relay's memory grew behind the front";
  }
  EXPECT_TRUE(relay.running());
}

}  // namespace
}  // namespace sigrelay
