// The web console of a node (--console HOST:PORT): the page, a JSON API
// under /api/v1/ whose bodies are the AdminService messages in protobuf's
// JSON mapping, /metrics, /healthz and /readyz. Every API call goes to the
// node's own AdminService over an in-process channel, so the console has no
// powers of its own: one schema and one set of checks for gRPC, CLI and HTTP.
//
// Authentication: POST /api/v1/login {"token": ADMIN_TOKEN} sets a session
// cookie (HttpOnly, SameSite=Strict, Path=/) and answers the CSRF token the
// page sends back in X-CSRF-Token on every state-changing call; API clients
// send `Authorization: Bearer TOKEN` instead. Refused sign-ins count with
// the AdminService's (same lockout per client address). Requests are
// refused before their body is read.
//
//   auto console = Console::Start({.listen = "127.0.0.1:8080"}, channel, &token);
#ifndef SIGRELAY_CORE_CONSOLE_CONSOLE_H_
#define SIGRELAY_CORE_CONSOLE_CONSOLE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/base/admin_token.h"

namespace sigrelay {

struct ConsoleOptions {
  std::string listen;                // HOST:PORT; port 0 picks one
  bool metrics_auth = false;         // /metrics only with a session or the bearer token
  uint64_t max_upload = 1ull << 30;  // publish bodies, bytes
};

class Console {
 public:
  // Binds and starts serving on a thread of its own. `token` must outlive it.
  static absl::StatusOr<std::unique_ptr<Console>> Start(const ConsoleOptions& options,
                                                        std::shared_ptr<grpc::Channel> admin,
                                                        const AdminToken* token);
  ~Console();  // stops serving

  const std::string& bound() const;  // "HOST:PORT" as bound

  struct Impl;

 private:
  explicit Console(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CONSOLE_CONSOLE_H_
