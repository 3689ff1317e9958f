// What an operator changes on a running relay (AdminService SetSchedule and
// SetProxy): validated, saved in DATA_DIR/settings.textpb (mode 0600, as it
// may hold a proxy password) before it takes effect, and applied over flags
// and config file at every start, so a change survives a restart.
#ifndef SIGRELAY_RELAY_RUNTIME_SETTINGS_H_
#define SIGRELAY_RELAY_RUNTIME_SETTINGS_H_

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "sigrelay/v1/config.pb.h"

namespace sigrelay {

// InvalidArgument unless `text` is a duration from 1s to 30 days.
absl::StatusOr<absl::Duration> ParseSchedule(const std::string& text);

// Thread-safe.
class RuntimeSettingsFile {
 public:
  // Reads `path` (absent: nothing changed at run time yet). InvalidArgument
  // naming the file when it is not a RuntimeSettings.
  static absl::StatusOr<RuntimeSettingsFile> Load(const std::string& path);

  RuntimeSettingsFile(RuntimeSettingsFile&& other);

  v1::RuntimeSettings Get() const;
  // Applies `change` and saves the result atomically; on error nothing
  // changed. Changes are serialized, so none is lost.
  absl::Status Update(const std::function<void(v1::RuntimeSettings*)>& change);

 private:
  RuntimeSettingsFile(std::string path, v1::RuntimeSettings settings)
      : path_(std::move(path)), settings_(std::move(settings)) {}
  const std::string path_;
  mutable absl::Mutex mu_;
  v1::RuntimeSettings settings_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_RELAY_RUNTIME_SETTINGS_H_
