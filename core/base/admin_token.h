// The bearer token that guards a daemon's AdminService.
//
// A daemon writes DIR/admin.token (mode 0600) on first start unless the
// operator names a token file; clients send `authorization: Bearer <token>`.
#ifndef SIGRELAY_CORE_BASE_ADMIN_TOKEN_H_
#define SIGRELAY_CORE_BASE_ADMIN_TOKEN_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sigrelay {

class AdminToken {
 public:
  // Reads `path`; when it does not exist and `create` is true, writes a new
  // random token there (0600). InvalidArgument for an empty or short token.
  static absl::StatusOr<AdminToken> LoadOrCreate(const std::string& path, bool create);

  // OK when `context` carries this token; Unauthenticated otherwise, saying
  // what was wrong. Constant-time comparison.
  // A refused call is logged with the peer's address and counted; a peer
  // refused kMaxRefusals times within a minute is refused at once
  // (RESOURCE_EXHAUSTED) until the minute is over, so guessing is slow.
  grpc::Status Check(const grpc::CallbackServerContext* context) const;

  // The same for a credential presented another way (the web console):
  // `authorization` is "Bearer <token>" or null for none; `peer` names the
  // client ("ipv4:10.0.0.1:5555"), whose host the lockout counts.
  grpc::Status CheckPresented(const std::string& peer, const std::string* authorization) const;

  // For the node's own in-process clients (the console).
  const std::string& value() const { return token_; }

  // Admin calls refused since start.
  uint64_t refused() const { return refusals_->total.load(); }

  static constexpr int kMaxRefusals = 5;

  // For unary admin calls: true when `context` carries the token; otherwise
  // finishes `reactor` with the Check error and returns false.
  bool Admit(const grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor) const {
    grpc::Status auth = Check(context);
    if (!auth.ok()) reactor->Finish(auth);
    return auth.ok();
  }

 private:
  explicit AdminToken(std::string token)
      : token_(std::move(token)), refusals_(std::make_shared<Refusals>()) {}
  grpc::Status Refuse(const std::string& host, const std::string& peer, grpc::Status why) const;

  struct Refusals {
    std::atomic<uint64_t> total{0};
    absl::Mutex mu;
    // peer host -> (refusals in the current window, window start)
    absl::flat_hash_map<std::string, std::pair<int, absl::Time>> by_peer ABSL_GUARDED_BY(mu);
  };
  std::string token_;
  std::shared_ptr<Refusals> refusals_;
};

// Reads a token file for a client; the error names the file.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_ADMIN_TOKEN_H_
