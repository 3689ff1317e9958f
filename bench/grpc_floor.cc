// grpc_floor: what gRPC itself costs on this machine for a fan-out, with
// nothing of sigrelay in the way. The server answers every Fetch with one
// prebuilt message of --size bytes; the client opens --clients connections,
// waits until all are connected, then makes one Fetch on each at once and
// reports the seconds until the last completes. bench/fanout.sh runs it
// beside the relay and nginx so the table shows which part of the relay's
// time is the transport's.
//
//   grpc_floor serve --size 76295            (prints the port, serves until killed)
//   grpc_floor load --server 127.0.0.1:P --clients 10000
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/process.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace {
using sigrelay::v1::FetchRequest;
using sigrelay::v1::FetchResponse;
using sigrelay::v1::UpdateService;

class FloorService final : public UpdateService::CallbackService {
 public:
  explicit FloorService(size_t size) {
    response_.mutable_header()->set_component("floor");
    response_.mutable_header()->set_size(size);
    response_.set_data(std::string(size, 'x'));
  }
  grpc::ServerWriteReactor<FetchResponse>* Fetch(grpc::CallbackServerContext*,
                                                 const FetchRequest*) override {
    class Reactor final : public grpc::ServerWriteReactor<FetchResponse> {
     public:
      explicit Reactor(const FetchResponse* r) {
        StartWriteAndFinish(r, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }
    };
    return new Reactor(&response_);
  }

 private:
  FetchResponse response_;
};

class Call final : public grpc::ClientReadReactor<FetchResponse> {
 public:
  Call(UpdateService::Stub* stub, std::atomic<int>* left, std::atomic<uint64_t>* bytes)
      : left_(left), bytes_(bytes) {
    stub->async()->Fetch(&ctx_, &request_, this);
    StartRead(&message_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    *bytes_ += message_.data().size();
    StartRead(&message_);
  }
  void OnDone(const grpc::Status& s) override {
    if (!s.ok()) std::fprintf(stderr, "fetch failed: %s\n", s.error_message().c_str());
    --*left_;
    delete this;
  }

 private:
  grpc::ClientContext ctx_;
  FetchRequest request_;
  FetchResponse message_;
  std::atomic<int>* left_;
  std::atomic<uint64_t>* bytes_;
};

std::vector<std::pair<std::string, int>> ExtraArgs() {
  std::vector<std::pair<std::string, int>> out;
  const char* e = std::getenv("FLOOR_ARGS");  // name=int,name=int (experiments)
  std::string s = e ? e : "";
  size_t at = 0;
  while (at < s.size()) {
    size_t comma = s.find(',', at);
    if (comma == std::string::npos) comma = s.size();
    std::string kv = s.substr(at, comma - at);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) out.push_back({kv.substr(0, eq), std::atoi(kv.c_str() + eq + 1)});
    at = comma + 1;
  }
  return out;
}

const char* Flag(int argc, char** argv, const char* name, const char* def) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

int Serve(size_t size, const sigset_t& stop) {
  FloorService service(size);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  for (auto& [k, v] : ExtraArgs()) builder.AddChannelArgument(k, v);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return 1;
  std::printf("%d\n", port);
  std::fflush(stdout);
  sigrelay::WaitForStopSignal(stop);
  server->Shutdown();
  return 0;
}

int Load(const std::string& target, int clients) {
  std::vector<std::unique_ptr<UpdateService::Stub>> stubs;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < clients; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(8 << 20);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection each
    for (auto& [k, v] : ExtraArgs()) args.SetInt(k, v);
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(UpdateService::NewStub(channels.back()));
  }
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(120);
  for (auto& c : channels) {
    if (!c->WaitForConnected(deadline)) {
      std::fprintf(stderr, "cannot connect to %s\n", target.c_str());
      return 1;
    }
  }
  std::atomic<int> left{clients};
  std::atomic<uint64_t> bytes{0};
  auto t0 = std::chrono::steady_clock::now();
  for (auto& s : stubs) new Call(s.get(), &left, &bytes);
  while (left.load() > 0) {
    if (std::chrono::system_clock::now() > deadline) {
      std::fprintf(stderr, "%d calls unfinished\n", left.load());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // measurement pace
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"clients\":%d,\"seconds\":%.3f,\"bytes\":%llu}\n", clients, s,
              static_cast<unsigned long long>(bytes.load()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sigrelay::InitDaemonProcess();
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) {
    sigset_t stop = sigrelay::BlockStopSignals();
    return Serve(std::strtoull(Flag(argc, argv, "--size", "76295"), nullptr, 10), stop);
  }
  if (argc >= 2 && std::strcmp(argv[1], "load") == 0) {
    return Load(Flag(argc, argv, "--server", "127.0.0.1:0"),
                std::atoi(Flag(argc, argv, "--clients", "1000")));
  }
  std::fprintf(stderr, "usage: grpc_floor serve --size BYTES | load --server H:P --clients N\n");
  return 2;
}
