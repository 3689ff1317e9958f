#include "core/model/rollout.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "core/base/digest.h"

namespace sigrelay {
namespace {

constexpr uint32_t kAll = 10000;
constexpr uint32_t kDefaultHealthy = 9500;

// "12.5%" -> 1250.
bool ParsePercent(absl::string_view text, uint32_t* bp) {
  double pct = 0;
  if (!absl::ConsumeSuffix(&text, "%") || !absl::SimpleAtod(text, &pct) || pct < 0 || pct > 100) {
    return false;
  }
  *bp = static_cast<uint32_t>(pct * 100 + 0.5);
  return true;
}

std::string Percent(uint32_t bp) {
  return absl::StrCat(bp / 100, bp % 100 == 0 ? "" : absl::StrFormat(".%02d", bp % 100), "%");
}

v1::Ring MakeRing(const std::string& name, uint32_t share, absl::Duration bake) {
  v1::Ring r;
  r.set_name(name);
  r.set_share_bp(share);
  r.set_bake_seconds(absl::ToInt64Seconds(bake));
  r.set_min_healthy_bp(kDefaultHealthy);
  return r;
}

}  // namespace

absl::StatusOr<std::vector<v1::Ring>> ParseRolloutPlan(absl::string_view plan) {
  plan = absl::StripAsciiWhitespace(plan);
  if (plan == "none" || plan.empty()) return std::vector<v1::Ring>{};
  if (plan == "staged") {
    return std::vector<v1::Ring>{MakeRing("canary", 100, absl::Minutes(30)),
                                 MakeRing("early", 1000, absl::Hours(1)),
                                 MakeRing("broad", kAll, absl::ZeroDuration())};
  }
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rollout plan \"", plan, "\": ", why,
        "; give rings in order as NAME=SHARE%:BAKE[:HEALTHY%] and the last as NAME alone "
        "(canary=1%:30m,early=10%:1h,broad), \"staged\" for that default, or \"none\""));
  };
  std::vector<v1::Ring> rings;
  const std::vector<absl::string_view> parts = absl::StrSplit(plan, ',');
  for (size_t i = 0; i < parts.size(); ++i) {
    const absl::string_view part = absl::StripAsciiWhitespace(parts[i]);
    const bool last = i + 1 == parts.size();
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    const std::string name(kv.first);
    if (name.empty() || name.size() > 32 || !std::all_of(name.begin(), name.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        })) {
      return bad(absl::StrCat("ring name \"", name, "\" is not 1-32 letters, digits, - or _"));
    }
    for (const v1::Ring& r : rings) {
      if (r.name() == name) return bad(absl::StrCat("ring \"", name, "\" is named twice"));
    }
    if (last && !absl::StrContains(part, '=')) {
      if (rings.empty()) return bad("one ring is no staging");
      rings.push_back(MakeRing(name, kAll, absl::ZeroDuration()));
      break;
    }
    if (last)
      return bad(absl::StrCat("the last ring (", name, ") is everyone else: name it alone"));
    const std::vector<absl::string_view> fields = absl::StrSplit(kv.second, ':');
    uint32_t share = 0, healthy = kDefaultHealthy;
    absl::Duration bake;
    if (fields.size() < 2 || fields.size() > 3 || !ParsePercent(fields[0], &share) ||
        !absl::ParseDuration(fields[1], &bake) || bake < absl::ZeroDuration() ||
        (fields.size() == 3 && !ParsePercent(fields[2], &healthy))) {
      return bad(absl::StrCat("ring \"", part, "\" is not NAME=SHARE%:BAKE[:HEALTHY%]"));
    }
    if (share == 0 || share >= kAll || (!rings.empty() && share <= rings.back().share_bp())) {
      return bad(absl::StrCat("ring ", name, "'s share ", Percent(share),
                              " must grow from ring to ring and stay under 100%"));
    }
    v1::Ring r = MakeRing(name, share, bake);
    r.set_min_healthy_bp(healthy);
    rings.push_back(r);
  }
  return rings;
}

std::string FormatRolloutPlan(const google::protobuf::RepeatedPtrField<v1::Ring>& rings) {
  if (rings.empty()) return "none";
  std::vector<std::string> parts;
  for (int i = 0; i < rings.size(); ++i) {
    const v1::Ring& r = rings[i];
    parts.push_back(i + 1 == rings.size()
                        ? r.name()
                        : absl::StrCat(r.name(), "=", Percent(r.share_bp()), ":",
                                       absl::FormatDuration(absl::Seconds(r.bake_seconds())), ":",
                                       Percent(r.min_healthy_bp())));
  }
  return absl::StrJoin(parts, ",");
}

uint32_t RingBucket(absl::string_view agent_id) {
  Sha256 h;
  h.Update(agent_id);
  const std::string d = h.Finish();
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<uint8_t>(d[i]);
  return static_cast<uint32_t>(n % kAll);
}

int RingIndex(const v1::Rollout& rollout, absl::string_view agent_id, absl::string_view chosen) {
  const int n = rollout.rings_size();
  if (!chosen.empty()) {
    for (int i = 0; i < n; ++i) {
      if (rollout.rings(i).name() == chosen) return i;
    }
  }
  const uint32_t bucket = RingBucket(agent_id);
  for (int i = 0; i < n; ++i) {
    if (bucket < rollout.rings(i).share_bp()) return i;
  }
  return std::max(0, n - 1);
}

const v1::ComponentEntry& AdmittedEntry(const v1::ComponentEntry& entry, absl::string_view agent_id,
                                        absl::string_view chosen) {
  if (!entry.has_rollout() || entry.rollout().rings().empty() ||
      entry.rollout().previous().version() == 0) {
    return entry;
  }
  const int ring = RingIndex(entry.rollout(), agent_id, chosen);
  return ring < static_cast<int>(entry.rollout().admitted()) ? entry : entry.rollout().previous();
}

std::string RingName(const v1::ComponentEntry& entry, absl::string_view agent_id,
                     absl::string_view chosen) {
  if (!entry.has_rollout() || entry.rollout().rings().empty()) return "";
  return entry.rollout().rings(RingIndex(entry.rollout(), agent_id, chosen)).name();
}

}  // namespace sigrelay
