// Incrementals in the zstd "patch-from" format: the old version is the
// compression prefix and long-distance matching finds it, so the result is a
// standard zstd frame that stock tools rebuild:
//
//   zstd -d --patch-from=OLD v_OLD.NEW -o NEW
//
// Streaming throughout, so files bigger than a node's memory budget pass
// through mapped files: the encoder reads the new version where it lies and
// writes the frame to a sink a block at a time; the decoder writes straight
// into the output (a mapped file) with the old version as its window. Both
// call `trim` every few MiB so the caller can hand resident pages of its
// mappings back (MappedFile::Trim): memory is the zstd state, not the files.
//
//   IncrementalCodec codec;
//   codec.Encode(old->view(), new_file->view(), &sink, [&] { old->Trim(); new_file->Trim(); });
//   absl::StatusOr<uint64_t> size = IncrementalCodec::DecodedSize(incr, limit);
//   codec.DecodeInto(old->view(), incr, out->data(), *size, [&] { out->Trim(); ... });
#ifndef SIGRELAY_CORE_MODEL_DELTA_CODEC_H_
#define SIGRELAY_CORE_MODEL_DELTA_CODEC_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/byte_sink.h"

namespace sigrelay {

class IncrementalCodec {
 public:
  // Measured on 26 MB pattern files (bench/delta.sh): level 12 with long
  // matching gives incrementals as small as level 19 does, 80x faster.
  static constexpr int kDefaultLevel = 12;
  // How often (bytes of input or output) the codecs call `trim`.
  static constexpr uint64_t kTrimEvery = 16 << 20;

  // `level` is a zstd level (1..22); out-of-range levels are clamped by zstd.
  explicit IncrementalCodec(int level = kDefaultLevel) : level_(level) {}

  // Writes the incremental old -> new to `out`. Neither input is copied
  // (they must not overlap). `trim` is called between steps and from a
  // thread of its own when mapped pages pile up (zstd reads the whole old
  // version inside one call): it must be thread-safe. Thread-safe: each call has its own
  // zstd state.
  absl::Status Encode(absl::string_view old_version, absl::string_view new_version, ByteSink* out,
                      const std::function<void()>& trim = nullptr) const;
  // The same, in memory (small files, tools, tests).
  absl::StatusOr<std::string> Encode(absl::string_view old_version,
                                     absl::string_view new_version) const;

  // Bytes one Encode of files of these sizes holds: zstd's own estimate of
  // its tables and buffers, and the file pages a step touches between trims
  // (the inputs, mapped and trimmed, are not counted). What bounds parallel
  // encodes.
  uint64_t EncodeMemory(uint64_t old_size, uint64_t new_size) const;

  // The size `incremental` decodes to, from its frame header. DataLoss when
  // it is not a zstd frame or does not say; FailedPrecondition when it is
  // over `max_size`.
  static absl::StatusOr<uint64_t> DecodedSize(absl::string_view incremental, uint64_t max_size);

  // Rebuilds the new version into out[0, size), `size` being DecodedSize.
  // DataLoss when `incremental` is corrupt, truncated, has bytes past its
  // frame, or was made against another old version.
  absl::Status DecodeInto(absl::string_view old_version, absl::string_view incremental, char* out,
                          uint64_t size, const std::function<void()>& trim = nullptr) const;
  // The same, in memory.
  absl::StatusOr<std::string> Decode(absl::string_view old_version, absl::string_view incremental,
                                     uint64_t max_size) const;

 private:
  int level_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_MODEL_DELTA_CODEC_H_
