// The static tree over HTTP(S) (core/client/tree.h), kept apart so only one
// file compiles cpp-httplib.
#ifndef SIGRELAY_CORE_CLIENT_TREE_HTTP_H_
#define SIGRELAY_CORE_CLIENT_TREE_HTTP_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/client/tree.h"

namespace sigrelay {

absl::StatusOr<std::unique_ptr<UpdateSource>> MakeHttpTreeSource(const std::string& url,
                                                                 TreeSourceOptions options);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_TREE_HTTP_H_
