// A blocking Watch stream for clients with a thread to spare (sigrelay-agent
// and the relay's follower): open, report, read pushes, report again.
// agent-sim keeps its callback reactors (10,000 agents on one core).
//
//   WatchStream watch(stub.get(), report);
//   while (absl::StatusOr<v1::WatchResponse> push = watch.Next(); push.ok()) {
//     ... take push->manifest(), push->payloads() ...
//     watch.Report(new_report);
//   }
//   // from another thread, to stop: watch.Cancel();
#ifndef SIGRELAY_CORE_CLIENT_WATCH_STREAM_H_
#define SIGRELAY_CORE_CLIENT_WATCH_STREAM_H_

#include <memory>

#include "absl/status/statusor.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

class WatchStream {
 public:
  // Opens the stream and sends `first` (the held versions: the server's
  // first push is the current manifest with any incremental for them).
  WatchStream(v1::UpdateService::StubInterface* stub, const v1::WatchRequest& first);
  ~WatchStream();
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // The next push; once the stream ended, the server's status (never OK:
  // Unavailable "watch stream ended" for a clean end).
  absl::StatusOr<v1::WatchResponse> Next();
  // Sends a new report (after an install); false once the stream is broken.
  bool Report(const v1::WatchRequest& report);
  // Ends the stream from any thread; Next() returns Cancelled.
  void Cancel() { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriterInterface<v1::WatchRequest, v1::WatchResponse>> stream_;
  bool ended_ = false;     // no more reads or writes
  bool finished_ = false;  // Finish() called; end_ holds its status
  absl::Status end_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_WATCH_STREAM_H_
