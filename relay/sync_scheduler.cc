#include "relay/sync_scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/base/log.h"
#include "core/client/tree.h"
#include "core/client/watch_stream.h"
#include "core/model/manifest.h"

namespace sigrelay {

SyncScheduler::SyncScheduler(UpstreamSync* sync, VersionStore* store, const Clock* clock,
                             SchedulerOptions options)
    : sync_(sync),
      store_(store),
      clock_(clock),
      fleet_(options.fleet),
      fleet_every_(options.fleet_every),
      options_(options),
      rng_(options.seed) {}

SyncScheduler::~SyncScheduler() { Stop(); }

void SyncScheduler::Start() {
  {
    absl::MutexLock lock(&mu_);
    requested_ = true;  // every start syncs, the first one too
    next_run_ = clock_->Now();
  }
  sync_thread_ = std::thread([this] { SyncLoop(); });
  watch_thread_ = std::thread([this] { WatchLoop(); });
  if (fleet_) fleet_thread_ = std::thread([this] { FleetLoop(); });
}

void SyncScheduler::FleetLoop() {
  uint64_t sent_on = 0;  // the stream (watch_opened_) `sent` went out on
  std::string sent;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), fleet_every_)) return;
    }
    v1::WatchRequest report;
    for (v1::FleetCount& c : fleet_()) *report.add_fleet() = std::move(c);
    std::string bytes = report.SerializeAsString();
    absl::MutexLock writing(&report_mu_);
    WatchStream* watch;
    uint64_t opened;
    {
      absl::MutexLock lock(&mu_);
      watch = watch_;
      opened = watch_opened_;
    }
    if (watch == nullptr) continue;
    // A new stream: its first request carried the fleet of that moment;
    // whatever is not empty now goes again.
    if (opened != sent_on) {
      sent_on = opened;
      sent.clear();
    }
    if (bytes == sent) continue;
    if (watch->Report(report)) sent = std::move(bytes);
  }
}

void SyncScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_ != nullptr) watch_->Cancel();
  }
  if (sync_thread_.joinable()) sync_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (fleet_thread_.joinable()) fleet_thread_.join();
}

void SyncScheduler::RequestSync(Done done) {
  absl::MutexLock lock(&mu_);
  requested_ = true;
  if (done) waiting_.push_back(std::move(done));
}

void SyncScheduler::RequestImport(std::string dir, Done done) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    done(absl::UnavailableError("relay is shutting down"));
    return;
  }
  imports_.emplace_back(std::move(dir), std::move(done));
}

void SyncScheduler::FillStatus(v1::RelayStatus* status) const {
  absl::MutexLock lock(&mu_);
  status->set_next_scheduled_unix(absl::ToUnixSeconds(next_run_));
  status->set_schedule_seconds(absl::ToInt64Seconds(options_.period));
}

absl::Duration SyncScheduler::Jittered(absl::Duration d) {
  std::uniform_real_distribution<double> u(1 - options_.jitter, 1 + options_.jitter);
  return d * u(rng_);
}

absl::Duration SyncScheduler::BackoffFor(int failures) {
  absl::MutexLock lock(&mu_);
  absl::Duration d = options_.initial_backoff;
  for (int i = 1; i < failures && d < options_.max_backoff; ++i) d *= 2;
  return Jittered(std::min(d, options_.max_backoff));
}

absl::Time SyncScheduler::SetPeriod(absl::Duration period) {
  absl::MutexLock lock(&mu_);
  options_.period = period;
  const absl::Time next = clock_->Now() + Jittered(period);
  if (!retrying_ || next < next_run_) next_run_ = next;
  return next_run_;
}

void SyncScheduler::SyncLoop() {
  int failures = 0;
  for (;;) {
    std::vector<Done> done;
    std::vector<std::pair<std::string, Done>> imports;
    {
      absl::MutexLock lock(&mu_);
      // Wake for a request, for stop, or when the next run is due (waiting
      // in slices of at most a second, so a wall-clock jump is noticed).
      while (!stopping_ && !requested_ && imports_.empty() && clock_->Now() < next_run_) {
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](SyncScheduler* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
                                   return s->stopping_ || s->requested_ || !s->imports_.empty();
                                 },
                                 this),
                             std::min(next_run_ - clock_->Now(), absl::Seconds(1)));
      }
      if (stopping_) break;
      imports.swap(imports_);
    }
    if (!imports.empty()) {
      for (auto& [dir, import_done] : imports) import_done(sync_->ImportTree(dir));
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      requested_ = false;
      done.swap(waiting_);
    }
    absl::StatusOr<v1::SyncNowResponse> result = sync_->SyncOnce();
    {
      absl::MutexLock lock(&mu_);
      if (result.ok()) {
        failures = 0;
        retrying_ = false;
        next_run_ = clock_->Now() + Jittered(options_.period);
      }
    }
    if (!result.ok()) {
      ++failures;
      absl::Duration wait = BackoffFor(failures);
      absl::MutexLock lock(&mu_);
      retrying_ = true;
      next_run_ = clock_->Now() + wait;
      Log(LogLevel::kWarning,
          absl::StrCat("sync failed (", failures,
                       " in a row); serving what is stored, retrying in ",
                       absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(100)))));
    }
    for (Done& d : done) d(result);
  }
  // Answer whoever still waits.
  std::vector<Done> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(waiting_);
    for (auto& [dir, d] : imports_) left.push_back(std::move(d));
    imports_.clear();
  }
  for (Done& d : left) d(absl::UnavailableError("relay is shutting down"));
}

// Follows the upstreams' Watch streams, first upstream first; a manifest with
// a serial newer than the one held triggers a sync at once.
void SyncScheduler::WatchLoop() {
  int failures = 0;
  size_t next = 0;
  for (;;) {
    const size_t i = next;
    const std::vector<std::string>& upstreams = sync_->dialer()->upstreams();
    next = (next + 1) % upstreams.size();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    // Static trees cannot announce: the schedule polls them.
    if (IsTreeUrl(upstreams[i])) {
      if (std::all_of(upstreams.begin(), upstreams.end(), IsTreeUrl)) {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(&stopping_));
        return;
      }
      continue;
    }
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = sync_->dialer()->Channel(i);
    if (!channel.ok()) {
      ++failures;
      absl::Duration wait = BackoffFor(failures);
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
      continue;
    }
    auto stub = v1::UpdateService::NewStub(*channel);
    absl::Status s;
    bool got_any = false;
    {
      // A follower says nothing about itself (no agent id); it reports its
      // subtree.
      v1::WatchRequest first;
      if (fleet_) {
        for (v1::FleetCount& c : fleet_()) *first.add_fleet() = std::move(c);
      }
      WatchStream watch(stub.get(), first);
      {
        absl::MutexLock lock(&mu_);
        watch_ = &watch;
        ++watch_opened_;
        if (stopping_) watch.Cancel();
      }
      absl::StatusOr<v1::WatchResponse> pushed;
      // Announcements are read at a bounded rate: a burst of
      // kAnnouncementBurst at once, then kAnnouncementsPerSecond. An honest
      // upstream announces once per publish; a hostile one flooding them is
      // held back by HTTP/2 flow control instead of costing a core of reads
      // and signature checks.
      double tokens = kAnnouncementBurst;
      absl::Time refilled = absl::Now();
      bool throttled = false;
      while ((pushed = watch.Next()).ok()) {
        const absl::Time now = absl::Now();
        tokens =
            std::min<double>(kAnnouncementBurst, tokens + absl::ToDoubleSeconds(now - refilled) *
                                                              kAnnouncementsPerSecond);
        refilled = now;
        if (tokens < 1) {
          if (!throttled) {
            throttled = true;
            Log(LogLevel::kWarning,
                absl::StrCat("upstream ", sync_->dialer()->upstreams()[i],
                             " sends announcements faster than ", kAnnouncementsPerSecond,
                             " a second; reading them no faster"));
          }
          const absl::Duration wait = absl::Seconds((1 - tokens) / kAnnouncementsPerSecond);
          absl::MutexLock lock(&mu_);
          if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait)) break;
          tokens = 1;
          refilled = absl::Now();
        }
        tokens -= 1;
        if (!got_any) sync_->NoteWatch(i, absl::OkStatus());
        got_any = true;
        failures = 0;
        next = i;  // stay with an upstream that answers
        // Verified before it costs a sync: an unsigned or stale announcement
        // is ignored (the next scheduled sync still asks the upstream).
        absl::StatusOr<bool> worth = sync_->WorthSyncing(pushed->manifest());
        if (worth.ok() && *worth) {
          Log(LogLevel::kInfo, absl::StrCat("upstream ", sync_->dialer()->upstreams()[i],
                                            " announced a newer manifest"));
          RequestSync();
        }
      }
      s = pushed.status();
      {
        absl::MutexLock lock(&mu_);
        watch_ = nullptr;
        if (!stopping_) sync_->NoteWatch(i, s);
      }
      absl::MutexLock wait_for_report(&report_mu_);
    }
    absl::Duration wait;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (!got_any) ++failures;
    wait = BackoffFor(std::max(failures, 1));
    if (failures > 0 && failures % sync_->dialer()->upstreams().size() == 0) {
      Log(LogLevel::kWarning,
          absl::StrCat("watch on upstream ", sync_->dialer()->upstreams()[i],
                       " ended: ", s.message(), "; retrying in ",
                       absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(100)))));
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
  }
}

}  // namespace sigrelay
