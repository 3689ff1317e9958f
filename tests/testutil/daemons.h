// Running the real sigrelay binaries in tests: a daemon in its own data dir
// (started, waited for, stopped, restarted), sigrelayctl, and small raw gRPC
// probes of what a node serves.
#ifndef SIGRELAY_TESTS_TESTUTIL_DAEMONS_H_
#define SIGRELAY_TESTS_TESTUTIL_DAEMONS_H_

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "sigrelay/v1/admin.pb.h"
#include "tests/testutil/testutil.h"

namespace sigrelay::testing {

class Daemon {
 public:
  // Starts BinDir()/binary with `args` plus --data-dir `data_dir` and a
  // --listen for each of `listen`, behind `prefix` (e.g. "ip netns exec NS"),
  // and waits until it listens. address() is empty if it did not start (see
  // output()).
  Daemon(std::string binary, std::string data_dir, std::vector<std::string> args,
         std::vector<std::string> listen = {"127.0.0.1:0"}, std::vector<std::string> prefix = {});
  ~Daemon();

  const std::string& address() const { return address_; }
  // Every bound address, in --listen order.
  std::vector<std::string> addresses() const;
  const std::string& data_dir() const { return data_dir_; }
  std::string token_file() const { return data_dir_ + "/admin.token"; }
  // Where its AdminService listens (DATA_DIR/admin.listening); "" before.
  std::string admin_address() const;
  // Where its --console listens (DATA_DIR/console.listening); "" without.
  std::string console_address() const;
  // Its admin token (the contents of token_file()).
  std::string token() const;
  std::string output() const { return process_ ? process_->Output() : ""; }
  bool running() { return process_ && process_->Running(); }

  // Sends `signal` and waits for the exit; returns the exit status.
  int Stop(int signal = SIGTERM);
  // Starts again with the same arguments (and, when `same_port`, the port it
  // had), waiting until it listens.
  void Restart(bool same_port = false);
  ChildProcess* process() { return process_.get(); }

 private:
  void Launch(const std::vector<std::string>& extra);

  std::string binary_;
  std::string data_dir_;
  std::vector<std::string> args_;
  std::vector<std::string> listen_;
  std::vector<std::string> prefix_;
  std::unique_ptr<ChildProcess> process_;
  std::string address_;
};

// Runs sigrelayctl with `args`; returns its exit status, output in *out.
int Ctl(const std::vector<std::string>& args, std::string* out);

// Writes a generated pattern file of `records` records, or with `from` the
// next version of it (`churn` percent), and returns its path.
std::string GenPattern(const std::string& dir, const std::string& name, int records, int seed,
                       const std::string& from = "", double churn = 0.5);

// Publishes `file` as `component` at `origin` (sigrelayctl publish with
// `extra` flags); returns the version or 0.
uint32_t Publish(const Daemon& origin, const std::string& component, const std::string& file,
                 const std::vector<std::string>& extra = {});

// The version of `component` that `addr` serves now (0: none or unreachable).
uint32_t ServedVersion(const std::string& addr, const std::string& component);

// The manifest serial `addr` serves (0: none or unreachable).
uint64_t ServedSerial(const std::string& addr);

// The full newest file of `component` as `addr` serves it ("" on error).
std::string FetchFull(const std::string& addr, const std::string& component);

// The node's AdminService GetStatus, with its admin token.
// Over TLS verified with `tls_ca` when the node serves TLS.
v1::GetStatusResponse AdminStatus(const Daemon& node, const std::string& tls_ca = "");

// A loopback port nothing listens on right now.
int UnusedPort();

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_DAEMONS_H_
