#include "origin/admin_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "core/base/grpc_status.h"
#include "core/base/log.h"
#include "core/model/component.h"
#include "core/model/manifest.h"
#include "core/model/rollout.h"
#include "core/serve/status_report.h"

namespace sigrelay {

// One Publish upload: the component name, then the file in pieces, spooled to
// disk so memory stays flat whatever the file size.
class PublishReactor final : public grpc::ServerReadReactor<v1::PublishRequest> {
 public:
  PublishReactor(OriginAdminService* admin, grpc::CallbackServerContext* context,
                 v1::PublishResponse* response)
      : admin_(admin), response_(response) {
    grpc::Status auth = admin_->node_->token()->Check(context);
    if (!auth.ok()) {
      Finish(auth);
      return;
    }
    static std::atomic<uint64_t> counter{0};
    spool_path_ = absl::StrCat(admin_->spool_dir_, "/upload-", getpid(), "-", ++counter);
    fd_ = open(spool_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("cannot spool the upload to ", spool_path_)));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client has sent everything
      EndUpload();
      return;
    }
    if (request_.has_component()) {
      if (!component_.empty()) {
        Fail(grpc::StatusCode::INVALID_ARGUMENT, "the component is named twice in one upload");
        return;
      }
      absl::StatusOr<ComponentSpec> spec =
          admin_->publisher_->options().catalog.Find(request_.component());
      if (!spec.ok()) {
        Fail(ToGrpcStatus(spec.status()));
        return;
      }
      component_ = request_.component();
      if (!request_.rollout().empty()) {
        absl::StatusOr<std::vector<v1::Ring>> plan = ParseRolloutPlan(request_.rollout());
        if (!plan.ok()) {
          Fail(ToGrpcStatus(plan.status()));
          return;
        }
        plan_ = std::move(*plan);
      }
    } else if (request_.has_data()) {
      if (component_.empty()) {
        Fail(grpc::StatusCode::INVALID_ARGUMENT,
             "an upload must name its component before sending data");
        return;
      }
      received_ += request_.data().size();
      const uint64_t limit = admin_->publisher_->options().max_file_size;
      if (received_ > limit) {
        Fail(grpc::StatusCode::INVALID_ARGUMENT,
             absl::StrCat("the ", component_, " file is over the limit of ", limit,
                          " bytes; raise the origin's --max-file-size if it is right"));
        return;
      }
      if (!WriteAll(request_.data())) {
        Fail(grpc::StatusCode::INTERNAL,
             absl::StrCat("cannot write the upload to ", spool_path_, " (disk full?)"));
        return;
      }
    }
    StartRead(&request_);
  }

  void OnDone() override {
    if (fd_ >= 0) close(fd_);
    if (!spool_path_.empty()) unlink(spool_path_.c_str());
    delete this;
  }

 private:
  bool WriteAll(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(fd_, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  void Fail(grpc::StatusCode code, std::string message) {
    Fail(grpc::Status(code, std::move(message)));
  }
  void Fail(grpc::Status status) {
    Log(LogLevel::kWarning, absl::StrCat("publish refused: ", status.error_message()),
        {{"event", "publish_refused"}, {"error", status.error_message()}});
    Finish(std::move(status));
  }

  void EndUpload() {
    if (component_.empty()) {
      Fail(grpc::StatusCode::INVALID_ARGUMENT, "the upload named no component");
      return;
    }
    if (close(fd_) != 0) {
      fd_ = -1;
      Fail(grpc::StatusCode::INTERNAL, "cannot finish writing the upload (disk full?)");
      return;
    }
    fd_ = -1;
    // Publishing computes incrementals: minutes of CPU for big files, so it
    // runs on the worker, never inside a reaction.
    admin_->worker_.Post([this] {
      absl::StatusOr<v1::PublishResponse> r =
          admin_->publisher_->Publish(component_, spool_path_, plan_ ? &*plan_ : nullptr);
      if (!r.ok()) {
        Fail(ToGrpcStatus(r.status()));
        return;
      }
      *response_ = *r;
      Finish(grpc::Status::OK);
    });
  }

  OriginAdminService* const admin_;
  v1::PublishResponse* const response_;
  v1::PublishRequest request_;
  std::string component_;
  std::optional<std::vector<v1::Ring>> plan_;  // the upload's own rollout plan
  std::string spool_path_;
  int fd_ = -1;
  uint64_t received_ = 0;
};

OriginAdminService::OriginAdminService(Node* node, Publisher* publisher, RolloutGate* gate,
                                       std::string spool_dir)
    : node_(node), publisher_(publisher), gate_(gate), spool_dir_(std::move(spool_dir)) {}

grpc::ServerUnaryReactor* OriginAdminService::Rollout(grpc::CallbackServerContext* context,
                                                      const v1::RolloutRequest* request,
                                                      v1::RolloutResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!node_->token()->Admit(context, reactor)) return reactor;
  // A change signs a manifest: on the worker, never inside a reaction.
  worker_.Post([this, request, response, reactor] {
    absl::StatusOr<v1::RolloutResponse> r = gate_->Act(*request);
    if (r.ok()) *response = std::move(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerReadReactor<v1::PublishRequest>* OriginAdminService::Publish(
    grpc::CallbackServerContext* context, v1::PublishResponse* response) {
  return new PublishReactor(this, context, response);
}

grpc::ServerUnaryReactor* OriginAdminService::Withdraw(grpc::CallbackServerContext* context,
                                                       const v1::WithdrawRequest* request,
                                                       v1::WithdrawResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!node_->token()->Admit(context, reactor)) return reactor;
  // A roll-forward publishes (incrementals, signing): on the worker, never
  // inside a reaction.
  worker_.Post([this, request, response, reactor] {
    absl::StatusOr<v1::WithdrawResponse> r =
        publisher_->Withdraw(request->component(), request->version(), request->reason());
    if (r.ok()) *response = std::move(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* OriginAdminService::GetStatus(grpc::CallbackServerContext* context,
                                                        const v1::GetStatusRequest*,
                                                        v1::GetStatusResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!node_->token()->Admit(context, reactor)) return reactor;
  FillNodeStatus("origin", *node_->store()->Snapshot(), *node_->update(), *node_->agents(),
                 response);
  response->set_listener_security(node_->options().ListenerSecurity());
  response->set_admin_refused(node_->token()->refused());
  response->set_root_version(publisher_->root_version());
  gate_->FillStatus(response);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace sigrelay
