// The relay's AdminService: GetStatus (components, upstream state, schedule,
// download counters, agents) and SyncNow. Publish belongs to the origin.
#ifndef SIGRELAY_RELAY_ADMIN_SERVICE_H_
#define SIGRELAY_RELAY_ADMIN_SERVICE_H_

#include "core/base/admin_token.h"
#include "core/serve/agent_registry.h"
#include "core/serve/update_service.h"
#include "core/store/version_store.h"
#include "relay/sync_scheduler.h"
#include "relay/upstream_sync.h"
#include "sigrelay/v1/admin.grpc.pb.h"

namespace sigrelay {

class RelayAdminService final : public v1::AdminService::CallbackService {
 public:
  // All pointers must outlive this service.
  RelayAdminService(const AdminToken* token, VersionStore* store, UpstreamSync* sync,
                    SyncScheduler* scheduler, const UpdateServiceImpl* update,
                    const AgentRegistry* agents)
      : token_(token),
        store_(store),
        sync_(sync),
        scheduler_(scheduler),
        update_(update),
        agents_(agents) {}

  grpc::ServerReadReactor<v1::PublishRequest>* Publish(grpc::CallbackServerContext* context,
                                                       v1::PublishResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* SyncNow(grpc::CallbackServerContext* context,
                                    const v1::SyncNowRequest* request,
                                    v1::SyncNowResponse* response) override;

 private:
  const AdminToken* const token_;
  VersionStore* const store_;
  UpstreamSync* const sync_;
  SyncScheduler* const scheduler_;
  const UpdateServiceImpl* const update_;
  const AgentRegistry* const agents_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_ADMIN_SERVICE_H_
