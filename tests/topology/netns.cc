#include "tests/topology/netns.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "tests/testutil/testutil.h"

namespace sigrelay::testing {
namespace {

std::atomic<int> counter{0};

bool Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  return RunCommand(argv, &out) == 0;
}

}  // namespace

std::string NetnsUnavailableReason() {
  if (geteuid() != 0) return "network namespaces need root (run as root, as CI does)";
  std::string out;
  if (RunCommand({"ip", "-V"}, &out) != 0) return "iproute2's ip is not installed";
  return "";
}

Netns::Netns(const std::string& tag) {
  name_ = absl::StrCat("sr-", tag, "-", getpid(), "-", counter++);
  ok_ = Ip({"netns", "add", name_}) && Ip({"-n", name_, "link", "set", "lo", "up"});
}

Netns::~Netns() {
  Ip({"netns", "del", name_});
  if (hosts_) {
    std::error_code ec;
    std::filesystem::remove_all("/etc/netns/" + name_, ec);
  }
}

bool Netns::SetHosts(const std::string& content) {
  hosts_ = true;
  return MakeDirs("/etc/netns/" + name_).ok() &&
         WriteFileAtomically("/etc/netns/" + name_ + "/hosts", content).ok();
}

bool Netns::SetResolvConf(const std::string& content) {
  hosts_ = true;
  return MakeDirs("/etc/netns/" + name_).ok() &&
         WriteFileAtomically("/etc/netns/" + name_ + "/resolv.conf", content).ok();
}

bool Link(const Netns& a, const std::vector<std::string>& a_addrs, const Netns& b,
          const std::vector<std::string>& b_addrs) {
  int n = counter++;
  std::string ea = absl::StrCat("v", n, "a"), eb = absl::StrCat("v", n, "b");
  if (!Ip({"link", "add", ea, "netns", a.name(), "type", "veth", "peer", "name", eb, "netns",
           b.name()})) {
    return false;
  }
  auto setup = [](const Netns& ns, const std::string& dev, const std::vector<std::string>& addrs) {
    for (const std::string& addr : addrs) {
      std::vector<std::string> args = {"-n", ns.name(), "addr", "add", addr, "dev", dev};
      if (addr.find(':') != std::string::npos) args.push_back("nodad");
      if (!Ip(args)) return false;
    }
    return Ip({"-n", ns.name(), "link", "set", dev, "up"});
  };
  return setup(a, ea, a_addrs) && setup(b, eb, b_addrs);
}

}  // namespace sigrelay::testing
