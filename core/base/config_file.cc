#include "core/base/config_file.h"

#include <fcntl.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "sigrelay/v1/config.pb.h"

namespace sigrelay {
namespace {

absl::StatusOr<std::string> ReadBounded(const std::string& path, size_t limit) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open config file ", path, ": ", strerror(errno)));
  }
  std::string out;
  char buf[64 << 10];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read config file ", path, ": ", strerror(e)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) {
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", path, " is over ", limit, " bytes; is it the right file?"));
    }
  }
  close(fd);
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ConfigFileAsFlags(
    const std::string& path, const google::protobuf::Message* schema) {
  absl::StatusOr<std::string> text = ReadBounded(path, kMaxConfigFileBytes);
  if (!text.ok()) return text.status();
  return ConfigTextAsFlags(*text, path, schema);
}

absl::StatusOr<std::vector<std::string>> ConfigTextAsFlags(
    const std::string& text, const std::string& path, const google::protobuf::Message* schema) {
  if (schema == nullptr) schema = &v1::NodeConfig::default_instance();
  std::unique_ptr<google::protobuf::Message> owned(schema->New());
  google::protobuf::Message& config = *owned;
  struct Collector : google::protobuf::io::ErrorCollector {
    std::string errors;
    void AddError(int line, int column, const std::string& message) override {
      absl::StrAppend(&errors, "line ", line + 1, " column ", column + 1, ": ", message, "; ");
    }
  } collector;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, " is not a valid ",
                                                   config.GetTypeName(), ": ", collector.errors,
                                                   "see proto/sigrelay/v1/config.proto"));
  }
  std::vector<std::string> flags;
  const google::protobuf::Reflection* reflection = config.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(config, &fields);
  for (const google::protobuf::FieldDescriptor* f : fields) {
    const std::string flag = "--" + absl::StrReplaceAll(f->name(), {{"_", "-"}});
    using FD = google::protobuf::FieldDescriptor;
    if (f->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(config, f); ++i) {
        flags.push_back(flag);
        flags.push_back(reflection->GetRepeatedString(config, f, i));
      }
      continue;
    }
    flags.push_back(flag);
    switch (f->cpp_type()) {
      case FD::CPPTYPE_STRING:
        flags.push_back(reflection->GetString(config, f));
        break;
      case FD::CPPTYPE_INT32:
        flags.push_back(absl::StrCat(reflection->GetInt32(config, f)));
        break;
      case FD::CPPTYPE_UINT32:
        flags.push_back(absl::StrCat(reflection->GetUInt32(config, f)));
        break;
      case FD::CPPTYPE_UINT64:
        flags.push_back(absl::StrCat(reflection->GetUInt64(config, f)));
        break;
      case FD::CPPTYPE_BOOL:  // a switch: given when true
        if (!reflection->GetBool(config, f)) flags.pop_back();
        break;
      default:
        return absl::InternalError(
            absl::StrCat("config field ", f->name(), " has a type the flag reader does not know"));
    }
  }
  return flags;
}

absl::Status ParseFlagsWithConfig(FlagParser* flags, const std::string* config_path, int argc,
                                  char** argv, const google::protobuf::Message* schema) {
  absl::Status s = flags->ParseFlagsOnly(argc, argv);
  if (!s.ok() || flags->help_requested() || config_path->empty()) return s;
  const std::string path = *config_path;
  absl::StatusOr<std::vector<std::string>> from_file = ConfigFileAsFlags(path, schema);
  if (!from_file.ok()) return from_file.status();
  for (size_t i = 0; i < from_file->size(); i += 2) {
    const std::string name = (*from_file)[i].substr(2);
    if (!flags->Has(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", path, ": ", absl::StrReplaceAll(name, {{"-", "_"}}),
                       " is not a setting of this daemon (see its --help)"));
    }
  }
  if (s = flags->ParseList(*from_file); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", s.message()));
  }
  return flags->ParseFlagsOnly(argc, argv);  // the command line wins
}

}  // namespace sigrelay
