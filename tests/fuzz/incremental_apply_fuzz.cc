// Incremental apply: an old version and an incremental from an upstream.
// Decode must refuse garbage cleanly and never write past its size limit.
#include "core/model/delta_codec.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> parts = sigrelay::fuzz::Split(data, size);
  if (parts.size() < 2) return 0;
  static const sigrelay::IncrementalCodec codec(3);
  absl::StatusOr<std::string> out = codec.Decode(parts[0], parts[1], 1 << 20);
  if (out.ok() && out->size() > (1u << 20)) __builtin_trap();
  return 0;
}
