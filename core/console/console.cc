#include "core/console/console.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/base/digest.h"
#include "core/base/grpc_status.h"
#include "core/base/json.h"
#include "core/base/log.h"
#include "core/console/assets.h"
#include "core/console/metrics.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "sigrelay/v1/admin.grpc.pb.h"

namespace sigrelay {
namespace {

constexpr size_t kMaxSmallBody = 64 << 10;
constexpr size_t kMaxSessions = 256;
constexpr absl::Duration kSessionLife = absl::Hours(12);

std::string RandomHex(int bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes);
  return ToHex(raw);
}

std::string JsonError(absl::string_view code, absl::string_view message) {
  return absl::StrCat("{\"error\":{\"code\":", JsonQuote(code), ",\"message\":", JsonQuote(message),
                      "}}");
}

void SendError(httplib::Response& res, int http, absl::string_view code,
               absl::string_view message) {
  res.status = http;
  res.set_content(JsonError(code, message), "application/json");
}

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

void SendGrpcError(httplib::Response& res, const grpc::Status& s) {
  SendError(res, HttpStatusOf(s.error_code()), GrpcCodeName(s.error_code()), s.error_message());
}

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

// The value of cookie `name` in a Cookie header, or "".
std::string CookieValue(const httplib::Request& req, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(req.get_header_value("Cookie"), ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

bool StateChanging(const httplib::Request& req) {
  return req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS";
}

}  // namespace

struct Console::Impl {
  ConsoleOptions options;
  std::unique_ptr<v1::AdminService::Stub> admin;
  const AdminToken* token;
  httplib::Server server;
  std::thread thread;
  std::string bound;
  // Named after the port: cookies are per host, not per port, and two
  // consoles on one host must not sign each other out.
  std::string cookie;

  absl::Mutex mu;
  struct Session {
    std::string csrf;
    absl::Time expires;
  };
  absl::flat_hash_map<std::string, Session> sessions ABSL_GUARDED_BY(mu);

  std::string Peer(const httplib::Request& req) const {
    return absl::StrCat("http:", req.remote_addr, ":", req.remote_port);
  }

  // The session the request's cookie names, if live: its CSRF token.
  std::optional<std::string> SessionCsrf(const httplib::Request& req) {
    const std::string id = CookieValue(req, cookie);
    if (id.empty()) return std::nullopt;
    absl::MutexLock lock(&mu);
    auto it = sessions.find(id);
    if (it == sessions.end()) return std::nullopt;
    if (absl::Now() >= it->second.expires) {
      sessions.erase(it);
      return std::nullopt;
    }
    return it->second.csrf;
  }

  // Whether the request may go on; answers it (401/403/429) when not.
  bool Authorize(const httplib::Request& req, httplib::Response& res) {
    if (req.has_header("Authorization")) {
      const std::string presented = req.get_header_value("Authorization");
      grpc::Status s = token->CheckPresented(Peer(req), &presented);
      if (!s.ok()) SendGrpcError(res, s);
      return s.ok();
    }
    std::optional<std::string> csrf = SessionCsrf(req);
    if (!csrf) {
      SendError(res, 401, "UNAUTHENTICATED",
                "sign in first (POST /api/v1/login with the admin token), or send "
                "Authorization: Bearer TOKEN");
      return false;
    }
    if (StateChanging(req)) {
      const std::string sent = req.get_header_value("X-CSRF-Token");
      if (sent.size() != csrf->size() ||
          CRYPTO_memcmp(sent.data(), csrf->data(), csrf->size()) != 0) {
        SendError(res, 403, "PERMISSION_DENIED",
                  "missing or wrong X-CSRF-Token header (the token /api/v1/login answered)");
        return false;
      }
    }
    return true;
  }

  httplib::Server::HandlerResponse PreRoute(const httplib::Request& req, httplib::Response& res) {
    using HR = httplib::Server::HandlerResponse;
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-store");
    const bool api = absl::StartsWith(req.path, "/api/");
    const bool publish = absl::StartsWith(req.path, "/api/v1/publish/");
    // Refused before the body is read: size first, then credentials.
    uint64_t length = 0;
    if (absl::SimpleAtoi(req.get_header_value("Content-Length"), &length) &&
        length > (publish ? options.max_upload : kMaxSmallBody)) {
      SendError(res, 413, "RESOURCE_EXHAUSTED",
                absl::StrCat("request body of ", length, " bytes is over the limit of ",
                             publish ? options.max_upload : kMaxSmallBody));
      return HR::Handled;
    }
    if (api && req.path != "/api/v1/login" && !Authorize(req, res)) return HR::Handled;
    if (req.path == "/metrics" && options.metrics_auth && !Authorize(req, res)) {
      return HR::Handled;
    }
    return HR::Unhandled;
  }

  grpc::Status Call(const std::function<grpc::Status(grpc::ClientContext*)>& call,
                    absl::Duration timeout = absl::Seconds(30)) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token->value()));
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return call(&ctx);
  }

  // A unary AdminService call with the request parsed from the JSON body.
  template <typename Req, typename Resp>
  void Unary(const httplib::Request& req, httplib::Response& res,
             grpc::Status (v1::AdminService::Stub::*method)(grpc::ClientContext*, const Req&,
                                                            Resp*),
             absl::Duration timeout = absl::Seconds(30)) {
    Req request;
    if (!req.body.empty()) {
      google::protobuf::util::JsonParseOptions parse;
      auto parsed = google::protobuf::util::JsonStringToMessage(req.body, &request, parse);
      if (!parsed.ok()) {
        SendError(res, 400, "INVALID_ARGUMENT",
                  absl::StrCat("the body is not a valid ", request.GetTypeName(),
                               " in JSON: ", std::string(parsed.message())));
        return;
      }
    }
    Resp response;
    grpc::Status s = Call(
        [&](grpc::ClientContext* ctx) { return (admin.get()->*method)(ctx, request, &response); },
        timeout);
    if (!s.ok()) return SendGrpcError(res, s);
    res.set_content(ToJson(response), "application/json");
  }

  void Login(const httplib::Request& req, httplib::Response& res) {
    google::protobuf::Struct body;
    if (!google::protobuf::util::JsonStringToMessage(req.body, &body).ok() ||
        !body.fields().contains("token") || !body.fields().at("token").has_string_value()) {
      return SendError(res, 400, "INVALID_ARGUMENT", "send {\"token\": \"ADMIN_TOKEN\"}");
    }
    const std::string presented = absl::StrCat("Bearer ", body.fields().at("token").string_value());
    grpc::Status s = token->CheckPresented(Peer(req), &presented);
    if (!s.ok()) return SendGrpcError(res, s);
    const std::string id = RandomHex(32);
    const std::string csrf = RandomHex(32);
    {
      absl::MutexLock lock(&mu);
      if (sessions.size() >= kMaxSessions) {
        auto oldest = sessions.begin();
        for (auto it = sessions.begin(); it != sessions.end(); ++it) {
          if (it->second.expires < oldest->second.expires) oldest = it;
        }
        sessions.erase(oldest);
      }
      sessions[id] = {csrf, absl::Now() + kSessionLife};
    }
    res.set_header("Set-Cookie",
                   absl::StrCat(cookie, "=", id, "; HttpOnly; SameSite=Strict; Path=/; Max-Age=",
                                absl::ToInt64Seconds(kSessionLife)));
    res.set_content(absl::StrCat("{\"csrfToken\":\"", csrf, "\"}"), "application/json");
    Log(LogLevel::kInfo, absl::StrCat("console: signed in from ", req.remote_addr),
        {{"event", "console_signin"}, {"peer", req.remote_addr}});
  }

  void Logout(const httplib::Request& req, httplib::Response& res) {
    {
      absl::MutexLock lock(&mu);
      sessions.erase(CookieValue(req, cookie));
    }
    res.set_header("Set-Cookie",
                   absl::StrCat(cookie, "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"));
    res.set_content("{}", "application/json");
  }

  void Publish(const httplib::Request& req, httplib::Response& res) {
    const std::string component = req.matches[1];
    const std::string* data = &req.body;
    if (req.is_multipart_form_data()) {
      if (!req.has_file("file")) {
        return SendError(res, 400, "INVALID_ARGUMENT", "the form has no \"file\" part");
      }
      data = &req.files.find("file")->second.content;
    }
    v1::PublishResponse response;
    grpc::Status s = Call(
        [&](grpc::ClientContext* ctx) {
          auto writer = admin->Publish(ctx, &response);
          v1::PublishRequest first;
          first.set_component(component);
          bool ok = writer->Write(first);
          constexpr size_t kPiece = 1 << 20;
          for (size_t at = 0; ok && at < data->size(); at += kPiece) {
            v1::PublishRequest piece;
            piece.set_data(data->substr(at, kPiece));
            ok = writer->Write(piece);
          }
          writer->WritesDone();
          return writer->Finish();
        },
        absl::Minutes(10));
    if (!s.ok()) return SendGrpcError(res, s);
    res.set_content(ToJson(response), "application/json");
  }

  grpc::Status Status(v1::GetStatusResponse* status) {
    return Call([&](grpc::ClientContext* ctx) {
      return admin->GetStatus(ctx, v1::GetStatusRequest(), status);
    });
  }

  void Ready(httplib::Response& res) {
    v1::GetStatusResponse status;
    grpc::Status s = Status(&status);
    if (!s.ok()) {
      res.status = 503;
      res.set_content(absl::StrCat("not ready: ", s.error_message(), "\n"), "text/plain");
    } else if (status.role() == "relay" && status.manifest_serial() == 0) {
      res.status = 503;
      res.set_content("not ready: no verified manifest held yet\n", "text/plain");
    } else {
      res.set_content("ready\n", "text/plain");
    }
  }

  void Metrics(httplib::Response& res) {
    v1::GetStatusResponse status;
    grpc::Status s = Status(&status);
    if (!s.ok()) return SendGrpcError(res, s);
    res.set_content(PrometheusText(status, absl::Now()), "text/plain; version=0.0.4");
  }

  void Routes() {
    server.set_pre_routing_handler(
        [this](const httplib::Request& req, httplib::Response& res) { return PreRoute(req, res); });
    server.set_payload_max_length(options.max_upload);
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok\n", "text/plain");
    });
    server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { Ready(res); });
    server.Get("/metrics",
               [this](const httplib::Request&, httplib::Response& res) { Metrics(res); });
    server.Post("/api/v1/login",
                [this](const httplib::Request& req, httplib::Response& res) { Login(req, res); });
    server.Post("/api/v1/logout",
                [this](const httplib::Request& req, httplib::Response& res) { Logout(req, res); });
    server.Get("/api/v1/session", [this](const httplib::Request& req, httplib::Response& res) {
      std::optional<std::string> csrf = SessionCsrf(req);
      res.set_content(absl::StrCat("{\"csrfToken\":\"", csrf.value_or(""), "\"}"),
                      "application/json");
    });
    server.Get("/api/v1/status", [this](const httplib::Request& req, httplib::Response& res) {
      Unary(req, res, &v1::AdminService::Stub::GetStatus);
    });
    server.Post("/api/v1/update", [this](const httplib::Request& req, httplib::Response& res) {
      Unary(req, res, &v1::AdminService::Stub::SyncNow, absl::Minutes(30));
    });
    server.Put("/api/v1/schedule", [this](const httplib::Request& req, httplib::Response& res) {
      Unary(req, res, &v1::AdminService::Stub::SetSchedule);
    });
    server.Put("/api/v1/proxy", [this](const httplib::Request& req, httplib::Response& res) {
      Unary(req, res, &v1::AdminService::Stub::SetProxy);
    });
    server.Put("/api/v1/pushing", [this](const httplib::Request& req, httplib::Response& res) {
      Unary(req, res, &v1::AdminService::Stub::SetPushing);
    });
    server.Post("/api/v1/withdraw", [this](const httplib::Request& req, httplib::Response& res) {
      Unary(req, res, &v1::AdminService::Stub::Withdraw);
    });
    server.Post("/api/v1/rollout", [this](const httplib::Request& req, httplib::Response& res) {
      Unary(req, res, &v1::AdminService::Stub::Rollout);
    });
    server.Post(R"(/api/v1/publish/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) { Publish(req, res); });
    server.Get(R"(/([a-z.]*))", [](const httplib::Request& req, httplib::Response& res) {
      const ConsoleAsset* asset = FindConsoleAsset(req.matches[1].str());
      if (asset == nullptr) return SendError(res, 404, "NOT_FOUND", "no such page");
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
      res.set_header("X-Frame-Options", "DENY");
      res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, asset->type);
    });
  }
};

absl::StatusOr<std::unique_ptr<Console>> Console::Start(const ConsoleOptions& options,
                                                        std::shared_ptr<grpc::Channel> admin,
                                                        const AdminToken* token) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->admin = v1::AdminService::NewStub(admin);
  impl->token = token;
  const size_t colon = options.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--console ", options.listen, ": give HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"));
  }
  std::string host = options.listen.substr(0, colon);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  impl->Routes();
  if (port == 0) {
    port = impl->server.bind_to_any_port(host);
    if (port < 0) port = 0;
  } else if (!impl->server.bind_to_port(host, port)) {
    port = 0;
  }
  if (port == 0) {
    return absl::UnavailableError(absl::StrCat("--console ", options.listen,
                                               ": cannot listen there (in use, or not an "
                                               "address of this host?)"));
  }
  impl->cookie = absl::StrCat("sigrelay_session_", port);
  impl->bound = absl::StrContains(host, ':') ? absl::StrCat("[", host, "]:", port)
                                             : absl::StrCat(host, ":", port);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  return std::unique_ptr<Console>(new Console(std::move(impl)));
}

Console::Console(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Console::~Console() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

const std::string& Console::bound() const { return impl_->bound; }

}  // namespace sigrelay
