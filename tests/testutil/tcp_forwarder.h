// A TCP forwarder for tests: listens on a free loopback port, forwards each
// connection to a target, counts the bytes that flow back from the target,
// and can throttle them (fault injection for "kill in the middle of a
// download"). Threads per connection: it is a test tool.
#ifndef SIGRELAY_TESTS_TESTUTIL_TCP_FORWARDER_H_
#define SIGRELAY_TESTS_TESTUTIL_TCP_FORWARDER_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sigrelay::testing {

class TcpForwarder {
 public:
  // `target` is "127.0.0.1:PORT". `bytes_per_second` 0: no throttle.
  TcpForwarder(std::string target, uint64_t bytes_per_second = 0);
  ~TcpForwarder();

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Bytes sent from the target back to clients since start.
  uint64_t bytes_from_target() const { return from_target_.load(); }

  // Holds back every byte from the target past `mark` (counted as above)
  // until Resume(): a test kills its client at an exact point of a transfer.
  void PauseAt(uint64_t mark);
  // Every byte that crossed, both ways, in arrival order (the first 64 MiB):
  // what someone on the path would see.
  std::string Recorded();
  bool paused() const { return paused_.load(); }
  void Resume();

 private:
  void AcceptLoop();
  void Pump(int from, int to, bool count);

  std::string target_host_;
  int target_port_ = 0;
  uint64_t rate_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> from_target_{0};
  std::atomic<uint64_t> pause_at_{UINT64_MAX};
  std::atomic<bool> paused_{false};
  std::mutex mu_;
  std::string recorded_;  // guarded by mu_
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_TCP_FORWARDER_H_
