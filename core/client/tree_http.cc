#include "core/client/tree_http.h"

#include <httplib.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/base/transport.h"

namespace sigrelay {
namespace {

// The tree at http(s)://HOST[:PORT]/PATH/: GET for the manifest, GET with
// Range from the offset for a blob. Every bound (silence, minimum rate,
// stop) is the TransferWatch's, which ends a request by stopping the client.
class HttpTreeSource final : public UpdateSource {
 public:
  HttpTreeSource(std::string url, std::string origin, std::string prefix, TreeSourceOptions options)
      : url_(std::move(url)),
        origin_(std::move(origin)),
        prefix_(std::move(prefix)),
        options_(std::move(options)) {}
  std::string Describe() const override { return url_; }

 protected:
  absl::Status ReadManifest(TransferControl* control, ByteSink* out) override {
    std::string format;
    StringSink to_format(&format);
    if (absl::Status s = Get(kTreeFormatFile, 0, control, &to_format); !s.ok()) {
      if (absl::IsNotFound(s)) {
        return absl::NotFoundError(
            absl::StrCat(url_, " holds no sigrelay tree (no ", kTreeFormatFile,
                         " there): give the URL of the directory that holds manifest.binpb"));
      }
      return s;
    }
    if (absl::Status s = CheckTreeFormat(url_, format); !s.ok()) return s;
    return Get(kTreeManifest, 0, control, out);
  }
  absl::Status ReadBody(const ExpectedBody& want, uint64_t offset, TransferControl* control,
                        ByteSink* out) override {
    absl::Status s = Get(TreeBlobName(want.sha256), offset, control, out);
    if (absl::IsNotFound(s)) {
      return absl::NotFoundError(
          absl::StrCat(s.message(),
                       ": the manifest names a blob the server does not have (a mirror that "
                       "copied the manifest before its blobs?)"));
    }
    return s;
  }

 private:
  class StringSink final : public ByteSink {
   public:
    explicit StringSink(std::string* s) : s_(s) {}
    absl::Status Write(absl::string_view d) override {
      if (s_->size() + d.size() > 256) return absl::DataLossError("format file over 256 bytes");
      s_->append(d.data(), d.size());
      return absl::OkStatus();
    }

   private:
    std::string* s_;
  };

  absl::Status Get(const std::string& name, uint64_t offset, TransferControl* control,
                   ByteSink* out) {
    const std::string where = url_ + name;
    httplib::Client cli(origin_);
    cli.set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(
        absl::ToChronoSeconds(options_.connect_timeout)));
    // Silence and slowness are the TransferWatch's to judge.
    cli.set_read_timeout(std::chrono::hours(24));
    cli.set_write_timeout(std::chrono::seconds(60));
    cli.set_follow_location(true);
    cli.set_keep_alive(false);
    const std::string proxy = options_.proxy ? options_.proxy() : "";
    if (!proxy.empty()) {
      absl::StatusOr<ProxyUrl> p = ParseProxyUrl(proxy);
      if (!p.ok()) return p.status();
      cli.set_proxy(p->host, p->port);
      if (!p->user.empty()) cli.set_proxy_basic_auth(p->user, p->password);
    }
    if (absl::StartsWith(origin_, "https://")) {
      cli.enable_server_certificate_verification(true);
      if (!options_.tls_ca.empty()) cli.set_ca_cert_path(options_.tls_ca.c_str());
    }
    httplib::Headers headers;
    if (offset > 0) headers.emplace("Range", absl::StrCat("bytes=", offset, "-"));
    int status = 0;
    uint64_t skip = 0;  // a server that ignored the Range sends the whole blob
    absl::Status problem;
    control->OnCut([&cli] { cli.stop(); });
    httplib::Result res = cli.Get(
        prefix_ + name, headers,
        [&](const httplib::Response& r) {
          status = r.status;
          if (status == 200 && offset > 0) skip = offset;
          if (status == 206) {
            // "bytes START-END/TOTAL" must start where asked.
            const std::string header = r.get_header_value("Content-Range");
            absl::string_view range = header;
            uint64_t start = 0;
            if (!absl::ConsumePrefix(&range, "bytes ") ||
                !absl::SimpleAtoi(range.substr(0, range.find('-')), &start) || start != offset) {
              problem = absl::DataLossError(absl::StrCat(where, ": asked for bytes from ", offset,
                                                         ", got Content-Range \"", header, "\""));
              return false;
            }
          }
          return status == 200 || status == 206;
        },
        [&](const char* data, size_t len) {
          absl::string_view d(data, len);
          const uint64_t drop = std::min<uint64_t>(skip, d.size());
          skip -= drop;
          d.remove_prefix(drop);
          if (!d.empty()) problem = out->Write(d);
          return problem.ok();
        });
    control->OnCut(nullptr);
    if (!problem.ok()) return problem;
    // A proxy's refusal of CONNECT comes back as its response.
    if (res) status = res->status;
    if (status == 404 || status == 410) {
      return absl::NotFoundError(absl::StrCat(where, ": HTTP ", status));
    }
    if ((status == 407 || status == 401) && !proxy.empty()) {
      return absl::PermissionDeniedError(
          absl::StrCat("proxy ", ProxyDisplay(proxy), " answered HTTP ", status, " for ", where,
                       " (Proxy Authentication Required): check the user and password in "
                       "--proxy"));
    }
    if (status != 0 && status != 200 && status != 206) {
      return absl::UnavailableError(absl::StrCat(where, ": HTTP ", status));
    }
    if (!res) {
      if (res.error() == httplib::Error::SSLServerVerification) {
        return absl::UnavailableError(
            absl::StrCat(where,
                         ": the server's certificate is not trusted; give the CA that signed it ("
                         "--upstream-tls-ca on a relay, --tls-ca on an agent)"));
      }
      return absl::UnavailableError(absl::StrCat(
          where, ": ", httplib::to_string(res.error()),
          proxy.empty() ? "" : absl::StrCat(" (through proxy ", ProxyDisplay(proxy), ")")));
    }
    return absl::OkStatus();
  }

  const std::string url_;
  const std::string origin_;  // "https://host:port"
  const std::string prefix_;  // "/path/"
  const TreeSourceOptions options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<UpdateSource>> MakeHttpTreeSource(const std::string& url,
                                                                 TreeSourceOptions options) {
  const size_t scheme_end = url.find("://") + 3;
  const size_t slash = url.find('/', scheme_end);
  const std::string origin = url.substr(0, slash);
  if (origin.size() <= scheme_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(url, ": no host; the URL looks like https://HOST[:PORT]/PATH/"));
  }
  std::string prefix = slash == std::string::npos ? "/" : url.substr(slash);
  if (prefix.back() != '/') prefix += '/';
  std::string normalized = origin + prefix;
  return std::unique_ptr<UpdateSource>(
      new HttpTreeSource(std::move(normalized), origin, std::move(prefix), std::move(options)));
}

}  // namespace sigrelay
