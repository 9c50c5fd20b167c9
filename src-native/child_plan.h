// The spawn plan as the child sees it: plain C data, built by the parent before clone and
// only read by the child. Nothing here owns memory; plan.cc keeps the storage alive.
#pragma once
#include <cstddef>
#include <cstdint>

namespace nsjail {

// One setup step. Which fields matter depends on `op`; unused ones are null/0. The steps are
// implemented one file per concern (child_fs.cc, child_identity.cc, child_limits.cc,
// child_net.cc), declared in child_steps.h; lib/ decides their order.
enum class StepOp : uint32_t {
  // child_fs.cc
  kWriteFile,   // open(path, O_WRONLY) and write data: uid_map, gid_map, cgroup.procs, sysctls
  kMount,       // mount(source, path, fstype, flags, data)
  kMkdir,       // mkdir(path, mode); EEXIST is not an error
  kPivotRoot,   // make `path` the root: chdir, pivot_root(".", "."), detach the old root
  kChroot,      // chroot(path) + chdir("/"), the seed's way (no mount namespace)
  kChdir,       // chdir(path)
  // mount plans (lib/filesystem.ts): paths are resolved inside the new root, see child_fs.cc
  kStageRoot,   // tmpfs on path, pivot into it: new root at /newroot, host root at /oldroot
  kBindMount,   // bind host `source` (or new-root source) onto `path`; flags: attrs, recursive, try
  kMountFs,     // fsopen(fstype) + fsconfig(data pairs) + fsmount, attached at `path`
  kMountSetattr,// mount_setattr(path, flags) (read-only, nosuid, nodev, noexec)
  kCreateDir,   // mkdir -p path, the last one with `mode`
  kCreateFile,  // create or truncate path, write data, chmod mode
  kCreateSymlink, // symlink source at path
  kChmod,       // chmod(path, mode), through an fd on what the path resolved to
  kMountOverlay,// overlayfs at `path`, its layers opened as fds (data: "key\0where+path\0" pairs)
  // child_net.cc
  kSetHostname, // sethostname(data)
  kSetns,       // setns(values[0] = an fd opened by the parent, flags); with path: open(path) first
  kLoopbackUp,  // bring `lo` up (SIOCSIFFLAGS)
  // child_limits.cc
  kSetrlimit,   // prlimit(0, flags = resource, {values[0], values[1]})
  // child_identity.cc
  kSetIds,      // setgroups(data = gid_t[]), setresgid(values[1]), setresuid(values[0])
  kCapabilities,// keep only the capabilities in values[0] (bounding, ambient, effective, ...)
  kNoNewPrivs,  // prctl(PR_SET_NO_NEW_PRIVS)
  kSeccomp,     // install the classic BPF program in data (struct sock_filter[])
  kUnshare,     // unshare(flags), e.g. CLONE_NEWTIME for the children of an init
  kLockMounts,  // a nested user + mount namespace: every mount becomes locked; values[0] = a /proc fd
};

struct Step {
  StepOp op;
  const char* path;
  const char* source;
  const char* fstype;
  const char* data;  // not NUL-terminated for binary steps: see data_len
  size_t data_len;
  unsigned long flags;
  unsigned mode;
  uint64_t values[2];  // numbers that need all 64 bits (rlimits, ids, capability sets)
};

struct ChildError;

// Where the child's fd 0, 1, 2 come from: an fd >= 3 opened O_CLOEXEC by the parent, or -1
// to leave that descriptor closed.
struct ChildPlan {
  int stdio[3];
  // Where a failed step is reported. With CLONE_VM|CLONE_VFORK (and no init) the child
  // writes into the parent's memory: when clone returns the child has exec'd or exited, so
  // the verdict is already there, with no pipe to wait on (the child closes its CLOEXEC fds
  // only after the parent is released: a read on a pipe waits for it to be scheduled again).
  // Otherwise (a fork-like clone, or init reporting for the program) the error pipe.
  ChildError* error_slot;  // parent memory, or null: use error_fd
  int error_fd;            // write end of the CLOEXEC error pipe, or -1
  // PR_SET_PDEATHSIG(SIGKILL), armed first, again after every step that changes credentials
  // (the kernel clears it then) and last before execve; each time followed by a check that
  // the parent is still there, since a parent that died before the arming sends nothing.
  bool die_with_parent;
  int parent_pidfd;        // a pidfd of the parent process (readable once it has exited), or -1
  int parent_pid;          // what getppid() returns while the parent lives: 0 in a new PID namespace
  bool new_session;        // setsid(): no controlling terminal, no TIOCSTI injection
  const Step* steps;
  size_t step_count;
  // execve is tried on each candidate in turn (PATH lookup done as a list by TypeScript).
  char* const* exec_candidates;
  size_t exec_candidate_count;
  char* const* argv;
  char* const* envp;
  // Parent-written id maps (lib/identity.ts: multi-range maps, supplementary groups): the
  // clone has no CLONE_VM|CLONE_VFORK and the child waits on sync_fd[0] until the parent has
  // written /proc/PID/{uid,gid}_map. {-1, -1}: the child writes its own map (the default).
  int sync_fd[2];
  // Closed first thing after clone, before waiting on sync_fd: the --info-fd the parent
  // writes (lib/options.ts `info`), whose reader waits for end of file. -1: none.
  int close_early_fd;
  // Read (one byte, or end of file) after the setup steps and before the seccomp filter and
  // execve: the program starts only once the caller writes to it (`blockFd`). -1: none.
  int block_fd;
  // init (lib/init.ts): the child execs init_fd (opened by the parent) with init_argv instead
  // of the program, the error pipe as its fd 3, status_fd (exit-status pipe) as fd 4 and,
  // with die_with_parent, parent_pidfd as fd 5. -1: none.
  int init_fd;
  int status_fd;
  char* const* init_argv;
};

// What the child reports (error_slot or the error pipe) when a step fails. `step` indexes
// ChildPlan::steps; kStepExec, kStepStdio, ... name the fixed steps around them.
struct ChildError {
  int32_t step;
  int32_t err;        // errno
  int32_t candidate;  // for kStepExec: which exec candidate failed; else which part of the step, or -1
};

constexpr int32_t kStepNone = INT32_MIN;  // error_slot before the child wrote to it
constexpr int32_t kStepExec = -1;
constexpr int32_t kStepStdio = -2;
constexpr int32_t kStepSignals = -3;
constexpr int32_t kStepCloseFds = -4;
constexpr int32_t kStepDieWithParent = -5;
constexpr int32_t kStepSetsid = -6;
constexpr int32_t kStepSyncMaps = -7;     // waiting for the parent's id maps
constexpr int32_t kStepInit = -8;         // execveat of init
// Reported by init (src-native/init.c), which keeps its own copy of these two numbers.
constexpr int32_t kStepInitSeccomp = -9;  // init installing the program's seccomp filter
constexpr int32_t kStepInitFork = -10;    // init forking the program
constexpr int32_t kStepInitLock = -11;    // init taking a lock file (candidate: which one)

// Runs in the cloned child: walks the plan and execs. Never returns on success.
// Async-signal-safe only: see child.cc.
int RunChild(void* plan) noexcept;

}  // namespace nsjail
