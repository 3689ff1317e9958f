// A certificate authority made by openssl at test time, and the
// certificates it signs (for 127.0.0.1 and localhost).
#ifndef SIGRELAY_TESTS_TESTUTIL_TEST_PKI_H_
#define SIGRELAY_TESTS_TESTUTIL_TEST_PKI_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "gtest/gtest.h"
#include "tests/testutil/testutil.h"

namespace sigrelay::testing {

// A CA and certificates it signs, for 127.0.0.1.
class TestPki {
 public:
  explicit TestPki(const std::string& dir, const std::string& name) : dir_(dir), name_(name) {
    ok_ = Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", File("ca.key"), "-out", File("ca.pem"), "-days", "2", "-subj",
               "/CN=" + name + "-ca"});
  }
  // Makes NAME.pem / NAME.key signed by this CA, naming 127.0.0.1.
  bool Issue(const std::string& leaf) {
    const std::string ext = File(leaf + ".ext");
    if (!WriteFileAtomically(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").ok()) return false;
    return Run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", File(leaf + ".key"), "-out", File(leaf + ".csr"), "-subj",
                "/CN=" + leaf}) &&
           Run({"openssl", "x509", "-req", "-in", File(leaf + ".csr"), "-CA", File("ca.pem"),
                "-CAkey", File("ca.key"), "-CAcreateserial", "-out", File(leaf + ".pem"), "-days",
                "2", "-extfile", ext});
  }
  std::string File(const std::string& f) const { return absl::StrCat(dir_, "/", name_, "-", f); }
  bool ok() const { return ok_; }

 private:
  bool Run(const std::vector<std::string>& argv) {
    std::string out;
    const bool ran = RunCommand(argv, &out) == 0;
    if (!ran) ADD_FAILURE() << out;
    return ran;
  }
  std::string dir_, name_;
  bool ok_ = false;
};

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_TEST_PKI_H_
