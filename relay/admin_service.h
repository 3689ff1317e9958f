// The relay's AdminService: GetStatus (components, upstream state, schedule,
// download counters, agents), SyncNow, and the settings an operator changes
// at run time (SetSchedule, SetProxy). Publish belongs to the origin.
#ifndef SIGRELAY_RELAY_ADMIN_SERVICE_H_
#define SIGRELAY_RELAY_ADMIN_SERVICE_H_

#include "core/serve/node.h"
#include "relay/runtime_settings.h"
#include "relay/sync_scheduler.h"
#include "relay/upstream_sync.h"
#include "sigrelay/v1/admin.grpc.pb.h"

namespace sigrelay {

class RelayAdminService final : public v1::AdminService::CallbackService {
 public:
  // All pointers must outlive this service.
  RelayAdminService(Node* node, UpstreamSync* sync, NetworkDialer* dialer, SyncScheduler* scheduler,
                    RuntimeSettingsFile* settings)
      : node_(node), sync_(sync), dialer_(dialer), scheduler_(scheduler), settings_(settings) {}

  grpc::ServerReadReactor<v1::PublishRequest>* Publish(grpc::CallbackServerContext* context,
                                                       v1::PublishResponse* response) override;
  grpc::ServerUnaryReactor* SetPushing(grpc::CallbackServerContext* context,
                                       const v1::SetPushingRequest* request,
                                       v1::SetPushingResponse* response) override {
    return node_->SetPushing(context, request, response);
  }
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* SyncNow(grpc::CallbackServerContext* context,
                                    const v1::SyncNowRequest* request,
                                    v1::SyncNowResponse* response) override;
  grpc::ServerUnaryReactor* Import(grpc::CallbackServerContext* context,
                                   const v1::ImportRequest* request,
                                   v1::SyncNowResponse* response) override;
  grpc::ServerUnaryReactor* SetSchedule(grpc::CallbackServerContext* context,
                                        const v1::SetScheduleRequest* request,
                                        v1::SetScheduleResponse* response) override;
  grpc::ServerUnaryReactor* SetProxy(grpc::CallbackServerContext* context,
                                     const v1::SetProxyRequest* request,
                                     v1::SetProxyResponse* response) override;

 private:
  Node* const node_;
  UpstreamSync* const sync_;
  NetworkDialer* const dialer_;
  SyncScheduler* const scheduler_;
  RuntimeSettingsFile* const settings_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_ADMIN_SERVICE_H_
