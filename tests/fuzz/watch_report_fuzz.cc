// What a Watch stream's reports do to the node: any bytes as a
// ReportStatusRequest (the report a WatchRequest carries) into the agents'
// registry, whose bounds must hold whatever arrives.
#include "core/serve/agent_registry.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sigrelay::AgentRegistry* registry = new sigrelay::AgentRegistry({.max_agents = 64});
  for (const std::string& part : sigrelay::fuzz::Split(data, size)) {
    sigrelay::v1::ReportStatusRequest report;
    if (!report.ParseFromString(part)) continue;
    (void)registry->Report(report);
  }
  if (registry->AgentCount() > 64) __builtin_trap();
  size_t names = registry->VersionCounts().size();
  if (names > sigrelay::AgentRegistry::kMaxComponents) __builtin_trap();
  return 0;
}
