#include "core/client/update_source.h"

#include "absl/strings/str_cat.h"

namespace sigrelay {
namespace {

// Counts what a transport delivers into the watch, then passes it on.
class MeteredSink final : public ByteSink {
 public:
  MeteredSink(TransferWatch* watch, ByteSink* next) : watch_(watch), next_(next) {}
  absl::Status Write(absl::string_view data) override {
    watch_->Progress(data.size());
    return next_->Write(data);
  }

 private:
  TransferWatch* const watch_;
  ByteSink* const next_;
};

// Cancelling runs under the lock, so a transport that clears its canceller
// (OnCut(nullptr)) before its call object dies never races a cut.
class Control final : public TransferControl {
 public:
  void OnCut(std::function<void()> cancel) override {
    absl::MutexLock lock(&mu_);
    if (cut_ && cancel) cancel();
    cancel_ = std::move(cancel);
  }
  bool cut() const override { return cut_.load(); }
  void Cut() {
    absl::MutexLock lock(&mu_);
    cut_ = true;
    if (cancel_) cancel_();
  }

 private:
  absl::Mutex mu_;
  std::function<void()> cancel_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> cut_{false};
};

// Bounds the manifest's bytes.
class BoundedSink final : public ByteSink {
 public:
  explicit BoundedSink(std::string* out) : out_(out) {}
  absl::Status Write(absl::string_view data) override {
    if (out_->size() + data.size() > UpdateSource::kMaxManifestBytes) {
      return absl::DataLossError(
          absl::StrCat("sent a manifest over ", UpdateSource::kMaxManifestBytes, " bytes"));
    }
    out_->append(data.data(), data.size());
    return absl::OkStatus();
  }

 private:
  std::string* const out_;
};

}  // namespace

absl::Status UpdateSource::Watched(
    const TransferLimits& limits, ByteSink* sink,
    const std::function<absl::Status(TransferControl*, ByteSink*)>& read) {
  Control control;
  absl::Status done;
  absl::Status cut;
  {
    TransferWatch watch(limits, [&control] { control.Cut(); });
    MeteredSink metered(&watch, sink);
    done = read(&control, &metered);
    cut = watch.cut();
  }
  return cut.ok() ? done : cut;
}

absl::StatusOr<v1::SignedManifest> UpdateSource::Manifest(const TransferLimits& limits) {
  std::string bytes;
  BoundedSink sink(&bytes);
  absl::Status s = Watched(limits, &sink, [this](TransferControl* control, ByteSink* out) {
    return ReadManifest(control, out);
  });
  if (!s.ok()) return s;
  v1::SignedManifest m;
  if (!m.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("sent ", bytes.size(), " bytes that are not a sigrelay.v1.SignedManifest"));
  }
  return m;
}

absl::Status UpdateSource::Fetch(const ExpectedBody& want, uint64_t offset,
                                 const TransferLimits& limits, ByteSink* sink) {
  if (offset > want.size) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is past the end of ", want.Describe()));
  }
  VerifyingWriter verified(want, offset, sink);
  absl::Status s = Watched(limits, &verified, [&](TransferControl* control, ByteSink* out) {
    return ReadBody(want, offset, control, out);
  });
  if (!s.ok()) return s;
  return verified.Finish();
}

}  // namespace sigrelay
