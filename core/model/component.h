// The component catalog and version arithmetic.
//
// A component's first version is `first` (default 1); each publish adds
// `step` (default 2): 1, 3, 5, ... A node keeps the newest version and the
// `retain` (K, default 8) versions before it, and an incremental from each of
// those K straight to the newest, never a chain. A node more than K versions
// behind takes the full file.
#ifndef SIGRELAY_CORE_MODEL_COMPONENT_H_
#define SIGRELAY_CORE_MODEL_COMPONENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

struct ComponentSpec {
  std::string name;
  bool incrementals = true;  // false: full-only (e.g. the outbreak-defence policy)
};

// InvalidArgument unless `name` is 1..64 of [a-z0-9._-], starting with a
// letter or digit: component names become store keys and file names.
absl::Status ValidateComponentName(absl::string_view name);

// The components an origin publishes: data from its config, not code.
// Relays and agents need no catalog: they carry whatever the signed
// manifest names, and each entry says whether it has incrementals.
class ComponentCatalog {
 public:
  // virus, smartscan-agent, damage-cleanup, intellitrap-exception, spyware
  // (with incrementals) and outbreak-policy (full only).
  static const ComponentCatalog& Default();

  // "NAME" (with incrementals) or "NAME:full" (full only); InvalidArgument
  // saying what is wrong otherwise.
  static absl::StatusOr<ComponentSpec> ParseSpec(absl::string_view text);
  // InvalidArgument for a bad or repeated name, or an empty list.
  static absl::StatusOr<ComponentCatalog> FromSpecs(std::vector<ComponentSpec> specs);

  // The spec for `name`, or InvalidArgument naming the known components.
  absl::StatusOr<ComponentSpec> Find(absl::string_view name) const;
  const std::vector<ComponentSpec>& specs() const { return specs_; }

 private:
  explicit ComponentCatalog(std::vector<ComponentSpec> specs) : specs_(std::move(specs)) {}
  std::vector<ComponentSpec> specs_;
};

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
  std::vector<uint32_t> Retained(std::vector<uint32_t> held, uint32_t newest) const;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_MODEL_COMPONENT_H_
