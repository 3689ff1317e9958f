// ASSERT_OK / EXPECT_OK for absl::Status, absl::StatusOr<T> and grpc::Status:
// on failure they print the status, so a failing test says why.
//
//   ASSERT_OK(store->Commit(commits, manifest));
//   EXPECT_OK(verifier->Verify(signed_manifest, now)) << "with the pinned key";
//   EXPECT_THAT(LinkRoot(a, b), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("v1")));
#ifndef SIGRELAY_TESTS_TESTUTIL_STATUS_MATCHERS_H_
#define SIGRELAY_TESTS_TESTUTIL_STATUS_MATCHERS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/base/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sigrelay::testing::internal {

inline absl::Status StatusOf(const absl::Status& s) { return s; }
inline absl::Status StatusOf(const grpc::Status& s) { return FromGrpcStatus(s); }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

template <typename S>
::testing::AssertionResult IsOk(const char* expr, const S& s) {
  absl::Status status = StatusOf(s);
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " is " << status;
}

}  // namespace sigrelay::testing::internal

namespace sigrelay {

// Matches a status (or the status of a StatusOr) with `code` and a message
// matching `message` (default: any).
MATCHER_P2(StatusIs, code, message, "") {
  absl::Status s = ::sigrelay::testing::internal::StatusOf(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message, std::string(s.message()), result_listener);
}

}  // namespace sigrelay

#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::sigrelay::testing::internal::IsOk, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::sigrelay::testing::internal::IsOk, expr)

#endif  // SIGRELAY_TESTS_TESTUTIL_STATUS_MATCHERS_H_
