// store_crash_helper DIR KILL_AT_WRITE COUNT
//
// Opens the store in DIR and commits the next COUNT test versions. With
// KILL_AT_WRITE > 0 it SIGKILLs itself just before its KILL_AT_WRITE-th write
// to RocksDB, so version_store_test can check that every crash point leaves
// the old state or the new, never a mix.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/model/manifest.h"
#include "tests/testutil/store_test_util.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: store_crash_helper DIR KILL_AT_WRITE COUNT\n");
    return 2;
  }
  auto store = sigrelay::VersionStore::Open(argv[1], {.chunk_size = 4096});
  if (!store.ok()) {
    fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  long kill_at = atol(argv[2]);
  long writes = 0;
  (*store)->TEST_SetWriteHook([&] {
    if (kill_at > 0 && ++writes == kill_at) raise(SIGKILL);
  });
  sigrelay::VersionPolicy policy{.first = 1, .step = 2, .retain = 3};
  uint32_t newest = 0;
  if (auto m = (*store)->CurrentManifest()) {
    newest = static_cast<uint32_t>(sigrelay::ParseTrustedManifest(*m)->serial());
  }
  for (long i = 0; i < atol(argv[3]); ++i) {
    newest = *policy.Next(newest);
    absl::Status s = sigrelay::testing::CommitTestVersion(store->get(), newest, policy);
    if (!s.ok()) {
      fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  return 0;
}
