#include "relay/runtime_settings.h"

#include <google/protobuf/text_format.h>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"

namespace sigrelay {

absl::StatusOr<absl::Duration> ParseSchedule(const std::string& text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule \"", text, "\" is not a duration like 15m, 90s or 2h"));
  }
  if (d < absl::Seconds(1) || d > absl::Hours(24 * 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule ", text, " is outside 1s..720h (30 days)"));
  }
  return d;
}

absl::StatusOr<RuntimeSettingsFile> RuntimeSettingsFile::Load(const std::string& path) {
  v1::RuntimeSettings settings;
  if (FileExists(path)) {
    absl::StatusOr<std::string> text = ReadFileToString(path);
    if (!text.ok()) return text.status();
    if (!google::protobuf::TextFormat::ParseFromString(*text, &settings)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path,
                       " is not a sigrelay.v1.RuntimeSettings; move it away to start "
                       "from the configured schedule and proxy"));
    }
  }
  return RuntimeSettingsFile(path, std::move(settings));
}

RuntimeSettingsFile::RuntimeSettingsFile(RuntimeSettingsFile&& other)
    : path_(other.path_), settings_(other.Get()) {}

v1::RuntimeSettings RuntimeSettingsFile::Get() const {
  absl::MutexLock lock(&mu_);
  return settings_;
}

absl::Status RuntimeSettingsFile::Update(const std::function<void(v1::RuntimeSettings*)>& change) {
  absl::MutexLock lock(&mu_);
  v1::RuntimeSettings next = settings_;
  change(&next);
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(next, &text)) {
    return absl::InternalError("cannot print the runtime settings");
  }
  if (absl::Status s = WriteFileAtomically(path_, text, 0600); !s.ok()) return s;
  settings_ = std::move(next);
  return absl::OkStatus();
}

}  // namespace sigrelay
