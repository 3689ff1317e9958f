#include "core/store/version_store.h"

#include <signal.h>

#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "core/base/digest.h"
#include "core/model/manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"
#include "tests/testutil/store_test_util.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::CommitTestVersion;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::TestComponents;
using testing::TestContent;

const VersionPolicy kPolicy{.first = 1, .step = 2, .retain = 3};
const StoreOptions kSmallChunks{.chunk_size = 4096};

uint64_t ManifestSerial(const VersionStore& store) {
  auto m = store.CurrentManifest();
  return m ? ParseTrustedManifest(*m)->serial() : 0;
}

// Everything the manifest names is stored and whole, the retained versions
// are exactly the newest and the K before it, and no chunk is unreferenced.
void ExpectConsistent(VersionStore* store) {
  auto view = store->Snapshot();
  if (!view->manifest()) {
    for (const std::string& c : TestComponents()) {
      EXPECT_THAT(view->FullVersions(c), IsEmpty());
    }
    EXPECT_EQ(*store->ChunkCount(), 0u);
    return;
  }
  v1::Manifest m = *ParseTrustedManifest(*view->manifest());
  absl::flat_hash_set<std::string> referenced;
  for (const v1::ComponentEntry& e : m.components()) {
    ASSERT_EQ(e.version(), m.serial()) << "components of one commit disagree";
    auto full = view->Full(e.name(), e.version());
    ASSERT_OK(full);
    auto bytes = view->ReadAll(*full);
    ASSERT_OK(bytes);
    EXPECT_EQ(*bytes, TestContent(e.name(), e.version()));
    EXPECT_EQ(full->sha256(), e.sha256());
    std::vector<uint32_t> expected;
    for (uint32_t v = e.version() > 2 * kPolicy.retain ? e.version() - 2 * kPolicy.retain : 1;
         v <= e.version(); v += 2) {
      expected.push_back(v);
    }
    EXPECT_EQ(view->FullVersions(e.name()), expected);
    for (uint32_t v : expected) {
      auto rec = view->Full(e.name(), v);
      ASSERT_OK(rec);
      for (const std::string& d : rec->chunks()) referenced.insert(d);
    }
    ASSERT_EQ(e.incrementals_size(), static_cast<int>(expected.size()) - 1);
    for (const v1::IncrementalEntry& ie : e.incrementals()) {
      auto rec = view->Incremental(e.name(), ie.from_version(), e.version());
      ASSERT_OK(rec);
      EXPECT_EQ(rec->sha256(), ie.sha256());
      auto incr = view->ReadAll(*rec);
      ASSERT_OK(incr);
      auto rebuilt =
          IncrementalCodec().Decode(TestContent(e.name(), ie.from_version()), *incr, 1 << 20);
      ASSERT_OK(rebuilt);
      EXPECT_EQ(*rebuilt, TestContent(e.name(), e.version()));
      for (const std::string& d : rec->chunks()) referenced.insert(d);
    }
  }
  EXPECT_EQ(*store->ChunkCount(), referenced.size());
}

TEST(VersionStoreTest, CommitsAndRetainsTheNewestAndKBefore) {
  testing::TempDir dir;
  auto store = VersionStore::Open(dir.path(), kSmallChunks);
  ASSERT_OK(store);
  for (uint32_t v = 1; v <= 11; v += 2) {
    ASSERT_OK(CommitTestVersion(store->get(), v, kPolicy));
    ExpectConsistent(store->get());
  }
  auto view = (*store)->Snapshot();
  EXPECT_THAT(view->FullVersions("virus"), ElementsAre(5, 7, 9, 11));
  EXPECT_OK(view->Incremental("virus", 5, 11));
  EXPECT_EQ(view->Incremental("virus", 3, 11).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(view->Incremental("virus", 5, 9).status().code(), absl::StatusCode::kNotFound);
}

TEST(VersionStoreTest, ReopenKeepsEverything) {
  testing::TempDir dir;
  {
    auto store = VersionStore::Open(dir.path(), kSmallChunks);
    ASSERT_OK(store);
    for (uint32_t v = 1; v <= 5; v += 2) {
      ASSERT_OK(CommitTestVersion(store->get(), v, kPolicy));
    }
  }
  auto store = VersionStore::Open(dir.path(), kSmallChunks);
  ASSERT_OK(store);
  EXPECT_EQ(ManifestSerial(**store), 5u);
  ExpectConsistent(store->get());
}

TEST(VersionStoreTest, SnapshotKeepsRetiredVersionsReadable) {
  testing::TempDir dir;
  auto store = VersionStore::Open(dir.path(), kSmallChunks);
  ASSERT_OK(CommitTestVersion(store->get(), 1, kPolicy));
  auto old_view = (*store)->Snapshot();
  auto record = old_view->Full("virus", 1);
  ASSERT_OK(record);
  for (uint32_t v = 3; v <= 11; v += 2) {
    ASSERT_OK(CommitTestVersion(store->get(), v, kPolicy));
  }
  EXPECT_EQ((*store)->Snapshot()->Full("virus", 1).status().code(), absl::StatusCode::kNotFound);
  auto bytes = old_view->ReadAll(*record);
  ASSERT_OK(bytes);
  EXPECT_EQ(*bytes, TestContent("virus", 1));
}

TEST(VersionStoreTest, UncommittedChunksAreCollectedAtOpen) {
  testing::TempDir dir;
  {
    auto store = VersionStore::Open(dir.path(), kSmallChunks);
    auto writer = (*store)->NewFileWriter();
    ASSERT_OK(writer->Append(std::string(50000, 'z')));
    ASSERT_OK(writer->Finish());
    EXPECT_GT(*(*store)->ChunkCount(), 0u);
  }
  auto store = VersionStore::Open(dir.path(), kSmallChunks);
  EXPECT_EQ(*(*store)->ChunkCount(), 0u);
}

TEST(VersionStoreTest, ChunksOfALiveWriterSurviveAnotherCommit) {
  testing::TempDir dir;
  auto store = VersionStore::Open(dir.path(), kSmallChunks);
  ASSERT_OK(CommitTestVersion(store->get(), 1, kPolicy));
  // A writer holding the same bytes as a version about to be retired.
  auto writer = (*store)->NewFileWriter();
  ASSERT_OK(writer->Append(TestContent("virus", 1)));
  auto record = writer->Finish();
  for (uint32_t v = 3; v <= 11; v += 2) {
    ASSERT_OK(CommitTestVersion(store->get(), v, kPolicy));
  }
  auto bytes = (*store)->Snapshot()->ReadAll(*record);
  ASSERT_OK(bytes);
}

TEST(VersionStoreTest, SecondOpenOfTheSameDirIsRefusedClearly) {
  testing::TempDir dir;
  auto first = VersionStore::Open(dir.path());
  ASSERT_OK(first);
  auto second = VersionStore::Open(dir.path());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr("another sigrelay process"));
}

TEST(VersionStoreTest, CommitObserverSeesEachManifest) {
  testing::TempDir dir;
  auto store = VersionStore::Open(dir.path(), kSmallChunks);
  std::vector<uint64_t> seen;
  (*store)->SetCommitObserver([&](std::shared_ptr<const v1::SignedManifest> m) {
    seen.push_back(ParseTrustedManifest(*m)->serial());
  });
  ASSERT_OK(CommitTestVersion(store->get(), 1, kPolicy));
  ASSERT_OK(CommitTestVersion(store->get(), 3, kPolicy));
  EXPECT_THAT(seen, ElementsAre(1, 3));
}

TEST(VersionStoreTest, PartialDownloadSurvivesReopenAndResumes) {
  testing::TempDir dir;
  std::string content = TestContent("virus", 1) + TestContent("virus", 3);
  {
    auto store = VersionStore::Open(dir.path(), kSmallChunks);
    auto writer = (*store)->NewFileWriter();
    ASSERT_OK(writer->Append(absl::string_view(content).substr(0, 10000)));
    v1::FileRecord partial = writer->Flushed();
    EXPECT_EQ(partial.size(), 8192u);  // two whole 4 KiB chunks
    ASSERT_OK((*store)->SavePartial("virus/3", partial));
  }
  auto store = VersionStore::Open(dir.path(), kSmallChunks);
  auto partial = (*store)->LoadPartial("virus/3");
  ASSERT_TRUE(partial.ok() && partial->has_value());
  auto writer = (*store)->ResumeFileWriter(**partial);
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append(absl::string_view(content).substr((*partial)->size())));
  auto record = (*writer)->Finish();
  ASSERT_OK(record);
  EXPECT_EQ(record->sha256(), Sha256::Of(content));
  EXPECT_EQ(*(*store)->Snapshot()->ReadAll(*record), content);
  ASSERT_OK((*store)->DropPartial("virus/3"));
  EXPECT_FALSE((*(*store)->LoadPartial("virus/3")).has_value());
}

std::string Helper() { return testing::BinDir() + "/store_crash_helper"; }

// A publishing process killed with SIGKILL before each of its writes in turn
// (every crash point of a commit cycle), and at random instants, always
// leaves a store holding the old version or the new one, whole.
TEST(VersionStoreCrashTest, KillAtEveryWritePointLeavesOldOrNew) {
  testing::TempDir dir;
  uint64_t serial = 0;
  // One commit cycle of this test data takes fewer than 40 writes; killing
  // at write 1..40 of a run hits every point, including the final commit
  // and the collection after it.
  for (int kill_at = 1; kill_at <= 40; ++kill_at) {
    std::string out;
    int rc = testing::RunCommand({Helper(), dir.path(), std::to_string(kill_at), "3"}, &out);
    ASSERT_TRUE(rc == 0 || rc == -1) << "helper failed: " << out;
    auto store = VersionStore::Open(dir.path(), kSmallChunks);
    ASSERT_OK(store);
    uint64_t now = ManifestSerial(**store);
    ASSERT_GE(now, serial) << "a committed version was lost (kill at " << kill_at << ")";
    serial = now;
    ExpectConsistent(store->get());
    if (::testing::Test::HasFailure()) FAIL() << "kill at write " << kill_at;
  }
  EXPECT_GT(serial, 1u);
}

TEST(VersionStoreCrashTest, KillAtRandomInstantsLeavesOldOrNew) {
  testing::TempDir dir;
  std::mt19937 rng(::testing::UnitTest::GetInstance()->random_seed());
  uint64_t serial = 0;
  for (int i = 0; i < 30; ++i) {
    testing::ChildProcess child({Helper(), dir.path(), "0", "1000"});
    // Fault injection at a random moment, not synchronisation.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 100000));
    child.Kill(SIGKILL);
    int rc = child.Wait();
    ASSERT_TRUE(rc == 128 + SIGKILL || rc == 0) << child.Output();
    auto store = VersionStore::Open(dir.path(), kSmallChunks);
    ASSERT_OK(store);
    uint64_t now = ManifestSerial(**store);
    ASSERT_GE(now, serial);
    serial = now;
    ExpectConsistent(store->get());
    if (::testing::Test::HasFailure()) FAIL() << "iteration " << i;
  }
}

}  // namespace
}  // namespace sigrelay
