// OpenSSL objects owned by std::unique_ptr, and the last OpenSSL error as
// text: one definition for the model's signing code (manifests, roots).
// Declarations only, so headers that hold a key need no OpenSSL header.
#ifndef SIGRELAY_CORE_MODEL_OPENSSL_PTR_H_
#define SIGRELAY_CORE_MODEL_OPENSSL_PTR_H_

#include <memory>
#include <string>

typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct bio_st BIO;

namespace sigrelay {

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const;
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const;
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

struct BioDeleter {
  void operator()(BIO* bio) const;
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// The oldest queued OpenSSL error as text (the queue is cleared).
std::string OpenSslError();

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_MODEL_OPENSSL_PTR_H_
