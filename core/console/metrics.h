// /metrics: a node's AdminService status in the Prometheus text exposition
// format (version 0.0.4). Names follow Prometheus conventions: counters end
// in _total, durations in _seconds, sizes in _bytes.
//
//   std::string text = PrometheusText(status, absl::Now());
#ifndef SIGRELAY_CORE_CONSOLE_METRICS_H_
#define SIGRELAY_CORE_CONSOLE_METRICS_H_

#include <string>

#include "absl/time/time.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

// Upper bounds of the sync duration histogram (RelayStatus.sync_seconds_counts
// has one count per bound, then one for +Inf).
inline constexpr double kSyncSecondsBounds[] = {0.1, 0.5, 1, 2.5, 5, 15, 60, 300, 1800};
inline constexpr int kSyncSecondsBuckets = sizeof(kSyncSecondsBounds) / sizeof(double) + 1;

std::string PrometheusText(const v1::GetStatusResponse& status, absl::Time now);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CONSOLE_METRICS_H_
