#include "core/model/openssl_ptr.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>

namespace sigrelay {

void EvpPkeyDeleter::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
void MdCtxDeleter::operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
void BioDeleter::operator()(BIO* bio) const { BIO_free(bio); }

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

}  // namespace sigrelay
