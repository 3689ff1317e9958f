// The component catalog and version arithmetic.
//
// A component's first version is `first` (default 1); each publish adds
// `step` (default 2): 1, 3, 5, ... A node keeps the newest version and the
// `retain` (K, default 8) versions before it, and an incremental from each of
// those K straight to the newest, never a chain. A node more than K versions
// behind takes the full file.
#ifndef SIGRELAY_CORE_COMPONENT_H_
#define SIGRELAY_CORE_COMPONENT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

struct ComponentSpec {
  absl::string_view name;
  bool incrementals;  // false: full-only (e.g. the outbreak-defence policy)
};

// Every component sigrelay knows, in display order.
const std::vector<ComponentSpec>& ComponentCatalog();

// The spec for `name`, or InvalidArgument naming the known components.
absl::StatusOr<ComponentSpec> FindComponent(absl::string_view name);

struct VersionPolicy {
  uint32_t first = 1;
  uint32_t step = 2;
  uint32_t retain = 8;

  // InvalidArgument unless first >= 1, step >= 1 and retain >= 1.
  absl::Status Validate() const;

  // The version a publish after `newest` gets (0: nothing published yet),
  // or OutOfRange when the version space is exhausted.
  absl::StatusOr<uint32_t> Next(uint32_t newest) const;

  // Of `held` (any order), the versions to keep once `newest` is the newest:
  // newest and the `retain` highest below it, ascending.
  std::vector<uint32_t> Retained(std::vector<uint32_t> held,
                                 uint32_t newest) const;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_COMPONENT_H_
