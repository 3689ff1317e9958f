#include "core/component.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

const std::vector<ComponentSpec>& ComponentCatalog() {
  static const std::vector<ComponentSpec> kCatalog = {
      {"virus", true},
      {"smartscan-agent", true},
      {"damage-cleanup", true},
      {"intellitrap-exception", true},
      {"spyware", true},
      {"outbreak-policy", false},
  };
  return kCatalog;
}

absl::StatusOr<ComponentSpec> FindComponent(absl::string_view name) {
  std::vector<absl::string_view> names;
  for (const ComponentSpec& spec : ComponentCatalog()) {
    if (spec.name == name) return spec;
    names.push_back(spec.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown component \"", name,
                   "\"; known components: ", absl::StrJoin(names, ", ")));
}

absl::Status VersionPolicy::Validate() const {
  if (first < 1 || step < 1 || retain < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "version policy needs first >= 1, step >= 1 and retain >= 1; got first=",
        first, " step=", step, " retain=", retain));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> VersionPolicy::Next(uint32_t newest) const {
  if (newest == 0) return first;
  if (newest > std::numeric_limits<uint32_t>::max() - step) {
    return absl::OutOfRangeError(absl::StrCat(
        "version ", newest, " + step ", step,
        " overflows 32 bits; start a new component line with a lower --first-version"));
  }
  return newest + step;
}

std::vector<uint32_t> VersionPolicy::Retained(std::vector<uint32_t> held,
                                              uint32_t newest) const {
  std::sort(held.begin(), held.end());
  held.erase(std::unique(held.begin(), held.end()), held.end());
  std::vector<uint32_t> older;
  for (uint32_t v : held) {
    if (v < newest) older.push_back(v);
  }
  if (older.size() > retain) older.erase(older.begin(), older.end() - retain);
  older.push_back(newest);
  return older;
}

}  // namespace sigrelay
