#include "core/model/component.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

absl::Status ValidateComponentName(absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && absl::ascii_isalnum(name[0]);
  for (char c : name) {
    ok = ok &&
         ((c >= 'a' && c <= 'z') || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "component name \"", absl::CHexEscape(name.substr(0, 80)),
        "\" is not 1..64 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit"));
  }
  return absl::OkStatus();
}

const ComponentCatalog& ComponentCatalog::Default() {
  static const ComponentCatalog* kDefault = new ComponentCatalog({
      {"virus", true},
      {"smartscan-agent", true},
      {"damage-cleanup", true},
      {"intellitrap-exception", true},
      {"spyware", true},
      {"outbreak-policy", false},
  });
  return *kDefault;
}

absl::StatusOr<ComponentSpec> ComponentCatalog::ParseSpec(absl::string_view text) {
  ComponentSpec spec;
  absl::string_view name = text;
  if (size_t colon = text.find(':'); colon != absl::string_view::npos) {
    name = text.substr(0, colon);
    absl::string_view kind = text.substr(colon + 1);
    if (kind == "full") {
      spec.incrementals = false;
    } else if (kind != "incremental") {
      return absl::InvalidArgumentError(absl::StrCat(
          "component \"", text, "\": say NAME (with incrementals), NAME:incremental or NAME:full"));
    }
  }
  if (absl::Status s = ValidateComponentName(name); !s.ok()) return s;
  spec.name = std::string(name);
  return spec;
}

absl::StatusOr<ComponentCatalog> ComponentCatalog::FromSpecs(std::vector<ComponentSpec> specs) {
  if (specs.empty()) return absl::InvalidArgumentError("the component catalog is empty");
  for (size_t i = 0; i < specs.size(); ++i) {
    if (absl::Status s = ValidateComponentName(specs[i].name); !s.ok()) return s;
    for (size_t j = 0; j < i; ++j) {
      if (specs[j].name == specs[i].name) {
        return absl::InvalidArgumentError(
            absl::StrCat("component \"", specs[i].name, "\" is listed twice"));
      }
    }
  }
  return ComponentCatalog(std::move(specs));
}

absl::StatusOr<ComponentSpec> ComponentCatalog::Find(absl::string_view name) const {
  std::vector<absl::string_view> names;
  for (const ComponentSpec& spec : specs_) {
    if (spec.name == name) return spec;
    names.push_back(spec.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown component \"", absl::CHexEscape(name.substr(0, 80)),
                   "\"; known components: ", absl::StrJoin(names, ", ")));
}

absl::Status VersionPolicy::Validate() const {
  if (first < 1 || step < 1 || retain < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "version policy needs first >= 1, step >= 1 and retain >= 1; got first=", first,
        " step=", step, " retain=", retain));
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

std::vector<uint32_t> VersionPolicy::Retained(std::vector<uint32_t> held, uint32_t newest) const {
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
