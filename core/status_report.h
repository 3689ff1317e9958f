// The component part of an AdminService GetStatus answer, read from a store
// view; origins and relays report the same fields.
#ifndef SIGRELAY_CORE_STATUS_REPORT_H_
#define SIGRELAY_CORE_STATUS_REPORT_H_

#include "core/agent_registry.h"
#include "core/update_service.h"
#include "core/version_store.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

// Manifest serial, issue and expiry times, and per component the newest
// version, size, digest, incrementals and retained versions.
void FillComponentStatus(const StoreView& view, v1::GetStatusResponse* response);

// Watch streams, transfer admission and what agents reported.
void FillServingStatus(const UpdateServiceImpl& update, const AgentRegistry& agents,
                       v1::GetStatusResponse* response);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_STATUS_REPORT_H_
