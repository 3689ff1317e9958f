// Report latency of honest agents during a fake agent-id flood (issue
// "Hostile network"): AgentRegistry::Report for 1,000 honest agents, timed
// alone (the peer: an idle registry) and again with the registry full at
// its default cap (2^20 ids) and 19 new fake ids reported before every
// honest one, so every fake evicts the oldest entry. Prints ns per honest
// report for both and the ratio. Not part of the product.
//
//   build/bin/registry_flood            (about 6 s, ~300 MB of RAM)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/serve/agent_registry.h"

namespace {

sigrelay::v1::ReportStatusRequest Report(const std::string& id, uint32_t version) {
  sigrelay::v1::ReportStatusRequest r;
  r.set_agent_id(id);
  sigrelay::v1::ComponentVersion* v = r.add_versions();
  v->set_component("virus");
  v->set_version(version);
  return r;
}

// Median ns of `rounds` rounds of one honest report each, with `fakes` new
// fake ids reported before each.
double HonestReportNs(sigrelay::AgentRegistry* registry, int rounds, int fakes,
                      int64_t* next_fake) {
  std::vector<sigrelay::v1::ReportStatusRequest> honest;
  for (int i = 0; i < 1000; ++i) honest.push_back(Report(absl::StrCat("honest-", i), 173));
  std::vector<double> ns;
  for (int r = 0; r < rounds; ++r) {
    for (int f = 0; f < fakes; ++f) {
      (void)registry->Report(Report(absl::StrCat("fake-", (*next_fake)++), 1 + 2 * (r % 50)));
    }
    const auto start = std::chrono::steady_clock::now();
    (void)registry->Report(honest[r % honest.size()]);
    ns.push_back(
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(ns.begin(), ns.begin() + ns.size() / 2, ns.end());
  return ns[ns.size() / 2];
}

}  // namespace

int main() {
  int64_t next_fake = 0;
  sigrelay::AgentRegistry idle;
  const double alone = HonestReportNs(&idle, 200000, 0, &next_fake);
  sigrelay::AgentRegistry flooded;  // default cap, 2^20
  for (int64_t i = 0; i < (1 << 20); ++i) {
    (void)flooded.Report(Report(absl::StrCat("fake-", next_fake++), 1 + 2 * (i % 50)));
  }
  const double during = HonestReportNs(&flooded, 200000, 19, &next_fake);
  std::printf(
      "honest report, median: %.0f ns alone, %.0f ns in a full registry under a fake-id "
      "flood (19 new ids per honest report, each evicting): ratio %.2f; %zu ids kept\n",
      alone, during, during / alone, flooded.AgentCount());
  return 0;
}
