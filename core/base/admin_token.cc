#include "core/base/admin_token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/log.h"

namespace sigrelay {

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> raw = ReadFileToString(path);
  if (!raw.ok()) {
    return absl::Status(raw.status().code(),
                        absl::StrCat("admin token: ", raw.status().message(),
                                     "; pass the daemon's DATA_DIR/admin.token with --token-file"));
  }
  std::string token(absl::StripAsciiWhitespace(*raw));
  if (token.size() < 16) {
    return absl::InvalidArgumentError(absl::StrCat("admin token file ", path, " holds ",
                                                   token.size(),
                                                   " characters; a token needs at least 16"));
  }
  return token;
}

absl::StatusOr<AdminToken> AdminToken::LoadOrCreate(const std::string& path, bool create) {
  if (create && !FileExists(path)) {
    unsigned char random[32];
    if (RAND_bytes(random, sizeof random) != 1) {
      return absl::InternalError("cannot draw random bytes for the admin token");
    }
    std::string token = ToHex(absl::string_view(reinterpret_cast<char*>(random), 32));
    absl::Status s = WriteFileAtomically(path, token + "\n", 0600);
    if (!s.ok()) return s;
  }
  absl::StatusOr<std::string> token = ReadTokenFile(path);
  if (!token.ok()) return token.status();
  return AdminToken(*token);
}

grpc::Status AdminToken::Refuse(const std::string& host, const std::string& peer,
                                grpc::Status why) const {
  ++refusals_->total;
  {
    absl::MutexLock lock(&refusals_->mu);
    if (refusals_->by_peer.size() > 10000) refusals_->by_peer.clear();  // bounded
    auto& [count, since] = refusals_->by_peer[host];
    const absl::Time now = absl::Now();
    if (now - since > absl::Minutes(1)) {
      count = 0;
      since = now;
    }
    ++count;
  }
  Log(LogLevel::kWarning,
      absl::StrCat("admin: refused a call from ", peer, ": ", why.error_message()),
      {{"event", "admin_refused"}, {"peer", peer}, {"error", why.error_message()}});
  return why;
}

grpc::Status AdminToken::Check(const grpc::CallbackServerContext* context) const {
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return CheckPresented(context->peer(), nullptr);
  const std::string value(it->second.data(), it->second.size());
  return CheckPresented(context->peer(), &value);
}

grpc::Status AdminToken::CheckPresented(const std::string& peer,
                                        const std::string* authorization) const {
  const std::string host = peer.substr(0, peer.rfind(':'));  // "ipv4:127.0.0.1"
  {
    absl::MutexLock lock(&refusals_->mu);
    auto it = refusals_->by_peer.find(host);
    if (it != refusals_->by_peer.end() && it->second.first >= kMaxRefusals &&
        absl::Now() - it->second.second < absl::Minutes(1)) {
      ++refusals_->total;
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat(it->second.first, " admin calls from ", host,
                                       " were refused in the last minute; wait a minute"));
    }
  }
  if (authorization == nullptr) {
    return Refuse(host, peer,
                  grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                               "admin call without a token: pass --token-file with the "
                               "daemon's admin.token (or --data-dir on its host)"));
  }
  absl::string_view value = *authorization;
  if (!absl::ConsumePrefix(&value, "Bearer ")) {
    return Refuse(host, peer,
                  grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                               "authorization must be \"Bearer <token>\""));
  }
  if (value.size() != token_.size() ||
      CRYPTO_memcmp(value.data(), token_.data(), token_.size()) != 0) {
    return Refuse(host, peer,
                  grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                               "wrong admin token: use the daemon's current admin.token"));
  }
  return grpc::Status::OK;
}

}  // namespace sigrelay
