// nsjail_node_init: the sandbox's PID 1 with `init: true` (lib/init.ts builds its argv).
//
//   argv: nsjail-node-init <parent> <seccomp filters as hex joined by ',', or -> <k> <lock file 1> .. <lock file k>
//         <n> <candidate 1> .. <candidate n> <program argv...>
//         <parent>: '-', or the pid getppid() returns while the spawning process lives (0 in
//         a new PID namespace): init then dies with it (dieWithParent)
//         lock files: paths in the sandbox init holds a read lock (F_RDLCK) on while it lives
//   fds:  0-2 the program's stdio, 3 the spawn's error pipe, 4 the status pipe (the program's
//         pid, then its wait status),
//         5 with <parent> and where the kernel has pidfds: a pidfd of the spawning process
//   env:  the program's
//
// Linked statically and executed by the sandbox's first process through an fd the parent
// opened (execveat), so it needs nothing inside the sandbox's root. It forks the program,
// forwards every signal it can catch to it, reaps whatever becomes its child (orphans of the
// PID namespace; as a subreaper without one). Right after the fork it writes the program's
// pid (as init sees it) to fd 4, before the spawn can return, and keeps the program's zombie
// until the parent has read it (so the parent finds the program's host pid among init's
// children: lib/init.ts); once the program has ended it writes its wait status to fd 4 and
// ends the same way: the exit code, or the same signal re-raised. PID 1 of
// a namespace cannot die of a signal it sends itself, so there it exits with 128+signal and
// lib/init.ts takes the exact status from fd 4.
//
// Ids, capabilities and no_new_privs were set before this was executed and hold for it too;
// the seccomp filter is installed in the program's process only, right before its execve, so
// a policy cannot break the fork/wait/kill this needs. It makes itself non-dumpable, so the
// program cannot ptrace it or write its memory without CAP_SYS_PTRACE.
//
// Errors before the program runs go to fd 3 as child.cc's ChildError, so spawnIsolated throws
// the same IsolationError as without init.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kErrorFd = 3, kStatusFd = 4, kParentFd = 5 };
// src-native/child_plan.h: kStepExec, kStepDieWithParent, kStepInitSeccomp, kStepInitFork, kStepInitLock.
enum { kStepExec = -1, kStepDieWithParent = -5, kStepInitSeccomp = -9, kStepInitFork = -10, kStepInitLock = -11 };

static struct sock_filter filter[4096];  // BPF_MAXINSNS

static void Report(int32_t step, int32_t err, int32_t candidate) {
  int32_t report[3] = {step, err, candidate};
  ssize_t ignored = write(kErrorFd, report, sizeof report);
  (void)ignored;
}

static int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// One filter as lib/seccomp.ts laid it out (struct sock_filter[] in host byte order),
// hex-encoded: the `len` characters at `hex`.
static int DecodeFilter(const char* hex, size_t len, struct sock_fprog* prog) {
  unsigned char* out = (unsigned char*)filter;
  if (len == 0 || len % (2 * sizeof filter[0]) != 0 || len / 2 > sizeof filter) return -1;
  for (size_t i = 0; i < len / 2; i++) {
    int hi = Hex(hex[2 * i]), lo = Hex(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  prog->len = (unsigned short)(len / 2 / sizeof filter[0]);
  prog->filter = filter;
  return 0;
}

// The filters, joined by ',' ("-" for none), in the order they are installed. With `install`
// each is installed after it is decoded (the kernel copies it): 0, or the errno of the
// failure; without, only checked: 0 or -1.
static int Filters(const char* list, int install) {
  if (strcmp(list, "-") == 0) return 0;
  for (const char* p = list;;) {
    const char* end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    struct sock_fprog prog;
    if (DecodeFilter(p, len, &prog) < 0) return install ? EINVAL : -1;
    if (install && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 &&
        (errno != ENOSYS || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)) {
      return errno;
    }
    if (!end) return 0;
    p = end + 1;
  }
}

// The death signal does not survive an execve that raised capabilities (the kernel clears it
// on any such change of credentials), so init arms its own, then makes sure the spawning
// process did not die before that: its pidfd is readable once it has exited, and where there
// is no pidfd getppid() tells (outside a new PID namespace). The pidfd is closed here: it
// must not reach the program. 0, or the errno to report: ESRCH when the parent is gone.
static int ArmDeathSignal(pid_t expected) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return errno;
  int gone = 0;
  if (fcntl(kParentFd, F_GETFD) >= 0) {
    struct pollfd p = {kParentFd, POLLIN, 0};
    int n;
    do {
      n = poll(&p, 1, 0);
    } while (n < 0 && errno == EINTR);
    gone = n > 0 && (p.revents & (POLLIN | POLLHUP));
    close(kParentFd);
  }
  return !gone && getppid() == expected ? 0 : ESRCH;
}

// A failure before exec also writes a byte to `failed_fd` (close-on-exec): init then need
// not keep the program's zombie for the parent, which reads no pid after a failed spawn.
static void Failed(int failed_fd) {
  char byte = 1;
  ssize_t ignored = write(failed_fd, &byte, 1);
  (void)ignored;
  _exit(127);
}

// In the forked child: the program's own setup, then execve with execvp's rules over the
// candidates (the same as child.cc's Exec).
static void RunProgram(pid_t init_pid, const sigset_t* mask, const char* filters, char** candidates, int n,
                       char** argv, int failed_fd) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != init_pid) _exit(127);
  sigprocmask(SIG_SETMASK, mask, NULL);
  int err = Filters(filters, 1);
  if (err != 0) {
    Report(kStepInitSeccomp, err, -1);
    Failed(failed_fd);
  }
  int eacces = -1, last_err = ENOENT, last = 0;
  for (int i = 0; i < n; i++) {
    execve(candidates[i], argv, environ);
    last_err = errno;
    last = i;
    if (last_err == EACCES) {
      if (eacces < 0) eacces = i;
      continue;
    }
    if (last_err == ENOENT || last_err == ENOTDIR || last_err == ESTALE || last_err == ENODEV ||
        last_err == ETIMEDOUT) {
      continue;
    }
    break;
  }
  if (eacces >= 0 && (last_err == ENOENT || last_err == ENOTDIR)) {
    Report(kStepExec, EACCES, eacces);
  } else {
    Report(kStepExec, last_err, last);
  }
  Failed(failed_fd);
}

// The parent reads the program's pid from the status pipe when it makes the handle, right
// after the spawn returns; the program's zombie is kept until then (at most ~10 s).
static void WaitPidRead(void) {
  for (int i = 0; i < 10000; i++) {
    int unread = 0;
    if (ioctl(kStatusFd, FIONREAD, &unread) < 0 || unread == 0) return;
    struct pollfd out = {kStatusFd, POLLOUT, 0};
    if (poll(&out, 1, 0) == 1 && (out.revents & POLLERR) != 0) return;  // no reader is left
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

int main(int argc, char** argv) {
  sigset_t all, original;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &original);  // every signal waits for sigwaitinfo below

  int locks = argc > 3 ? atoi(argv[3]) : -1;
  int base = 4 + (locks > 0 ? locks : 0);  // where <n> is
  int n = locks >= 0 && argc > base ? atoi(argv[base]) : -1;
  long parent = -1;  // -1: no death signal
  char* end = NULL;
  if (argc > 1 && strcmp(argv[1], "-") != 0) parent = strtol(argv[1], &end, 10);
  if (n < 1 || argc < base + 2 + n || (end && (end == argv[1] || *end != '\0' || parent < 0)) || Filters(argv[2], 0) < 0) {
    Report(kStepExec, EINVAL, -1);
    return 127;
  }
  char** candidates = argv + base + 1;
  int died = parent >= 0 ? ArmDeathSignal((pid_t)parent) : 0;
  if (died != 0) {
    Report(kStepDieWithParent, died, -1);
    return 127;
  }
  // bubblewrap's --lock-file: the locks are held by this process, so they last as long as the
  // sandbox does (the fds stay open; close-on-exec keeps them from the program).
  for (int i = 0; i < locks; i++) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = F_RDLCK;
    lock.l_whence = SEEK_SET;
    int fd = open(argv[4 + i], O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || fcntl(fd, F_SETLK, &lock) < 0) {
      Report(kStepInitLock, errno, i);
      return 127;
    }
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);  // without a PID namespace: orphans come here
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  fcntl(kErrorFd, F_SETFD, FD_CLOEXEC);
  fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);

  pid_t self = getpid();
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) < 0) {
    Report(kStepInitFork, errno, -1);
    return 127;
  }
  pid_t program = fork();
  if (program < 0) {
    Report(kStepInitFork, errno, -1);
    return 127;
  }
  if (program == 0) RunProgram(self, &original, argv[2], candidates, n, candidates + n, exec_pipe[1]);
  close(exec_pipe[1]);
  int32_t reported = program;
  ssize_t written = write(kStatusFd, &reported, sizeof reported);
  (void)written;
  close(kErrorFd);  // the spawn's read sees EOF once the program has exec'd
  // EOF: the program exec'd (or died), and the parent will read its pid; a byte: it failed.
  char failed = 0;
  ssize_t got;
  do {
    got = read(exec_pipe[0], &failed, 1);
  } while (got < 0 && errno == EINTR);
  int hold_zombie = got <= 0;
  close(exec_pipe[0]);

  int status = 0;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(program, sig);
      continue;
    }
    int done = 0;
    for (;;) {
      siginfo_t ended;
      memset(&ended, 0, sizeof ended);
      // Look before reaping: the program's zombie waits until its pid has been read.
      if (waitid(P_ALL, 0, &ended, WEXITED | WNOHANG | WNOWAIT) < 0 || ended.si_pid == 0) break;
      if (ended.si_pid == program && hold_zombie) WaitPidRead();
      int st;
      pid_t pid = waitpid(ended.si_pid, &st, 0);
      if (pid == program) {
        status = st;
        done = 1;
      }
    }
    if (done) break;
  }

  ssize_t ignored = write(kStatusFd, &status, sizeof status);
  (void)ignored;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  int sig = WTERMSIG(status);
  if (self != 1) {
    struct rlimit no_core = {0, 0};  // the program's core dump, if any, is the one that counts
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    kill(self, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
  }
  return 128 + sig;
}
