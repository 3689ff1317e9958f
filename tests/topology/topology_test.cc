// Real segments built from network namespaces: IPv4-only and IPv6-only
// segments bridged by dual-stack relays, an HTTP proxy as the only way out,
// and a name that resolves to a family the node cannot route. Root only;
// in CI (CI=true) they must run, elsewhere they skip saying why.
#include <signal.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/rapid_reset.h"
#include "tests/testutil/testutil.h"
#include "tests/topology/netns.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::Netns;
using ::testing::Not;
using testing::WaitFor;

std::vector<std::string> With(std::vector<std::string> prefix, std::vector<std::string> argv) {
  prefix.insert(prefix.end(), argv.begin(), argv.end());
  return prefix;
}

class TopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SIGRELAY_REQUIRE_NETNS();
    pattern1_ = testing::GenPattern(work_.path(), "p1", 3000, 1);
    pattern2_ = testing::GenPattern(work_.path(), "p2", 0, 2, pattern1_);
  }

  std::unique_ptr<Daemon> Origin(const Netns& ns, const std::string& listen) {
    auto d = std::make_unique<Daemon>("sigrelay-origin", work_.File("origin-" + ns.name()),
                                      std::vector<std::string>{}, std::vector<std::string>{listen},
                                      ns.prefix());
    EXPECT_FALSE(d->address().empty()) << d->output();
    return d;
  }

  std::unique_ptr<Daemon> Relay(const Netns& ns, const std::vector<std::string>& listen,
                                const std::string& upstream, const std::string& pub,
                                std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--upstream", upstream,        "--origin-pubkey",
                                     pub,          "--max-backoff", "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto d = std::make_unique<Daemon>("sigrelay-relay", work_.File("relay-" + ns.name()), args,
                                      listen, ns.prefix());
    EXPECT_FALSE(d->address().empty()) << d->output();
    return d;
  }

  // sigrelayctl inside `ns`.
  int Ctl(const Netns& ns, std::vector<std::string> args, std::string* out) {
    out->clear();
    return testing::RunCommand(With(ns.prefix(), With({testing::BinDir() + "/sigrelayctl"}, args)),
                               out);
  }

  uint32_t Publish(const Netns& ns, const Daemon& origin, const std::string& file) {
    std::string out;
    if (Ctl(ns, {"--data-dir", origin.data_dir(), "publish", "virus", file}, &out) != 0) {
      ADD_FAILURE() << out;
      return 0;
    }
    return static_cast<uint32_t>(std::atoi(out.substr(out.rfind(' ') + 1).c_str()));
  }

  // The relay (in `ns`) serves virus `version`.
  bool Serves(const Netns& ns, const std::string& addr, uint32_t version) {
    std::string out;
    return Ctl(ns, {"--server", addr, "status", "--json"}, &out) == 0 &&
           out.find(absl::StrCat("\"name\":\"virus\",\"version\":", version, ",")) !=
               std::string::npos;
  }

  std::string RelayStatus(const Netns& ns, const Daemon& relay) {
    std::string out;
    Ctl(ns, {"--data-dir", relay.data_dir(), "status", "--json"}, &out);
    return out;
  }

  std::vector<std::string> AgentSim(const Netns& ns, const std::string& server,
                                    const std::string& pub, std::vector<std::string> extra) {
    std::vector<std::string> args = {testing::BinDir() + "/sigrelay-agent-sim",
                                     "--server",
                                     server,
                                     "--agents",
                                     "40",
                                     "--origin-pubkey",
                                     pub,
                                     "--start",
                                     "none",
                                     "--timeout",
                                     "30s",
                                     "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return With(ns.prefix(), args);
  }

  testing::TempDir work_;
  std::string pattern1_, pattern2_;
};

TEST_F(TopologyTest, Ipv4OriginReachesIpv6AgentsThroughADualStackRelay) {
  Netns origin_ns("o4"), relay_ns("r"), agent_ns("a6");
  ASSERT_TRUE(origin_ns.ok() && relay_ns.ok() && agent_ns.ok());
  ASSERT_TRUE(testing::Link(origin_ns, {"198.18.1.1/24"}, relay_ns, {"198.18.1.2/24"}));
  ASSERT_TRUE(testing::Link(relay_ns, {"fd00:2::1/64"}, agent_ns, {"fd00:2::2/64"}));
  auto origin = Origin(origin_ns, "198.18.1.1:0");
  const std::string pub = origin->data_dir() + "/origin.pub";
  ASSERT_EQ(Publish(origin_ns, *origin, pattern1_), 1u);

  // Negative control: from the IPv6-only segment the origin is unreachable,
  // and agent-sim says why.
  std::string out;
  EXPECT_NE(testing::RunCommand(AgentSim(agent_ns, origin->address(), pub, {}), &out), 0);
  EXPECT_THAT(out, HasSubstr("IPv4 only"));
  EXPECT_THAT(out, HasSubstr("no IPv4 route"));
  EXPECT_THAT(out, HasSubstr("dual-stack relay"));

  auto relay = Relay(relay_ns, {"198.18.1.2:0", "[fd00:2::1]:0"}, origin->address(), pub);
  ASSERT_EQ(relay->addresses().size(), 2u);
  ASSERT_TRUE(WaitFor([&] { return Serves(relay_ns, relay->address(), 1); }, absl::Seconds(15)))
      << relay->output();
  ASSERT_EQ(testing::RunCommand(AgentSim(agent_ns, relay->addresses()[1], pub, {}), &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"converged\":40"));
}

TEST_F(TopologyTest, Ipv6OriginReachesIpv4AgentsThroughADualStackRelay) {
  Netns origin_ns("o6"), relay_ns("r"), agent_ns("a4");
  ASSERT_TRUE(origin_ns.ok() && relay_ns.ok() && agent_ns.ok());
  ASSERT_TRUE(testing::Link(origin_ns, {"fd00:1::1/64"}, relay_ns, {"fd00:1::2/64"}));
  ASSERT_TRUE(testing::Link(relay_ns, {"198.18.2.1/24"}, agent_ns, {"198.18.2.2/24"}));
  auto origin = Origin(origin_ns, "[fd00:1::1]:0");
  const std::string pub = origin->data_dir() + "/origin.pub";
  ASSERT_EQ(Publish(origin_ns, *origin, pattern1_), 1u);

  std::string out;
  EXPECT_NE(testing::RunCommand(AgentSim(agent_ns, origin->address(), pub, {}), &out), 0);
  EXPECT_THAT(out, HasSubstr("IPv6 only"));
  EXPECT_THAT(out, HasSubstr("no IPv6 route"));

  auto relay = Relay(relay_ns, {"[fd00:1::2]:0", "198.18.2.1:0"}, origin->address(), pub);
  ASSERT_TRUE(WaitFor([&] { return Serves(relay_ns, relay->address(), 1); }, absl::Seconds(15)))
      << relay->output();
  ASSERT_EQ(testing::RunCommand(AgentSim(agent_ns, relay->addresses()[1], pub, {}), &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"converged\":40"));
}

// Test 3: IPv4 origin -> dual-stack relay -> IPv6 segment relay -> IPv6
// agents; a publish at the origin reaches the agents with no trigger.
TEST_F(TopologyTest, TwoChainedRelaysCarryAPublishAcrossThreeSegments) {
  Netns origin_ns("o4"), bridge_ns("rb"), site_ns("r6"), agent_ns("a6");
  ASSERT_TRUE(origin_ns.ok() && bridge_ns.ok() && site_ns.ok() && agent_ns.ok());
  ASSERT_TRUE(testing::Link(origin_ns, {"198.18.3.1/24"}, bridge_ns, {"198.18.3.2/24"}));
  ASSERT_TRUE(testing::Link(bridge_ns, {"fd00:3::1/64"}, site_ns, {"fd00:3::2/64"}));
  ASSERT_TRUE(testing::Link(site_ns, {"fd00:4::1/64"}, agent_ns, {"fd00:4::2/64"}));
  auto origin = Origin(origin_ns, "198.18.3.1:0");
  const std::string pub = origin->data_dir() + "/origin.pub";
  ASSERT_EQ(Publish(origin_ns, *origin, pattern1_), 1u);
  auto bridge = Relay(bridge_ns, {"198.18.3.2:0", "[fd00:3::1]:0"}, origin->address(), pub);
  auto site = Relay(site_ns, {"[fd00:4::1]:0"}, bridge->addresses()[1], pub);
  ASSERT_TRUE(WaitFor([&] { return Serves(site_ns, site->address(), 1); }, absl::Seconds(15)))
      << bridge->output() << site->output();

  testing::ChildProcess agents(
      AgentSim(agent_ns, site->address(), pub, {"--until", "virus=3", "--start", "current"}));
  ASSERT_TRUE(WaitFor(
      [&] { return RelayStatus(site_ns, *site).find("\"watchers\":40") != std::string::npos; },
      absl::Seconds(20)))
      << agents.Output();
  ASSERT_EQ(Publish(origin_ns, *origin, pattern2_), 3u);
  ASSERT_EQ(agents.Wait(), 0) << agents.Output() << site->output();
  EXPECT_THAT(agents.Output(), HasSubstr("\"converged\":40"));
}

// Test 4: the upstream is reachable only through an HTTP proxy (tinyproxy
// with BasicAuth): updates go through it; a wrong password is reported as
// 407 while the store keeps being served; a dead proxy is retried with
// backoff and the relay recovers when it returns.
TEST_F(TopologyTest, UpstreamThroughAuthenticatingProxy) {
  std::string out;
  if (testing::RunCommand({"sh", "-c", "command -v tinyproxy"}, &out) != 0) {
    FAIL() << "tinyproxy is not installed (scripts/install-deps.sh installs it)";
  }
  Netns origin_ns("o"), proxy_ns("p"), relay_ns("r");
  ASSERT_TRUE(origin_ns.ok() && proxy_ns.ok() && relay_ns.ok());
  ASSERT_TRUE(testing::Link(origin_ns, {"198.18.5.1/24"}, proxy_ns, {"198.18.5.2/24"}));
  ASSERT_TRUE(testing::Link(proxy_ns, {"198.18.6.1/24"}, relay_ns, {"198.18.6.2/24"}));
  auto origin = Origin(origin_ns, "198.18.5.1:0");
  const std::string pub = origin->data_dir() + "/origin.pub";
  ASSERT_EQ(Publish(origin_ns, *origin, pattern1_), 1u);

  const int proxy_port = 18000 + getpid() % 1000;
  std::string conf = work_.File("tinyproxy.conf");
  ASSERT_TRUE(WriteFileAtomically(
                  conf, absl::StrCat("Port ", proxy_port, "\nListen 198.18.6.1\n",
                                     "Timeout 60\nMaxClients 50\n", "BasicAuth sigrelay s3cret\n",
                                     "Allow 198.18.6.0/24\nLogLevel Info\n"))
                  .ok());
  auto start_proxy = [&] {
    auto p = std::make_unique<testing::ChildProcess>(
        With(proxy_ns.prefix(), {"tinyproxy", "-d", "-c", conf}));
    return p;
  };
  auto proxy = start_proxy();
  const std::string proxy_addr = absl::StrCat("198.18.6.1:", proxy_port);
  ASSERT_TRUE(WaitFor([&] {
    return testing::RunCommand(
               With(relay_ns.prefix(),
                    {"bash", "-c", absl::StrCat("exec 3<>/dev/tcp/198.18.6.1/", proxy_port)}),
               nullptr) == 0;
  })) << proxy->Output();

  // The relay has no route to the origin's segment: only the proxy reaches it.
  auto relay = Relay(relay_ns, {"198.18.6.2:0"}, origin->address(), pub,
                     {"--proxy", absl::StrCat("http://sigrelay:s3cret@", proxy_addr)});
  ASSERT_TRUE(WaitFor([&] { return Serves(relay_ns, relay->address(), 1); }, absl::Seconds(15)))
      << relay->output() << proxy->Output();

  // Wrong password: the proxy's refusal (407; tinyproxy 1.11 sends 401)
  // names the proxy and its HTTP status, and the store is still served.
  relay->Stop(SIGTERM);
  Daemon wrong("sigrelay-relay", relay->data_dir(),
               {"--upstream", origin->address(), "--origin-pubkey", pub, "--max-backoff", "1s",
                "--proxy", absl::StrCat("http://sigrelay:wrong@", proxy_addr)},
               {"198.18.6.2:0"}, relay_ns.prefix());
  ASSERT_FALSE(wrong.address().empty()) << wrong.output();
  ASSERT_TRUE(WaitFor(
      [&] {
        return RelayStatus(relay_ns, wrong).find("Proxy Authentication Required") !=
               std::string::npos;
      },
      absl::Seconds(15)))
      << wrong.output();
  std::string st = RelayStatus(relay_ns, wrong);
  EXPECT_THAT(st, HasSubstr(proxy_addr));
  EXPECT_THAT(st, ::testing::ContainsRegex("answered CONNECT with HTTP 40[17]"));
  EXPECT_THAT(st, ::testing::Not(HasSubstr("wrong")));  // no password in messages
  EXPECT_TRUE(Serves(relay_ns, wrong.address(), 1));
  wrong.Stop(SIGTERM);

  // Proxy down: the relay backs off, keeps serving, and catches up when the
  // proxy returns.
  proxy->Kill(SIGTERM);
  proxy->Wait();
  relay->Restart();
  ASSERT_FALSE(relay->address().empty()) << relay->output();
  ASSERT_EQ(Publish(origin_ns, *origin, pattern2_), 3u);
  ASSERT_TRUE(WaitFor(
      [&] { return RelayStatus(relay_ns, *relay).find("\"syncs_failed\":0") == std::string::npos; },
      absl::Seconds(15)))
      << relay->output();
  EXPECT_THAT(RelayStatus(relay_ns, *relay), HasSubstr("through proxy " + proxy_addr));
  EXPECT_TRUE(Serves(relay_ns, relay->address(), 1));
  proxy = start_proxy();
  ASSERT_TRUE(WaitFor([&] { return Serves(relay_ns, relay->address(), 3); }, absl::Seconds(20)))
      << relay->output() << proxy->Output();
}

// Test 5: a name with only an AAAA record, seen from an IPv4-only relay.
// A branch office behind 256 kbit/s (tc tbf on the origin's side of the
// link): the relay takes a ~600 KB pattern as one 1 MiB-chunk message in
// about 20 s with the default settings, then the next version by incremental,
// and no sync fails. The old rule (256 KiB/s on average, plus 10 s) cut the
// first download at about 12 s, every time.
TEST_F(TopologyTest, ARelayBehindA256KbitLinkConverges) {
  Netns origin_ns("ob"), relay_ns("rb");
  ASSERT_TRUE(origin_ns.ok() && relay_ns.ok());
  ASSERT_TRUE(testing::Link(origin_ns, {"198.18.7.1/24"}, relay_ns, {"198.18.7.2/24"}));
  std::string out;
  ASSERT_EQ(testing::RunCommand(
                With(origin_ns.prefix(),
                     {"sh", "-c",
                      "for d in $(ls /sys/class/net); do [ $d = lo ] || tc qdisc add dev $d root "
                      "tbf rate 256kbit burst 32kbit latency 400ms || exit 1; done"}),
                &out),
            0)
      << out;
  auto origin = Origin(origin_ns, "198.18.7.1:0");
  const std::string pub = origin->data_dir() + "/origin.pub";
  const std::string big = testing::GenPattern(work_.path(), "big", 9000, 5);
  ASSERT_EQ(Publish(origin_ns, *origin, big), 1u);
  auto relay = Relay(relay_ns, {"198.18.7.2:0"}, origin->address(), pub);
  ASSERT_TRUE(WaitFor([&] { return Serves(relay_ns, relay->address(), 1); }, absl::Seconds(120)))
      << relay->output();
  const std::string next = testing::GenPattern(work_.path(), "big2", 0, 6, big);
  ASSERT_EQ(Publish(origin_ns, *origin, next), 3u);
  ASSERT_TRUE(WaitFor([&] { return Serves(relay_ns, relay->address(), 3); }, absl::Seconds(60)))
      << relay->output();
  const std::string status = RelayStatus(relay_ns, *relay);
  EXPECT_THAT(status, HasSubstr("\"syncs_failed\":0")) << relay->output();
  EXPECT_THAT(status, Not(HasSubstr("\"bytes_incremental\":0,"))) << status;
}

TEST_F(TopologyTest, AaaaOnlyNameFromIpv4OnlyRelayIsExplained) {
  Netns relay_ns("r4"), other_ns("x");
  ASSERT_TRUE(relay_ns.ok() && other_ns.ok());
  ASSERT_TRUE(testing::Link(relay_ns, {"198.18.7.2/24"}, other_ns, {"198.18.7.1/24"}));
  ASSERT_TRUE(relay_ns.SetHosts("127.0.0.1 localhost\nfd00:7::1 origin-v6.test\n"));
  testing::TempDir keydir;
  auto key = std::make_unique<Daemon>("sigrelay-origin", keydir.File("o"),
                                      std::vector<std::string>{});  // only for a key pair
  const std::string pub = keydir.File("o") + "/origin.pub";
  auto relay = Relay(relay_ns, {"198.18.7.2:0"}, "origin-v6.test:7443", pub);
  ASSERT_TRUE(WaitFor(
      [&] { return RelayStatus(relay_ns, *relay).find("no IPv6 route") != std::string::npos; },
      absl::Seconds(15)))
      << relay->output();
  std::string st = RelayStatus(relay_ns, *relay);
  EXPECT_THAT(st, HasSubstr("origin-v6.test"));
  EXPECT_THAT(st, HasSubstr("fd00:7::1"));
  EXPECT_THAT(st, HasSubstr("IPv6 only"));
  EXPECT_THAT(st, HasSubstr("dual-stack relay"));
  EXPECT_THAT(relay->output(), HasSubstr("origin-v6.test"));
}

// Replicas behind one name: three relays in a site, a name that a real DNS
// server (dnsmasq, so gRPC's c-ares resolver runs) resolves to all three,
// 300 agents given that name. Every replica gets a share of the agents
// (round_robin over the name's addresses); one replica is killed, its
// agents move to the others by themselves, and all converge on the next
// publish. (With pick_first, checked: every agent sits on the first
// address.)
TEST_F(TopologyTest, ReplicasBehindOneNameShareTheAgentsAndTakeOverADeadOne) {
  std::string out;
  ASSERT_EQ(testing::RunCommand({"sh", "-c", "command -v dnsmasq"}, &out), 0)
      << "dnsmasq is not installed (scripts/install-deps.sh installs dnsmasq-base)";
  Netns origin_ns("og"), site_ns("st");
  ASSERT_TRUE(origin_ns.ok() && site_ns.ok());
  ASSERT_TRUE(
      testing::Link(origin_ns, {"198.18.12.1/24"}, site_ns,
                    {"198.18.12.2/24", "198.18.12.11/24", "198.18.12.12/24", "198.18.12.13/24"}));
  auto origin = Origin(origin_ns, "198.18.12.1:0");
  const std::string pub = origin->data_dir() + "/origin.pub";
  ASSERT_EQ(Publish(origin_ns, *origin, pattern1_), 1u);

  const std::string hosts = work_.File("replicas.hosts");
  ASSERT_TRUE(WriteFileAtomically(hosts,
                                  "198.18.12.11 relays.site.test\n"
                                  "198.18.12.12 relays.site.test\n"
                                  "198.18.12.13 relays.site.test\n")
                  .ok());
  testing::ChildProcess dns(
      With(site_ns.prefix(), {"dnsmasq", "--no-daemon", "--user=root", "--no-resolv", "--no-hosts",
                              "--addn-hosts=" + hosts, "--listen-address=198.18.12.2",
                              "--bind-interfaces", "--pid-file=" + work_.File("dnsmasq.pid")}));
  ASSERT_TRUE(site_ns.SetResolvConf("nameserver 198.18.12.2\n"));
  ASSERT_TRUE(WaitFor([&] {
    return testing::RunCommand(With(site_ns.prefix(), {"getent", "ahostsv4", "relays.site.test"}),
                               &out) == 0;
  })) << dns.Output();

  std::vector<std::unique_ptr<Daemon>> replicas;
  for (int i = 1; i <= 3; ++i) {
    replicas.push_back(std::make_unique<Daemon>(
        "sigrelay-relay", work_.File(absl::StrCat("replica-", i)),
        std::vector<std::string>{"--upstream", origin->address(), "--origin-pubkey", pub,
                                 "--max-backoff", "1s"},
        std::vector<std::string>{absl::StrCat("198.18.12.1", i, ":7443")}, site_ns.prefix()));
    ASSERT_FALSE(replicas.back()->address().empty()) << replicas.back()->output();
  }
  for (auto& r : replicas) {
    ASSERT_TRUE(WaitFor([&] { return Serves(site_ns, r->address(), 1); })) << r->output();
  }
  // 300 agents on the name, each with its own channel, staying for version 3.
  testing::ChildProcess agents(
      With(site_ns.prefix(),
           {testing::BinDir() + "/sigrelay-agent-sim", "--server", "relays.site.test:7443",
            "--agents", "300", "--connections", "per-agent", "--origin-pubkey", pub, "--start",
            "none", "--until", "virus=3", "--max-backoff", "2s", "--timeout", "120s", "--json"}));
  auto watchers = [&](const Daemon& r) {
    const std::string st = RelayStatus(site_ns, r);
    const size_t at = st.find("\"watchers\":");
    return at == std::string::npos ? 0 : std::atoi(st.c_str() + at + 11);
  };
  std::vector<int> share(3, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < 3; ++i) share[i] = watchers(*replicas[i]);
        return share[0] + share[1] + share[2] == 300;
      },
      absl::Seconds(30) * testing::kSanitizerSlowdown))
      << share[0] << " + " << share[1] << " + " << share[2] << "\n"
      << agents.Output();
  std::cerr << "watchers per replica: " << share[0] << ", " << share[1] << ", " << share[2] << "\n";
  // Measured 116/87/97 and 132/80/88 (before channels connected at
  // creation: 237/41/22, once 300/0/0; with pick_first one replica got
  // none). How even it is depends on the connections being up before the
  // agents' first calls: under the sanitizers, with a loaded machine,
  // 273/3/24 was seen, so there only the take-over below is checked.
  if (testing::kSanitizerSlowdown == 1) {
    for (int i = 0; i < 3; ++i) EXPECT_GE(share[i], 10) << "replica " << i + 1 << "'s share";
  }
  // One replica dies; the next publish still reaches all 300.
  replicas[0]->Stop(SIGKILL);
  ASSERT_EQ(Publish(origin_ns, *origin, pattern2_), 3u);
  ASSERT_EQ(agents.Wait(), 0) << agents.Output();
  EXPECT_THAT(agents.Output(), HasSubstr("\"converged\":300"));
  dns.Kill(SIGTERM);
  dns.Wait();
}

// An air-gapped site: a relay and its agents in a namespace with no route
// anywhere. Media exported outside (`sigrelayctl export`, the whole tree,
// then only the incrementals) and imported inside (`sigrelayctl import`)
// bring it current, and its agents follow each time.
TEST_F(TopologyTest, AnAirGappedSiteIsBroughtCurrentByExportAndImport) {
  Netns site_ns("gap");
  ASSERT_TRUE(site_ns.ok());
  Daemon origin("sigrelay-origin", work_.File("origin"), {});
  ASSERT_FALSE(origin.address().empty()) << origin.output();
  const std::string pub = origin.data_dir() + "/origin.pub";
  std::string out;
  ASSERT_EQ(testing::Publish(origin, "virus", pattern1_), 1u);
  const std::string media = work_.File("media"), media2 = work_.File("media2");
  ASSERT_EQ(
      testing::Ctl({"export", "--server", origin.address(), "--to", media, "--origin-pubkey", pub},
                   &out),
      0)
      << out;
  // The site's relay names the origin, which it cannot reach from there.
  auto relay = Relay(site_ns, {"127.0.0.1:0"}, origin.address(), pub);
  ASSERT_FALSE(relay->address().empty());
  auto agents = [&](uint32_t version) {
    std::string o;
    testing::RunCommand(
        With(site_ns.prefix(),
             {testing::BinDir() + "/sigrelay-agent-sim", "--server", relay->address(), "--agents",
              "20", "--start", "none", "--origin-pubkey", pub, "--until",
              absl::StrCat("virus=", version), "--json", "--timeout", "30s"}),
        &o);
    return o;
  };
  ASSERT_EQ(Ctl(site_ns, {"--data-dir", relay->data_dir(), "import", "--from", media}, &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("virus 0 -> 1 by full"));
  EXPECT_THAT(agents(1), HasSubstr("\"converged\":20"));
  ASSERT_EQ(testing::Publish(origin, "virus", pattern2_), 3u);
  ASSERT_EQ(testing::Ctl({"export", "--server", origin.address(), "--to", media2, "--origin-pubkey",
                          pub, "--incrementals-only"},
                         &out),
            0)
      << out;
  ASSERT_EQ(Ctl(site_ns, {"--data-dir", relay->data_dir(), "import", "--from", media2}, &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("virus 1 -> 3 by incremental"));
  EXPECT_THAT(agents(3), HasSubstr("\"converged\":20"));
  EXPECT_THAT(RelayStatus(site_ns, *relay), HasSubstr("unreachable")) << "no route out";
  // The second medium carried the incremental alone, not the new file.
  EXPECT_EQ(
      testing::RunCommand({"sh", "-c", "test $(ls " + media2 + "/blobs/sha256 | wc -l) = 1"}, &out),
      0);
  // Exporting into the same directory again writes only what is new.
  for (const char* want : {"2 files written", "0 files written"}) {
    ASSERT_EQ(
        testing::Ctl(
            {"export", "--server", origin.address(), "--to", media, "--origin-pubkey", pub}, &out),
        0)
        << out;
    EXPECT_THAT(out, HasSubstr(want));
  }
}

}  // namespace
}  // namespace sigrelay
