#include "core/base/transport.h"

#include <arpa/inet.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/server_interceptor.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/base/connection_guard.h"
#include "core/base/file_util.h"

namespace sigrelay {

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& addr) {
  size_t colon = addr.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(addr.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", addr, "\" is not HOST:PORT (use [v6addr]:PORT for IPv6)"));
  }
  std::string host = addr.substr(0, colon);
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::InvalidArgumentError(
        absl::StrCat("IPv6 address \"", addr, "\" needs brackets: [", host, "]:", port));
  }
  return std::make_pair(host, port);
}

namespace {

std::string ReadOrEmpty(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  return text.ok() ? *text : "";  // CheckTlsFiles told the operator at start
}

// Served TLS re-reads its files when they change, so a renewed certificate
// is taken without a restart.
constexpr unsigned kTlsRefreshSeconds = 5;

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsFiles& tls) {
  if (tls.cert.empty()) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key, tls.cert, tls.ca, kTlsRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};

// The PEM objects in `path`, checked: certificates (at least one) or a key.
absl::Status CheckPem(const std::string& path, const std::string& flag, bool key, X509** first_cert,
                      EVP_PKEY** pkey) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": ", text.status().message()));
  }
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  if (key) {
    *pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (*pkey == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", path, " holds no PEM private key (unencrypted)"));
    }
    return absl::OkStatus();
  }
  X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " holds no PEM certificate"));
  }
  if (first_cert != nullptr) {
    *first_cert = cert;
  } else {
    X509_free(cert);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTlsFiles(const TlsFiles& files, bool server, const std::string& prefix) {
  if (!files.enabled()) return absl::OkStatus();
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "-cert and ", prefix, "-key go together: give both or neither"));
  }
  if (server && files.cert.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "-client-ca needs ", prefix, "-cert and ", prefix, "-key (the server's own)"));
  }
  if (!server && files.ca.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "-cert needs ", prefix, "-ca: the CA that signed the server's certificate"));
  }
  if (!files.ca.empty()) {
    const std::string flag = server ? prefix + "-client-ca" : prefix + "-ca";
    if (absl::Status s = CheckPem(files.ca, flag, false, nullptr, nullptr); !s.ok()) return s;
  }
  if (files.cert.empty()) return absl::OkStatus();
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  absl::Status s = CheckPem(files.cert, prefix + "-cert", false, &cert, nullptr);
  if (s.ok()) s = CheckPem(files.key, prefix + "-key", true, nullptr, &key);
  if (s.ok() && X509_check_private_key(cert, key) != 1) {
    s = absl::InvalidArgumentError(absl::StrCat(prefix, "-key ", files.key,
                                                " is not the key of the certificate in ", prefix,
                                                "-cert ", files.cert));
  }
  if (s.ok() && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    s = absl::InvalidArgumentError(
        absl::StrCat(prefix, "-cert ", files.cert, " has expired: renew it"));
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return s;
}

absl::StatusOr<std::string> CertificateIdentityOf(const std::string& cert_path) {
  X509* cert = nullptr;
  if (absl::Status s = CheckPem(cert_path, "--tls-cert", false, &cert, nullptr); !s.ok()) return s;
  std::string identity;
  char cn[256];
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                          static_cast<int>(sizeof cn));
  if (n > 0) {
    identity.assign(cn, static_cast<size_t>(n));
  } else if (auto* names = static_cast<GENERAL_NAMES*>(
                 X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    if (sk_GENERAL_NAME_num(names) > 0) {
      const GENERAL_NAME* first = sk_GENERAL_NAME_value(names, 0);
      const ASN1_STRING* text = first->type == GEN_DNS     ? first->d.dNSName
                                : first->type == GEN_URI   ? first->d.uniformResourceIdentifier
                                : first->type == GEN_EMAIL ? first->d.rfc822Name
                                                           : nullptr;
      if (text != nullptr) {
        identity.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                        static_cast<size_t>(ASN1_STRING_length(text)));
      }
    }
    GENERAL_NAMES_free(names);
  }
  X509_free(cert);
  return identity;
}

void AddClientTlsFlags(FlagParser* flags, TlsFiles* tls, const std::string& prefix) {
  flags->Add(prefix + "-ca", &tls->ca, "FILE",
             "TLS: the CA (PEM) that signed the server's certificate; with it the link is TLS");
  flags->Add(prefix + "-cert", &tls->cert, "FILE",
             "TLS: this client's certificate (PEM), for servers that require one (mutual TLS)");
  flags->Add(prefix + "-key", &tls->key, "FILE", "TLS: the key of --" + prefix + "-cert (PEM)");
}

std::string TlsServerName(const std::string& address) {
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(address);
  std::string host = hp.ok() ? hp->first : address;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

absl::Status ServerLimits::Validate() const {
  if (max_streams_per_connection < 1) {
    return absl::InvalidArgumentError("--max-streams-per-connection must be at least 1");
  }
  if (idle_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--idle-timeout must be at least 1s");
  }
  if (max_connection_age != absl::ZeroDuration() && max_connection_age < absl::Seconds(10)) {
    return absl::InvalidArgumentError("--max-connection-age must be 0s (never) or at least 10s");
  }
  if (memory_quota_bytes < (64ull << 20)) {
    return absl::InvalidArgumentError("--memory-limit must be at least 64MiB");
  }
  return absl::OkStatus();
}

absl::Status CheckChunkSize(uint64_t chunk_size, uint64_t max_file_size) {
  constexpr uint64_t kMinChunk = 4 << 10;
  if (chunk_size < kMinChunk || chunk_size > kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--chunk-size ", chunk_size, " is outside 4KiB..", kMaxChunkBytes,
        " bytes (4MiB less 1KiB of framing): a Fetch message carries one chunk and must fit "
        "a stock gRPC client's 4 MiB receive limit"));
  }
  // 32 digest bytes and 2 of framing per chunk, in the first message.
  const uint64_t chunks = (max_file_size + chunk_size - 1) / chunk_size;
  if (chunks * 34 + kFramingBytes > kMaxMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--chunk-size ", chunk_size, " splits a file of --max-file-size ",
                     max_file_size, " bytes into ", chunks,
                     " chunks, whose digests do not fit one Fetch header; "
                     "raise --chunk-size or lower --max-file-size"));
  }
  return absl::OkStatus();
}

namespace {

// "127.0.0.1:7443", "[::1]:7443", "ipv4:10.0.0.1:7443": one IP address, not
// a name nor a list.
bool IsSingleAddress(const std::string& target) {
  std::string t = target;
  for (const char* scheme : {"ipv4:", "ipv6:"}) {
    if (t.rfind(scheme, 0) == 0) t = t.substr(strlen(scheme));
  }
  if (t.find(',') != std::string::npos) return false;
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(t);
  if (!hp.ok()) return false;
  std::string host = hp->first;
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  const int initial_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.initial_reconnect_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, initial_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.max_reconnect_backoff)));
  if (options.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A name (or a list of addresses): every address it resolves to, calls
  // spread over the ready ones, so the replicas behind one name share the
  // agents and a dead one's go to the others with no operator action. One
  // address keeps pick_first (after a failure its next call connects at
  // once instead of waiting out round_robin's backoff).
  const bool replicas = !IsSingleAddress(target);
  if (replicas) args.SetLoadBalancingPolicyName("round_robin");
  if (options.disable_bdp_probe) args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // The stream window a client offers from the first byte: a push or a
  // chunk of up to this much is sent in one go, with no WINDOW_UPDATE
  // round trip (HTTP/2's default 64 KiB split a 76 KB push in two).
  if (!options.disable_bdp_probe)
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kMaxMessageBytes);
  if (options.proxy.empty()) {
    args.SetInt("grpc.enable_http_proxy", 0);  // never an env http_proxy behind our back
  } else {
    // gRPC sends CONNECT (with Basic credentials from the URL) and tunnels
    // HTTP/2 through it; the proxy resolves the target.
    args.SetString("grpc.http_proxy", options.proxy);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.tls.ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadOrEmpty(options.tls.ca);
    if (!options.tls.cert.empty()) {
      ssl.pem_cert_chain = ReadOrEmpty(options.tls.cert);
      ssl.pem_private_key = ReadOrEmpty(options.tls.key);
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(target, credentials, args);
  // Replicas: connect to every address now, not at the first call. A Watch
  // stream stays on the replica it starts on for hours, and started before
  // the others are ready it would land on the first to connect every time.
  if (replicas) channel->GetState(/*try_to_connect=*/true);
  return channel;
}

namespace {

// Creates no interceptor: it only tells the connection guard of each call.
class CallGuardFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    grpc::ServerContextBase* ctx = info->server_context();
    if (ctx != nullptr) {
      const std::string peer = ctx->peer();
      if (!NoteCall(peer)) ctx->TryCancel();
      if (ctx->IsCancelled()) NoteCancel(peer);
    }
    return nullptr;
  }
};

}  // namespace

absl::StatusOr<RunningServer> StartServer(const std::vector<std::string>& listen,
                                          const std::vector<grpc::Service*>& services,
                                          const std::string& listening_file, const TlsFiles& tls,
                                          const ServerLimits& limits) {
  if (listen.empty()) {
    return absl::InvalidArgumentError("no --listen address given");
  }
  grpc::ServerBuilder builder;
  // Two daemons on one port would split clients silently; refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  auto ms = [](absl::Duration d) {
    return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
  };
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(limits.max_streams_per_connection));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(limits.idle_timeout));
  if (limits.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, ms(limits.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               ms(limits.max_connection_age_grace));
  }
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, ms(limits.handshake_timeout));
  // Keepalive: the server pings quiet connections so dead agents' Watch
  // streams end, and refuses clients that ping it more than every 5 s.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  if (!limits.bdp_probe) builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Every call, before it reaches a handler (one a client cancels at once
  // never does), passes the connection guard: a rapid reset is seen as it
  // starts.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> guards;
  guards.push_back(std::make_unique<CallGuardFactory>());
  builder.experimental().SetInterceptorCreators(std::move(guards));
  grpc::ResourceQuota quota("sigrelay-server");
  quota.Resize(static_cast<size_t>(limits.memory_quota_bytes));
  builder.SetResourceQuota(quota);
  std::vector<std::unique_ptr<int>> ports;
  for (const std::string& addr : listen) {
    ports.push_back(std::make_unique<int>(0));
    if (absl::StartsWith(addr, "unix:")) {  // a socket file: no port
      builder.AddListeningPort(addr, ServerCredentials(tls), ports.back().get());
      continue;
    }
    absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(addr);
    if (!hp.ok()) return hp.status();
    // "[::]:P" already takes IPv4 too (a dual-stack socket); binding
    // "0.0.0.0:P" beside it would collide, so it rides on the IPv6 one.
    if (hp->first == "0.0.0.0" && hp->second != 0 &&
        std::find(listen.begin(), listen.end(), absl::StrCat("[::]:", hp->second)) !=
            listen.end()) {
      *ports.back() = hp->second;
      continue;
    }
    builder.AddListeningPort(addr, ServerCredentials(tls), ports.back().get());
  }
  for (grpc::Service* s : services) builder.RegisterService(s);
  RunningServer out;
  out.server = builder.BuildAndStart();
  std::vector<std::string> failed;
  for (size_t i = 0; i < listen.size(); ++i) {
    if (out.server == nullptr || *ports[i] == 0) {
      failed.push_back(listen[i]);
      continue;
    }
    if (absl::StartsWith(listen[i], "unix:")) {
      out.bound.push_back(listen[i]);
      continue;
    }
    out.bound.push_back(absl::StrCat(SplitHostPort(listen[i])->first, ":", *ports[i]));
  }
  if (!failed.empty()) {
    if (out.server) out.server->Shutdown();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", absl::StrJoin(failed, ", "),
                     ": the port is in use or the address is not on this host"));
  }
  if (!listening_file.empty()) {
    absl::Status s = WriteFileAtomically(listening_file, absl::StrJoin(out.bound, "\n") + "\n");
    if (!s.ok()) return s;
  }
  return out;
}

bool ListenerAnswers(const std::string& address, bool tls, absl::Duration timeout) {
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(address);
  if (!hp.ok()) return false;
  std::string host = hp->first;
  if (absl::StartsWith(host, "[")) host = host.substr(1, host.size() - 2);
  // A wildcard listener is probed on loopback of its family.
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), absl::StrCat(hp->second).c_str(), &hints, &found) != 0) {
    return false;
  }
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool answered = false;
  // Every step below (connect, write, read) gives up after `timeout`.
  const timeval limit = absl::ToTimeval(timeout);
  if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) == 0 &&
      connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    if (!tls) {
      static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
      char byte;
      answered = write(fd, kPreface, sizeof kPreface - 1) == sizeof kPreface - 1 &&
                 read(fd, &byte, 1) == 1;
    } else {
      SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
      SSL* ssl = ctx ? SSL_new(ctx) : nullptr;
      if (ssl != nullptr && SSL_set_fd(ssl, fd) == 1) {
        // Sends the ClientHello and reads the answer; whether the handshake
        // then succeeds (certificates) does not matter, only that bytes came.
        SSL_connect(ssl);
        answered = BIO_number_read(SSL_get_rbio(ssl)) > 0;
      }
      SSL_free(ssl);
      SSL_CTX_free(ctx);
    }
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(found);
  return answered;
}

std::string ProxyDisplay(const std::string& proxy) {
  std::string rest = proxy;
  size_t scheme = rest.find("://");
  if (scheme != std::string::npos) rest = rest.substr(scheme + 3);
  size_t at = rest.rfind('@');
  if (at != std::string::npos) rest = rest.substr(at + 1);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  return rest;
}

absl::Status CheckProxyUrl(const std::string& proxy) {
  if (proxy.empty()) return absl::OkStatus();
  return ParseProxyUrl(proxy).status();
}

absl::StatusOr<ProxyUrl> ParseProxyUrl(const std::string& proxy) {
  if (proxy.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(
        "the proxy must look like http://[user:password@]HOST:PORT (an HTTP CONNECT proxy)");
  }
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(ProxyDisplay(proxy));
  if (!hp.ok() || hp->second == 0 || hp->first.empty()) {
    return absl::InvalidArgumentError(
        "the proxy needs HOST:PORT after http:// (and an optional user:password@)");
  }
  ProxyUrl url;
  url.host = std::string(absl::StripSuffix(absl::StripPrefix(hp->first, "["), "]"));
  url.port = hp->second;
  absl::string_view creds = proxy;
  creds.remove_prefix(strlen("http://"));
  if (const size_t at = creds.rfind('@'); at != absl::string_view::npos) {
    creds = creds.substr(0, at);
    const size_t colon = creds.find(':');
    url.user = std::string(creds.substr(0, colon));
    if (colon != absl::string_view::npos) url.password = std::string(creds.substr(colon + 1));
  }
  return url;
}

std::optional<absl::Status> ProxyRefusal(absl::string_view message, const std::string& proxy) {
  const size_t http = message.find("HTTP proxy returned response code ");
  if (http == absl::string_view::npos || proxy.empty()) return std::nullopt;
  const std::string status(message.substr(http + 34, 3));
  // 407 is the standard answer; some proxies (tinyproxy 1.11) send 401.
  const bool auth = status == "407" || status == "401";
  return absl::Status(
      auth ? absl::StatusCode::kPermissionDenied : absl::StatusCode::kUnavailable,
      absl::StrCat("proxy ", ProxyDisplay(proxy), " answered CONNECT with HTTP ", status,
                   auth ? " (Proxy Authentication Required): check the user and password in "
                          "--proxy"
                        : ": the proxy refused to reach the server"));
}

}  // namespace sigrelay
