// Config files: text format for both schemas (daemons' NodeConfig and the
// agent's AgentConfig), and the flags they turn into.
#include "core/base/config_file.h"
#include "core/base/flags.h"
#include "sigrelay/v1/config.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const google::protobuf::Message* schema :
       {static_cast<const google::protobuf::Message*>(
            &sigrelay::v1::NodeConfig::default_instance()),
        static_cast<const google::protobuf::Message*>(
            &sigrelay::v1::AgentConfig::default_instance())}) {
    absl::StatusOr<std::vector<std::string>> flags =
        sigrelay::ConfigTextAsFlags(text, "fuzz.textpb", schema);
    if (!flags.ok()) continue;
    std::string a, b;
    uint32_t n = 0;
    absl::Duration d;
    sigrelay::FlagParser parser("fuzz", "fuzz");
    parser.Add("data-dir", &a, "DIR", "");
    parser.Add("schedule", &b, "D", "");
    parser.Add("max-transfers", &n, "N", "");
    parser.Add("stall-timeout", &d, "");
    (void)parser.ParseList(*flags);
  }
  return 0;
}
