// The component part of an AdminService GetStatus answer, read from a store
// view; origins and relays report the same fields.
#ifndef SIGRELAY_CORE_SERVE_STATUS_REPORT_H_
#define SIGRELAY_CORE_SERVE_STATUS_REPORT_H_

#include "core/serve/agent_registry.h"
#include "core/serve/update_service.h"
#include "core/store/version_store.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

// What every node reports: its role; the manifest serial, issue and expiry
// times; per component the newest version, size, digest, incrementals and
// retained versions; Watch streams, transfer admission and what agents
// reported.
void FillNodeStatus(const std::string& role, const StoreView& view, const UpdateServiceImpl& update,
                    const AgentRegistry& agents, v1::GetStatusResponse* response);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_STATUS_REPORT_H_
