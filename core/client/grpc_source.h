// An UpdateSource over gRPC: an origin or relay's UpdateService. It also
// hands out its channel for Watch streams, which only gRPC sources have.
//
//   GrpcSource source("origin.example:7443", [&] { return dialer.Channel(0); });
#ifndef SIGRELAY_CORE_CLIENT_GRPC_SOURCE_H_
#define SIGRELAY_CORE_CLIENT_GRPC_SOURCE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/client/update_source.h"

namespace sigrelay {

class GrpcSource final : public UpdateSource {
 public:
  // Made anew for each call (a dialer re-resolves names and applies proxy
  // changes); an error says why the upstream cannot be reached.
  using ChannelFn = std::function<absl::StatusOr<std::shared_ptr<grpc::Channel>>()>;

  // `rpc_timeout` bounds GetManifest.
  GrpcSource(std::string address, ChannelFn channel,
             absl::Duration rpc_timeout = absl::Seconds(10));

  std::string Describe() const override { return address_; }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel() const { return channel_(); }

 protected:
  absl::Status ReadManifest(TransferControl* control, ByteSink* out) override;
  absl::Status ReadBody(const ExpectedBody& want, uint64_t offset, TransferControl* control,
                        ByteSink* out) override;

 private:
  const std::string address_;
  const ChannelFn channel_;
  const absl::Duration rpc_timeout_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_GRPC_SOURCE_H_
