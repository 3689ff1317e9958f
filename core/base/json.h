// A string as a JSON string literal, quotes included: what the logs, the
// CLI's --json output and the console's error bodies write.
//
//   absl::StrCat("{\"msg\":", JsonQuote(message), "}")
#ifndef SIGRELAY_CORE_BASE_JSON_H_
#define SIGRELAY_CORE_BASE_JSON_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

inline std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_JSON_H_
