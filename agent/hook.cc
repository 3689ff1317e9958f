#include "agent/hook.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

extern char** environ;

namespace sigrelay {
namespace {

// Reads what is there without blocking; keeps up to kMaxOutput bytes.
void Drain(int fd, std::string* out) {
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return;
    const size_t room = HookRun::kMaxOutput - std::min(out->size(), HookRun::kMaxOutput);
    out->append(buf, std::min<size_t>(room, n));
  }
}

}  // namespace

std::string HookRun::Describe(absl::Duration timeout) const {
  switch (outcome) {
    case kOk:
      return "exit 0";
    case kFailed:
      return WIFEXITED(wait_status) ? absl::StrCat("exit ", WEXITSTATUS(wait_status))
                                    : absl::StrCat("signal ", WTERMSIG(wait_status));
    case kTimedOut:
      return absl::StrCat("did not finish within ", absl::FormatDuration(timeout), "; killed");
    case kStopped:
      return "killed: the agent is stopping";
    case kNotStarted:
      break;
  }
  return absl::StrCat("cannot start: ", output);
}

std::string HookRun::Summary(absl::Duration timeout, size_t max_output) const {
  std::string printed(absl::StripAsciiWhitespace(output));
  absl::StrReplaceAll({{"\n", " | "}}, &printed);
  printed = printed.substr(0, max_output);
  return absl::StrCat(Describe(timeout), printed.empty() ? "" : ": ", printed);
}

HookRun RunHook(const HookOptions& options) {
  HookRun run;
  // Everything the child needs is built before fork: only async-signal-safe
  // calls happen in the child of a threaded process.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.insert(env.end(), options.env.begin(), options.env.end());
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* argv[] = {"/bin/sh", "-c", options.command.c_str(), nullptr};
  int pipe_fds[2] = {-1, -1};
  if (options.capture && pipe2(pipe_fds, O_CLOEXEC) != 0) {
    run.output = strerror(errno);
    return run;
  }
  // The agent blocks its stop signals (a thread waits for them); the
  // command gets them back.
  sigset_t none;
  sigemptyset(&none);
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.capture) {
      dup2(pipe_fds[1], 1);
      dup2(pipe_fds[1], 2);
    }
    execve("/bin/sh", const_cast<char**>(argv), envp.data());
    _exit(127);
  }
  if (options.capture) close(pipe_fds[1]);
  if (pid < 0) {
    run.output = strerror(errno);
    if (options.capture) close(pipe_fds[0]);
    return run;
  }
  // Its own group from here on, whichever of parent and child runs first:
  // the kills below reach the command and everything it started.
  setpgid(pid, pid);
  if (options.capture) fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  const absl::Time deadline = absl::Now() + options.timeout;
  pid_t done = 0;
  while ((done = waitpid(pid, &run.wait_status, WNOHANG)) == 0 && absl::Now() < deadline &&
         (options.stop == nullptr || !options.stop->HasBeenNotified())) {
    if (options.capture) {
      pollfd p{pipe_fds[0], POLLIN, 0};
      if (poll(&p, 1, 20) > 0) Drain(pipe_fds[0], &run.output);
    } else {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  if (done == 0) {
    kill(-pid, SIGKILL);
    waitpid(pid, &run.wait_status, 0);
    run.outcome = options.stop != nullptr && options.stop->HasBeenNotified() ? HookRun::kStopped
                                                                             : HookRun::kTimedOut;
  } else {
    const bool ok = WIFEXITED(run.wait_status) && WEXITSTATUS(run.wait_status) == 0;
    run.outcome = ok ? HookRun::kOk : HookRun::kFailed;
  }
  if (options.capture) {
    // What it wrote before it ended (a daemon it left behind may hold the
    // pipe open: no waiting for EOF).
    Drain(pipe_fds[0], &run.output);
    close(pipe_fds[0]);
  }
  return run;
}

}  // namespace sigrelay
