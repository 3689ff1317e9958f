// The daemons' config file: a protobuf text-format NodeConfig
// (proto/sigrelay/v1/config.proto) whose fields are the daemon's flags.
//
//   FlagParser flags(...);  // with a "config" flag among the others
//   absl::Status s = ParseFlagsWithConfig(&flags, &config_path, argc, argv);
//   // the file's settings, overridden by the command line
#ifndef SIGRELAY_CORE_BASE_CONFIG_FILE_H_
#define SIGRELAY_CORE_BASE_CONFIG_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/base/flags.h"
#include "google/protobuf/message.h"

namespace sigrelay {

// A config file larger than this is refused unread (a typo such as
// --config /dev/zero must not read until memory runs out).
inline constexpr size_t kMaxConfigFileBytes = 1 << 20;

// The file at `path` as flags: "--data-dir", "/var/lib/x", "--listen", ...
// InvalidArgument naming the line for text that is not a NodeConfig.
// `schema`: the message the file is (NodeConfig when null; AgentConfig for
// sigrelay-agent).
absl::StatusOr<std::vector<std::string>> ConfigFileAsFlags(
    const std::string& path, const google::protobuf::Message* schema = nullptr);

// Parses the command line into `flags`; when it names a config file (the
// flag bound to *config_path), applies the file first and the command line
// over it. A field of the file that is not one of `flags` is an error
// naming it.
// ConfigFileAsFlags for text already read (`path` names it in errors).
absl::StatusOr<std::vector<std::string>> ConfigTextAsFlags(
    const std::string& text, const std::string& path,
    const google::protobuf::Message* schema = nullptr);

absl::Status ParseFlagsWithConfig(FlagParser* flags, const std::string* config_path, int argc,
                                  char** argv, const google::protobuf::Message* schema = nullptr);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_CONFIG_FILE_H_
