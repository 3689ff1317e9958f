// The bearer token that guards a daemon's AdminService.
//
// A daemon writes DIR/admin.token (mode 0600) on first start unless the
// operator names a token file; clients send `authorization: Bearer <token>`.
#ifndef SIGRELAY_CORE_BASE_ADMIN_TOKEN_H_
#define SIGRELAY_CORE_BASE_ADMIN_TOKEN_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/statusor.h"

namespace sigrelay {

class AdminToken {
 public:
  // Reads `path`; when it does not exist and `create` is true, writes a new
  // random token there (0600). InvalidArgument for an empty or short token.
  static absl::StatusOr<AdminToken> LoadOrCreate(const std::string& path, bool create);

  // OK when `context` carries this token; Unauthenticated otherwise, saying
  // what was wrong. Constant-time comparison.
  grpc::Status Check(const grpc::CallbackServerContext* context) const;

  // For unary admin calls: true when `context` carries the token; otherwise
  // finishes `reactor` with the Check error and returns false.
  bool Admit(const grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor) const {
    grpc::Status auth = Check(context);
    if (!auth.ok()) reactor->Finish(auth);
    return auth.ok();
  }

 private:
  explicit AdminToken(std::string token) : token_(std::move(token)) {}
  std::string token_;
};

// Reads a token file for a client; the error names the file.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_ADMIN_TOKEN_H_
