#include "relay/admin_service.h"

#include "core/base/grpc_status.h"
#include "core/serve/status_report.h"

namespace sigrelay {
namespace {

class RefusedUpload final : public grpc::ServerReadReactor<v1::PublishRequest> {
 public:
  explicit RefusedUpload(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerReadReactor<v1::PublishRequest>* RelayAdminService::Publish(
    grpc::CallbackServerContext* context, v1::PublishResponse*) {
  grpc::Status auth = token_->Check(context);
  return new RefusedUpload(auth.ok()
                               ? grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                              "this is a relay: publish at the origin; relays take "
                                              "only what the origin signed")
                               : auth);
}

grpc::ServerUnaryReactor* RelayAdminService::GetStatus(grpc::CallbackServerContext* context,
                                                       const v1::GetStatusRequest*,
                                                       v1::GetStatusResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!token_->Admit(context, reactor)) return reactor;
  FillNodeStatus("relay", *store_->Snapshot(), *update_, *agents_, response);
  sync_->FillStatus(response->mutable_relay());
  scheduler_->FillStatus(response->mutable_relay());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RelayAdminService::SyncNow(grpc::CallbackServerContext* context,
                                                     const v1::SyncNowRequest*,
                                                     v1::SyncNowResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!token_->Admit(context, reactor)) return reactor;
  scheduler_->RequestSync([reactor, response](absl::StatusOr<v1::SyncNowResponse> r) {
    if (r.ok()) *response = std::move(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

}  // namespace sigrelay
