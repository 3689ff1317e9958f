// Synthetic signature files that look like real pattern files: one record
// per line, sorted by signature id, e.g.
//
//   0001A2F3 TROJ_GENERIC.AXK 9f3c...e1 h
//
// A next version removes PCT% of the records and adds as many new ones, which
// is how real pattern updates churn. Deterministic for a given seed.
#ifndef SIGRELAY_CTL_PATTERN_GEN_H_
#define SIGRELAY_CTL_PATTERN_GEN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace sigrelay {

// A fresh file of `records` records.
std::string GeneratePattern(uint64_t records, uint64_t seed);

// The next version of `previous`: churn_percent of its records (rounded)
// removed and as many new ones added. InvalidArgument when `previous` is not
// a pattern file or churn_percent is outside 0..100.
absl::StatusOr<std::string> NextPattern(const std::string& previous, double churn_percent,
                                        uint64_t seed);

}  // namespace sigrelay

#endif  // SIGRELAY_CTL_PATTERN_GEN_H_
