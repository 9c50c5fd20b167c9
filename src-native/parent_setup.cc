// Parent side: writing a waiting child's id maps (lib/identity.ts decides what to write), and
// joining it to its cgroup when it runs as a host id that may not (lib/plan.ts).
//
// A process can write only a single-line map of its own ids into its own user namespace;
// anything more (several ranges, ids other than the caller's, a gid map that leaves setgroups
// allowed) must come from a process with CAP_SETUID/CAP_SETGID over the parent namespace:
// this process when it is root, else the setuid helpers newuidmap/newgidmap (shadow's uidmap
// package), which check /etc/subuid and /etc/subgid.
#include "parent_setup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "unique_fd.h"

namespace nsjail {
namespace {

int WriteProcFile(pid_t pid, const ParentStep& step, std::string* syscall) {
  std::string path = step.path[0] == '/' ? step.path : "/proc/" + std::to_string(pid) + "/" + step.path;
  std::string data = step.data == "{pid}" ? std::to_string(pid) : step.data;
  *syscall = "open";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  *syscall = "write";
  // The kernel takes a map in one write or not at all.
  ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n < 0) return errno;
  return static_cast<size_t>(n) == data.size() ? 0 : EIO;
}

int RunHelper(pid_t pid, const ParentStep& step, std::string* syscall, int* status) {
  std::vector<std::string> args = step.argv;
  for (auto& arg : args) {
    if (arg == "{pid}") arg = std::to_string(pid);
  }
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(&arg[0]);
  argv.push_back(nullptr);
  *syscall = "posix_spawn";
  // Node marks its stdio close-on-exec; the helper explains a refusal on stderr, so keep it
  // (a dup2 onto itself clears FD_CLOEXEC in the spawned process, glibc 2.29+).
  posix_spawn_file_actions_t actions;
  if (int err = ::posix_spawn_file_actions_init(&actions)) return err;
  ::posix_spawn_file_actions_adddup2(&actions, 2, 2);
  // No signal blocked in the helper, whichever thread runs this (a spawner thread blocks all).
  posix_spawnattr_t attr;
  ::posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  // An empty environment, not environ: this may run on a spawner thread while JavaScript
  // changes process.env on the main thread (setenv may move environ's array under us), and
  // the helpers, setuid programs that take everything from their arguments, need none.
  static char* const kNoEnvironment[] = {nullptr};
  pid_t helper;
  int err = ::posix_spawn(&helper, argv[0], &actions, &attr, argv.data(), kNoEnvironment);
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&actions);
  if (err) return err;
  *syscall = "waitpid";
  int wstatus = 0;
  while (::waitpid(helper, &wstatus, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return 0;
  // The helper has explained itself on our stderr; the caller names it.
  size_t slash = step.argv[0].rfind('/');
  *syscall = step.argv[0].substr(slash == std::string::npos ? 0 : slash + 1);
  *status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  return EPERM;
}

}  // namespace

ParentSetupResult RunParentSetup(const std::vector<ParentStep>& steps, pid_t pid) {
  for (size_t i = 0; i < steps.size(); i++) {
    std::string syscall;
    int status = -1;
    int err = steps[i].argv.empty() ? WriteProcFile(pid, steps[i], &syscall) : RunHelper(pid, steps[i], &syscall, &status);
    if (err) return {err, syscall, static_cast<int>(i), status};
  }
  return {0, "", -1, -1};
}

}  // namespace nsjail
