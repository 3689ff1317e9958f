// The hardened front of deploy/nginx as packaged (nginx's TCP layer limiting
// each address's connections, its HTTP/2 layer terminating TLS with its own
// limits) in front of a real relay: attacked the way a hostile agent would
// (rapid reset with request bodies, an idle-connection flood) while agents
// converge through it, and the relay stays flat.
#include <unistd.h>

#include <cstdlib>
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
constexpr char kStreamModule[] = "/usr/lib/nginx/modules/ngx_stream_module.so";

// nginx in the foreground with the shipped front, both layers (the TCP
// layer of sigrelay-front-stream.conf and the HTTP/2 layer of
// sigrelay-front.conf), as Debian's stock nginx.conf runs them (768 worker
// connections; one worker, as on a one-core machine, the tightest case),
// with the listen address, the loopback hop, certificate and relay replaced
// for this test.
class Front {
 public:
  Front(const TempDir& work, const testing::TestPki& pki, const std::string& relay) {
    const std::string shipped = std::string(SIGRELAY_SOURCE_DIR) + "/deploy/nginx/";
    const std::string tcp = *ReadFileToString(shipped + "sigrelay-front-stream.conf");
    const std::string http = *ReadFileToString(shipped + "sigrelay-front.conf");
    address_ = absl::StrCat("127.0.0.1:", testing::UnusedPort());
    const std::string hop = absl::StrCat("127.0.0.1:", testing::UnusedPort());
    const std::string tcp_conf =
        absl::StrReplaceAll(tcp, {{"listen 443;", absl::StrCat("listen ", address_, ";")},
                                  {"listen [::]:443;", ""},
                                  {"proxy_pass 127.0.0.1:7444;", "proxy_pass " + hop + ";"}});
    const std::string http_conf = absl::StrReplaceAll(
        http, {{"listen 127.0.0.1:7444 ", "listen " + hop + " "},
               {"/etc/sigrelay/tls/front.pem", pki.File("front.pem")},
               {"/etc/sigrelay/tls/front.key", pki.File("front.key")},
               {"server 127.0.0.1:7443;", absl::StrCat("server ", relay, ";")}});
    EXPECT_NE(tcp_conf.find(hop), std::string::npos) << "the shipped TCP layer changed";
    EXPECT_NE(http_conf.find(hop), std::string::npos) << "the shipped HTTP layer changed";
    const std::string dir = work.File("nginx");
    EXPECT_TRUE(MakeDirs(dir).ok());
    EXPECT_TRUE(WriteFileAtomically(dir + "/front-stream.conf", tcp_conf).ok());
    EXPECT_TRUE(WriteFileAtomically(dir + "/front.conf", http_conf).ok());
    EXPECT_TRUE(WriteFileAtomically(
                    dir + "/nginx.conf",
                    absl::StrCat("daemon off;\nworker_processes 1;\npid ", dir,
                                 "/nginx.pid;\nerror_log stderr warn;\n",
                                 "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n",
                                 "events { worker_connections 768; }\n", "include ", dir,
                                 "/front-stream.conf;\n", "http { access_log off; include ", dir,
                                 "/front.conf; }\n"))
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

// An origin with version 1 of virus, a relay on loopback behind the front.
class FrontTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kNginx, X_OK) != 0 || access(kStreamModule, R_OK) != 0) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true")
        FAIL() << "nginx or its stream module missing";
      GTEST_SKIP() << "nginx or libnginx-mod-stream not installed (scripts/install-deps.sh)";
    }
    ASSERT_TRUE(pki_.ok());
    ASSERT_TRUE(pki_.Issue("front"));
    origin_ = std::make_unique<Daemon>("sigrelay-origin", work_.File("origin"),
                                       std::vector<std::string>{});
    ASSERT_FALSE(origin_->address().empty()) << origin_->output();
    pub_ = origin_->data_dir() + "/origin.pub";
    v1_ = testing::GenPattern(work_.path(), "p1", 3000, 1);
    ASSERT_EQ(testing::Publish(*origin_, "virus", v1_), 1u);
    relay_ = std::make_unique<Daemon>(
        "sigrelay-relay", work_.File("relay"),
        std::vector<std::string>{"--upstream", origin_->address(), "--origin-pubkey", pub_,
                                 "--front", "127.0.0.1"});
    ASSERT_FALSE(relay_->address().empty()) << relay_->output();
    ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay_->address(), "virus") == 1; }));
    front_ = std::make_unique<Front>(work_, pki_, relay_->address());
    ASSERT_TRUE(WaitFor([&] { return ListenerAnswers(front_->address(), true, absl::Seconds(1)); }))
        << front_->output();
  }

  // `n` agents from 127.0.0.1, one connection each, through the front.
  std::string Agents(int n) {
    std::string out;
    testing::RunCommand(
        {testing::BinDir() + "/sigrelay-agent-sim", "--server", front_->address(), "--tls-ca",
         pki_.File("ca.pem"), "--agents", absl::StrCat(n), "--connections", "per-agent", "--start",
         "none", "--origin-pubkey", pub_, "--json", "--timeout", "30s"},
        &out);
    return out;
  }

  TempDir work_;
  testing::TestPki pki_{work_.path(), "front"};
  std::unique_ptr<Daemon> origin_;
  std::unique_ptr<Daemon> relay_;
  std::unique_ptr<Front> front_;
  std::string pub_;
  std::string v1_;
};

// The costliest rapid reset (CVE-2023-44487: every stream carries a
// request body before its RST_STREAM) on GetManifest from 127.0.0.2 for
// 10 s, at the front: nginx's request rate and stream limits turn it away
// and only the few streams it lets through reach the relay, whose memory
// stays flat; agents from 127.0.0.1 converge through the front meanwhile.
TEST_F(FrontTest, RapidResetWithBodiesLeavesTheRelayFlatAndAgentsConverge) {
  ASSERT_THAT(Agents(3), ::testing::HasSubstr("\"converged\":3")) << front_->output();
  const int pid = relay_->process()->pid();
  const uint64_t before = testing::ResidentBytes(pid);
  uint64_t peak = before;
  std::atomic<bool> done{false};
  testing::RapidResetResult attack;
  std::thread attacker([&] {
    testing::RapidResetOptions options;
    options.path = "/sigrelay.v1.UpdateService/GetManifest";
    options.with_body = true;
    options.per_write = 200;
    attack = testing::RapidReset(front_->address(), "127.0.0.2", /*tls=*/true, absl::Seconds(10),
                                 12000, options);
    done = true;
  });
  // During the attack: a new version published, agents converge through
  // the front (from 127.0.0.1: the front's per-address limits hold the
  // attacker at 127.0.0.2, not them).
  ASSERT_EQ(
      testing::Publish(*origin_, "virus", testing::GenPattern(work_.path(), "p2", 3000, 2, v1_)),
      3u);
  const std::string during = Agents(5);
  const bool attack_running = !done;
  while (!done) {
    peak = std::max(peak, testing::ResidentBytes(pid));
    absl::SleepFor(absl::Milliseconds(100));  // sampling, not synchronisation
  }
  attacker.join();
  peak = std::max(peak, testing::ResidentBytes(pid));
  std::cerr << "rapid reset with bodies at the front: " << attack.streams << " streams on "
            << attack.connections << " connections; relay RSS " << before / 1000000
            << " MB before, peak " << peak / 1000000 << " MB\n";
  ASSERT_TRUE(attack.error.empty()) << attack.error << front_->output();
  EXPECT_GT(attack.streams, 20000u) << "the attack did not run";
  EXPECT_TRUE(attack_running) << "agents converged only after the attack";
  EXPECT_THAT(during, ::testing::HasSubstr("\"converged\":5")) << during;
  if (testing::kMemoryMeasurable) {
    EXPECT_LT(peak - before, 16u << 20) << "the relay's memory grew behind the front";
  }
  EXPECT_TRUE(relay_->running());
}

// 1,100 connections from 127.0.0.2 that complete a TLS handshake, send the
// HTTP/2 preface and nothing else (held until keepalive_timeout, 75 s),
// more than the 768 worker connections of a stock nginx: the TCP layer
// holds one address to 32 connections and closes the rest at once, so the
// worker keeps room and agents from 127.0.0.1 converge through the front
// while the flood's connections are held open. (Without the TCP layer's
// limit, checked: the flood holds every worker connection, only 870 are
// closed, by nginx reclaiming its oldest idle ones, and nginx logs "768
// worker_connections are not enough".)
// Agents' Watch streams (bidirectional, open for hours) pass the front
// and reach the relay: it counts them as watchers and agents while they
// stay. (Converging alone would not show it: an agent can converge
// through GetManifest and Fetch.)
TEST_F(FrontTest, WatchStreamsPassTheFront) {
  testing::ChildProcess sim({testing::BinDir() + "/sigrelay-agent-sim", "--server",
                             front_->address(), "--tls-ca", pki_.File("ca.pem"), "--agents", "5",
                             "--connections", "per-agent", "--origin-pubkey", pub_, "--until",
                             "virus=99", "--timeout", "30s"});
  EXPECT_TRUE(WaitFor([&] {
    const v1::GetStatusResponse st = testing::AdminStatus(*relay_);
    return st.watchers() == 5 && st.agents_reported() == 5;
  })) << sim.Output()
      << front_->output();
  sim.Kill(SIGTERM);
  sim.Wait();
}

TEST_F(FrontTest, OnePeersIdleConnectionsCannotTakeTheFront) {
  std::vector<int> flood =
      testing::IdleConnections(front_->address(), 1100, "127.0.0.2", /*tls=*/true);
  ASSERT_EQ(flood.size(), 1100u) << "the kernel's backlog takes them all";
  int closed = 0;
  for (int fd : flood) closed += testing::ClosedWithin(fd, absl::Milliseconds(20)) ? 1 : 0;
  EXPECT_GE(closed, 1100 - 32) << "one address holds at most 32 connections at the front";
  const std::string out = Agents(20);
  EXPECT_THAT(out, ::testing::HasSubstr("\"converged\":20")) << out << front_->output();
  EXPECT_THAT(front_->output(), ::testing::Not(::testing::HasSubstr("are not enough")));
  EXPECT_TRUE(relay_->running());
  for (int fd : flood) close(fd);
}

}  // namespace
}  // namespace sigrelay
