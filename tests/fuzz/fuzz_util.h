// Shared by the fuzz targets: split one input into parts.
#ifndef SIGRELAY_TESTS_FUZZ_FUZZ_UTIL_H_
#define SIGRELAY_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sigrelay::fuzz {

// Parts of `data`, each prefixed by a 2-byte little-endian length (the last
// takes what is left when its length runs past the end).
inline std::vector<std::string> Split(const uint8_t* data, size_t size) {
  std::vector<std::string> parts;
  size_t at = 0;
  while (at + 2 <= size) {
    size_t n = data[at] | (size_t{data[at + 1]} << 8);
    at += 2;
    n = std::min(n, size - at);
    parts.emplace_back(reinterpret_cast<const char*>(data + at), n);
    at += n;
  }
  return parts;
}

}  // namespace sigrelay::fuzz

#endif  // SIGRELAY_TESTS_FUZZ_FUZZ_UTIL_H_
