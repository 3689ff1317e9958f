#include "core/client/grpc_source.h"

#include "core/base/grpc_status.h"
#include "core/client/fetch_client.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay {

GrpcSource::GrpcSource(std::string address, ChannelFn channel, absl::Duration rpc_timeout)
    : address_(std::move(address)), channel_(std::move(channel)), rpc_timeout_(rpc_timeout) {}

absl::Status GrpcSource::ReadManifest(TransferControl* control, ByteSink* out) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = channel_();
  if (!channel.ok()) return channel.status();
  auto stub = v1::UpdateService::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
  control->OnCut([&ctx] { ctx.TryCancel(); });
  v1::SignedManifest m;
  absl::Status s = FromGrpcStatus(stub->GetManifest(&ctx, v1::GetManifestRequest(), &m));
  control->OnCut(nullptr);
  if (!s.ok()) return s;
  return out->Write(m.SerializeAsString());
}

absl::Status GrpcSource::ReadBody(const ExpectedBody& want, uint64_t offset,
                                  TransferControl* control, ByteSink* out) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = channel_();
  if (!channel.ok()) return channel.status();
  auto stub = v1::UpdateService::NewStub(*channel);
  v1::FetchRequest req;
  req.set_component(want.component);
  if (want.kind == v1::PAYLOAD_KIND_INCREMENTAL) req.set_have_version(want.from_version);
  req.set_want_version(want.version);
  req.set_offset(offset);
  grpc::ClientContext ctx;
  control->OnCut([&ctx] { ctx.TryCancel(); });
  auto reader = stub->Fetch(&ctx, req);
  // The header must name exactly the body asked for.
  FetchStreamCheck check(want, offset);
  v1::FetchResponse message;
  absl::Status problem;
  while (problem.ok() && reader->Read(&message)) {
    absl::StatusOr<absl::string_view> data = check.Take(message);
    problem = data.ok() ? out->Write(*data) : data.status();
  }
  if (!problem.ok()) ctx.TryCancel();
  absl::Status finished = FromGrpcStatus(reader->Finish());
  control->OnCut(nullptr);
  if (!problem.ok()) return problem;
  if (!finished.ok()) return finished;
  return check.Finish();
}

}  // namespace sigrelay
