// SHA-256 over OpenSSL EVP, one shot or incrementally.
//
//   Sha256 h; h.Update(a); h.Update(b); std::string d = h.Finish();
#ifndef SIGRELAY_CORE_BASE_DIGEST_H_
#define SIGRELAY_CORE_BASE_DIGEST_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace sigrelay {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Returns the 32-byte digest; the object must not be used afterwards.
  std::string Finish();

  static std::string Of(absl::string_view data);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Lower-case hex of arbitrary bytes.
std::string ToHex(absl::string_view bytes);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_DIGEST_H_
