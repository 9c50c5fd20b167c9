// The child between clone and execve.
//
// This code shares the parent's memory (CLONE_VM) while the parent thread is suspended
// (CLONE_VFORK). It may only make system calls: no allocation, no exceptions, no locks, no
// logging, nothing that touches state another thread of the parent could hold. Every
// string and number it needs was laid out by the parent in a ChildPlan before clone. A step
// that fails reports {step, errno} (ChildPlan::error_slot, or the error pipe) and exits with 127.
#include "child_plan.h"
#include "child_steps.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <ctime>

namespace nsjail {
namespace {

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

[[noreturn]] void Fail(const ChildPlan* plan, int32_t step, int err, int32_t candidate = -1) noexcept {
  if (ChildError* slot = plan->error_slot) {
    // The parent reads it once clone has returned, i.e. after this process has exited;
    // `step` is stored last, over the parent's kStepNone.
    slot->err = err;
    slot->candidate = candidate;
    __atomic_store_n(&slot->step, step, __ATOMIC_RELEASE);
  } else {
    ChildError report{step, err, candidate};
    // A short write to a pipe of this size cannot be partial; if it fails there is nobody to tell.
    ssize_t ignored = ::write(plan->error_fd, &report, sizeof report);
    (void)ignored;
  }
  ::_exit(127);
}

// The 64-bit hex mask after `key` in /proc/self/status text, or false if it is not there.
bool StatusMask(const char* text, const char* key, uint64_t* mask) noexcept {
  const char* at = std::strstr(text, key);
  if (!at) return false;
  at += std::strlen(key);
  while (*at == ' ' || *at == '\t') at++;
  uint64_t value = 0;
  int digits = 0;
  for (; digits < 16; digits++, at++) {
    char c = *at;
    int nibble = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (nibble < 0) break;
    value = value << 4 | static_cast<uint64_t>(nibble);
  }
  *mask = value;
  return digits > 0;
}

// Signals whose disposition is not SIG_DFL in this child: ignored ones (SigIgn) and, when
// clone3 could not clear the handlers, caught ones (SigCgt). False if /proc cannot tell.
bool NonDefaultSignals(uint64_t* mask) noexcept {
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[8192];
  size_t used = 0;
  for (;;) {
    ssize_t n = ::read(fd, text + used, sizeof text - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<size_t>(n);
    if (used == sizeof text - 1) break;
  }
  ::close(fd);
  text[used] = '\0';
  uint64_t ignored = 0, caught = 0;
  if (!StatusMask(text, "\nSigIgn:", &ignored) || !StatusMask(text, "\nSigCgt:", &caught)) return false;
  *mask = ignored | caught;
  return true;
}

// Handlers installed by Node must never run in a child that shares its memory, and ignored
// signals (SIGPIPE) must not reach the program: ignored dispositions survive execve. Each
// system call costs microseconds in a VM, so only the signals that need it are reset.
int ResetSignalDispositions() noexcept {
  uint64_t mask = ~0ULL;
  if (!NonDefaultSignals(&mask)) mask = ~0ULL;  // cannot tell: reset every one
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG && sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP || !(mask & (1ULL << (sig - 1)))) continue;
    // glibc refuses its two internal signals with EINVAL; nothing else can fail here.
    ::sigaction(sig, &dfl, nullptr);
  }
  return 0;
}

int WireStdio(const ChildPlan* plan) noexcept {
  // Every source fd is >= 3 (the parent made sure), so dup2 onto 0..2 clobbers no source.
  for (int target = 0; target < 3; target++) {
    int source = plan->stdio[target];
    if (source < 0) {
      ::close(target);
    } else if (::dup2(source, target) < 0) {
      return errno;
    }
  }
  return 0;
}

// Nothing but 0, 1, 2 survives execve. close_range marks every other fd CLOEXEC in one call
// (Linux 5.11); before that, walk /proc/self/fd with getdents64 into a stack buffer.
int MarkInheritedFdsCloexec() noexcept {
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
  int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return errno;
  alignas(8) char buf[4096];
  for (;;) {
    long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n < 0) {
      int err = errno;
      ::close(dir);
      return err;
    }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      // struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
      unsigned short reclen;
      std::memcpy(&reclen, buf + off + 16, sizeof reclen);
      const char* name = buf + off + 19;
      int fd = 0;
      bool numeric = *name != '\0';
      for (const char* c = name; *c; c++) {
        if (*c < '0' || *c > '9') { numeric = false; break; }
        fd = fd * 10 + (*c - '0');
      }
      if (numeric && fd >= 3 && fd != dir) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      off += reclen;
    }
  }
  ::close(dir);
  return 0;
}

// `part` (ChildError::candidate) says which part of a step failed, where the step has parts.
int RunStep(const Step& s, FsRoots* roots, int32_t* part) noexcept {
  switch (s.op) {
    case StepOp::kWriteFile: return StepWriteFile(s);
    case StepOp::kMount: return StepMount(s);
    case StepOp::kMkdir: return StepMkdir(s);
    case StepOp::kPivotRoot: return StepPivotRoot(s, roots);
    case StepOp::kChroot: return StepChroot(s, roots);
    case StepOp::kChdir: return StepChdir(s);
    case StepOp::kStageRoot: return StepStageRoot(s, roots);
    case StepOp::kBindMount: return StepBindMount(s, roots, part);
    case StepOp::kMountFs: return StepMountFs(s, roots);
    case StepOp::kMountSetattr: return StepMountSetattr(s, roots);
    case StepOp::kCreateDir: return StepCreateDir(s, roots);
    case StepOp::kCreateFile: return StepCreateFile(s, roots);
    case StepOp::kCreateSymlink: return StepCreateSymlink(s, roots);
    case StepOp::kChmod: return StepChmod(s, roots);
    case StepOp::kMountOverlay: return StepMountOverlay(s, roots, part);
    case StepOp::kSetHostname: return StepSetHostname(s);
    case StepOp::kSetns: return StepSetns(s);
    case StepOp::kLoopbackUp: return StepLoopbackUp(s);
    case StepOp::kSetrlimit: return StepSetrlimit(s);
    case StepOp::kSetIds: return StepSetIds(s);
    case StepOp::kCapabilities: return StepCapabilities(s);
    case StepOp::kNoNewPrivs: return StepNoNewPrivs(s);
    case StepOp::kSeccomp: return StepSeccomp(s);
    case StepOp::kUnshare: return StepUnshare(s);
    case StepOp::kLockMounts: return StepLockMounts(s);
  }
  return EINVAL;
}

// Steps after which the kernel may have cleared the parent-death signal: it does so on any
// change of the effective or fs ids, and of the permitted capabilities unless they shrink
// (commit_creds), which joining a user namespace or unsharing one also is.
bool ChangesCredentials(StepOp op) noexcept {
  return op == StepOp::kSetIds || op == StepOp::kCapabilities || op == StepOp::kSetns || op == StepOp::kUnshare ||
         op == StepOp::kLockMounts;
}

// Arms the parent-death signal and then makes sure the parent is still there: one that died
// before the arming sent nothing and never will. The parent is the cloning thread; a spawner
// thread lives as long as the process, and the main thread's exit ends the process, so the
// process's pidfd tells (readable once it has exited). getppid() tells too, where it is not
// 0 (it is inside a new PID namespace, whose parent is outside). Exits when the parent is gone.
void ArmDeathSignal(const ChildPlan* plan) noexcept {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) Fail(plan, kStepDieWithParent, errno);
  bool gone = false;
  if (plan->parent_pidfd >= 0) {
    struct pollfd p;
    p.fd = plan->parent_pidfd;
    p.events = POLLIN;
    p.revents = 0;
    struct timespec now = {0, 0};  // look, do not wait
    long n;
    do {
      n = ::syscall(SYS_ppoll, &p, 1, &now, nullptr, 0);
    } while (n < 0 && errno == EINTR);
    gone = n > 0 && (p.revents & (POLLIN | POLLHUP));
  }
  if (gone || ::getppid() != plan->parent_pid) Fail(plan, kStepDieWithParent, ESRCH);
}

// execvp's rules over a list of candidates computed before clone: a candidate that does
// not exist is skipped, EACCES is remembered (a later candidate may still run), anything
// else is final.
[[noreturn]] void Exec(const ChildPlan* plan) noexcept {
  int eacces_candidate = -1;
  int last_err = ENOENT;
  int last_candidate = 0;
  for (size_t i = 0; i < plan->exec_candidate_count; i++) {
    ::execve(plan->exec_candidates[i], plan->argv, plan->envp);
    int err = errno;
    last_err = err;
    last_candidate = static_cast<int>(i);
    if (err == EACCES) {
      if (eacces_candidate < 0) eacces_candidate = static_cast<int>(i);
      continue;
    }
    if (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT) continue;
    break;
  }
  if (eacces_candidate >= 0 && (last_err == ENOENT || last_err == ENOTDIR)) {
    Fail(plan, kStepExec, EACCES, eacces_candidate);
  }
  Fail(plan, kStepExec, last_err, last_candidate);
}

// Waits until the caller writes a byte to `fd` or closes its end, as bubblewrap's --block-fd
// does; a failed read (EBADF) does not wait, and is not an error there either.
void BlockOn(int fd) noexcept {
  char byte;
  while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
  }
}

}  // namespace

int RunChild(void* arg) noexcept {
  const ChildPlan* plan = static_cast<const ChildPlan*>(arg);
  const bool die = plan->die_with_parent;

  // The parent writes the info fd and closes it: our copy must not keep its reader waiting.
  if (plan->close_early_fd >= 0) ::close(plan->close_early_fd);
  ResetSignalDispositions();
  if (die) ArmDeathSignal(plan);
  if (plan->new_session && ::setsid() < 0) Fail(plan, kStepSetsid, errno);
  if (int err = WireStdio(plan)) Fail(plan, kStepStdio, err);
  if (int err = MarkInheritedFdsCloexec()) Fail(plan, kStepCloseFds, err);
  if (plan->sync_fd[0] >= 0) {
    if (int err = WaitForParent(plan)) Fail(plan, kStepSyncMaps, err);
  }

  bool armed_last = die;  // armed with nothing since that could clear it
  bool blocked = plan->block_fd < 0;
  FsRoots roots;          // opened by the first mount step that needs each (child_paths.cc)
  for (size_t i = 0; i < plan->step_count; i++) {
    const Step& s = plan->steps[i];
    // --block-fd: after the set-up, before the filter (which might forbid read).
    if (!blocked && s.op == StepOp::kSeccomp) {
      BlockOn(plan->block_fd);
      blocked = true;
    }
    // The seccomp filter (the last step) may forbid prctl and poll: arm for the last time first.
    if (die && s.op == StepOp::kSeccomp && !armed_last) {
      ArmDeathSignal(plan);
      armed_last = true;  // and nothing after the filter may need prctl or ppoll again
    }
    int32_t part = -1;
    if (int err = RunStep(s, &roots, &part)) Fail(plan, static_cast<int32_t>(i), err, part);
    if (die && ChangesCredentials(s.op)) {
      ArmDeathSignal(plan);
      armed_last = true;
    } else if (s.op != StepOp::kSeccomp) {
      armed_last = false;
    }
  }
  CloseFsRoots(&roots);
  if (!blocked) BlockOn(plan->block_fd);
  if (die && !armed_last) ArmDeathSignal(plan);

  // Signals were blocked by the parent around clone; the program starts with none blocked.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (plan->init_fd >= 0) Fail(plan, kStepInit, ExecInit(plan));
  Exec(plan);
}

}  // namespace nsjail
