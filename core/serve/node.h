// One node, whatever its role: the settings every daemon shares, and the
// object that owns the store, the agent registry, the update service and
// the gRPC server, in the order they must start and stop. Origin and relay
// mains are role wiring around it.
//
//   NodeOptions options;
//   FlagParser flags("sigrelay-relay", "...");
//   options.AddFlags(&flags);            // --config, --data-dir, --listen, ...
//   ... role flags ...
//   ParseFlagsWithConfig(&flags, &options.config, argc, argv);
//   absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(options);
//   RelayAdminService admin(..., node->get());
//   (*node)->Serve(&admin);
//   ... WaitForStopSignal ...
//   (*node)->Shutdown();                 // before the admin service goes
#ifndef SIGRELAY_CORE_SERVE_NODE_H_
#define SIGRELAY_CORE_SERVE_NODE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/base/admin_token.h"
#include "core/base/connection_guard.h"
#include "core/base/flags.h"
#include "core/base/transport.h"
#include "core/console/console.h"
#include "core/model/delta_codec.h"
#include "core/serve/agent_registry.h"
#include "core/serve/update_service.h"
#include "core/store/version_store.h"
#include "sigrelay/v1/admin.pb.h"

namespace sigrelay {

struct NodeOptions {
  std::string config;  // --config FILE
  std::string data_dir;
  std::vector<std::string> listen;
  // AdminService's own listener: never the agents' port. Loopback or a unix
  // socket unless TLS is set (--tls-cert), since it carries the token.
  std::string admin_listen = "127.0.0.1:0";
  std::string console;  // --console HOST:PORT; empty: no console
  bool metrics_auth = false;
  std::string log_format = "text";
  std::string log_level = "info";
  std::string admin_token_file;  // default DATA_DIR/admin.token, created on first start
  uint64_t chunk_size = 1 << 20;
  uint64_t max_file_size = 1ull << 30;
  UpdateServiceOptions serve;
  uint64_t max_agents = 1 << 20;  // AgentRegistry's bound
  absl::Duration agent_stale_after = absl::Minutes(5);
  ConnectionLimits connections;  // the agents' listeners
  TlsFiles tls;                  // the listeners'; empty: plaintext
  ServerLimits limits;

  // "TLS", "mutual TLS" or "plaintext": what the listeners speak.
  std::string ListenerSecurity() const;

  // The flags every daemon takes, with one help text each.
  void AddFlags(FlagParser* flags);
  // InvalidArgument naming the flag and the accepted range for a missing
  // --data-dir or --listen, a chunk size a stock client cannot take,
  // --max-transfers 0, a negative duration.
  absl::Status Validate() const;
};

// Thread-safe after Serve(); Shutdown() once.
class Node {
 public:
  // Makes DATA_DIR, loads or creates the admin token, opens the store.
  static absl::StatusOr<std::unique_ptr<Node>> Open(const NodeOptions& options);
  ~Node();

  // Serves UpdateService on every --listen address (DATA_DIR/listening)
  // and `admin` on --admin-listen only (DATA_DIR/admin.listening, where
  // sigrelayctl --data-dir finds it). `admin` must outlive Shutdown().
  absl::Status Serve(grpc::Service* admin);
  const std::vector<std::string>& bound() const { return bound_; }
  const std::string& admin_bound() const { return admin_bound_; }

  // Ends Watch streams so the server need not wait on them, then stops the
  // server (a few seconds' grace for transfers). Idempotent.
  void Shutdown();

  // How often the agents' listeners are probed (a connection of the node's
  // own, ListenerAnswers), and how many failed probes in a row rebuild the
  // server: a gRPC listener that stopped accepting is never re-armed.
  static constexpr absl::Duration kListenerProbePeriod = absl::Seconds(5);
  // How often idle connections are closed and agents move to stale.
  static constexpr absl::Duration kSweepPeriod = absl::Seconds(1);
  static constexpr int kListenerProbeFailures = 2;

  const NodeOptions& options() const { return options_; }
  const AdminToken* token() const { return &token_; }
  VersionStore* store() const { return store_.get(); }
  AgentRegistry* agents() { return &agents_; }
  UpdateServiceImpl* update() { return update_.get(); }

  // AdminService.SetPushing, the same on every role.
  grpc::ServerUnaryReactor* SetPushing(grpc::CallbackServerContext* context,
                                       const v1::SetPushingRequest* request,
                                       v1::SetPushingResponse* response);

 private:
  Node(NodeOptions options, AdminToken token, std::unique_ptr<VersionStore> store);
  absl::Status StartAgentsServer(const std::vector<std::string>& listen);
  // The watchdog thread: probes the listeners, rebuilds the server (same
  // ports, same service: the store, pushes and the agents' registry stay;
  // Watch streams end and agents reconnect) when they stop answering.
  void WatchListeners();

  const NodeOptions options_;
  const AdminToken token_;
  // Destroyed last to first: the server, the service, the registry, the store.
  const std::unique_ptr<VersionStore> store_;
  AgentRegistry agents_;
  std::unique_ptr<UpdateServiceImpl> update_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> admin_server_;
  std::unique_ptr<Console> console_;
  std::vector<std::string> bound_;
  std::string admin_bound_;
  absl::Notification stop_watchdog_;
  std::thread watchdog_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_SERVE_NODE_H_
