// When a relay syncs: at start (first start and every start), on a schedule
// with jitter, by hand (SyncNow), and at once when an upstream's Watch stream
// announces a newer manifest. One sync runs at a time; triggers that arrive
// during a sync coalesce into one more. A failed sync is retried with
// exponential backoff and jitter, sooner than the schedule.
//
//   SyncScheduler scheduler(&sync, store, RealClock::Get(), {.period = absl::Minutes(60)});
//   scheduler.Start();
//   scheduler.RequestSync([](absl::StatusOr<v1::SyncNowResponse> r) { ... });
//   scheduler.Stop();
#ifndef SIGRELAY_RELAY_SYNC_SCHEDULER_H_
#define SIGRELAY_RELAY_SYNC_SCHEDULER_H_

#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/base/clock.h"
#include "core/store/version_store.h"
#include "relay/upstream_sync.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

class WatchStream;

struct SchedulerOptions {
  absl::Duration period = absl::Minutes(60);
  double jitter = 0.1;  // each wait is period * (1 ± jitter)
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(5);
  uint64_t seed = std::random_device{}();
  // This relay's subtree (UpdateServiceImpl::Fleet), reported to the
  // upstream on the Watch stream when the stream opens and, while it
  // changes, at most every `fleet_every`.
  std::function<std::vector<v1::FleetCount>()> fleet;
  absl::Duration fleet_every = absl::Milliseconds(500);
};

class SyncScheduler {
 public:
  // Watch announcements judged at once, then per second (see WatchLoop).
  static constexpr int kAnnouncementBurst = 10;
  static constexpr int kAnnouncementsPerSecond = 2;

  using Done = std::function<void(absl::StatusOr<v1::SyncNowResponse>)>;

  SyncScheduler(UpstreamSync* sync, VersionStore* store, const Clock* clock,
                SchedulerOptions options);
  ~SyncScheduler();  // Stop()s

  // Starts the sync thread (which syncs at once) and the Watch follower.
  void Start();
  void Stop();

  // Asks for a sync as soon as the current one (if any) ends; `done`, if
  // given, gets that sync's result on the sync thread.
  void RequestSync(Done done = nullptr);
  // Loads the static tree at `dir` (sigrelayctl import), on the sync thread
  // between syncs; `done` gets the result there.
  void RequestImport(std::string dir, Done done);

  // Adds the schedule to `status` (next run, period).
  void FillStatus(v1::RelayStatus* status) const;

  // Changes the period at once: the next scheduled sync is one (jittered)
  // new period from now, unless a retry after a failure is due sooner.
  // Returns when that is.
  absl::Time SetPeriod(absl::Duration period);

  // The wait after `failures` consecutive failed syncs (for tests).
  absl::Duration BackoffFor(int failures);

 private:
  void SyncLoop();
  void WatchLoop();
  absl::Duration Jittered(absl::Duration d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  UpstreamSync* const sync_;
  VersionStore* const store_;
  const Clock* const clock_;
  const std::function<std::vector<v1::FleetCount>()> fleet_;
  const absl::Duration fleet_every_;
  SchedulerOptions options_ ABSL_GUARDED_BY(mu_);  // period changes at run time

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Done> waiting_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, Done>> imports_ ABSL_GUARDED_BY(mu_);
  absl::Time next_run_ ABSL_GUARDED_BY(mu_);
  bool retrying_ ABSL_GUARDED_BY(mu_) = false;  // next_run_ is a retry after a failure
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  WatchStream* watch_ ABSL_GUARDED_BY(mu_) = nullptr;  // the open Watch, to cancel
  uint64_t watch_opened_ ABSL_GUARDED_BY(mu_) = 0;     // streams opened so far
  // Held while the fleet reporter writes on watch_: the watch loop takes it
  // before it destroys a stream (by then ended, so the write returns).
  absl::Mutex report_mu_;

  void FleetLoop();

  std::thread sync_thread_;
  std::thread watch_thread_;
  std::thread fleet_thread_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_SYNC_SCHEDULER_H_
