// Parent side of a spawn: stdio and the error pipe, clone, and what the child reported.
//
// With CLONE_VM|CLONE_VFORK the calling thread is suspended until the child has exec'd or
// exited, so when clone returns the error pipe already holds the child's verdict: EOF means
// execve succeeded (the pipe is CLOEXEC), a ChildError means a step failed. With
// parent-written id maps (plan.parentSetup) the clone is a plain fork-like one instead: the
// child waits on a sync pipe while this thread writes its maps, then the same read follows.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addon.h"
#include "child_handle.h"
#include "clone.h"
#include "parent_setup.h"
#include "plan.h"
#include "unique_fd.h"

namespace nsjail {
namespace {

struct Pipe {
  UniqueFd read, write;
};

int MakePipe(Pipe* p) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return errno;
  p->read.reset(fds[0]);
  p->write.reset(fds[1]);
  return 0;
}

// A CLOEXEC duplicate at fd >= 3, so that the child's dup2 onto 0..2 clobbers no source.
int DupHigh(int fd, UniqueFd* out) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return errno;
  out->reset(d);
  return 0;
}

// Failures are returned, not thrown: lib/errors.ts turns them into IsolationError.
Napi::Object Failure(Napi::Env env, const char* where, const char* syscall, int err, int step = 0,
                     int candidate = -1) {
  Napi::Object failure = Napi::Object::New(env);
  failure.Set("where", where);
  failure.Set("syscall", syscall);
  failure.Set("errno", err);
  failure.Set("step", step);
  failure.Set("candidate", candidate);
  Napi::Object result = Napi::Object::New(env);
  result.Set("error", failure);
  return result;
}

void Reap(pid_t pid) {
  while (::waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
  }
}

}  // namespace

// spawn(plan, onExit) -> { pid, stdio: [fd|-1 x3], child } | { error }
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "spawn(plan, onExit): bad arguments").ThrowAsJavaScriptException();
    return env.Null();
  }
  PlanStorage plan;
  std::string reason;
  if (!plan.Parse(info[0].As<Napi::Object>(), &reason)) {
    Napi::TypeError::New(env, "spawnIsolated: malformed native plan: " + reason).ThrowAsJavaScriptException();
    return env.Null();
  }

  // The child's ends (closed here after clone) and ours (handed to JavaScript).
  UniqueFd child_end[3], parent_end[3];
  for (int i = 0; i < 3; i++) {
    const StdioRequest& req = plan.stdio[i];
    int err = 0;
    const char* syscall = "fcntl";
    switch (req.kind) {
      case StdioRequest::kPipe: {
        Pipe p;
        syscall = "pipe2";
        if ((err = MakePipe(&p)) != 0) break;
        // fd 0 is read by the child; fd 1 and 2 are written by it.
        UniqueFd& theirs = i == 0 ? p.read : p.write;
        parent_end[i] = std::move(i == 0 ? p.write : p.read);
        syscall = "fcntl";
        err = DupHigh(theirs.get(), &child_end[i]);
        break;
      }
      case StdioRequest::kNull: {
        syscall = "open";
        UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
        if (!null_fd) {
          err = errno;
          break;
        }
        syscall = "fcntl";
        err = DupHigh(null_fd.get(), &child_end[i]);
        break;
      }
      case StdioRequest::kFd:
        err = DupHigh(req.fd, &child_end[i]);
        break;
      case StdioRequest::kClose:
        break;
    }
    if (err != 0) return Failure(env, "stdio", syscall, err, i);
    plan.child.stdio[i] = child_end[i].get();
  }

  Pipe errors;
  if (int err = MakePipe(&errors)) return Failure(env, "parent", "pipe2", err);
  plan.child.error_fd = errors.write.get();
  // Parent-written id maps (parent_setup.cc): the clone is then without CLONE_VM|CLONE_VFORK
  // (lib/plan.ts) and the child waits on this pipe until the maps are written.
  Pipe sync;
  if (!plan.parent_setup.empty()) {
    if (int err = MakePipe(&sync)) return Failure(env, "parent", "pipe2", err);
    plan.child.sync_fd[0] = sync.read.get();
    plan.child.sync_fd[1] = sync.write.get();
  }
  // init writes the program's wait status here before it exits (lib/init.ts reads it).
  Pipe status;
  if (plan.child.init_fd >= 0) {
    if (int err = MakePipe(&status)) return Failure(env, "parent", "pipe2", err);
    if (::fcntl(status.read.get(), F_SETFL, O_NONBLOCK) < 0) return Failure(env, "parent", "fcntl", errno);
    plan.child.status_fd = status.write.get();
  }

  CloneResult cloned = CloneChild({plan.clone_flags, RunChild, &plan.child, plan.engine});
  if (cloned.pid <= 0) return Failure(env, "parent", cloned.syscall, cloned.err);
  UniqueFd pidfd(cloned.pidfd);

  errors.write.reset();
  status.write.reset();
  for (auto& fd : child_end) fd.reset();
  if (!plan.parent_setup.empty()) {
    sync.read.reset();
    ParentSetupResult setup = RunParentSetup(plan.parent_setup, cloned.pid);
    if (setup.err != 0) {
      ::kill(cloned.pid, SIGKILL);  // not reaped yet, so the pid is still this child
      Reap(cloned.pid);
      return Failure(env, "parent-setup", setup.syscall.c_str(), setup.err, setup.index, setup.status);
    }
    if (::write(sync.write.get(), "", 1) != 1) {
      int err = errno;
      ::kill(cloned.pid, SIGKILL);
      Reap(cloned.pid);
      return Failure(env, "parent", "write", err);
    }
    sync.write.reset();
  }

  ChildError report{};
  ssize_t n;
  do {
    n = ::read(errors.read.get(), &report, sizeof report);
  } while (n < 0 && errno == EINTR);
  if (n != 0) {
    // The child failed before exec (or the pipe did): it has exited or is about to.
    Reap(cloned.pid);
    if (n != static_cast<ssize_t>(sizeof report)) return Failure(env, "parent", "read", n < 0 ? errno : EIO);
    return Failure(env, "child", "", report.err, report.step, report.candidate);
  }

  Napi::Object child = ChildHandle::Create(env, cloned.pid, std::move(pidfd), info[1].As<Napi::Function>());
  if (env.IsExceptionPending()) return env.Null();

  Napi::Array stdio = Napi::Array::New(env, 3);
  for (uint32_t i = 0; i < 3; i++) stdio.Set(i, parent_end[i].release());
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", cloned.pid);
  result.Set("stdio", stdio);
  result.Set("child", child);
  result.Set("statusFd", status.read ? status.read.release() : -1);
  return result;
}

}  // namespace nsjail
