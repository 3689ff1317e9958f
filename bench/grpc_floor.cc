// grpc_floor: what gRPC itself costs on this machine for a fan-out, with
// nothing of sigrelay in the way. The server answers every Fetch with one
// prebuilt message of --size bytes; the client opens --clients connections,
// waits until all are connected, then makes one Fetch on each at once and
// reports the seconds until the last completes. bench/fanout.sh runs it
// beside the relay and nginx so the table shows which part of the relay's
// time is the transport's.
//
// It also answers Watch like a node to an idle agent (one small message,
// then the stream stays open), so bench/idle_agents.sh can show what gRPC
// itself holds per idle connection and stream. With --push N, once N
// Watch streams are answered it pushes one --size message on each the way a
// relay does (at most 64 writes in flight, the next started as one ends, one
// shared buffer), and each client answers with a small report: the floor of
// the push model, with 10,000 streams open throughout.
//
//   grpc_floor serve --size 76295 [--expect N] [--push N]  (prints the port, serves until killed)
//   grpc_floor load --server 127.0.0.1:P --clients 10000
//   grpc_floor hold --server 127.0.0.1:P --clients 5000   (prints "ready", holds until killed)
//   grpc_floor watch --server 127.0.0.1:P --clients 10000 (waits for the push, reports, exits)
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/flags.h"
#include "core/base/process.h"
#include "core/base/transport.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace {
using sigrelay::v1::FetchRequest;
using sigrelay::v1::FetchResponse;
using sigrelay::v1::UpdateService;
using sigrelay::v1::WatchRequest;
using sigrelay::v1::WatchResponse;

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Server CPU from the first Fetch on: the calls' cost, not the connections'.
// And until the `--expect`th call ended, when given.
std::atomic<bool> first_call{true};
double cpu_at_first_call = 0;
std::atomic<int> calls_left{-1};
std::atomic<double> cpu_at_last_call{0};

// --push: CPU from the first push started to the last report read.
int push_to = 0;
std::atomic<int> answered_watches{0};
std::atomic<int> reports_left{0};
double cpu_at_push = 0;
std::chrono::steady_clock::time_point push_started, last_report;
std::atomic<double> cpu_at_last_report{0};

// Every method on the callback API, Watch raw, as the relay serves them
// (one shared push buffer).
class FloorService final
    : public UpdateService::WithCallbackMethod_GetManifest<
          UpdateService::WithRawCallbackMethod_Watch<UpdateService::WithCallbackMethod_Fetch<
              UpdateService::WithCallbackMethod_ReportStatus<UpdateService::Service>>>> {
 public:
  explicit FloorService(size_t size) {
    response_.mutable_header()->set_component("floor");
    response_.mutable_header()->set_size(size);
    response_.set_data(std::string(size, 'x'));
    bool own = false;
    grpc::GenericSerialize<grpc::ProtoBufferWriter, WatchResponse>(WatchResponse(),
                                                                   &watch_response_, &own);
    WatchResponse push;
    *push.add_payloads() = response_;
    grpc::GenericSerialize<grpc::ProtoBufferWriter, WatchResponse>(push, &push_, &own);
  }
  grpc::ServerWriteReactor<FetchResponse>* Fetch(grpc::CallbackServerContext*,
                                                 const FetchRequest*) override {
    if (first_call.exchange(false)) cpu_at_first_call = CpuSeconds();
    class Reactor final : public grpc::ServerWriteReactor<FetchResponse> {
     public:
      explicit Reactor(const FetchResponse* r) {
        StartWriteAndFinish(r, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override {
        if (calls_left.fetch_sub(1) == 1) cpu_at_last_call = CpuSeconds();
        delete this;
      }
    };
    return new Reactor(&response_);
  }

  // An idle agent's stream: its first request read, one small answer
  // written, then a read left pending until the client goes. With --push,
  // one push later and the client's report read.
  class WatchReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit WatchReactor(FloorService* service) : service_(service) { StartRead(&request_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      if (!answered_) {
        StartWrite(&service_->watch_response_);
      } else if (reports_left.fetch_sub(1) == 1) {
        last_report = std::chrono::steady_clock::now();
        cpu_at_last_report = CpuSeconds();
      }
      answered_ = true;
      StartRead(&request_);
    }
    void OnWriteDone(bool) override {
      if (!pushed_) {
        pushed_ = true;  // the next write is the push
        if (push_to > 0 && answered_watches.fetch_add(1) + 1 == push_to) service_->PushAll();
        return;
      }
      service_->PushNext();
    }
    void OnDone() override { delete this; }
    void Push() { StartWrite(&service_->push_); }

   private:
    FloorService* const service_;
    grpc::ByteBuffer request_;
    bool answered_ = false;
    bool pushed_ = false;
  };

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Watch(
      grpc::CallbackServerContext*) override {
    auto* r = new WatchReactor(this);
    if (push_to > 0) {  // idle streams (hold) keep nothing more than gRPC's own
      std::lock_guard<std::mutex> lock(mu_);
      watchers_.push_back(r);
    }
    return r;
  }

  // Every answered stream gets the push, at most kInFlight writes at once.
  void PushAll() {
    reports_left = push_to;
    cpu_at_push = CpuSeconds();
    push_started = std::chrono::steady_clock::now();
    for (int i = 0; i < kInFlight; ++i) PushNext();
  }
  void PushNext() {
    WatchReactor* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (next_push_ < watchers_.size()) next = watchers_[next_push_++];
    }
    if (next != nullptr) next->Push();
  }

 private:
  static constexpr int kInFlight = 64;  // the relay's --max-transfers default
  FetchResponse response_;
  grpc::ByteBuffer watch_response_;
  grpc::ByteBuffer push_;  // one shared buffer, as the relay's pushes are
  std::mutex mu_;
  std::vector<WatchReactor*> watchers_;
  size_t next_push_ = 0;
};

// One agent's Watch stream: its first report, then the server's small
// answer. With `take_push`, then the push, answered with a report naming
// version have+2. `left` counts down once the agent is done: answered
// (hold) or reported (watch).
class Watcher final : public grpc::ClientBidiReactor<WatchRequest, WatchResponse> {
 public:
  Watcher(UpdateService::Stub* stub, int index, const std::string& component, int have,
          bool take_push, std::atomic<int>* left)
      : left_(left), have_(have), take_push_(take_push) {
    request_.set_agent_id("floor-" + std::to_string(index));
    sigrelay::v1::ComponentVersion* v = request_.add_versions();
    v->set_component(component);
    v->set_version(have);
    stub->async()->Watch(&ctx_, this);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (!take_push_) {
      --*left_;
    } else if (++reads_ < 2) {
      StartRead(&response_);
    } else {
      request_.mutable_versions(0)->set_version(have_ + 2);
      StartWrite(&request_);
    }
  }
  void OnWriteDone(bool) override {
    if (++writes_ == 2) --*left_;
  }
  void OnDone(const grpc::Status&) override {}

 private:
  grpc::ClientContext ctx_;
  WatchRequest request_;
  WatchResponse response_;
  int reads_ = 0, writes_ = 0;
  std::atomic<int>* left_;
  const int have_;
  const bool take_push_;
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

int Serve(size_t size, int expect, const sigset_t& stop) {
  if (expect > 0) calls_left = expect;
  FloorService service(size);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return 1;
  std::printf("%d\n", port);
  std::fflush(stdout);
  sigrelay::WaitForStopSignal(stop);
  // Printed before shutting down, so it counts the calls alone.
  const double end = cpu_at_last_call.load() > 0 ? cpu_at_last_call.load() : CpuSeconds();
  const bool pushed = cpu_at_last_report.load() > 0;
  std::fprintf(stderr, "{\"cpu_seconds\":%.3f,\"push_cpu_seconds\":%.3f,\"push_seconds\":%.3f}\n",
               first_call.load() ? 0.0 : end - cpu_at_first_call,
               pushed ? cpu_at_last_report.load() - cpu_at_push : 0.0,
               pushed ? std::chrono::duration<double>(last_report - push_started).count() : 0.0);
  server->Shutdown();
  return 0;
}

std::vector<std::shared_ptr<grpc::Channel>> Connect(const std::string& target, int clients) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < clients; ++i) {
    sigrelay::ChannelOptions own;
    own.own_connection = true;  // one TCP connection each
    channels.push_back(sigrelay::MakeChannel(target, own));
  }
  return channels;
}

bool WaitConnected(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                   const std::string& target) {
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(120);
  for (auto& c : channels) {
    if (!c->WaitForConnected(deadline)) {
      std::fprintf(stderr, "cannot connect to %s\n", target.c_str());
      return false;
    }
  }
  return true;
}

// Polls `count` down to zero for up to 120 s; past that, says how many
// are left and exits (streams still open: no clean teardown to wait for).
void WaitForZero(const std::atomic<int>& count, const char* what) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count.load() > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "%d %s\n", count.load(), what);
      std::_Exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // measurement pace
  }
}

// N connections, one Watch stream each, opened once every connection is
// up (a Watch on a channel still connecting fails at once, and the server
// would wait for it forever). hold: "ready" once every stream got its
// answer, then held until SIGINT or SIGTERM. watch: until every stream got
// the push and sent its report; prints the seconds from the streams' opening.
int Watch(const std::string& target, int clients, const std::string& component, int have,
          const sigset_t* hold_until) {
  std::vector<std::shared_ptr<grpc::Channel>> channels = Connect(target, clients);
  if (!WaitConnected(channels, target)) return 1;
  std::vector<std::unique_ptr<UpdateService::Stub>> stubs;
  std::vector<std::unique_ptr<Watcher>> watchers;
  std::atomic<int> left{clients};
  const bool take_push = hold_until == nullptr;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < clients; ++i) {
    stubs.push_back(UpdateService::NewStub(channels[i]));
    watchers.push_back(
        std::make_unique<Watcher>(stubs.back().get(), i, component, have, take_push, &left));
  }
  WaitForZero(left, take_push ? "watchers got no push" : "watchers unanswered");
  if (take_push) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"clients\":%d,\"seconds\":%.3f}\n", clients, s);
  } else {
    std::printf("ready\n");
  }
  std::fflush(stdout);
  if (!take_push) sigrelay::WaitForStopSignal(*hold_until);
  std::_Exit(0);  // the server side is what was measured
}

int Load(const std::string& target, int clients) {
  std::vector<std::shared_ptr<grpc::Channel>> channels = Connect(target, clients);
  std::vector<std::unique_ptr<UpdateService::Stub>> stubs;
  for (auto& c : channels) stubs.push_back(UpdateService::NewStub(c));
  if (!WaitConnected(channels, target)) return 1;
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(120);
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
  uint64_t size = 76295;
  int clients = 1000;
  std::string server;
  sigrelay::FlagParser flags("grpc_floor", "bare gRPC fan-out: serve | load | hold | watch");
  flags.Add("size", &size, "BYTES", "serve: bytes in the one message each Fetch gets");
  int expect = 0;
  flags.Add("expect", &expect, "N", "serve: CPU is counted until this many calls ended");
  flags.Add("push", &push_to, "N",
            "serve: once N Watch streams are answered, push --size bytes on each");
  flags.Add("server", &server, "HOST:PORT", "load: the grpc_floor server");
  flags.Add("clients", &clients, "N",
            "load: connections, one Fetch each; hold, watch: one Watch each");
  std::string component = "floor";
  int have = 1;
  flags.Add("component", &component, "NAME",
            "watch: the component each client reports holding (a relay's: it pushes that one)");
  flags.Add("have", &have, "VERSION",
            "watch: the version held; after the push each reports VERSION+2");
  std::vector<std::string> command;
  absl::Status parsed = flags.Parse(argc, argv, &command);
  if (!parsed.ok() || command.size() != 1 || flags.help_requested()) {
    std::fprintf(stderr, "%s%s", parsed.ok() ? "" : (std::string(parsed.message()) + "\n").c_str(),
                 flags.Usage().c_str());
    return flags.help_requested() ? 0 : 2;
  }
  if (command[0] == "serve") {
    sigset_t stop = sigrelay::BlockStopSignals();
    return Serve(size, expect, stop);
  }
  if (command[0] == "load") return Load(server, clients);
  if (command[0] == "watch") return Watch(server, clients, component, have, nullptr);
  if (command[0] == "hold") {
    sigset_t stop = sigrelay::BlockStopSignals();
    return Watch(server, clients, component, have, &stop);
  }
  std::fprintf(stderr, "unknown command \"%s\"; use serve, load, hold or watch\n",
               command[0].c_str());
  return 2;
}
