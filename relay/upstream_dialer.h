// How a relay reaches its upstreams: one gRPC channel per upstream. The
// relay's NetworkDialer resolves names with c-ares to addresses this node
// can route and tunnels through an HTTP CONNECT proxy when one is set; tests
// hand UpstreamSync a dialer whose channels lead to in-process upstreams.
//
//   NetworkDialer dialer({.upstreams = {"origin.example:7443"}});
//   absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = dialer.Channel(0);
#ifndef SIGRELAY_RELAY_UPSTREAM_DIALER_H_
#define SIGRELAY_RELAY_UPSTREAM_DIALER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/base/transport.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

// Thread-safe.
class UpstreamDialer {
 public:
  virtual ~UpstreamDialer() = default;
  // The upstreams, in the order they are tried; fixed for the dialer's life.
  virtual const std::vector<std::string>& upstreams() const = 0;
  // A channel to upstream `i`, or why it cannot be reached.
  virtual absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(size_t i) = 0;
  // The proxy `upstream` is reached through, or "" for none.
  virtual std::string ProxyFor(const std::string& upstream) const = 0;
};

struct NetworkDialerOptions {
  std::vector<std::string> upstreams;
  std::string dns_server;  // "" = the system's
  // http://[user:password@]HOST:PORT: upstream traffic goes through this
  // HTTP CONNECT proxy, except to hosts in `no_proxy`. SetProxy changes it.
  std::string proxy;
  std::vector<std::string> no_proxy;
  absl::Duration resolve_timeout = absl::Seconds(10);
  // TLS to the upstreams (tls.ca set); their certificates must name the host
  // as written in `upstreams`.
  TlsFiles tls;
};

class NetworkDialer final : public UpstreamDialer {
 public:
  explicit NetworkDialer(NetworkDialerOptions options);

  const std::vector<std::string>& upstreams() const override { return options_.upstreams; }
  // Through the proxy when one applies, else to the addresses of the
  // upstream's name that this node can route (resolved again at each call;
  // the channel is kept while they stay the same).
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(size_t i) override;
  std::string ProxyFor(const std::string& upstream) const override;

  // Replaces the proxy settings (checked with CheckProxyUrl; "" for none);
  // the next connection to each upstream uses them.
  absl::Status SetProxy(const std::string& proxy, const std::string& no_proxy);
  // Sets status->proxy and no_proxy, never showing a password.
  void FillStatus(v1::RelayStatus* status) const;

 private:
  const NetworkDialerOptions options_;
  mutable absl::Mutex mu_;
  std::string proxy_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> no_proxy_ ABSL_GUARDED_BY(mu_);
  // Per upstream: the gRPC target its channel was made for, and the channel.
  std::vector<std::pair<std::string, std::shared_ptr<grpc::Channel>>> channels_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_UPSTREAM_DIALER_H_
