// Child steps: ids, capabilities, no_new_privs, seccomp, late unshare; and the two identity
// hooks around the plan: waiting for parent-written id maps, and executing init.
// Async-signal-safe only (see child.cc).
//
// Ids are changed with raw syscalls, never glibc's setresuid()/setgroups(): with CLONE_VM
// this child shares the parent's memory and thread pointer, where glibc sees a multithreaded
// process, and its wrappers would try to signal every thread on that list (Node's) and wait.
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include "child_steps.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef SYS_execveat
#define SYS_execveat __NR_execveat
#endif

namespace nsjail {
namespace {

// _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
constexpr uint32_t kCapabilityVersion3 = 0x20080522;
struct CapHeader {
  uint32_t version;
  int pid;
};
struct CapData {
  uint32_t effective, permitted, inheritable;
};

int CapSet(uint64_t effective, uint64_t permitted, uint64_t inheritable) noexcept {
  CapHeader header{kCapabilityVersion3, 0};
  CapData data[2] = {
      {static_cast<uint32_t>(effective), static_cast<uint32_t>(permitted), static_cast<uint32_t>(inheritable)},
      {static_cast<uint32_t>(effective >> 32), static_cast<uint32_t>(permitted >> 32),
       static_cast<uint32_t>(inheritable >> 32)},
  };
  return ::syscall(SYS_capset, &header, data) < 0 ? errno : 0;
}

// fd, or a CLOEXEC copy of it above 5 when it sits where init's fds 3, 4 and 5 go.
int MoveAbove5(int fd) noexcept { return fd >= 3 && fd <= 5 ? ::fcntl(fd, F_DUPFD_CLOEXEC, 6) : fd; }

}  // namespace

// flags: kSetIdsGroups (data = gid_t[]), kSetIdsGid (values[1]), kSetIdsUid (values[0]),
// kSetIdsKeepCaps: keep the permitted set across the uid change, for StepCapabilities.
int StepSetIds(const Step& s) noexcept {
  if ((s.flags & kSetIdsKeepCaps) && ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return errno;
  if ((s.flags & kSetIdsGroups) && ::syscall(SYS_setgroups, s.data_len / sizeof(uint32_t), s.data) < 0) return errno;
  if (s.flags & kSetIdsGid) {
    unsigned long gid = static_cast<unsigned long>(s.values[1]);
    if (::syscall(SYS_setresgid, gid, gid, gid) < 0) return errno;
  }
  if (s.flags & kSetIdsUid) {
    unsigned long uid = static_cast<unsigned long>(s.values[0]);
    if (::syscall(SYS_setresuid, uid, uid, uid) < 0) return errno;
  }
  return 0;
}

// Keeps only the capabilities in values[0], in every set. The bounding set is what limits a
// later execve (of a setuid or file-capability binary, or as uid 0); ambient is what carries
// the kept ones across execve for a non-zero uid. flags & kCapsBoundingBestEffort: the caller
// has no CAP_SETPCAP (unprivileged, no user namespace), so the bounding set stays as it is.
int StepCapabilities(const Step& s) noexcept {
  const uint64_t keep = s.values[0];
  CapHeader header{kCapabilityVersion3, 0};
  CapData now[2];
  if (::syscall(SYS_capget, &header, now) < 0) return errno;
  uint64_t permitted = now[0].permitted | (static_cast<uint64_t>(now[1].permitted) << 32);
  uint64_t inheritable = now[0].inheritable | (static_cast<uint64_t>(now[1].inheritable) << 32);
  // setresuid() away from uid 0 under PR_SET_KEEPCAPS emptied the effective set; dropping
  // from the bounding set needs CAP_SETPCAP in it.
  if (int err = CapSet(permitted, permitted, inheritable)) return err;
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0) continue;
    if (errno == EINVAL) break;  // past the kernel's last capability
    if (errno == EPERM && (s.flags & kCapsBoundingBestEffort)) break;
    return errno;
  }
  // kCapsNotInherited: kept in the effective and permitted sets only, so that they do not
  // survive an execve as another uid (bubblewrap's sets for a root caller).
  const bool inherited = !(s.flags & kCapsNotInherited);
  if (int err = CapSet(keep, keep, inherited ? keep : 0)) return err;
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return errno;
  // Ambient capabilities exist since Linux 4.3; before that there are none to clear.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && (errno != EINVAL || (keep != 0 && inherited))) return errno;
  for (int cap = 0; inherited && cap < 64; cap++) {
    if ((keep & (1ULL << cap)) && ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return errno;
  }
  return 0;
}

int StepNoNewPrivs(const Step&) noexcept { return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? errno : 0; }

// data: struct sock_filter[] compiled by lib/seccomp.ts. The filter needs no_new_privs (or
// CAP_SYS_ADMIN), which lib/identity.ts has checked; it is the last step before execve. What
// follows it (execve, and on failure the report and exit) runs under the filter: a policy that
// denies write cannot have the program's execve failure reported.
int StepSeccomp(const Step& s) noexcept {
  // child.cc unblocks signals right before execve; do it now, while the filter cannot refuse it.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  sock_fprog prog{static_cast<unsigned short>(s.data_len / sizeof(sock_filter)),
                  reinterpret_cast<sock_filter*>(const_cast<char*>(s.data))};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  if (errno != ENOSYS) return errno;
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0 ? errno : 0;  // Linux < 3.17
}

// With mode kUnshareMustFail, a check instead: the unshare must be refused (user namespaces
// disabled), and succeeding is the failure (EEXIST: the namespace could be made).
int StepUnshare(const Step& s) noexcept {
  if (s.mode == kUnshareMustFail) return ::unshare(static_cast<int>(s.flags)) < 0 ? 0 : EEXIST;
  return ::unshare(static_cast<int>(s.flags)) < 0 ? errno : 0;
}

namespace {

// Writes `text` to /proc/self/`name` through proc_fd (a /proc opened by the parent: the
// sandbox may have no /proc of its own).
int WriteProcSelf(int proc_fd, const char* name, const char* text, size_t len) noexcept {
  int fd = ::openat(proc_fd, name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, text, len);
  int err = n == static_cast<ssize_t>(len) ? 0 : (n < 0 ? errno : EIO);
  ::close(fd);
  return err;
}

// "ID ID 1\n" into buf (at least 32 bytes); returns the length.
size_t IdentityMapLine(char* buf, unsigned long id) noexcept {
  char digits[20];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + id % 10);
    id /= 10;
  } while (id != 0);
  size_t len = 0;
  for (int copy = 0; copy < 2; copy++) {
    for (size_t i = n; i > 0; i--) buf[len++] = digits[i - 1];
    buf[len++] = ' ';
  }
  buf[len++] = '1';
  buf[len++] = '\n';
  return len;
}

}  // namespace

// The ids stay what they are (a one-line map of each onto itself, which the process may
// write for itself); supplementary groups are kept but can no longer change (setgroups deny).
int StepLockMounts(const Step& s) noexcept {
  const int proc_fd = static_cast<int>(s.values[0]);
  // A process may map only its effective ids onto themselves.
  const unsigned long uid = static_cast<unsigned long>(::syscall(SYS_geteuid));
  const unsigned long gid = static_cast<unsigned long>(::syscall(SYS_getegid));
  // A child cloned fork-like from a process whose ids changed (a host id: hostids.cc) has a
  // non-dumpable copy of its memory, whose /proc/self files belong to host root, so it could
  // not write its new maps. Its ids are already the sandbox's own here (no host root left to
  // protect in this copy but its memory: documented in docs/identity.md).
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0) ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) return errno;
  char line[48];
  if (int err = WriteProcSelf(proc_fd, "self/uid_map", line, IdentityMapLine(line, uid))) return err;
  if (int err = WriteProcSelf(proc_fd, "self/setgroups", "deny", 4)) return err;
  return WriteProcSelf(proc_fd, "self/gid_map", line, IdentityMapLine(line, gid));
}

int WaitForParent(const ChildPlan* plan) noexcept {
  ::close(plan->sync_fd[1]);  // else our own copy would keep the pipe open if the parent died
  char byte;
  ssize_t n;
  do {
    n = ::read(plan->sync_fd[0], &byte, 1);
  } while (n < 0 && errno == EINTR);
  int err = n == 1 ? 0 : (n == 0 ? ECANCELED : errno);
  ::close(plan->sync_fd[0]);
  return err;
}

int ExecInit(const ChildPlan* plan) noexcept {
  int error_fd = MoveAbove5(plan->error_fd);
  int status_fd = MoveAbove5(plan->status_fd);
  int init_fd = MoveAbove5(plan->init_fd);
  if (error_fd < 0 || status_fd < 0 || init_fd < 0) return errno;
  // init arms its own death signal (an execve that raises capabilities clears it) and checks
  // the parent through this pidfd, then closes it: it never reaches the program.
  int parent_fd = -1;
  if (plan->die_with_parent && plan->parent_pidfd >= 0 && (parent_fd = MoveAbove5(plan->parent_pidfd)) < 0) return errno;
  // dup2 onto a different fd leaves the copy without CLOEXEC; onto itself it changes
  // nothing, hence the explicit F_SETFD.
  int err = 0;
  if (::dup2(error_fd, 3) < 0 || ::dup2(status_fd, 4) < 0 || ::fcntl(3, F_SETFD, 0) < 0 ||
      ::fcntl(4, F_SETFD, 0) < 0 || (parent_fd >= 0 && (::dup2(parent_fd, 5) < 0 || ::fcntl(5, F_SETFD, 0) < 0))) {
    err = errno;
  } else {
    ::syscall(SYS_execveat, init_fd, "", plan->init_argv, plan->envp, AT_EMPTY_PATH);
    err = errno;
  }
  // The caller reports through plan->error_fd, which may have been 4 or 5.
  if (error_fd != plan->error_fd) ::dup2(error_fd, plan->error_fd);
  return err;
}

}  // namespace nsjail
