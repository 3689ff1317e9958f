// A hostile upstream for tests (TUF's slow-retrieval attack): a gRPC
// UpdateService on a free loopback port that serves an honest upstream's
// real signed manifest at once, answers HTTP/2 pings promptly (gRPC does),
// and sends every Fetch body's first `fast_bytes` at once and then one byte
// per `interval`, each byte its own message, for as long as the client
// stays. Watch streams get the manifest and are then held open.
#ifndef SIGRELAY_TESTS_TESTUTIL_DRIBBLING_UPSTREAM_H_
#define SIGRELAY_TESTS_TESTUTIL_DRIBBLING_UPSTREAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace grpc {
class Server;
}

namespace sigrelay::testing {

class DribblingUpstream {
 public:
  DribblingUpstream(const std::string& honest, uint64_t fast_bytes,
                    absl::Duration interval = absl::Seconds(1));
  ~DribblingUpstream();

  std::string address() const { return address_; }
  // Fetch calls now sending their body a byte at a time.
  int dribbling() const { return dribbling_.load(); }
  // Fetch calls served, and body bytes sent over all of them.
  uint64_t fetches() const { return fetches_.load(); }
  uint64_t body_bytes() const { return body_bytes_.load(); }

  class Service;

 private:
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::atomic<int> dribbling_{0};
  std::atomic<uint64_t> fetches_{0};
  std::atomic<uint64_t> body_bytes_{0};
};

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_DRIBBLING_UPSTREAM_H_
