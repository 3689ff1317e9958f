#include "relay/admin_service.h"

#include "absl/strings/str_cat.h"
#include "core/base/grpc_status.h"
#include "core/base/log.h"
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
  grpc::Status auth = node_->token()->Check(context);
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
  if (!node_->token()->Admit(context, reactor)) return reactor;
  FillNodeStatus("relay", *node_->store()->Snapshot(), *node_->update(), *node_->agents(),
                 response);
  response->set_listener_security(node_->options().ListenerSecurity());
  response->set_admin_refused(node_->token()->refused());
  sync_->FillStatus(response->mutable_relay());
  response->set_root_version(sync_->root_version());
  dialer_->FillStatus(response->mutable_relay());
  scheduler_->FillStatus(response->mutable_relay());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RelayAdminService::SyncNow(grpc::CallbackServerContext* context,
                                                     const v1::SyncNowRequest*,
                                                     v1::SyncNowResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!node_->token()->Admit(context, reactor)) return reactor;
  scheduler_->RequestSync([reactor, response](absl::StatusOr<v1::SyncNowResponse> r) {
    if (r.ok()) *response = std::move(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* RelayAdminService::Import(grpc::CallbackServerContext* context,
                                                    const v1::ImportRequest* request,
                                                    v1::SyncNowResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!node_->token()->Admit(context, reactor)) return reactor;
  if (request->dir().empty() || request->dir()[0] != '/') {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "import needs the tree's absolute path on the relay's host"));
    return reactor;
  }
  Log(LogLevel::kInfo, absl::StrCat("admin: import of ", request->dir(), " requested"),
      {{"event", "admin_import"}, {"dir", request->dir()}});
  scheduler_->RequestImport(request->dir(),
                            [reactor, response](absl::StatusOr<v1::SyncNowResponse> r) {
                              if (r.ok()) *response = std::move(*r);
                              reactor->Finish(ToGrpcStatus(r.status()));
                            });
  return reactor;
}

grpc::ServerUnaryReactor* RelayAdminService::SetSchedule(grpc::CallbackServerContext* context,
                                                         const v1::SetScheduleRequest* request,
                                                         v1::SetScheduleResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!node_->token()->Admit(context, reactor)) return reactor;
  absl::StatusOr<absl::Duration> period = ParseSchedule(request->period());
  absl::Status s = period.status();
  if (s.ok()) {
    // Saved first: a change that could not be kept is not made.
    s = settings_->Update([&](v1::RuntimeSettings* r) { r->set_schedule(request->period()); });
  }
  if (s.ok()) {
    const absl::Time next = scheduler_->SetPeriod(*period);
    response->set_schedule_seconds(absl::ToInt64Seconds(*period));
    response->set_next_scheduled_unix(absl::ToUnixSeconds(next));
    Log(LogLevel::kInfo,
        absl::StrCat("admin: schedule set to ", request->period(),
                     " (kept across restarts); next sync ", absl::FormatTime(next)),
        {{"event", "admin_schedule"}, {"period", request->period()}});
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* RelayAdminService::SetProxy(grpc::CallbackServerContext* context,
                                                      const v1::SetProxyRequest* request,
                                                      v1::SetProxyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!node_->token()->Admit(context, reactor)) return reactor;
  absl::Status s = CheckProxyUrl(request->url());
  if (s.ok()) {
    s = settings_->Update([&](v1::RuntimeSettings* r) {
      r->set_proxy_set(true);
      r->set_proxy(request->url());
      r->set_no_proxy(request->no_proxy());
    });
  }
  if (s.ok()) s = dialer_->SetProxy(request->url(), request->no_proxy());
  if (s.ok()) {
    v1::RelayStatus shown;
    dialer_->FillStatus(&shown);
    response->set_proxy(shown.proxy());
    response->set_no_proxy(shown.no_proxy());
    Log(LogLevel::kInfo,
        absl::StrCat("admin: upstream proxy ",
                     shown.proxy().empty() ? "cleared" : "set to " + shown.proxy(),
                     shown.no_proxy().empty() ? "" : ", direct to " + shown.no_proxy(),
                     " (kept across restarts)"),
        {{"event", "admin_proxy"}, {"proxy", shown.proxy()}, {"no_proxy", shown.no_proxy()}});
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace sigrelay
