// The command-line parser every sigrelay binary shares. Unlike absl flags it
// takes repeated flags (`--listen A --listen B`) and keeps positional
// arguments in order for sub-commands.
//
//   FlagParser flags("sigrelay-origin", "serves and publishes patterns");
//   flags.Add("data-dir", &data_dir, "DIR", "where the store lives");
//   flags.AddRepeated("listen", &listen, "HOST:PORT", "address to serve on");
//   absl::Status s = flags.Parse(argc, argv, &positional);
#ifndef SIGRELAY_CORE_BASE_FLAGS_H_
#define SIGRELAY_CORE_BASE_FLAGS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sigrelay {

class FlagParser {
 public:
  FlagParser(std::string program, std::string synopsis)
      : program_(std::move(program)), synopsis_(std::move(synopsis)) {}
  // Setters refer to the parser: it stays where it was made.
  FlagParser(const FlagParser&) = delete;
  FlagParser& operator=(const FlagParser&) = delete;

  void Add(const std::string& name, std::string* dst, const std::string& value_name,
           const std::string& help);
  void Add(const std::string& name, uint32_t* dst, const std::string& value_name,
           const std::string& help);
  void Add(const std::string& name, uint64_t* dst, const std::string& value_name,
           const std::string& help);
  void Add(const std::string& name, int* dst, const std::string& value_name,
           const std::string& help);
  void Add(const std::string& name, double* dst, const std::string& value_name,
           const std::string& help);
  void Add(const std::string& name, absl::Duration* dst, const std::string& help);
  void AddBool(const std::string& name, bool* dst, const std::string& help);
  // A byte count: 1048576, 64KiB, 1MiB, 1GiB.
  void AddBytes(const std::string& name, uint64_t* dst, const std::string& help);
  void AddRepeated(const std::string& name, std::vector<std::string>* dst,
                   const std::string& value_name, const std::string& help);

  // Parses argv[1..]. Flags may come before, between and after positional
  // arguments; "--" ends flags. InvalidArgument names the bad flag or value.
  // `--help` sets help_requested() and returns OK.
  absl::Status Parse(int argc, char** argv, std::vector<std::string>* positional);

  // Parse for commands that take flags only: a positional argument is an
  // error naming it.
  absl::Status ParseFlagsOnly(int argc, char** argv);

  // ParseFlagsOnly over `args` (no program name): for flags that come from
  // somewhere else than the command line, e.g. a config file.
  absl::Status ParseList(const std::vector<std::string>& args);

  // Whether a flag `name` (without "--") is defined.
  bool Has(const std::string& name) const;

  bool help_requested() const { return help_; }
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty for booleans
    std::string help;
    std::function<absl::Status(const std::string&)> set;
  };
  void AddFlag(Flag flag) { flags_.push_back(std::move(flag)); }

  std::string program_;
  std::string synopsis_;
  std::vector<Flag> flags_;
  bool help_ = false;
  uint64_t parses_ = 0;  // a repeated flag's first use in each parse replaces its list
};

absl::StatusOr<uint64_t> ParseBytes(const std::string& text);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_FLAGS_H_
