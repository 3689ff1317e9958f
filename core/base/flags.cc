#include "core/base/flags.h"

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sigrelay {
namespace {

absl::Status BadValue(const std::string& name, const std::string& value,
                      const std::string& expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, "=\"", value, "\": expected ", expected));
}

}  // namespace

absl::StatusOr<uint64_t> ParseBytes(const std::string& text) {
  struct Unit {
    const char* suffix;
    uint64_t factor;
  };
  static constexpr Unit kUnits[] = {{"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10},
                                    {"G", 1ull << 30},   {"M", 1ull << 20},   {"K", 1ull << 10}};
  std::string number = text;
  uint64_t factor = 1;
  for (const Unit& u : kUnits) {
    if (absl::EndsWith(text, u.suffix)) {
      number = text.substr(0, text.size() - strlen(u.suffix));
      factor = u.factor;
      break;
    }
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(number, &n) || n > UINT64_MAX / factor) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a byte count like 1048576, 64KiB, 1GiB"));
  }
  return n * factor;
}

void FlagParser::Add(const std::string& name, std::string* dst, const std::string& value_name,
                     const std::string& help) {
  AddFlag({name, value_name, help, [dst](const std::string& v) {
             *dst = v;
             return absl::OkStatus();
           }});
}

void FlagParser::Add(const std::string& name, uint32_t* dst, const std::string& value_name,
                     const std::string& help) {
  AddFlag({name, value_name, help, [dst, name](const std::string& v) {
             return absl::SimpleAtoi(v, dst) ? absl::OkStatus()
                                             : BadValue(name, v, "a whole number");
           }});
}

void FlagParser::Add(const std::string& name, uint64_t* dst, const std::string& value_name,
                     const std::string& help) {
  AddFlag({name, value_name, help, [dst, name](const std::string& v) {
             return absl::SimpleAtoi(v, dst) ? absl::OkStatus()
                                             : BadValue(name, v, "a whole number");
           }});
}

void FlagParser::Add(const std::string& name, int* dst, const std::string& value_name,
                     const std::string& help) {
  AddFlag({name, value_name, help, [dst, name](const std::string& v) {
             return absl::SimpleAtoi(v, dst) ? absl::OkStatus()
                                             : BadValue(name, v, "a whole number");
           }});
}

void FlagParser::Add(const std::string& name, double* dst, const std::string& value_name,
                     const std::string& help) {
  AddFlag({name, value_name, help, [dst, name](const std::string& v) {
             return absl::SimpleAtod(v, dst) ? absl::OkStatus() : BadValue(name, v, "a number");
           }});
}

void FlagParser::Add(const std::string& name, absl::Duration* dst, const std::string& help) {
  AddFlag({name, "DURATION", help, [dst, name](const std::string& v) {
             return absl::ParseDuration(v, dst) && *dst >= absl::ZeroDuration()
                        ? absl::OkStatus()
                        : BadValue(name, v, "a duration like 90s, 60m, 1h30m");
           }});
}

void FlagParser::AddBool(const std::string& name, bool* dst, const std::string& help) {
  AddFlag({name, "", help, [dst, name](const std::string& v) {
             if (v.empty() || v == "true" || v == "1") {
               *dst = true;
             } else if (v == "false" || v == "0") {
               *dst = false;
             } else {
               return BadValue(name, v, "true or false");
             }
             return absl::OkStatus();
           }});
}

void FlagParser::AddBytes(const std::string& name, uint64_t* dst, const std::string& help) {
  AddFlag({name, "BYTES", help, [dst](const std::string& v) -> absl::Status {
             absl::StatusOr<uint64_t> n = ParseBytes(v);
             if (!n.ok()) return n.status();
             *dst = *n;
             return absl::OkStatus();
           }});
}

void FlagParser::AddRepeated(const std::string& name, std::vector<std::string>* dst,
                             const std::string& value_name, const std::string& help) {
  auto cleared_in = std::make_shared<uint64_t>(0);
  AddFlag({name, value_name, help + " (repeatable)", [this, dst, cleared_in](const std::string& v) {
             // The first use in each parse replaces the list (the default,
             // or what a config file set).
             if (*cleared_in != parses_) dst->clear();
             *cleared_in = parses_;
             dst->push_back(v);
             return absl::OkStatus();
           }});
}

absl::Status FlagParser::Parse(int argc, char** argv, std::vector<std::string>* positional) {
  ++parses_;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (flags_done || !absl::StartsWith(arg, "--")) {
      positional->push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "help") {
      help_ = true;
      return absl::OkStatus();
    }
    const Flag* flag = nullptr;
    for (const Flag& f : flags_) {
      if (f.name == name) flag = &f;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, "; see ", program_, " --help"));
    }
    if (!has_value && !flag->value_name.empty()) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value (", flag->value_name, ")"));
      }
      value = argv[++i];
    }
    absl::Status s = flag->set(value);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status FlagParser::ParseFlagsOnly(int argc, char** argv) {
  std::vector<std::string> positional;
  absl::Status s = Parse(argc, argv, &positional);
  if (s.ok() && !help_ && !positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", positional[0], "\"; see ", program_, " --help"));
  }
  return s;
}

absl::Status FlagParser::ParseList(const std::vector<std::string>& args) {
  std::vector<char*> argv = {const_cast<char*>(program_.c_str())};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  return ParseFlagsOnly(static_cast<int>(argv.size()), argv.data());
}

bool FlagParser::Has(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return true;
  }
  return false;
}

std::string FlagParser::Usage() const {
  std::string out = absl::StrCat("usage: ", synopsis_, "\n\nflags:\n");
  for (const Flag& f : flags_) {
    std::string left = absl::StrCat("  --", f.name, f.value_name.empty() ? "" : " " + f.value_name);
    if (left.size() < 30) left.resize(30, ' ');
    absl::StrAppend(&out, left, " ", f.help, "\n");
  }
  return out;
}

}  // namespace sigrelay
