#include "tests/testutil/daemons.h"

#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/base/admin_token.h"
#include "core/base/file_util.h"
#include "core/base/transport.h"
#include "core/client/fetch_client.h"
#include "core/model/manifest.h"
#include "sigrelay/v1/admin.grpc.pb.h"
#include "sigrelay/v1/update.grpc.pb.h"

namespace sigrelay::testing {

Daemon::Daemon(std::string binary, std::string data_dir, std::vector<std::string> args,
               std::vector<std::string> listen, std::vector<std::string> prefix)
    : binary_(std::move(binary)),
      data_dir_(std::move(data_dir)),
      args_(std::move(args)),
      listen_(std::move(listen)),
      prefix_(std::move(prefix)) {
  std::vector<std::string> extra;
  for (const std::string& l : listen_) extra.insert(extra.end(), {"--listen", l});
  Launch(extra);
}

std::vector<std::string> Daemon::addresses() const {
  absl::StatusOr<std::string> text = ReadFileToString(data_dir_ + "/listening");
  if (!text.ok()) return {};
  return absl::StrSplit(*text, '\n', absl::SkipEmpty());
}

Daemon::~Daemon() {
  if (running()) Stop(SIGKILL);
}

void Daemon::Launch(const std::vector<std::string>& extra) {
  unlink((data_dir_ + "/listening").c_str());
  unlink((data_dir_ + "/console.listening").c_str());
  std::vector<std::string> argv = prefix_;
  argv.insert(argv.end(), {BinDir() + "/" + binary_, "--data-dir", data_dir_});
  argv.insert(argv.end(), args_.begin(), args_.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  process_ = std::make_unique<ChildProcess>(argv);
  address_.clear();
  WaitFor(
      [&] {
        return !process_->Running() || !WaitForListening(data_dir_, absl::ZeroDuration()).empty();
      },
      absl::Seconds(20));
  address_ = WaitForListening(data_dir_, absl::ZeroDuration());
}

int Daemon::Stop(int signal) {
  process_->Kill(signal);
  return process_->Wait();
}

void Daemon::Restart(bool same_port) {
  std::vector<std::string> bound = addresses();
  if (running()) Stop(SIGTERM);
  std::vector<std::string> extra;
  for (size_t i = 0; i < listen_.size(); ++i) {
    extra.insert(extra.end(), {"--listen", same_port && i < bound.size() ? bound[i] : listen_[i]});
  }
  Launch(extra);
}

int Ctl(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {BinDir() + "/sigrelayctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  out->clear();
  return RunCommand(argv, out);
}

std::string GenPattern(const std::string& dir, const std::string& name, int records, int seed,
                       const std::string& from, double churn) {
  std::string path = dir + "/" + name, out;
  std::vector<std::string> args = {"gen-pattern", "--seed", std::to_string(seed), "--out", path};
  if (from.empty()) {
    args.insert(args.end(), {"--records", std::to_string(records)});
  } else {
    args.insert(args.end(), {"--from", from, "--churn", std::to_string(churn)});
  }
  return Ctl(args, &out) == 0 ? path : "";
}

uint32_t Publish(const Daemon& origin, const std::string& component, const std::string& file,
                 const std::vector<std::string>& extra) {
  std::string out;
  std::vector<std::string> args = {"--data-dir", origin.data_dir(), "publish", component, file};
  args.insert(args.end(), extra.begin(), extra.end());
  if (Ctl(args, &out) != 0) return 0;
  std::vector<std::string> lines = absl::StrSplit(absl::StripTrailingAsciiWhitespace(out), '\n');
  std::vector<std::string> words = absl::StrSplit(lines.back(), ' ');
  uint32_t v = 0;
  return words.size() == 2 && absl::SimpleAtoi(words[1], &v) ? v : 0;
}

namespace {

std::optional<v1::Manifest> Served(const std::string& addr) {
  auto stub =
      v1::UpdateService::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::SignedManifest m;
  if (!stub->GetManifest(&ctx, {}, &m).ok()) return std::nullopt;
  absl::StatusOr<v1::Manifest> parsed = ParseTrustedManifest(m);
  if (!parsed.ok()) return std::nullopt;
  return *parsed;
}

}  // namespace

uint32_t ServedVersion(const std::string& addr, const std::string& component) {
  std::optional<v1::Manifest> m = Served(addr);
  if (!m) return 0;
  const v1::ComponentEntry* e = FindEntry(*m, component);
  return e ? e->version() : 0;
}

uint64_t ServedSerial(const std::string& addr) {
  std::optional<v1::Manifest> m = Served(addr);
  return m ? m->serial() : 0;
}

std::string FetchFull(const std::string& addr, const std::string& component) {
  // A stock channel on gRPC's default limits, as an independent client has.
  auto stub =
      v1::UpdateService::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  v1::FetchRequest req;
  req.set_component(component);
  absl::StatusOr<FetchedBody> body =
      FetchToMemory(stub.get(), req, std::nullopt, absl::Now() + absl::Minutes(2));
  return body.ok() ? std::move(body->data) : "";
}

namespace {

// The first line of `path`, trimmed; "" when it cannot be read.
std::string FirstLine(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return "";
  return std::string(absl::StripAsciiWhitespace(text->substr(0, text->find('\n'))));
}

}  // namespace

std::string Daemon::admin_address() const { return FirstLine(data_dir_ + "/admin.listening"); }

std::string Daemon::console_address() const { return FirstLine(data_dir_ + "/console.listening"); }

std::string Daemon::token() const { return FirstLine(token_file()); }

v1::GetStatusResponse AdminStatus(const Daemon& node, const std::string& tls_ca) {
  ChannelOptions options;
  options.tls.ca = tls_ca;
  auto stub = v1::AdminService::NewStub(MakeChannel(node.admin_address(), options));
  grpc::ClientContext ctx;
  absl::StatusOr<std::string> token = ReadTokenFile(node.token_file());
  ctx.AddMetadata("authorization", "Bearer " + (token.ok() ? *token : ""));
  v1::GetStatusResponse r;
  stub->GetStatus(&ctx, {}, &r);
  return r;
}

int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace sigrelay::testing
