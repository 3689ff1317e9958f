#include "ctl/pattern_gen.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace sigrelay {
namespace {

constexpr const char* kFamilies[] = {
    "TROJ_GENERIC",  "WORM_DOWNAD",   "PE_VIRUX",      "BKDR_ZAPCHAST", "TSPY_ZBOT",
    "RANSOM_WCRY",   "ADW_INSTALLC",  "HKTL_MIMIKATZ", "JS_OBFUS",      "HTML_IFRAME",
    "X97M_LAROUX",   "W97M_DOWNLOAD", "ELF_MIRAI",     "OSX_SHLAYER",   "AndroidOS_JOKER",
    "PUA_COINMINER", "TROJ_EMOTET",   "BKDR_COBEACON", "VBS_RAMNIT",    "LNK_DUNIHI"};
constexpr char kFlags[] = "hsmx";

std::string MakeRecord(uint32_t id, std::mt19937_64& rng) {
  static constexpr char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string variant;
  for (int i = 0; i < 3; ++i) variant.push_back(kAlnum[rng() % 36]);
  std::string sig;
  for (int i = 0; i < 5; ++i)
    absl::StrAppend(&sig, absl::Hex(rng() & 0xffffffffu, absl::kZeroPad8));
  return absl::StrFormat("%08X %s.%s %s %c\n", id,
                         kFamilies[rng() % (sizeof kFamilies / sizeof *kFamilies)], variant, sig,
                         kFlags[rng() % 4]);
}

uint32_t FreshId(std::mt19937_64& rng, absl::flat_hash_set<uint32_t>* used) {
  for (;;) {
    uint32_t id = static_cast<uint32_t>(rng());
    if (used->insert(id).second) return id;
  }
}

}  // namespace

std::string GeneratePattern(uint64_t records, uint64_t seed) {
  std::mt19937_64 rng(seed);
  absl::flat_hash_set<uint32_t> used;
  std::map<uint32_t, std::string> out;
  while (out.size() < records) {
    uint32_t id = FreshId(rng, &used);
    out.emplace(id, MakeRecord(id, rng));
  }
  std::string text;
  text.reserve(records * 68);
  for (const auto& [id, line] : out) text += line;
  return text;
}

absl::StatusOr<std::string> NextPattern(const std::string& previous, double churn_percent,
                                        uint64_t seed) {
  if (!(churn_percent >= 0 && churn_percent <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--churn ", churn_percent, " is outside 0..100 (percent)"));
  }
  std::vector<std::pair<uint32_t, absl::string_view>> records;
  absl::flat_hash_set<uint32_t> used;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(previous, '\n', absl::SkipEmpty())) {
    ++line_no;
    uint32_t id = 0;
    if (line.size() < 9 || !absl::SimpleHexAtoi(line.substr(0, 8), &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no,
                       " is not a pattern record (8 hex digit id first); "
                       "--from takes a file written by gen-pattern"));
    }
    records.emplace_back(id, line);
    used.insert(id);
  }
  std::mt19937_64 rng(seed);
  const size_t churn = static_cast<size_t>(std::llround(records.size() * churn_percent / 100.0));
  std::shuffle(records.begin(), records.end(), rng);
  records.resize(records.size() - std::min(churn, records.size()));
  std::map<uint32_t, std::string> out;
  for (const auto& [id, line] : records) out.emplace(id, absl::StrCat(line, "\n"));
  for (size_t i = 0; i < churn; ++i) {
    uint32_t id = FreshId(rng, &used);
    out.emplace(id, MakeRecord(id, rng));
  }
  std::string text;
  text.reserve(previous.size() + 64);
  for (const auto& [id, line] : out) text += line;
  return text;
}

}  // namespace sigrelay
