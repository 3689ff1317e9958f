#include "core/client/transfer_watch.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace sigrelay {
namespace {

constexpr char kCutPayload[] = "type.sigrelay.dev/transfer-cut";

absl::Status Cut(std::string message) {
  absl::Status s = absl::DeadlineExceededError(std::move(message));
  s.SetPayload(kCutPayload, absl::Cord("1"));
  return s;
}

}  // namespace

bool IsTransferCut(const absl::Status& s) { return s.GetPayload(kCutPayload).has_value(); }

std::string FormatRate(uint64_t r) {
  if (r >= (1 << 20) && r % (1 << 20) == 0) return absl::StrCat(r >> 20, " MiB/s");
  if (r >= (1 << 20)) return absl::StrFormat("%.1f MiB/s", r / 1048576.0);
  if (r >= 1024 && r % 1024 == 0) return absl::StrCat(r >> 10, " KiB/s");
  if (r >= 1024) return absl::StrFormat("%.1f KiB/s", r / 1024.0);
  return absl::StrCat(r, " B/s");
}

void AddTransferFlags(FlagParser* flags, TransferLimits* limits, const std::string& prefix,
                      const std::string& after_cut) {
  const std::string rate = "--" + prefix + "min-rate";
  limits->stall_flag = "--" + prefix + "stall-timeout";
  limits->rate_flags = rate + "/" + rate + "-window";
  flags->Add(prefix + "stall-timeout", &limits->stall_timeout,
             "cut a download that brings no data this long. Data arrives a chunk at a time, so "
             "this must exceed one chunk's time on the slowest link (default 60s: 1 MiB chunks "
             "down to ~140 kbit/s)");
  flags->AddBytes(prefix + "min-rate", &limits->min_rate,
                  absl::StrCat("cut a download that moves fewer bytes per second than this over ",
                               rate, "-window (a server that dribbles); ", after_cut,
                               " (default 1KiB: a 256 kbit/s link passes with 30x room; 0: off)"));
  flags->Add(prefix + "min-rate-window", &limits->min_rate_window,
             absl::StrCat("the window ", rate, " is judged over, 1s..1h (default 60s)"));
}

absl::Status TransferLimits::Validate() const {
  if (min_rate > 0 && (min_rate_window < absl::Seconds(1) || min_rate_window > absl::Hours(1))) {
    return absl::InvalidArgumentError(absl::StrCat(rate_flags, ": the window must be 1s..1h (got ",
                                                   absl::FormatDuration(min_rate_window), ")"));
  }
  if (stall_timeout != absl::ZeroDuration() && stall_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(stall_flag, " must be at least 1s"));
  }
  return absl::OkStatus();
}

TransferMeter::TransferMeter(const TransferLimits& limits, absl::Time start)
    : limits_(limits),
      start_(start),
      bucket_(std::max(limits.min_rate_window / kBuckets, absl::Milliseconds(1))),
      last_progress_(start) {
  slice_.fill(-1);
}

int64_t TransferMeter::BucketOf(absl::Time t) const {
  absl::Duration rest;
  return absl::IDivDuration(t - start_, bucket_, &rest);
}

void TransferMeter::Progress(uint64_t bytes, absl::Time now) {
  if (bytes == 0) return;
  total_ += bytes;
  last_progress_ = now;
  const int64_t b = BucketOf(now);
  const int i = static_cast<int>(b % kBuckets);
  if (slice_[i] != b) {
    slice_[i] = b;
    bytes_[i] = 0;
  }
  bytes_[i] += bytes;
}

absl::Status TransferMeter::Check(absl::Time now) const {
  if (limits_.stop != nullptr && limits_.stop->HasBeenNotified()) {
    return absl::CancelledError("stopping: the transfer was cut; what was verified is kept");
  }
  if (now >= limits_.deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("the transfer did not finish by its deadline (", total_, " bytes)"));
  }
  if (limits_.stall_timeout > absl::ZeroDuration() &&
      now - last_progress_ > limits_.stall_timeout) {
    return Cut(absl::StrCat("no bytes for ", absl::FormatDuration(limits_.stall_timeout), " after ",
                            total_, " bytes: the transfer stalled and was cut (",
                            limits_.stall_flag, ")"));
  }
  if (limits_.min_rate > 0 && now - start_ >= limits_.min_rate_window) {
    // The slices wholly inside the last window, and the current one.
    const int64_t current = BucketOf(now);
    uint64_t recent = 0;
    for (int i = 0; i < kBuckets; ++i) {
      if (slice_[i] > current - kBuckets && slice_[i] <= current) recent += bytes_[i];
    }
    const double need =
        static_cast<double>(limits_.min_rate) * absl::ToDoubleSeconds(limits_.min_rate_window);
    if (static_cast<double>(recent) < need) {
      return Cut(absl::StrCat("below ", FormatRate(limits_.min_rate), " over ",
                              absl::FormatDuration(limits_.min_rate_window), ": ", recent,
                              " bytes; the transfer was cut (", limits_.rate_flags, ")"));
    }
  }
  return absl::OkStatus();
}

TransferWatch::TransferWatch(const TransferLimits& limits, std::function<void()> cancel)
    : cancel_(std::move(cancel)), meter_(limits, absl::Now()) {
  thread_ = std::thread([this] { Run(); });
}

TransferWatch::~TransferWatch() {
  done_.Notify();
  thread_.join();
}

void TransferWatch::Progress(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  meter_.Progress(bytes, absl::Now());
}

absl::Status TransferWatch::cut() const {
  absl::MutexLock lock(&mu_);
  return cut_;
}

uint64_t TransferWatch::bytes() const {
  absl::MutexLock lock(&mu_);
  return meter_.bytes();
}

void TransferWatch::Run() {
  // A stop is seen within a tick; the other rules need no finer grain.
  constexpr absl::Duration kTick = absl::Milliseconds(100);
  while (!done_.WaitForNotificationWithTimeout(kTick)) {
    absl::Status s;
    {
      absl::MutexLock lock(&mu_);
      s = meter_.Check(absl::Now());
      if (s.ok()) continue;
      cut_ = s;
    }
    if (cancel_) cancel_();
    return;
  }
}

}  // namespace sigrelay
