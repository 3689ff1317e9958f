#include "core/model/delta_codec.h"

#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sigrelay {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// From zstd.h's static-linking-only section, which Debian's build hides.
constexpr int kWindowLogMin = 10;
constexpr int kWindowLogMax = 31;

unsigned HighBit(uint64_t v) {
  unsigned bit = 0;
  while (v >>= 1) ++bit;
  return bit;
}

// The window the zstd CLI picks in patch-from mode (one more than the high bit
// of the larger input), so the frame decodes with the CLI's default limits.
int PatchWindowLog(uint64_t old_size, uint64_t new_size) {
  int log = static_cast<int>(HighBit(std::max(old_size, new_size))) + 1;
  return std::clamp(log, kWindowLogMin, kWindowLogMax);
}

absl::Status ZstdError(absl::string_view what, size_t code) {
  return absl::InternalError(absl::StrCat("zstd ", what, ": ", ZSTD_getErrorName(code)));
}

}  // namespace

absl::StatusOr<std::string> IncrementalCodec::Encode(absl::string_view old_version,
                                                     absl::string_view new_version) const {
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  if (!cctx) return absl::ResourceExhaustedError("zstd: cannot allocate a compression context");
  ZSTD_CCtx* c = cctx.get();
  const int window_log = PatchWindowLog(old_version.size(), new_version.size());
  for (auto [param, value] :
       {std::pair{ZSTD_c_compressionLevel, level_}, std::pair{ZSTD_c_enableLongDistanceMatching, 1},
        std::pair{ZSTD_c_windowLog, window_log}, std::pair{ZSTD_c_checksumFlag, 1},
        std::pair{ZSTD_c_contentSizeFlag, 1}}) {
    size_t rc = ZSTD_CCtx_setParameter(c, param, value);
    if (ZSTD_isError(rc)) return ZstdError("set parameter", rc);
  }
  // zstd ignores a prefix that overlaps the input, so alias-free copy first.
  std::string old_copy;
  const char* old_end = old_version.data() + old_version.size();
  const char* new_end = new_version.data() + new_version.size();
  if (!old_version.empty() && !new_version.empty() && old_version.data() < new_end &&
      new_version.data() < old_end) {
    old_copy.assign(old_version.data(), old_version.size());
    old_version = old_copy;
  }
  if (!old_version.empty()) {
    size_t rc = ZSTD_CCtx_refPrefix(c, old_version.data(), old_version.size());
    if (ZSTD_isError(rc)) return ZstdError("reference old version", rc);
  }
  std::string out(ZSTD_compressBound(new_version.size()), '\0');
  size_t n = ZSTD_compress2(c, out.data(), out.size(), new_version.data(), new_version.size());
  if (ZSTD_isError(n)) return ZstdError("encode incremental", n);
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> IncrementalCodec::Decode(absl::string_view old_version,
                                                     absl::string_view incremental,
                                                     uint64_t max_size) const {
  unsigned long long size = ZSTD_getFrameContentSize(incremental.data(), incremental.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) {
    return absl::DataLossError(
        absl::StrCat("incremental of ", incremental.size(),
                     " bytes is not a zstd frame; fetch the full file instead"));
  }
  if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return absl::DataLossError(
        "incremental does not state its decoded size; fetch the full file instead");
  }
  if (size > max_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "incremental would decode to ", size, " bytes, over the limit of ", max_size, " bytes"));
  }
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return absl::ResourceExhaustedError("zstd: cannot allocate a decompression context");
  ZSTD_DCtx* d = dctx.get();
  size_t rc = ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, kWindowLogMax);
  if (ZSTD_isError(rc)) return ZstdError("set parameter", rc);
  if (!old_version.empty()) {
    rc = ZSTD_DCtx_refPrefix(d, old_version.data(), old_version.size());
    if (ZSTD_isError(rc)) return ZstdError("reference old version", rc);
  }
  std::string out(size, '\0');
  size_t n = ZSTD_decompressDCtx(d, out.data(), out.size(), incremental.data(), incremental.size());
  if (ZSTD_isError(n)) {
    return absl::DataLossError(
        absl::StrCat("incremental does not apply to this old version (", ZSTD_getErrorName(n),
                     "); it is corrupt or made from another version; fetch the full file instead"));
  }
  if (n != size) {
    return absl::DataLossError(
        absl::StrCat("incremental decoded to ", n, " bytes, its header says ", size));
  }
  return out;
}

std::vector<absl::StatusOr<std::string>> IncrementalCodec::EncodeEach(
    size_t count, const std::function<absl::StatusOr<std::string>(size_t)>& load_old,
    absl::string_view new_version, bool verify) const {
  std::vector<absl::StatusOr<std::string>> out(count, absl::UnknownError("not encoded"));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < count; i = next++) {
      absl::StatusOr<std::string> old = load_old(i);
      if (!old.ok()) {
        out[i] = old.status();
        continue;
      }
      out[i] = Encode(*old, new_version);
      if (!verify || !out[i].ok()) continue;
      absl::StatusOr<std::string> rebuilt = Decode(*old, *out[i], new_version.size());
      if (!rebuilt.ok() || *rebuilt != new_version) {
        out[i] = absl::InternalError("the incremental made does not rebuild the new version");
      }
    }
  };
  std::vector<std::thread> workers;
  const size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), count);
  for (size_t t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (std::thread& t : workers) t.join();
  return out;
}

}  // namespace sigrelay
