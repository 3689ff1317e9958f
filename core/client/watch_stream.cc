#include "core/client/watch_stream.h"

#include "core/base/grpc_status.h"

namespace sigrelay {

WatchStream::WatchStream(v1::UpdateService::StubInterface* stub, const v1::WatchRequest& first)
    : stream_(stub->Watch(&ctx_)) {
  if (!stream_->Write(first)) ended_ = true;
}

WatchStream::~WatchStream() {
  if (!finished_) {
    ctx_.TryCancel();
    grpc::Status ignored = stream_->Finish();
    (void)ignored;
  }
}

absl::StatusOr<v1::WatchResponse> WatchStream::Next() {
  v1::WatchResponse push;
  if (!ended_ && stream_->Read(&push)) return push;
  ended_ = true;
  if (!finished_) {
    finished_ = true;
    end_ = FromGrpcStatus(stream_->Finish());
    if (end_.ok()) end_ = absl::UnavailableError("watch stream ended by the server");
  }
  return end_;
}

bool WatchStream::Report(const v1::WatchRequest& report) {
  return !ended_ && stream_->Write(report);
}

}  // namespace sigrelay
