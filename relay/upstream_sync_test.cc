// UpstreamSync in process: a real origin (Publisher, store, UpdateService)
// served over an in-process gRPC channel, sometimes behind a hostile
// upstream that corrupts, cuts or forges what it passes on; a real relay
// store on disk; a fake clock for expiry.
#include "relay/upstream_sync.h"

#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "core/base/file_util.h"
#include "core/serve/update_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "origin/publisher.h"
#include "tests/testutil/fake_clock.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::FakeClock;
using ::testing::HasSubstr;
using testing::TempDir;

// Hands UpstreamSync fixed channels, as the relay's dialer would real ones.
class FixedDialer final : public UpstreamDialer {
 public:
  void Add(const std::string& name, std::shared_ptr<grpc::Channel> channel) {
    names_.push_back(name);
    channels_.push_back(std::move(channel));
  }
  const std::vector<std::string>& upstreams() const override { return names_; }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(size_t i) override { return channels_[i]; }
  std::string ProxyFor(const std::string&) const override { return ""; }

 private:
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
};

// An origin in this process: publisher, store and UpdateService.
class InProcessOrigin {
 public:
  InProcessOrigin(const std::string& dir, const Clock* clock, const std::string& key_dir = "") {
    const std::string keys = key_dir.empty() ? dir : key_dir;
    store_ = *VersionStore::Open(dir + "/store", {.chunk_size = 16 << 10});
    signer_ = *ManifestSigner::LoadOrCreate(keys + "/origin.key", keys + "/origin.pub");
    PublisherOptions options;
    options.zstd_level = 3;
    options.work_dir = dir + "/tmp";
    options.incrementals_first = 100;
    publisher_ = std::make_unique<Publisher>(store_.get(), signer_.get(), clock, options);
    service_ = std::make_unique<UpdateServiceImpl>(store_.get(), &agents_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    dir_ = dir;
  }
  ~InProcessOrigin() {
    service_->Shutdown();
    server_->Shutdown();
  }
  std::shared_ptr<grpc::Channel> Channel() {
    return server_->InProcessChannel(grpc::ChannelArguments());
  }
  // Publishes `content` as the next version of `component`; returns it.
  uint32_t Publish(const std::string& component, const std::string& content) {
    const std::string path = absl::StrCat(dir_, "/upload-", ++uploads_);
    EXPECT_OK(WriteFileAtomically(path, content));
    absl::StatusOr<v1::PublishResponse> r = publisher_->Publish(component, path);
    EXPECT_OK(r);
    return r.ok() ? r->version() : 0;
  }
  std::string PublicKeyPem() const { return signer_->PublicKeyPem(); }
  VersionStore* store() { return store_.get(); }
  Publisher* publisher() { return publisher_.get(); }

 private:
  std::string dir_;
  int uploads_ = 0;
  std::unique_ptr<VersionStore> store_;
  std::unique_ptr<ManifestSigner> signer_;
  std::unique_ptr<Publisher> publisher_;
  AgentRegistry agents_;
  std::unique_ptr<UpdateServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
};

// Passes an upstream's answers on, doing harm on the way: corrupts
// incrementals, cuts full downloads short, records requested offsets.
class HostileUpstream final : public v1::UpdateService::Service {
 public:
  explicit HostileUpstream(std::shared_ptr<grpc::Channel> real)
      : real_(v1::UpdateService::NewStub(std::move(real))) {
    grpc::ServerBuilder builder;
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~HostileUpstream() override { server_->Shutdown(); }
  std::shared_ptr<grpc::Channel> Channel() {
    return server_->InProcessChannel(grpc::ChannelArguments());
  }

  std::atomic<bool> corrupt_incrementals{false};
  std::atomic<int> cut_full_after_messages{-1};    // -1: never
  std::atomic<int> stall_full_after_messages{-1};  // -1: never; else go silent until released
  // -1: never; else after that many messages send the rest a byte per
  // message every 50 ms (a mirror that dribbles), until the client goes.
  std::atomic<int> dribble_full_after_messages{-1};
  // -1: never; else after that many messages send unaligned garbage (and a
  // header whose chunk digests would match it) and break the stream.
  std::atomic<int> garbage_full_after_messages{-1};
  // A frozen mirror: once set, always the manifest it had then.
  std::atomic<bool> freeze_manifest{false};
  std::optional<v1::SignedManifest> frozen;
  absl::Notification release;
  std::vector<uint64_t> offsets;  // of full Fetches, in order

  grpc::Status GetManifest(grpc::ServerContext*, const v1::GetManifestRequest* req,
                           v1::SignedManifest* out) override {
    if (freeze_manifest && frozen.has_value()) {
      *out = *frozen;
      return grpc::Status::OK;
    }
    grpc::ClientContext ctx;
    grpc::Status s = real_->GetManifest(&ctx, *req, out);
    if (s.ok()) frozen = *out;
    return s;
  }
  grpc::Status Fetch(grpc::ServerContext*, const v1::FetchRequest* req,
                     grpc::ServerWriter<v1::FetchResponse>* writer) override {
    const bool full = req->have_version() == 0;
    if (full) offsets.push_back(req->offset());
    grpc::ClientContext ctx;
    auto reader = real_->Fetch(&ctx, *req);
    v1::FetchResponse m;
    int sent = 0;
    while (reader->Read(&m)) {
      if (full && cut_full_after_messages >= 0 && sent == cut_full_after_messages) {
        ctx.TryCancel();
        grpc::Status ignored = reader->Finish();  // cut on purpose
        (void)ignored;
        cut_full_after_messages = -1;  // once
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset (test)");
      }
      if (full && garbage_full_after_messages >= 0 && sent == garbage_full_after_messages) {
        for (size_t n : {1000u, 40000u}) {
          v1::FetchResponse junk;
          junk.set_data(std::string(n, 'X'));
          writer->Write(junk);
        }
        ctx.TryCancel();
        grpc::Status ignored = reader->Finish();
        (void)ignored;
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset (test)");
      }
      if (full && stall_full_after_messages >= 0 && sent == stall_full_after_messages) {
        stall_full_after_messages = -1;  // once
        release.WaitForNotification();   // silent, connection open
        ctx.TryCancel();
        grpc::Status ignored = reader->Finish();  // the client has gone
        (void)ignored;
        return grpc::Status(grpc::StatusCode::CANCELLED, "released (test)");
      }
      if (full && dribble_full_after_messages >= 0 && sent >= dribble_full_after_messages) {
        v1::FetchResponse one;
        for (char c : m.data()) {
          one.set_data(std::string(1, c));
          if (!writer->Write(one)) break;
          absl::SleepFor(absl::Milliseconds(50));
        }
        ctx.TryCancel();
        grpc::Status ignored = reader->Finish();
        (void)ignored;
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went (test)");
      }
      if (!full && corrupt_incrementals && !m.data().empty()) (*m.mutable_data())[0] ^= 0x40;
      writer->Write(m);
      ++sent;
    }
    return reader->Finish();
  }

 private:
  std::unique_ptr<v1::UpdateService::Stub> real_;
  std::unique_ptr<grpc::Server> server_;
};

// Versions of one pattern: each seed changes one record in fifty.
std::string Content(uint32_t seed, size_t records = 4000) {
  std::mt19937 rng(seed);
  std::string out;
  for (size_t i = 0; i < records; ++i) {
    const uint64_t value = i % 50 == seed % 50 ? rng() : (i * 2654435761u) % 1000003;
    absl::StrAppend(&out, "sig-", i, "-", value, "\n");
  }
  return out;
}

class UpstreamSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = std::make_unique<InProcessOrigin>(dir_.File("origin"), &clock_);
    verifier_ = *ManifestVerifier::FromPem(origin_->PublicKeyPem());
    relay_store_ = *VersionStore::Open(dir_.File("relay"), {.chunk_size = 16 << 10});
  }
  std::unique_ptr<UpstreamSync> SyncThrough(std::shared_ptr<grpc::Channel> channel,
                                            absl::Duration stall = absl::Seconds(60),
                                            std::shared_ptr<grpc::Channel> second = nullptr,
                                            TransferLimits limits = {.min_rate = 0}) {
    dialer_ = std::make_unique<FixedDialer>();
    dialer_->Add("upstream-under-test", std::move(channel));
    if (second != nullptr) dialer_->Add("honest-upstream", std::move(second));
    UpstreamSyncOptions options;
    options.transfer.stall_timeout = stall;
    options.transfer.min_rate = limits.min_rate;
    options.transfer.min_rate_window = limits.min_rate_window;
    options.work_dir = dir_.File("relay-tmp");
    EXPECT_OK(MakeDirs(options.work_dir));
    return std::make_unique<UpstreamSync>(relay_store_.get(), verifier_.get(), &clock_,
                                          dialer_.get(), options);
  }
  std::string Held(const std::string& component, uint32_t version) {
    auto view = relay_store_->Snapshot();
    auto record = view->Full(component, version);
    if (!record.ok()) return "";
    auto bytes = view->ReadAll(*record);
    return bytes.ok() ? *bytes : "";
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<InProcessOrigin> origin_;
  std::unique_ptr<ManifestVerifier> verifier_;
  std::unique_ptr<VersionStore> relay_store_;
  std::unique_ptr<FixedDialer> dialer_;
};

TEST_F(UpstreamSyncTest, TakesTheIncrementalWhenCurrentAndTheFullFileWhenNew) {
  auto sync = SyncThrough(origin_->Channel());
  ASSERT_EQ(origin_->Publish("virus", Content(1)), 1u);
  absl::StatusOr<v1::SyncNowResponse> first = sync->SyncOnce();
  ASSERT_OK(first);
  ASSERT_EQ(first->updated_size(), 1);
  EXPECT_EQ(first->updated(0).how(), "full");

  ASSERT_EQ(origin_->Publish("virus", Content(2)), 3u);
  absl::StatusOr<v1::SyncNowResponse> second = sync->SyncOnce();
  ASSERT_OK(second);
  ASSERT_EQ(second->updated_size(), 1);
  EXPECT_EQ(second->updated(0).how(), "incremental");
  EXPECT_EQ(second->updated(0).from_version(), 1u);
  EXPECT_LT(second->updated(0).bytes(), Content(2).size() / 4);
  EXPECT_EQ(Held("virus", 3), Content(2));

  absl::StatusOr<v1::SyncNowResponse> third = sync->SyncOnce();
  ASSERT_OK(third);
  EXPECT_EQ(third->updated_size(), 0) << "already current";
}

TEST_F(UpstreamSyncTest, ACorruptIncrementalFallsBackToTheFullFile) {
  HostileUpstream hostile(origin_->Channel());
  auto sync = SyncThrough(hostile.Channel());
  ASSERT_EQ(origin_->Publish("virus", Content(1)), 1u);
  ASSERT_OK(sync->SyncOnce());
  ASSERT_EQ(origin_->Publish("virus", Content(2)), 3u);
  hostile.corrupt_incrementals = true;
  absl::StatusOr<v1::SyncNowResponse> r = sync->SyncOnce();
  ASSERT_OK(r);
  ASSERT_EQ(r->updated_size(), 1);
  EXPECT_EQ(r->updated(0).how(), "full");
  EXPECT_EQ(Held("virus", 3), Content(2));
}

TEST_F(UpstreamSyncTest, ACutDownloadResumesFromItsLastVerifiedChunk) {
  HostileUpstream hostile(origin_->Channel());
  auto sync = SyncThrough(hostile.Channel());
  const std::string big = Content(7, 40000);  // many 16 KiB chunks
  ASSERT_EQ(origin_->Publish("spyware", big), 1u);
  hostile.cut_full_after_messages = 5;
  absl::StatusOr<v1::SyncNowResponse> cut = sync->SyncOnce();
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kUnavailable) << cut.status();
  EXPECT_THAT(cut.status().message(), HasSubstr("upstream-under-test"));
  ASSERT_OK(sync->SyncOnce());
  EXPECT_EQ(Held("spyware", 1), big);
  ASSERT_EQ(hostile.offsets.size(), 2u);
  EXPECT_EQ(hostile.offsets[0], 0u);
  EXPECT_GE(hostile.offsets[1], 4u * (16 << 10)) << "the second download resumed";
}

// An upstream that goes silent with the connection open is cut after the
// stall timeout (not after a rate-based deadline), and the download resumes.
// A hostile first upstream sends unaligned garbage in the middle of a full
// file and breaks the stream; an honest one is listed second. Only chunks
// that match the signed manifest are kept, so the resume from the honest
// upstream completes in the same sync (before, the garbage was kept, every
// resume failed the final digest and the relay never converged).
TEST_F(UpstreamSyncTest, AHostileFirstUpstreamCannotPoisonTheResumeFromAnHonestOne) {
  HostileUpstream hostile(origin_->Channel());
  hostile.garbage_full_after_messages = 5;
  auto sync = SyncThrough(hostile.Channel(), absl::Seconds(60), origin_->Channel());
  const std::string big = Content(1, 40000);
  origin_->Publish("spyware", big);
  absl::StatusOr<v1::SyncNowResponse> r = sync->SyncOnce();
  ASSERT_OK(r);
  EXPECT_EQ(r->upstream(), "honest-upstream");
  EXPECT_EQ(Held("spyware", 1), big);
  v1::RelayStatus status;
  sync->FillStatus(&status);
  EXPECT_THAT(status.upstreams(0).last_error(), HasSubstr("does not match the signed manifest"));
}

TEST_F(UpstreamSyncTest, ASilentUpstreamIsCutAfterTheStallTimeout) {
  HostileUpstream hostile(origin_->Channel());
  auto sync = SyncThrough(hostile.Channel(), absl::Seconds(1));
  const std::string big = Content(8, 40000);
  ASSERT_EQ(origin_->Publish("spyware", big), 1u);
  hostile.stall_full_after_messages = 3;
  absl::StatusOr<v1::SyncNowResponse> cut = sync->SyncOnce();
  hostile.release.Notify();
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDeadlineExceeded) << cut.status();
  EXPECT_THAT(cut.status().message(), HasSubstr("no bytes for 1s"));
  ASSERT_OK(sync->SyncOnce());
  EXPECT_EQ(Held("spyware", 1), big);
}

// A mirror listed first that answers and then dribbles a byte at a time is
// cut once it falls under the minimum rate over the window; the sync moves
// on to the next upstream at once, resuming from the last verified chunk
// (the bytes on the honest one start there), and the dribbler is tried
// after the others next time, with the reason in status.
TEST_F(UpstreamSyncTest, ADribblingMirrorIsCutForRateAndTheNextUpstreamResumes) {
  HostileUpstream dribbler(origin_->Channel());
  HostileUpstream honest(origin_->Channel());
  dribbler.dribble_full_after_messages = 6;
  TransferLimits limits;
  limits.min_rate = 1024;
  limits.min_rate_window = absl::Seconds(1);
  auto sync = SyncThrough(dribbler.Channel(), absl::Seconds(60), honest.Channel(), limits);
  const std::string big = Content(3, 40000);
  ASSERT_EQ(origin_->Publish("spyware", big), 1u);
  absl::StatusOr<v1::SyncNowResponse> r = sync->SyncOnce();
  ASSERT_OK(r);
  EXPECT_EQ(r->upstream(), "honest-upstream");
  EXPECT_EQ(Held("spyware", 1), big);
  ASSERT_EQ(honest.offsets.size(), 1u);
  EXPECT_GE(honest.offsets[0], 5u * (16 << 10)) << "resumed from the dribbler's verified chunks";
  v1::RelayStatus status;
  sync->FillStatus(&status);
  EXPECT_EQ(status.upstreams(0).cuts(), 1u);
  EXPECT_THAT(status.upstreams(0).last_cut(), HasSubstr("below 1 KiB/s over 1s"));
  EXPECT_THAT(status.upstreams(0).last_cut(), HasSubstr("--upstream-min-rate"));
  EXPECT_GT(status.upstreams(0).demoted_until_unix(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(status.syncs_failed_by_reason().at("cut"), 1u);

  // Next time the honest one is asked first: the dribbler is not touched.
  ASSERT_EQ(origin_->Publish("spyware", Content(4, 40000)), 3u);
  const size_t dribbler_fetches = dribbler.offsets.size();
  r = sync->SyncOnce();
  ASSERT_OK(r);
  EXPECT_EQ(r->upstream(), "honest-upstream");
  EXPECT_EQ(dribbler.offsets.size(), dribbler_fetches);
  // Once its backoff is over it is back in its place.
  clock_.Advance(absl::Minutes(2));
  ASSERT_EQ(origin_->Publish("spyware", Content(5, 40000)), 5u);
  dribbler.dribble_full_after_messages = -1;
  r = sync->SyncOnce();
  ASSERT_OK(r);
  EXPECT_EQ(r->upstream(), "upstream-under-test");
}

TEST_F(UpstreamSyncTest, RefusesAForgedManifestAndKeepsWhatItHolds) {
  auto sync = SyncThrough(origin_->Channel());
  ASSERT_EQ(origin_->Publish("virus", Content(1)), 1u);
  ASSERT_OK(sync->SyncOnce());
  // Another origin with its own key, at a higher serial.
  InProcessOrigin forger(dir_.File("forger"), &clock_);
  for (uint32_t seed = 10; seed < 13; ++seed) forger.Publish("virus", Content(seed));
  auto forged = SyncThrough(forger.Channel());
  absl::StatusOr<v1::SyncNowResponse> r = forged->SyncOnce();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("manifest refused"));
  EXPECT_EQ(Held("virus", 1), Content(1));
  EXPECT_EQ(Held("virus", 5), "");
}

TEST_F(UpstreamSyncTest, RefusesAnOlderSerial) {
  auto sync = SyncThrough(origin_->Channel());
  for (uint32_t seed = 1; seed <= 3; ++seed) origin_->Publish("virus", Content(seed));
  ASSERT_OK(sync->SyncOnce());
  // The same key, restored from an older copy: serial 1.
  InProcessOrigin stale(dir_.File("stale"), &clock_, dir_.File("origin"));
  stale.Publish("virus", Content(1));
  auto from_stale = SyncThrough(stale.Channel());
  absl::StatusOr<v1::SyncNowResponse> r = from_stale->SyncOnce();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("rollback refused"));
  EXPECT_EQ(Held("virus", 5), Content(3));
}

// An origin restored from an old copy of its data dir, same key, re-signs
// its old content: once its serial passes the relay's, the relay still
// refuses it, since a component's version never goes down.
TEST_F(UpstreamSyncTest, RefusesARestoredOriginsOldContentUnderANewerSerial) {
  auto sync = SyncThrough(origin_->Channel());
  for (uint32_t seed = 1; seed <= 3; ++seed) origin_->Publish("virus", Content(seed));
  ASSERT_OK(sync->SyncOnce());  // virus 5 at serial 3
  InProcessOrigin restored(dir_.File("restored"), &clock_, dir_.File("origin"));
  restored.Publish("virus", Content(1));
  for (uint32_t seed = 10; seed <= 13; ++seed) restored.Publish("spyware", Content(seed));
  auto from_restored = SyncThrough(restored.Channel());  // serial 5 > 3, virus 1
  absl::StatusOr<v1::SyncNowResponse> r = from_restored->SyncOnce();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("offers virus 1, older than virus 5 held here"));
  EXPECT_THAT(r.status().message(), HasSubstr("--resume-from"));
  EXPECT_EQ(Held("virus", 5), Content(3));
}

// The same serial signed over different content (two signers, or a
// restored origin before it passed the relay's serial): refused and counted
// as a conflict in status.
TEST_F(UpstreamSyncTest, RefusesAndReportsASecondManifestUnderAHeldSerial) {
  auto sync = SyncThrough(origin_->Channel());
  origin_->Publish("virus", Content(1));
  ASSERT_OK(sync->SyncOnce());  // serial 1
  InProcessOrigin twin(dir_.File("twin"), &clock_, dir_.File("origin"));
  twin.Publish("virus", Content(2));  // serial 1, other content
  auto from_twin = SyncThrough(twin.Channel());
  absl::StatusOr<v1::SyncNowResponse> r = from_twin->SyncOnce();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("differs from the serial 1 held here"));
  v1::RelayStatus status;
  from_twin->FillStatus(&status);
  EXPECT_EQ(status.conflicts(), 1u);
  EXPECT_THAT(status.last_conflict(), HasSubstr("two signers"));
  EXPECT_EQ(Held("virus", 1), Content(1));
}

// A frozen mirror first in the list keeps offering the manifest it had:
// once that is stale (two re-sign periods), the relay says so and takes the
// fresher one from the next upstream.
TEST_F(UpstreamSyncTest, AStaleManifestFromAFrozenMirrorSendsTheRelayToAnotherUpstream) {
  HostileUpstream mirror(origin_->Channel());
  auto sync = SyncThrough(mirror.Channel(), absl::Seconds(60), origin_->Channel());
  origin_->Publish("virus", Content(1));
  ASSERT_OK(sync->SyncOnce());  // serial 1, through the mirror
  mirror.freeze_manifest = true;
  clock_.Advance(absl::Hours(3));                   // the default re-sign period is 1h
  ASSERT_OK(origin_->publisher()->RefreshIfDue());  // serial 2 at the origin
  absl::StatusOr<v1::SyncNowResponse> r = sync->SyncOnce();
  ASSERT_OK(r);
  EXPECT_EQ(r->upstream(), "honest-upstream");
  EXPECT_EQ(r->manifest_serial(), 2u);
  v1::RelayStatus status;
  sync->FillStatus(&status);
  EXPECT_THAT(status.upstreams(0).last_error(), HasSubstr("offers only a stale manifest"));
  EXPECT_EQ(
      ManifestFreshness(*ParseTrustedManifest(*relay_store_->CurrentManifest()), clock_.Now()),
      "fresh");
}

TEST_F(UpstreamSyncTest, RefusesAnExpiredManifest) {
  auto sync = SyncThrough(origin_->Channel());
  ASSERT_EQ(origin_->Publish("virus", Content(1)), 1u);
  clock_.Advance(absl::Hours(25));  // past the default validity of 24 h
  absl::StatusOr<v1::SyncNowResponse> r = sync->SyncOnce();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("expired"));
  EXPECT_EQ(Held("virus", 1), "");
}

TEST_F(UpstreamSyncTest, OnlyAVerifiedNewerAnnouncementIsWorthASync) {
  auto sync = SyncThrough(origin_->Channel());
  ASSERT_EQ(origin_->Publish("virus", Content(1)), 1u);
  ASSERT_OK(sync->SyncOnce());
  const v1::SignedManifest held = *relay_store_->CurrentManifest();
  absl::StatusOr<bool> same = sync->WorthSyncing(held);
  ASSERT_OK(same);
  EXPECT_FALSE(*same);

  ASSERT_EQ(origin_->Publish("virus", Content(2)), 3u);
  absl::StatusOr<bool> newer = sync->WorthSyncing(*origin_->store()->CurrentManifest());
  ASSERT_OK(newer);
  EXPECT_TRUE(*newer);

  // Unsigned bytes with a huge serial: refused, no sync.
  v1::Manifest fake;
  fake.set_serial(~uint64_t{0});
  v1::SignedManifest unsigned_manifest;
  unsigned_manifest.set_manifest(fake.SerializeAsString());
  unsigned_manifest.set_signature(std::string(64, 'x'));
  EXPECT_EQ(sync->WorthSyncing(unsigned_manifest).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace sigrelay
