#include "relay/upstream_dialer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/base/transport.h"
#include "core/base/upstream_resolver.h"

namespace sigrelay {

NetworkDialer::NetworkDialer(NetworkDialerOptions options) : options_(std::move(options)) {
  absl::MutexLock lock(&mu_);
  proxy_ = options_.proxy;
  no_proxy_ = options_.no_proxy;
  channels_.resize(options_.upstreams.size());
}

std::string NetworkDialer::ProxyFor(const std::string& upstream) const {
  absl::MutexLock lock(&mu_);
  if (proxy_.empty()) return "";
  // A tree URL's host: "https://mirror.example:8443/sigrelay/" -> "mirror.example".
  std::string hostport = upstream;
  if (const size_t scheme = hostport.find("://"); scheme != std::string::npos) {
    hostport = hostport.substr(scheme + 3);
    hostport = hostport.substr(0, hostport.find('/'));
    if (hostport.find(':') == std::string::npos || hostport.back() == ']') hostport += ":0";
  }
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(hostport);
  std::string host = hp.ok() ? hp->first : upstream;
  for (const std::string& entry : no_proxy_) {
    if (entry == "*" || entry == host) return "";
    // ".example.org" and "example.org" both cover "a.example.org".
    std::string suffix = entry.front() == '.' ? entry : "." + entry;
    if (host.size() > suffix.size() &&
        host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return "";
    }
  }
  return proxy_;
}

absl::Status NetworkDialer::SetProxy(const std::string& proxy, const std::string& no_proxy) {
  if (absl::Status s = CheckProxyUrl(proxy); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  proxy_ = proxy;
  no_proxy_ = absl::StrSplit(no_proxy, ',', absl::SkipEmpty());
  for (auto& [made_for, channel] : channels_) channel = nullptr;  // remade on next use
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> NetworkDialer::Channel(size_t i) {
  const std::string& upstream = options_.upstreams[i];
  ChannelOptions channel_options;
  channel_options.tls = options_.tls;
  channel_options.tls_server_name = TlsServerName(upstream);
  std::string target;
  channel_options.proxy = ProxyFor(upstream);
  if (!channel_options.proxy.empty()) {
    target = upstream;  // the proxy resolves and reaches it
  } else {
    absl::StatusOr<UpstreamTarget> resolved =
        ResolveUpstream(upstream, options_.dns_server, options_.resolve_timeout);
    if (!resolved.ok()) return resolved.status();
    target = resolved->grpc_target;
  }
  absl::MutexLock lock(&mu_);
  auto& [made_for, channel] = channels_[i];
  if (channel == nullptr || made_for != target) {
    made_for = target;
    channel = MakeChannel(target, channel_options);
  }
  return channel;
}

void NetworkDialer::FillStatus(v1::RelayStatus* status) const {
  absl::MutexLock lock(&mu_);
  if (!proxy_.empty()) {
    status->set_proxy(absl::StrCat(
        ProxyDisplay(proxy_), proxy_.find('@') != std::string::npos ? " (with credentials)" : ""));
  }
  status->set_no_proxy(absl::StrJoin(no_proxy_, ","));
}

}  // namespace sigrelay
