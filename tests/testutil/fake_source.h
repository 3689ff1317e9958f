// An UpdateSource in memory for tests: a signed manifest and bodies by
// digest, with fault knobs (lie, cut, dribble, go silent) and a log of
// every read. It goes through the same non-virtual Manifest/Fetch as the
// real transports, so the rules written once there are what it tests.
#ifndef SIGRELAY_TESTS_TESTUTIL_FAKE_SOURCE_H_
#define SIGRELAY_TESTS_TESTUTIL_FAKE_SOURCE_H_

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/client/update_source.h"

namespace sigrelay::testing {

class FakeSource final : public UpdateSource {
 public:
  explicit FakeSource(std::string name = "fake") : name_(std::move(name)) {}

  std::string Describe() const override { return name_; }

  void SetManifest(v1::SignedManifest m) {
    absl::MutexLock lock(&mu_);
    manifest_ = std::move(m);
  }
  // `bytes` served for the body whose signed digest is `sha256`.
  void Put(const std::string& sha256, std::string bytes) {
    absl::MutexLock lock(&mu_);
    bodies_[sha256] = std::move(bytes);
  }

  // Faults, applied to body reads.
  std::atomic<bool> flip_byte{false};  // flip one byte in the middle
  std::atomic<int64_t> cut_after{-1};  // end early (Unavailable) after this many bytes
  // Send the rest one byte per this interval once `dribble_after` bytes went.
  std::atomic<int64_t> dribble_after{-1};
  absl::Duration dribble_every = absl::Milliseconds(100);
  std::atomic<bool> silent{false};  // send nothing, until cut
  std::atomic<int> piece{1 << 14};  // bytes per write

  // Offsets of body reads, in order.
  std::vector<uint64_t> offsets() const {
    absl::MutexLock lock(&mu_);
    return offsets_;
  }

 protected:
  absl::Status ReadManifest(TransferControl*, ByteSink* out) override {
    absl::MutexLock lock(&mu_);
    return out->Write(manifest_.SerializeAsString());
  }
  absl::Status ReadBody(const ExpectedBody& want, uint64_t offset, TransferControl* control,
                        ByteSink* out) override {
    std::string body;
    {
      absl::MutexLock lock(&mu_);
      offsets_.push_back(offset);
      auto it = bodies_.find(want.sha256);
      if (it == bodies_.end()) return absl::NotFoundError(want.Describe() + " is not here");
      body = it->second;
    }
    if (flip_byte && body.size() > 1) body[body.size() / 2] ^= 0x20;
    uint64_t at = offset;
    while (at < body.size()) {
      if (control->cut()) return absl::CancelledError("cut");
      if (silent) {
        absl::SleepFor(absl::Milliseconds(5));
        continue;
      }
      if (cut_after >= 0 && at >= static_cast<uint64_t>(cut_after)) {
        return absl::UnavailableError("connection reset (test)");
      }
      size_t n = static_cast<size_t>(piece.load());
      if (dribble_after >= 0 && at >= static_cast<uint64_t>(dribble_after)) {
        n = 1;
        absl::SleepFor(dribble_every);
      } else if (dribble_after >= 0) {
        n = std::min<size_t>(n, static_cast<size_t>(dribble_after - at));
      }
      n = std::min<size_t>(n, body.size() - at);
      if (absl::Status s = out->Write(absl::string_view(body).substr(at, n)); !s.ok()) return s;
      at += n;
    }
    return absl::OkStatus();
  }

 private:
  const std::string name_;
  mutable absl::Mutex mu_;
  v1::SignedManifest manifest_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> offsets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_FAKE_SOURCE_H_
