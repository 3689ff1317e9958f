// Test data and memory measurement shared by the tests of big-file paths:
// deterministic pseudo-random bytes, edited copies of them, files written a
// MiB at a time (never whole in memory), and this process's peak RSS.
//
//   testing::ResetPeak();
//   const uint64_t before = testing::PeakResident();
//   ... work on mapped files ...
//   EXPECT_LT(testing::PeakResident() - before, 24u << 20);
#ifndef SIGRELAY_TESTS_TESTUTIL_TEST_DATA_H_
#define SIGRELAY_TESTS_TESTUTIL_TEST_DATA_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace sigrelay::testing {

// `n` pseudo-random bytes, the same for the same seed (incompressible).
std::string RandomBytes(size_t n, uint64_t seed);

// `base` with a few regions rewritten, some bytes inserted and some removed.
std::string Edited(std::string base, uint64_t seed);

// Writes `n` bytes of a deterministic pseudo-random file to `path`, 1 MiB
// at a time, every seventh MiB edited when `edit_seed` is not 0 (a next
// version of the same file). Returns `path`.
std::string WriteBigFile(const std::string& path, size_t n, uint64_t seed, int edit_seed);

// Peak resident bytes of this process since the last ResetPeak() (VmHWM).
uint64_t PeakResident();
void ResetPeak();

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_TEST_DATA_H_
