// What every download from an upstream is held to, whatever carries it
// (gRPC, an HTTP tree, a file tree) and whoever downloads (relay,
// sigrelay-agent, agent-sim): a deadline for the whole transfer, a silence
// cut, a minimum rate over a sliding window, and the process stopping.
// The rules live here once; transports only say how to cancel.
//
// The rate rule is libcurl's LOW_SPEED_LIMIT/LOW_SPEED_TIME: once a
// transfer has run for a whole window, it is cut when the bytes of the last
// window fall below min_rate x window. A 256 kbit/s branch link (32 KB/s)
// passes the default 1 KiB/s with room; a mirror that dribbles a byte a
// second does not, and the client moves on to an upstream that works
// (TUF's "slow retrieval" attack).
//
//   TransferWatch watch(limits, [&] { ctx.TryCancel(); });
//   while (reader->Read(&m)) watch.Progress(m.data().size());
//   if (absl::Status cut = watch.cut(); !cut.ok()) return cut;  // says which rule
#ifndef SIGRELAY_CORE_CLIENT_TRANSFER_WATCH_H_
#define SIGRELAY_CORE_CLIENT_TRANSFER_WATCH_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/base/flags.h"

namespace sigrelay {

struct TransferLimits {
  // The whole transfer ends by then.
  absl::Time deadline = absl::InfiniteFuture();
  // Cut after this long without a byte (zero: never). Bytes arrive a message
  // (one chunk) at a time, so it must exceed one chunk's time on the slowest
  // link.
  absl::Duration stall_timeout = absl::Seconds(60);
  // Cut when fewer than min_rate x min_rate_window bytes arrived over the
  // last min_rate_window (min_rate 0: never).
  uint64_t min_rate = 1024;
  absl::Duration min_rate_window = absl::Seconds(60);
  // Notified when the process is stopping: the transfer is cut at once
  // (Cancelled), keeping what was verified.
  const absl::Notification* stop = nullptr;
  // What to name in a message about a cut: the flags that set these.
  std::string rate_flags = "--min-rate/--min-rate-window";
  std::string stall_flag = "--stall-timeout";

  // InvalidArgument naming the flag for a window under 1 s or over 1 h, or
  // a silence cut under 1 s.
  absl::Status Validate() const;
};

// The flags of these rules, named with `prefix` ("" for an agent's
// --stall-timeout, --min-rate, --min-rate-window; "upstream-" for a
// relay's), also set as the names messages give. `after_cut` says what
// the program does once a transfer is cut.
void AddTransferFlags(FlagParser* flags, TransferLimits* limits, const std::string& prefix,
                      const std::string& after_cut);

// The rules without a thread: fed the bytes as they arrive, asked at any
// instant whether to cut. Not thread-safe; times come from the caller (a
// fake clock in tests).
class TransferMeter {
 public:
  TransferMeter(const TransferLimits& limits, absl::Time start);

  void Progress(uint64_t bytes, absl::Time now);
  // OK, or why to cut now: DeadlineExceeded for the deadline, the silence or
  // the rate ("below 1 KiB/s over 1m: 61 bytes"), Cancelled when stopping.
  absl::Status Check(absl::Time now) const;
  uint64_t bytes() const { return total_; }

 private:
  static constexpr int kBuckets = 60;
  int64_t BucketOf(absl::Time t) const;

  const TransferLimits limits_;
  const absl::Time start_;
  const absl::Duration bucket_;
  absl::Time last_progress_;
  uint64_t total_ = 0;
  // Bytes per slice of the window: ring indexed by slice number.
  std::array<uint64_t, kBuckets> bytes_{};
  std::array<int64_t, kBuckets> slice_{};
};

// A TransferMeter with a thread that applies it: when a rule says cut, it
// calls `cancel` once (gRPC: TryCancel; a file or HTTP reader: a flag it
// checks) and remembers why. Destroy it before what `cancel` touches.
class TransferWatch {
 public:
  TransferWatch(const TransferLimits& limits, std::function<void()> cancel);
  ~TransferWatch();
  TransferWatch(const TransferWatch&) = delete;
  TransferWatch& operator=(const TransferWatch&) = delete;

  // Thread-safe.
  void Progress(uint64_t bytes);
  // OK while it runs or when it ended on its own; else why it was cut.
  absl::Status cut() const;
  bool was_cut() const { return !cut().ok(); }
  uint64_t bytes() const;

 private:
  void Run();

  const std::function<void()> cancel_;
  mutable absl::Mutex mu_;
  TransferMeter meter_ ABSL_GUARDED_BY(mu_);
  absl::Status cut_ ABSL_GUARDED_BY(mu_);
  absl::Notification done_;
  std::thread thread_;
};

// Whether `s` is a transfer cut by the silence or the rate rule (the
// upstream stopped or dribbles, or the link is too slow for the limits):
// a reason to try another upstream first next time. Not for a stop.
bool IsTransferCut(const absl::Status& s);

// "1 KiB/s", "32 B/s", "2.5 MiB/s": for messages and status.
std::string FormatRate(uint64_t bytes_per_second);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_TRANSFER_WATCH_H_
