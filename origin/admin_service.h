// The origin's AdminService: Publish (client-streaming upload into a temp
// file, then the Publisher on a worker thread) and GetStatus. Every call
// needs the admin bearer token.
#ifndef SIGRELAY_ORIGIN_ADMIN_SERVICE_H_
#define SIGRELAY_ORIGIN_ADMIN_SERVICE_H_

#include <string>

#include "core/base/serial_executor.h"
#include "core/serve/node.h"
#include "origin/publisher.h"
#include "origin/rollout_gate.h"
#include "sigrelay/v1/admin.grpc.pb.h"

namespace sigrelay {

class OriginAdminService final : public v1::AdminService::CallbackService {
 public:
  // Uploads are spooled under `spool_dir`. All pointers must outlive this.
  OriginAdminService(Node* node, Publisher* publisher, RolloutGate* gate, std::string spool_dir);

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
  grpc::ServerUnaryReactor* Withdraw(grpc::CallbackServerContext* context,
                                     const v1::WithdrawRequest* request,
                                     v1::WithdrawResponse* response) override;
  grpc::ServerUnaryReactor* Rollout(grpc::CallbackServerContext* context,
                                    const v1::RolloutRequest* request,
                                    v1::RolloutResponse* response) override;

 private:
  friend class PublishReactor;
  Node* const node_;
  Publisher* const publisher_;
  RolloutGate* const gate_;
  const std::string spool_dir_;
  SerialExecutor worker_;  // last: drained before the members above go
};

}  // namespace sigrelay

#endif  // SIGRELAY_ORIGIN_ADMIN_SERVICE_H_
