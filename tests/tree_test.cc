// The static tree (docs/tree.md) end to end: an origin writes it with
// --http-tree, a real nginx serves it (HTTP and HTTPS), tinyproxy stands
// between, a directory carries it; relays and sigrelay-agent take it as an
// upstream with every check a gRPC upstream gets. (sigrelayctl export and
// import into an air-gapped site: tests/topology.)
#include "core/client/tree.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/rapid_reset.h"
#include "tests/testutil/tcp_forwarder.h"
#include "tests/testutil/test_pki.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;

constexpr char kNginx[] = "/usr/sbin/nginx";

// Whether something accepts TCP connections on `address`.
bool Listens(const std::string& address) {
  const int fd = testing::ConnectTo(address);
  if (fd >= 0) close(fd);
  return fd >= 0;
}

// nginx serving `root` at /tree/ over HTTP and, with the test PKI's
// "tree" certificate, over HTTPS; its access log records each request's
// status, bytes sent and Range.
class Nginx {
 public:
  Nginx(const TempDir& work, const std::string& root, const testing::TestPki& pki) {
    http_ = absl::StrCat("127.0.0.1:", testing::UnusedPort());
    https_ = absl::StrCat("127.0.0.1:", testing::UnusedPort());
    dir_ = work.File("nginx");
    EXPECT_TRUE(MakeDirs(dir_).ok());
    const std::string location = absl::StrCat("location /tree/ { alias ", root, "/; }\n");
    EXPECT_TRUE(
        WriteFileAtomically(
            dir_ + "/nginx.conf",
            absl::StrCat(
                "daemon off;\nworker_processes 1;\npid ", dir_, "/nginx.pid;\n",
                "error_log stderr warn;\nevents { worker_connections 256; }\nhttp {\n",
                "log_format tree '$request_uri $status $body_bytes_sent \"$http_range\"';\n",
                "access_log ", dir_, "/access.log tree;\n", "server { listen ", http_, "; ",
                location, "}\n", "server { listen ", https_, " ssl; ssl_certificate ",
                pki.File("tree.pem"), "; ssl_certificate_key ", pki.File("tree.key"), "; ",
                location, "}\n}\n"))
            .ok());
    process_ = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{kNginx, "-p", dir_, "-c", dir_ + "/nginx.conf"});
    EXPECT_TRUE(WaitFor([&] { return Listens(http_); })) << process_->Output();
  }
  ~Nginx() {
    process_->Kill(SIGTERM);
    process_->Wait();
  }
  std::string url() const { return absl::StrCat("http://", http_, "/tree/"); }
  std::string https_url() const { return absl::StrCat("https://", https_, "/tree/"); }
  const std::string& http() const { return http_; }
  // Access log lines for `blob_hex`'s requests ("URI STATUS BYTES RANGE").
  std::vector<std::string> Requests(const std::string& blob_hex) const {
    std::vector<std::string> out;
    absl::StatusOr<std::string> log = ReadFileToString(dir_ + "/access.log");
    if (!log.ok()) return out;
    for (absl::string_view line : absl::StrSplit(*log, '\n')) {
      if (absl::StrContains(line, blob_hex)) out.emplace_back(line);
    }
    return out;
  }

 private:
  std::string http_, https_, dir_;
  std::unique_ptr<testing::ChildProcess> process_;
};

class TreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kNginx, X_OK) != 0) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true") FAIL() << "nginx missing";
      GTEST_SKIP() << "nginx not installed (scripts/install-deps.sh)";
    }
    ASSERT_TRUE(pki_.ok());
    ASSERT_TRUE(pki_.Issue("tree"));
    // nginx's workers (nobody) read the tree.
    ASSERT_EQ(chmod(work_.path().c_str(), 0755), 0);
    tree_ = work_.File("tree");
    origin_ = std::make_unique<Daemon>(
        "sigrelay-origin", work_.File("origin"),
        std::vector<std::string>{"--http-tree", tree_, "--chunk-size", "64KiB", "--resign-every",
                                 "10s", "--http-tree-keep", "5s"});
    ASSERT_FALSE(origin_->address().empty()) << origin_->output();
    pub_ = origin_->data_dir() + "/origin.pub";
    v1_ = testing::GenPattern(work_.path(), "p1", 20000, 1);
    v3_ = testing::GenPattern(work_.path(), "p3", 0, 3, v1_);
    ASSERT_EQ(testing::Publish(*origin_, "virus", v1_), 1u);
    ASSERT_TRUE(WaitForTree(1));
  }

  // The tree's manifest names `version` of virus.
  bool WaitForTree(uint32_t version) {
    return WaitFor([&] {
      absl::StatusOr<std::string> bytes = ReadFileToString(tree_ + "/manifest.binpb");
      v1::SignedManifest sm;
      v1::Manifest m;
      return bytes.ok() && sm.ParseFromString(*bytes) && m.ParseFromString(sm.manifest()) &&
             m.components_size() > 0 && m.components(0).version() == version;
    });
  }
  v1::Manifest TreeManifest(const std::string& tree) {
    v1::SignedManifest sm;
    v1::Manifest m;
    sm.ParseFromString(*ReadFileToString(tree + "/manifest.binpb"));
    m.ParseFromString(sm.manifest());
    return m;
  }
  std::unique_ptr<Daemon> Relay(const std::string& name, const std::string& upstream,
                                std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--upstream", upstream,        "--origin-pubkey",
                                     pub_,         "--max-backoff", "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Daemon>("sigrelay-relay", work_.File(name), args);
  }
  std::string Update(const Daemon& relay) {
    std::string out;
    testing::Ctl({"--data-dir", relay.data_dir(), "update"}, &out);
    return out;
  }

  TempDir work_;
  testing::TestPki pki_{work_.path(), "tree"};
  std::string tree_, pub_, v1_, v3_;
  std::unique_ptr<Daemon> origin_;
};

// The origin's tree served by nginx: a relay takes version 1 whole, then
// version 3 by its incremental (nginx sent that blob, far smaller than the
// file, and never the new full file), then the same over HTTPS with the
// test CA; without the CA the certificate is refused and says which flag.
TEST_F(TreeTest, ARelayTakesTheIncrementalFromNginxAndOverHttps) {
  Nginx nginx(work_, tree_, pki_);
  auto relay = Relay("relay", nginx.url());
  ASSERT_FALSE(relay->address().empty()) << relay->output();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay->address(), "virus") == 1; }))
      << relay->output();
  ASSERT_EQ(testing::Publish(*origin_, "virus", v3_), 3u);
  ASSERT_TRUE(WaitForTree(3));
  const std::string out = Update(*relay);
  EXPECT_THAT(out, HasSubstr("virus 1 -> 3 by incremental")) << out << relay->output();
  EXPECT_EQ(testing::FetchFull(relay->address(), "virus"), *ReadFileToString(v3_));
  const v1::ComponentEntry e = TreeManifest(tree_).components(0);
  ASSERT_EQ(e.incrementals_size(), 1);
  const std::vector<std::string> incr = nginx.Requests(ToHex(e.incrementals(0).sha256()));
  ASSERT_EQ(incr.size(), 1u);
  EXPECT_THAT(incr[0], HasSubstr(absl::StrCat(" 200 ", e.incrementals(0).size(), " ")));
  EXPECT_LT(e.incrementals(0).size(), e.size() / 10);
  EXPECT_TRUE(nginx.Requests(ToHex(e.sha256())).empty()) << "the full file was fetched";

  // HTTPS: refused without the CA, taken with it.
  auto no_ca = Relay("no-ca", nginx.https_url());
  ASSERT_TRUE(WaitFor([&] {
    return testing::AdminStatus(*no_ca).relay().upstreams(0).last_error().find(
               "--upstream-tls-ca") != std::string::npos;
  })) << no_ca->output();
  auto tls = Relay("tls", nginx.https_url(), {"--upstream-tls-ca", pki_.File("ca.pem")});
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(tls->address(), "virus") == 3; }))
      << tls->output();
}

// Through tinyproxy with BasicAuth: the relay reaches the nginx tree only
// through it; a wrong password is a clear proxy authentication error.
TEST_F(TreeTest, ARelayReachesTheTreeThroughAnAuthenticatingProxy) {
  std::string out;
  ASSERT_EQ(testing::RunCommand({"sh", "-c", "command -v tinyproxy"}, &out), 0)
      << "tinyproxy is not installed (scripts/install-deps.sh installs it)";
  Nginx nginx(work_, tree_, pki_);
  const std::string proxy_addr = absl::StrCat("127.0.0.1:", testing::UnusedPort());
  const std::string conf = work_.File("tinyproxy.conf");
  ASSERT_TRUE(
      WriteFileAtomically(
          conf, absl::StrCat("Port ", proxy_addr.substr(10), "\nListen 127.0.0.1\nTimeout 60\n",
                             "BasicAuth sigrelay s3cret\n", "Allow 127.0.0.1\nLogLevel Connect\n"))
          .ok());
  testing::ChildProcess proxy({"tinyproxy", "-d", "-c", conf});
  ASSERT_TRUE(WaitFor([&] { return Listens(proxy_addr); })) << proxy.Output();
  auto wrong =
      Relay("wrong", nginx.url(), {"--proxy", absl::StrCat("http://sigrelay:wrong@", proxy_addr)});
  ASSERT_TRUE(WaitFor([&] {
    return testing::AdminStatus(*wrong).relay().upstreams(0).last_error().find(
               "Proxy Authentication Required") != std::string::npos;
  })) << wrong->output();
  EXPECT_THAT(testing::AdminStatus(*wrong).relay().upstreams(0).last_error(),
              ::testing::Not(HasSubstr("wrong")));
  auto relay =
      Relay("relay", nginx.url(), {"--proxy", absl::StrCat("http://sigrelay:s3cret@", proxy_addr)});
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay->address(), "virus") == 1; }))
      << relay->output() << proxy.Output();
  EXPECT_FALSE(nginx.Requests(ToHex(TreeManifest(tree_).components(0).sha256())).empty());
  proxy.Kill(SIGTERM);
  proxy.Wait();
}

// A tree on disk (file://): sigrelay-agent installs from it, then from the
// nginx tree by incremental; a relay syncs from it.
TEST_F(TreeTest, AnAgentAndARelayUpdateFromFileAndFromNginx) {
  Nginx nginx(work_, tree_, pki_);
  const std::string dir = work_.File("patterns");
  auto agent = [&](const std::string& server, std::string* out) {
    return testing::RunCommand(
        {testing::BinDir() + "/sigrelay-agent", "--server", server, "--origin-pubkey", pub_,
         "--dir", dir, "--components", "virus", "--once"},
        out);
  };
  std::string out;
  ASSERT_EQ(agent("file://" + tree_, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("by full"));
  EXPECT_EQ(*ReadFileToString(dir + "/virus.pattern"), *ReadFileToString(v1_));
  ASSERT_EQ(testing::Publish(*origin_, "virus", v3_), 3u);
  ASSERT_TRUE(WaitForTree(3));
  ASSERT_EQ(agent(nginx.url(), &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("by incremental"));
  EXPECT_EQ(*ReadFileToString(dir + "/virus.pattern"), *ReadFileToString(v3_));
  auto relay = Relay("relay", "file://" + tree_);
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay->address(), "virus") == 3; }))
      << relay->output();
}

// A copy of the tree that goes bad in each way a mirror can (a flipped
// byte, blobs missing, an older manifest put back, frozen): each refused or
// shown as its check says, and the relay keeps serving what it holds.
TEST_F(TreeTest, ABadTreeIsRefusedAndTheStoreKept) {
  const std::string copy = work_.File("copy");
  auto snapshot = [&] {
    std::string out;
    return testing::RunCommand(
               {"sh", "-c", absl::StrCat("rm -rf ", copy, " && cp -a ", tree_, " ", copy)}, &out) ==
           0;
  };
  ASSERT_TRUE(snapshot());
  const std::string old_manifest = *ReadFileToString(copy + "/manifest.binpb");
  auto relay = Relay("relay", "file://" + copy);
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay->address(), "virus") == 1; }))
      << relay->output();
  ASSERT_EQ(testing::Publish(*origin_, "virus", v3_), 3u);
  ASSERT_TRUE(WaitForTree(3));
  ASSERT_TRUE(snapshot());
  const v1::ComponentEntry e = TreeManifest(copy).components(0);
  const std::string incr = copy + "/" + TreeBlobName(e.incrementals(0).sha256());
  const std::string full = copy + "/" + TreeBlobName(e.sha256());
  auto flip = [](const std::string& path) {
    std::string bytes = *ReadFileToString(path);
    bytes[bytes.size() / 2] ^= 1;
    return WriteFileAtomically(path, bytes).ok();
  };
  // A flipped byte in both the incremental and the full file.
  ASSERT_TRUE(flip(incr) && flip(full));
  std::string out = Update(*relay);
  EXPECT_THAT(out, ::testing::ContainsRegex("digest|does not match|chunk"));
  EXPECT_EQ(testing::ServedVersion(relay->address(), "virus"), 1u);
  // Blobs missing: the manifest names files the copy lacks.
  ASSERT_EQ(unlink(incr.c_str()), 0);
  ASSERT_EQ(unlink(full.c_str()), 0);
  out = Update(*relay);
  EXPECT_THAT(out, HasSubstr("the tree lacks"));
  EXPECT_EQ(testing::ServedVersion(relay->address(), "virus"), 1u);
  // Whole again: taken (by this update or the relay's own retry).
  ASSERT_TRUE(snapshot());
  ASSERT_TRUE(WaitFor([&] {
    Update(*relay);
    return testing::ServedVersion(relay->address(), "virus") == 3;
  })) << relay->output();
  // The older manifest put back (a stale mirror): rollback refused, 3 kept.
  ASSERT_TRUE(WriteFileAtomically(copy + "/manifest.binpb", old_manifest).ok());
  out = Update(*relay);
  EXPECT_THAT(out, HasSubstr("rollback"));
  EXPECT_EQ(testing::ServedVersion(relay->address(), "virus"), 3u);
  EXPECT_EQ(testing::FetchFull(relay->address(), "virus"), *ReadFileToString(v3_));
  // The copy stays frozen while the origin re-signs every 10 s: two
  // periods on, the relay shows its manifest as stale (a frozen mirror is
  // seen).
  ASSERT_TRUE(WaitFor(
      [&] {
        testing::Ctl({"--data-dir", relay->data_dir(), "status"}, &out);
        return out.find("(stale)") != std::string::npos;
      },
      absl::Seconds(40)))
      << out;
}

// A download cut in the middle (the relay's upstream path stalls, its
// silence cut fires) resumes with an HTTP Range from the last verified
// chunk: nginx's log shows the second request as a 206 for the rest only.
TEST_F(TreeTest, ACutDownloadResumesWithRangeFromTheLastVerifiedChunk) {
  Nginx nginx(work_, tree_, pki_);
  const v1::ComponentEntry e = TreeManifest(tree_).components(0);
  testing::TcpForwarder path(nginx.http());
  path.PauseAt(e.size() / 2);
  auto relay = Relay("relay", absl::StrCat("http://", path.address(), "/tree/"),
                     {"--chunk-size", "64KiB", "--upstream-stall-timeout", "2s"});
  ASSERT_TRUE(WaitFor([&] { return path.paused(); })) << relay->output();
  ASSERT_TRUE(WaitFor([&] { return testing::AdminStatus(*relay).relay().upstreams(0).cuts() > 0; },
                      absl::Seconds(20)))
      << relay->output();
  path.Resume();
  ASSERT_TRUE(WaitFor([&] { return testing::ServedVersion(relay->address(), "virus") == 1; },
                      absl::Seconds(30)))
      << relay->output();
  const std::vector<std::string> gets = nginx.Requests(ToHex(e.sha256()));
  ASSERT_GE(gets.size(), 2u);
  const std::string& resumed = gets.back();
  EXPECT_THAT(resumed, HasSubstr(" 206 "));
  EXPECT_THAT(resumed, HasSubstr("\"bytes="));
  std::vector<std::string> parts = absl::StrSplit(resumed, ' ');
  uint64_t sent = 0;
  ASSERT_TRUE(absl::SimpleAtoi(parts[2], &sent)) << resumed;
  EXPECT_LT(sent, e.size() - (64u << 10)) << "resumed from at least one verified chunk";
  EXPECT_EQ(testing::FetchFull(relay->address(), "virus"), *ReadFileToString(v1_));
}

// The publication order: a reader polling the tree (as a CDN edge might,
// at any instant) while the origin publishes 50 times, re-signing every
// second meanwhile, never sees a manifest that names a missing blob.
TEST_F(TreeTest, APollingReaderNeverSeesAManifestNamingAMissingBlob) {
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, broken{0};
  std::string first_broken;
  std::thread reader([&] {
    while (!done) {
      absl::StatusOr<std::string> bytes = ReadFileToString(tree_ + "/manifest.binpb");
      v1::SignedManifest sm;
      v1::Manifest m;
      if (!bytes.ok() || !sm.ParseFromString(*bytes) || !m.ParseFromString(sm.manifest())) {
        ++broken;
        continue;
      }
      for (const std::string& sha : TreeBlobsOf(m)) {
        if (!FileExists(tree_ + "/" + TreeBlobName(sha))) {
          if (broken++ == 0)
            first_broken =
                absl::StrCat("serial ", m.serial(), " names ", ToHex(sha), " which is not there");
        }
      }
      ++reads;
      absl::SleepFor(absl::Microseconds(200));  // polling interval, not synchronisation
    }
  });
  // A small component, so 50 publishes (each with its incrementals) stay
  // quick.
  std::string prev = testing::GenPattern(work_.path(), "q", 2000, 10);
  for (int i = 0; i < 50; ++i) {
    const std::string next =
        testing::GenPattern(work_.path(), absl::StrCat("q", i), 0, 11 + i, prev, 2);
    ASSERT_EQ(testing::Publish(*origin_, "spyware", next), 1u + 2u * i);
    prev = next;
  }
  ASSERT_TRUE(WaitFor([&] {
    const v1::Manifest m = TreeManifest(tree_);
    for (const v1::ComponentEntry& e : m.components()) {
      if (e.name() == "spyware" && e.version() == 99 && e.pending_incrementals().empty()) {
        return true;
      }
    }
    return false;
  }));
  done = true;
  reader.join();
  std::cerr << reads << " reads of the tree during 50 publishes\n";
  EXPECT_GT(reads, 50);
  EXPECT_EQ(broken, 0) << first_broken;
  // Files no manifest has named for --http-tree-keep (5 s here) go at a
  // later export (the re-sign every 10 s): what is left is what the newest
  // manifest names (virus 1, spyware's newest file and 8 incrementals),
  // not the 450 files of the 50 versions.
  int blobs = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        blobs = 0;
        DIR* d = opendir((tree_ + "/blobs/sha256").c_str());
        if (d == nullptr) return false;
        while (dirent* ent = readdir(d)) blobs += ent->d_name[0] != '.';
        closedir(d);
        return blobs <= 1 + 9;
      },
      absl::Seconds(40)))
      << blobs << " files left";
}

}  // namespace
}  // namespace sigrelay
