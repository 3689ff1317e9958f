#include "tests/testutil/tcp_forwarder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

namespace sigrelay::testing {

TcpForwarder::TcpForwarder(std::string target, uint64_t bytes_per_second)
    : rate_(bytes_per_second) {
  size_t colon = target.rfind(':');
  target_host_ = target.substr(0, colon);
  target_port_ = std::atoi(target.c_str() + colon + 1);
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 64) != 0) {
    std::abort();
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TcpForwarder::~TcpForwarder() {
  stopping_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  close(listen_fd_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }
  for (std::thread& t : threads_) t.join();
  for (int fd : fds_) close(fd);
}

void TcpForwarder::PauseAt(uint64_t mark) {
  paused_ = false;
  pause_at_ = mark;
}

void TcpForwarder::Resume() {
  pause_at_ = UINT64_MAX;
  paused_ = false;
}

void TcpForwarder::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(target_port_));
    inet_pton(AF_INET, target_host_.c_str(), &addr.sin_addr);
    if (connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(client);
      close(upstream);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(client);
    fds_.push_back(upstream);
    threads_.emplace_back([this, client, upstream] { Pump(client, upstream, false); });
    threads_.emplace_back([this, client, upstream] { Pump(upstream, client, true); });
  }
}

std::string TcpForwarder::Recorded() {
  std::lock_guard<std::mutex> lock(mu_);
  return recorded_;
}

void TcpForwarder::Pump(int from, int to, bool count) {
  char buf[16384];
  auto start = std::chrono::steady_clock::now();
  uint64_t sent = 0;
  for (;;) {
    ssize_t n =
        read(from, buf, rate_ > 0 ? std::min<size_t>(sizeof buf, rate_ / 50 + 1) : sizeof buf);
    if (n <= 0) break;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (recorded_.size() < (64u << 20)) recorded_.append(buf, static_cast<size_t>(n));
    }
    if (count) {
      // Past the pause mark: hold these bytes back until resumed.
      while (from_target_ + static_cast<uint64_t>(n) > pause_at_ && !stopping_) {
        paused_ = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      from_target_ += static_cast<uint64_t>(n);
    }
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) break;
      off += w;
    }
    if (off < n) break;
    sent += static_cast<uint64_t>(n);
    if (rate_ > 0) {
      // Throttle: hold the pace of `rate_` bytes per second.
      auto due = start + std::chrono::microseconds(sent * 1000000 / rate_);
      std::this_thread::sleep_until(due);
    }
  }
  shutdown(to, SHUT_WR);
  shutdown(from, SHUT_RD);
}

}  // namespace sigrelay::testing
