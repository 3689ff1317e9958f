#include "core/client/rebuild.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/base/digest.h"
#include "core/base/process.h"

namespace sigrelay {
namespace {

// The output is faulted in this far ahead of the decoder, in one call.
constexpr uint64_t kFaultAhead = 2 << 20;
// Pages this far behind the decoder stay mapped (its nearest matches read
// them).
constexpr uint64_t kKeepBehind = 2 << 20;
constexpr uint64_t kConsumePiece = 1 << 20;

uint64_t PageFloor(uint64_t n) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return n / page * page;
}

}  // namespace

absl::Status DecodeAndConsume(const IncrementalCodec& codec, const MappedFile& old,
                              absl::string_view incremental, MappedFile* target,
                              const std::function<absl::Status(absl::string_view)>& consume,
                              std::vector<const MappedFile*> also_trim) {
  also_trim.push_back(&old);
  // What the process freed before (a download's chunks and messages) goes
  // back first, so the rebuild's pages come on top of what it holds, not of
  // what glibc kept.
  ReturnFreeMemory();
  const uint64_t size = target->size();
  // A small pattern's incremental (zstd level 12) matches all over its old
  // version, so that stays mapped whole: trimming it cost a quarter of a
  // 20 MB rebuild in refaults. A big one's (level 1, long matching) reads
  // near the decoder and is trimmed behind it.
  const bool near = size >= IncrementalCodec::kBigFile;
  const uint64_t cap = ResidentMappedBytes() + kRebuildMappedCap + (near ? 0 : old.size());
  absl::Mutex mu;
  absl::CondVar changed;
  uint64_t decoded = 0;          // guarded by mu: bytes of the output that are final
  bool decoder_done = false;     // guarded by mu
  absl::Status consumer_status;  // the consumer thread's until it is joined
  std::thread consumer([&] {
    uint64_t at = 0, trimmed = 0;
    while (at < size) {
      uint64_t ready = 0;
      bool done = false;
      {
        absl::MutexLock lock(&mu);
        while (decoded - at < kConsumePiece && decoded < size && !decoder_done) changed.Wait(&mu);
        ready = decoded;
        done = decoder_done || decoded == size;
      }
      if (ready == at) return;  // the decoder stopped short: its error says why
      // What is consumed goes back, but for the output the decoder may
      // still read near where it writes.
      const uint64_t keep_from = done ? size : ready > kKeepBehind ? ready - kKeepBehind : 0;
      while (at < ready) {
        const uint64_t n = std::min(kConsumePiece, ready - at);
        consumer_status = consume(absl::string_view(target->data() + at, n));
        if (!consumer_status.ok()) return;
        at += n;
        const uint64_t behind = PageFloor(std::min(at, keep_from));
        if (behind > trimmed) {
          target->TrimRange(trimmed, behind - trimmed);
          trimmed = behind;
        }
      }
    }
  });
  uint64_t faulted = 0, old_trimmed = 0;
  absl::Status s =
      codec.DecodeInto(old.view(), incremental, target->data(), size, [&](uint64_t pos) {
        {
          absl::MutexLock lock(&mu);
          decoded = pos;
        }
        changed.Signal();
        if (pos + kFaultAhead / 2 >= faulted && faulted < size) {
          // One call instead of a fault per page (faulting fresh pages of the
          // output one by one was a quarter of a 20 MB rebuild).
          const uint64_t from = PageFloor(faulted);
          const uint64_t to = std::min(size, pos + kFaultAhead);
          if (to > from) target->FaultIn(from, to - from);
          faulted = to;
        }
        // Behind the decoder: a big pattern's old version at the same place
        // (the consumer gives back the output it has read); everything when
        // the cap is passed all the same.
        const uint64_t keep_from = pos > kKeepBehind ? pos - kKeepBehind : 0;
        const uint64_t old_behind = near ? PageFloor(std::min<uint64_t>(keep_from, old.size())) : 0;
        if (old_behind > old_trimmed) {
          old.TrimRange(old_trimmed, old_behind - old_trimmed);
          old_trimmed = old_behind;
        }
        if (ResidentMappedBytes() > cap) {
          // The output the consumer has yet to read first (it faults it back
          // in), the inputs whole only if that was not enough.
          target->TrimRange(0, PageFloor(keep_from));
          if (ResidentMappedBytes() > cap) {
            for (const MappedFile* f : also_trim) f->Trim();
          }
        }
      });
  {
    absl::MutexLock lock(&mu);
    decoder_done = true;
  }
  changed.Signal();
  consumer.join();
  target->Trim();
  if (!s.ok()) return s;
  return consumer_status;
}

std::string HashMapped(const MappedFile& file) {
  Sha256 sha;
  const absl::string_view all = file.view();
  uint64_t since_trim = 0;
  for (size_t at = 0; at < all.size(); at += 1 << 20) {
    const absl::string_view part = all.substr(at, 1 << 20);
    sha.Update(part);
    since_trim += part.size();
    if (since_trim >= IncrementalCodec::kTrimEvery) {
      file.Trim();
      since_trim = 0;
    }
  }
  file.Trim();
  return sha.Finish();
}

absl::Status RebuildInto(const IncrementalCodec& codec, const MappedFile& old,
                         absl::string_view incremental, const v1::ComponentEntry& entry,
                         StagedFile* out) {
  absl::StatusOr<uint64_t> size = IncrementalCodec::DecodedSize(incremental, entry.size());
  if (!size.ok()) return size.status();
  if (*size != entry.size()) {
    return absl::DataLossError(absl::StrCat("incremental for ", entry.name(), " ", entry.version(),
                                            " decodes to ", *size,
                                            " bytes where the signed file has ", entry.size()));
  }
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped =
      MappedFile::Writable(out->fd(), out->temp_path(), *size);
  if (!mapped.ok()) return mapped.status();
  Sha256 sha;
  absl::Status s =
      DecodeAndConsume(codec, old, incremental, mapped->get(), [&](absl::string_view piece) {
        sha.Update(piece);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (sha.Finish() != entry.sha256()) {
    return absl::DataLossError(
        absl::StrCat(entry.name(), " ", entry.version(), " does not match its signed digest"));
  }
  return absl::OkStatus();
}

}  // namespace sigrelay
