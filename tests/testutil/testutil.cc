#include "tests/testutil/testutil.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sigrelay::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/sigrelay-test-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  for (;;) {
    if (condition()) return true;
    if (absl::Now() > deadline) return condition();
    absl::SleepFor(pause);  // polling interval, not synchronisation
    pause = std::min(pause * 2, absl::Milliseconds(10));
  }
}

namespace {

// The TMPDIR of every child: one directory per test process, removed when
// it exits, so what a SIGKILLed child left in $TMPDIR (agent-sim's work
// dir) goes with it.
const std::string& ChildrenTmpDir() {
  static const TempDir* dir = [] {
    static TempDir d;
    return &d;
  }();
  return dir->path();
}

pid_t Spawn(const std::vector<std::string>& argv, int out_fd) {
  // Everything the child needs is built before fork: the child of a threaded
  // process may only make async-signal-safe calls. An allocation there waits
  // for ever on an allocator lock another thread held at the fork (seen under
  // ASan in CI).
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, "TMPDIR=", 7) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back("TMPDIR=" + ChildrenTmpDir());
  std::vector<char*> env;
  for (std::string& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    // A test that crashes (no destructors run) takes its daemons with it.
    // Children are spawned from the test's main thread, whose exit is the
    // process's.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (out_fd >= 0) {
      dup2(out_fd, 1);
      dup2(out_fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execvpe(args[0], args.data(), env.data());
    _exit(127);
  }
  return pid;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits for `pid` to exit, at most `timeout`. A child still running then
// hangs: the stacks of its threads go to stderr (through gdb when it is
// installed) and it is SIGKILLed, so the test fails saying where it hung,
// not at ctest's timeout with nothing to go on.
int WaitBounded(pid_t pid, const std::string& what, absl::Duration timeout) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      pollfd p = {pidfd, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) == 0) {
        fprintf(stderr, "[testutil] %s (pid %d) still running after %s; its stacks:\n",
                what.c_str(), pid, absl::FormatDuration(timeout).c_str());
        std::string cmd = absl::StrCat("gdb -p ", pid,
                                       " -batch -ex 'thread apply all bt 30' 2>/dev/null"
                                       " | grep -E '^(Thread|#)' >&2");
        if (system(cmd.c_str()) != 0) fprintf(stderr, "[testutil] (no gdb to show them)\n");
        kill(pid, SIGKILL);
        break;
      }
      if (p.revents != 0) break;
    }
    close(pidfd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

int RunCommand(const std::vector<std::string>& argv, std::string* output) {
  char path[] = "/tmp/sigrelay-cmd-XXXXXX";
  int fd = mkstemp(path);
  pid_t pid = Spawn(argv, fd);
  int status = WaitBounded(pid, argv[0], absl::Minutes(2));
  close(fd);
  if (output != nullptr) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    *output += ss.str();
  }
  unlink(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string BinDir() {
  const char* dir = std::getenv("SIGRELAY_BIN_DIR");
  if (dir != nullptr) return dir;
  // Test binaries sit beside the daemons they start.
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

ChildProcess::ChildProcess(std::vector<std::string> argv) : argv0_(argv.at(0)) {
  char path[] = "/tmp/sigrelay-child-XXXXXX";
  int fd = mkstemp(path);
  log_path_ = path;
  pid_ = Spawn(argv, fd);
  close(fd);
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    Kill(SIGKILL);
    Wait();
  }
  unlink(log_path_.c_str());
}

bool ChildProcess::Running() {
  if (status_ != -1) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = DecodeStatus(status);
    return false;
  }
  return r == 0;
}

void ChildProcess::Kill(int signal) {
  if (status_ == -1) kill(pid_, signal);
}

int ChildProcess::Wait() {
  if (status_ != -1) return status_;
  status_ = DecodeStatus(WaitBounded(pid_, argv0_, absl::Minutes(2)));
  return status_;
}

std::string ChildProcess::Output() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WaitForListening(const std::string& data_dir, absl::Duration timeout) {
  std::string addr;
  WaitFor(
      [&] {
        std::ifstream in(data_dir + "/listening");
        return static_cast<bool>(std::getline(in, addr)) && !addr.empty();
      },
      timeout);
  return addr;
}

}  // namespace sigrelay::testing
