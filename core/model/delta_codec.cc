#define ZSTD_STATIC_LINKING_ONLY  // stable buffers and the memory estimate (exported by libzstd)
#include "core/model/delta_codec.h"

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace sigrelay {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
struct ParamsDeleter {
  void operator()(ZSTD_CCtx_params* p) const { ZSTD_freeCCtxParams(p); }
};

unsigned HighBit(uint64_t v) {
  unsigned bit = 0;
  while (v >>= 1) ++bit;
  return bit;
}

// The window the zstd CLI picks in patch-from mode (one more than the high bit
// of the larger input), so the frame decodes with the CLI's default limits.
int PatchWindowLog(uint64_t old_size, uint64_t new_size) {
  int log = static_cast<int>(HighBit(std::max(old_size, new_size))) + 1;
  return std::clamp(log, ZSTD_WINDOWLOG_MIN, ZSTD_WINDOWLOG_MAX_64);
}

absl::Status ZstdError(absl::string_view what, size_t code) {
  return absl::InternalError(absl::StrCat("zstd ", what, ": ", ZSTD_getErrorName(code)));
}

// Input is fed to the decoder this many bytes at a time: a few bytes of an
// incremental can stand for a whole 128 KiB block (a long match), so a
// piece may write up to a few MiB.
constexpr size_t kDecodePiece = 256;
// `trim` is offered after this much output, or this much input (whose
// matches may read pages all over the old version).
constexpr uint64_t kOfferOut = 256 << 10;
constexpr uint64_t kOfferIn = 16 << 10;
// New input the encoder takes between trims.
constexpr uint64_t kEncodeStep = 4 << 20;
// The encoder's output is drained through a buffer of this size.
constexpr size_t kEncodeOut = 128 << 10;

}  // namespace

absl::Status IncrementalCodec::Encode(absl::string_view old_version, absl::string_view new_version,
                                      ByteSink* out, const std::function<void()>& trim) const {
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  if (!cctx) return absl::ResourceExhaustedError("zstd: cannot allocate a compression context");
  ZSTD_CCtx* c = cctx.get();
  const int window_log = PatchWindowLog(old_version.size(), new_version.size());
  for (auto [param, value] :
       {std::pair{ZSTD_c_compressionLevel, LevelFor(new_version.size())},
        std::pair{ZSTD_c_enableLongDistanceMatching, 1}, std::pair{ZSTD_c_windowLog, window_log},
        std::pair{ZSTD_c_checksumFlag, 1}, std::pair{ZSTD_c_contentSizeFlag, 1},
        // The input is read where it lies (a mapped file), never copied
        // into a window buffer of zstd's own.
        std::pair{ZSTD_c_stableInBuffer, 1}}) {
    size_t rc = ZSTD_CCtx_setParameter(c, param, value);
    if (ZSTD_isError(rc)) return ZstdError("set parameter", rc);
  }
  const char* old_end = old_version.data() + old_version.size();
  const char* new_end = new_version.data() + new_version.size();
  if (!old_version.empty() && !new_version.empty() && old_version.data() < new_end &&
      new_version.data() < old_end) {
    return absl::InvalidArgumentError("the old and new versions overlap in memory");
  }
  size_t rc = ZSTD_CCtx_setPledgedSrcSize(c, new_version.size());
  if (ZSTD_isError(rc)) return ZstdError("pledge size", rc);
  if (!old_version.empty()) {
    rc = ZSTD_CCtx_refPrefix(c, old_version.data(), old_version.size());
    if (ZSTD_isError(rc)) return ZstdError("reference old version", rc);
  }
  std::string buffer(kEncodeOut, '\0');
  // zstd indexes the whole old version inside its first call, and one
  // call's search may touch any page of the window: `trim` is also offered
  // from a thread of its own every 10 ms, so a caller that caps its
  // resident pages can enforce the cap within any call.
  absl::Notification done;
  std::thread offer;
  if (trim) {
    offer = std::thread([&] {
      while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(10))) trim();
    });
  }
  struct Joiner {
    absl::Notification* done;
    std::thread* t;
    ~Joiner() {
      done->Notify();
      if (t->joinable()) t->join();
    }
  } joiner{&done, &offer};
  // The input grows a step at a time (stable buffers allow a growing size),
  // so the caller can trim between steps.
  ZSTD_inBuffer in{new_version.data(), 0, 0};
  for (;;) {
    in.size = std::min<uint64_t>(new_version.size(), in.size + kEncodeStep);
    const bool last = in.size == new_version.size();
    for (;;) {
      ZSTD_outBuffer o{buffer.data(), buffer.size(), 0};
      size_t left = ZSTD_compressStream2(c, &o, &in, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(left)) return ZstdError("encode incremental", left);
      if (o.pos > 0) {
        if (absl::Status s = out->Write(absl::string_view(buffer.data(), o.pos)); !s.ok()) {
          return s;
        }
      }
      if (last ? left == 0 : in.pos == in.size) break;
    }
    if (trim) trim();
    if (last) return absl::OkStatus();
  }
}

absl::StatusOr<std::string> IncrementalCodec::Encode(absl::string_view old_version,
                                                     absl::string_view new_version) const {
  std::string out;
  StringSink sink(&out);
  // zstd refuses a prefix that overlaps the input: copy one first.
  std::string old_copy;
  const char* old_end = old_version.data() + old_version.size();
  const char* new_end = new_version.data() + new_version.size();
  if (!old_version.empty() && !new_version.empty() && old_version.data() < new_end &&
      new_version.data() < old_end) {
    old_copy.assign(old_version.data(), old_version.size());
    old_version = old_copy;
  }
  if (absl::Status s = Encode(old_version, new_version, &sink); !s.ok()) return s;
  return out;
}

uint64_t IncrementalCodec::EncodeMemory(uint64_t old_size, uint64_t new_size) const {
  std::unique_ptr<ZSTD_CCtx_params, ParamsDeleter> params(ZSTD_createCCtxParams());
  if (!params) return 0;
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_compressionLevel, LevelFor(new_size));
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_enableLongDistanceMatching, 1);
  const int window_log = PatchWindowLog(old_size, new_size);
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_windowLog, window_log);
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_stableInBuffer, 1);
  // The long-distance matcher's parameters as zstd resolves them at
  // compression (libzstd 1.5.4's estimate divides by them unresolved).
  const int ldm_hash_log = std::max(ZSTD_HASHLOG_MIN, window_log - 7);
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_ldmHashLog, ldm_hash_log);
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_ldmMinMatch, 64);
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_ldmBucketSizeLog, 3);
  ZSTD_CCtxParams_setParameter(params.get(), ZSTD_c_ldmHashRateLog, window_log - ldm_hash_log);
  const size_t estimate = ZSTD_estimateCStreamSize_usingCCtxParams(params.get());
  return ZSTD_isError(estimate) ? 0 : estimate;
}

absl::StatusOr<uint64_t> IncrementalCodec::DecodedSize(absl::string_view incremental,
                                                       uint64_t max_size) {
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
  return static_cast<uint64_t>(size);
}

absl::Status IncrementalCodec::DecodeInto(absl::string_view old_version,
                                          absl::string_view incremental, char* out, uint64_t size,
                                          const std::function<void(uint64_t)>& progress) const {
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return absl::ResourceExhaustedError("zstd: cannot allocate a decompression context");
  ZSTD_DCtx* d = dctx.get();
  // The output is the window (no buffer of zstd's own as big as the file).
  for (auto [param, value] : {std::pair{ZSTD_d_windowLogMax, ZSTD_WINDOWLOG_MAX_64},
                              std::pair{ZSTD_d_stableOutBuffer, 1}}) {
    size_t rc = ZSTD_DCtx_setParameter(d, param, value);
    if (ZSTD_isError(rc)) return ZstdError("set parameter", rc);
  }
  if (!old_version.empty()) {
    size_t rc = ZSTD_DCtx_refPrefix(d, old_version.data(), old_version.size());
    if (ZSTD_isError(rc)) return ZstdError("reference old version", rc);
  }
  ZSTD_outBuffer o{out, size, 0};
  size_t used = 0;
  size_t left = 1;
  uint64_t offered_out = 0, offered_in = 0;
  while (used < incremental.size() && left != 0) {
    ZSTD_inBuffer in{incremental.data() + used, std::min(kDecodePiece, incremental.size() - used),
                     0};
    left = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(left)) {
      return absl::DataLossError(absl::StrCat(
          "incremental does not apply to this old version (", ZSTD_getErrorName(left),
          "); it is corrupt or made from another version; fetch the full file instead"));
    }
    used += in.pos;
    if (progress && (o.pos - offered_out >= kOfferOut || used - offered_in >= kOfferIn)) {
      progress(o.pos);
      offered_out = o.pos;
      offered_in = used;
    }
  }
  if (progress) progress(o.pos);
  if (left != 0) {
    return absl::DataLossError(absl::StrCat("incremental ends inside its frame (", used, " of ",
                                            incremental.size(), " bytes decoded to ", o.pos,
                                            "); fetch the full file instead"));
  }
  if (used != incremental.size()) {
    return absl::DataLossError(absl::StrCat("incremental has ", incremental.size() - used,
                                            " bytes past its frame; fetch the full file instead"));
  }
  if (o.pos != size) {
    return absl::DataLossError(
        absl::StrCat("incremental decoded to ", o.pos, " bytes, its header says ", size));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> IncrementalCodec::Decode(absl::string_view old_version,
                                                     absl::string_view incremental,
                                                     uint64_t max_size) const {
  absl::StatusOr<uint64_t> size = DecodedSize(incremental, max_size);
  if (!size.ok()) return size.status();
  std::string out(*size, '\0');
  if (absl::Status s = DecodeInto(old_version, incremental, out.data(), *size); !s.ok()) return s;
  return out;
}

}  // namespace sigrelay
