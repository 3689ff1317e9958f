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
// offer `trim` often, so the caller can hand resident pages of its mappings
// back (MappedFile::Trim). Matches point anywhere in the window (the old
// version and the new one so far), so a trim costs refaults: callers trim
// when mapped pages pass a cap of their choosing (TrimAbove), not at each
// offer. Memory is then the zstd state and the cap, not the files.
//
//   IncrementalCodec codec;
//   codec.Encode(old->view(), new_file->view(), &sink, [&] { old->Trim(); new_file->Trim(); });
//   absl::StatusOr<uint64_t> size = IncrementalCodec::DecodedSize(incr, limit);
//   codec.DecodeInto(old->view(), incr, out->data(), *size, [&](uint64_t) { out->Trim(); });
#ifndef SIGRELAY_CORE_MODEL_DELTA_CODEC_H_
#define SIGRELAY_CORE_MODEL_DELTA_CODEC_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/byte_sink.h"
#include "core/base/mapped_file.h"

namespace sigrelay {

class IncrementalCodec {
 public:
  // The level by the new file's size (kAuto). Measured with long matching
  // (bench/RESULTS.md): on 27 MB patterns level 12 gives incrementals as
  // small as level 19, 80x faster, and 4-13 % smaller than level 1; from
  // about 48 MB on, level 1 is smaller than level 12 (150 MB: 2.46 MB
  // against 2.67 MB four versions apart), 7x faster to make and 10x to
  // apply, and its matches stay near, so a decode touches a few MiB of the
  // old version where level 12's reach all of it.
  static constexpr int kAuto = 0;
  static constexpr int kSmallFileLevel = 12;
  static constexpr int kBigFileLevel = 1;
  static constexpr uint64_t kBigFile = 48ull << 20;
  static constexpr int kDefaultLevel = kAuto;
  // How often (bytes) callers that stream a mapped file elsewhere trim it.
  static constexpr uint64_t kTrimEvery = 16 << 20;

  // `level` is a zstd level (1..22; out-of-range levels are clamped by
  // zstd) or kAuto.
  explicit IncrementalCodec(int level = kDefaultLevel) : level_(level) {}

  // The level an incremental to a file of `new_size` bytes is made at.
  int LevelFor(uint64_t new_size) const {
    if (level_ != kAuto) return level_;
    return new_size >= kBigFile ? kBigFileLevel : kSmallFileLevel;
  }

  // Writes the incremental old -> new to `out`. Neither input is copied
  // (they must not overlap). `trim` is called after each few MiB of input
  // and every 10 ms from a thread of its own (zstd indexes the old version
  // inside one call): it must be thread-safe, and cheap when it decides
  // not to trim. Thread-safe: each call has its own
  // zstd state.
  absl::Status Encode(absl::string_view old_version, absl::string_view new_version, ByteSink* out,
                      const std::function<void()>& trim = nullptr) const;
  // The same, in memory (small files, tools, tests).
  absl::StatusOr<std::string> Encode(absl::string_view old_version,
                                     absl::string_view new_version) const;

  // zstd's own estimate of the tables and buffers one Encode of files of
  // these sizes allocates (the mapped inputs are the caller's to cap).
  uint64_t EncodeMemory(uint64_t old_size, uint64_t new_size) const;

  // The size `incremental` decodes to, from its frame header. DataLoss when
  // it is not a zstd frame or does not say; FailedPrecondition when it is
  // over `max_size`.
  static absl::StatusOr<uint64_t> DecodedSize(absl::string_view incremental, uint64_t max_size);

  // Rebuilds the new version into out[0, size), `size` being DecodedSize,
  // calling `progress` with the bytes of out final so far after every
  // 256 KiB of output or 16 KiB of input (the caller trims there), and once
  // at the end. DataLoss when `incremental` is corrupt, truncated, has bytes
  // past its frame, or was made against another old version.
  absl::Status DecodeInto(absl::string_view old_version, absl::string_view incremental, char* out,
                          uint64_t size,
                          const std::function<void(uint64_t decoded)>& progress = nullptr) const;
  // The same, in memory.
  absl::StatusOr<std::string> Decode(absl::string_view old_version, absl::string_view incremental,
                                     uint64_t max_size) const;

 private:
  int level_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_MODEL_DELTA_CODEC_H_
