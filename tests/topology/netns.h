// Network segments for topology tests: network namespaces joined by veth
// pairs (iproute2), each uniquely named and deleted on destruction. Only
// 198.18.0.0/15 and fd00::/8 addresses inside the namespaces are used.
#ifndef SIGRELAY_TESTS_TOPOLOGY_NETNS_H_
#define SIGRELAY_TESTS_TOPOLOGY_NETNS_H_

#include <cstdlib>
#include <string>
#include <vector>

namespace sigrelay::testing {

// Empty when namespaces can be made here; else why not (not root, no ip).
std::string NetnsUnavailableReason();

// In a test's SetUp: skips the test, saying why, when namespaces cannot be
// made here; fails it instead in CI (CI=true), where they must run.
#define SIGRELAY_REQUIRE_NETNS()                                                  \
  do {                                                                            \
    const std::string why = ::sigrelay::testing::NetnsUnavailableReason();        \
    if (!why.empty()) {                                                           \
      const char* ci = std::getenv("CI");                                         \
      if (ci != nullptr && std::string(ci) == "true") FAIL() << "in CI: " << why; \
      GTEST_SKIP() << why;                                                        \
    }                                                                             \
  } while (0)

class Netns {
 public:
  explicit Netns(const std::string& tag);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  const std::string& name() const { return name_; }
  bool ok() const { return ok_; }
  // argv prefix that runs a command inside: ip netns exec NAME.
  std::vector<std::string> prefix() const { return {"ip", "netns", "exec", name_}; }
  // Writes /etc/netns/NAME/hosts, which `ip netns exec` mounts over
  // /etc/hosts inside.
  bool SetHosts(const std::string& content);
  // Writes /etc/netns/NAME/resolv.conf, likewise mounted over
  // /etc/resolv.conf (gRPC's c-ares resolver reads it).
  bool SetResolvConf(const std::string& content);

 private:
  std::string name_;
  bool ok_ = false;
  bool hosts_ = false;  // /etc/netns/NAME was made (hosts, resolv.conf)
};

// Joins `a` and `b` with a veth pair and gives each end its addresses
// (CIDR; IPv6 ones are added nodad so they work at once).
bool Link(const Netns& a, const std::vector<std::string>& a_addrs, const Netns& b,
          const std::vector<std::string>& b_addrs);

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TOPOLOGY_NETNS_H_
