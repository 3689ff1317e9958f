#include "tests/testutil/dribbling_upstream.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/base/transport.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay::testing {

class DribblingUpstream::Service final : public v1::UpdateService::Service {
 public:
  Service(DribblingUpstream* owner, const std::string& honest, uint64_t fast_bytes,
          absl::Duration interval)
      : owner_(owner),
        honest_(v1::UpdateService::NewStub(MakeChannel(honest, {}))),
        fast_bytes_(fast_bytes),
        interval_(interval) {}

  grpc::Status GetManifest(grpc::ServerContext*, const v1::GetManifestRequest* req,
                           v1::SignedManifest* out) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return honest_->GetManifest(&ctx, *req, out);
  }

  grpc::Status Watch(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::WatchResponse, v1::WatchRequest>* stream) override {
    v1::WatchRequest req;
    const bool reads = stream->Read(&req);  // a report, or the half-close of a relay
    v1::WatchResponse resp;
    const v1::GetManifestRequest all;
    if (grpc::Status s = GetManifest(ctx, &all, resp.mutable_manifest()); !s.ok()) {
      return s;
    }
    stream->Write(resp);
    while (reads && stream->Read(&req)) {
    }
    // Held open until the watcher goes (polled: a half-closed stream has
    // nothing left to block on).
    while (!ctx->IsCancelled() &&
           !stopping_.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
    }
    return grpc::Status::OK;
  }

  grpc::Status Fetch(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                     grpc::ServerWriter<v1::FetchResponse>* writer) override {
    owner_->fetches_.fetch_add(1);
    grpc::ClientContext up;
    std::unique_ptr<grpc::ClientReader<v1::FetchResponse>> reader = honest_->Fetch(&up, *req);
    uint64_t sent = 0;
    v1::FetchResponse msg;
    while (reader->Read(&msg)) {
      std::string data = std::move(*msg.mutable_data());
      msg.clear_data();
      const uint64_t fast =
          std::min<uint64_t>(data.size(), fast_bytes_ - std::min(sent, fast_bytes_));
      msg.set_data(data.substr(0, fast));
      if (!writer->Write(msg)) break;
      sent += fast;
      owner_->body_bytes_.fetch_add(fast);
      if (fast == data.size()) continue;
      // The rest a byte at a time, while the client stays.
      owner_->dribbling_.fetch_add(1);
      for (size_t i = fast; i < data.size() && !ctx->IsCancelled(); ++i) {
        if (stopping_.WaitForNotificationWithTimeout(interval_)) break;
        v1::FetchResponse one;
        one.set_data(data.substr(i, 1));
        if (!writer->Write(one)) break;
        owner_->body_bytes_.fetch_add(1);
      }
      owner_->dribbling_.fetch_sub(1);
      up.TryCancel();
      break;
    }
    while (reader->Read(&msg)) {
    }
    reader->Finish();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "dribbled");
  }

  void Stop() { stopping_.Notify(); }

 private:
  DribblingUpstream* owner_;
  std::unique_ptr<v1::UpdateService::Stub> honest_;
  const uint64_t fast_bytes_;
  const absl::Duration interval_;
  absl::Notification stopping_;
};

DribblingUpstream::DribblingUpstream(const std::string& honest, uint64_t fast_bytes,
                                     absl::Duration interval)
    : service_(std::make_unique<Service>(this, honest, fast_bytes, interval)) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

DribblingUpstream::~DribblingUpstream() {
  service_->Stop();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  server_->Wait();
}

}  // namespace sigrelay::testing
