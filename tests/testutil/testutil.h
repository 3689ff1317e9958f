// Helpers shared by sigrelay's tests: temp dirs that clean up, waiting on a
// condition with a deadline (never a sleep as synchronisation), running a
// command, and starting the real binaries as child processes.
#ifndef SIGRELAY_TESTS_TESTUTIL_TESTUTIL_H_
#define SIGRELAY_TESTS_TESTUTIL_TESTUTIL_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace sigrelay::testing {

// A fresh directory under $TMPDIR, removed with everything in it on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `condition` until it is true or `timeout` passes; returns its last
// value.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(10));

// Runs argv to completion; returns its exit status (-1 when it did not exit
// normally) and appends its stdout and stderr to *output when given. A
// command still running after 2 minutes hangs: its stacks go to stderr and
// it is killed.
int RunCommand(const std::vector<std::string>& argv, std::string* output = nullptr);

// The directory holding sigrelay's binaries (SIGRELAY_BIN_DIR, set by ctest).
std::string BinDir();

// A child process with stdout and stderr captured in a file; SIGKILLed on
// destruction if still running.
class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Kill(int signal);
  // Waits for exit; returns the exit status or 128+signal. A child still
  // running after 2 minutes hangs: its stacks go to stderr and it is
  // killed (137).
  int Wait();
  std::string Output() const;

 private:
  std::string argv0_;
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
};

// Reads the first "HOST:PORT" line of DIR/listening written by a daemon once
// it serves, waiting up to `timeout`; empty on timeout.
std::string WaitForListening(const std::string& data_dir,
                             absl::Duration timeout = absl::Seconds(20));

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_TESTUTIL_H_
