#include "tests/testutil/test_data.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <random>

#include "absl/status/statusor.h"
#include "core/base/file_util.h"
#include "gtest/gtest.h"
#include "tests/testutil/status_matchers.h"

namespace sigrelay::testing {

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    memcpy(&out[i], &v, 8);
  }
  return out;
}

std::string Edited(std::string base, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 16; ++i) {
    size_t at = rng() % (base.size() - 4096);
    base.replace(at, 512, RandomBytes(700, rng()));
    base.erase(rng() % (base.size() - 4096), 300);
  }
  return base;
}

std::string WriteBigFile(const std::string& path, size_t n, uint64_t seed, int edit_seed) {
  absl::StatusOr<std::unique_ptr<StagedFile>> f = StagedFile::Create(path);
  EXPECT_OK(f);
  for (size_t at = 0; at < n; at += 1 << 20) {
    std::string piece = RandomBytes(1 << 20, seed + at);
    if (edit_seed != 0 && (at >> 20) % 7 == 3) piece = Edited(piece, edit_seed + at);
    EXPECT_OK((*f)->Write(piece));
  }
  EXPECT_OK((*f)->Commit());
  return path;
}

uint64_t PeakResident() {
  std::string status = *ReadFileToString("/proc/self/status");
  size_t at = status.find("VmHWM:");
  return std::stoull(status.substr(at + 6)) << 10;
}

void ResetPeak() {
  int fd = open("/proc/self/clear_refs", O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "5", 1), 1);
  close(fd);
}

}  // namespace sigrelay::testing
