// Parent side of host ids (lib/hostids.ts decides which id a sandbox gets):
//   - LockHostId: the cross-process lease on one id (a lock file + flock);
//   - CloneAsHostId: the spawning thread's credentials for the clone, so that the sandbox's
//     user namespace is owned by the id and not by root;
//   - IdmapUserns / IdmapTree: a detached idmapped clone of a host path for a writable bind,
//     made here because idmapping a mount needs CAP_SYS_ADMIN over the file system's user
//     namespace, which the child (inside its own user namespace) never has.
#include "hostids.h"
#include "teardown.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "addon.h"
#include "unique_fd.h"

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SECBIT_NO_SETUID_FIXUP
#define SECBIT_NO_SETUID_FIXUP (1 << 2)
#endif

namespace nsjail {
namespace {

constexpr unsigned kOpenTreeClone = 1;
constexpr unsigned kAtRecursive = 0x8000;
constexpr uint64_t kMountAttrIdmap = 0x00100000;
struct MountAttr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

// Raw system calls: these change only the calling thread's credentials. glibc's wrappers
// would change every thread of Node's process.
long SetResUid(long r, long e, long s) { return ::syscall(SYS_setresuid, r, e, s); }
long SetResGid(long r, long e, long s) { return ::syscall(SYS_setresgid, r, e, s); }

Napi::Object Errno(Napi::Env env, int err, const char* syscall) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("errno", err);
  o.Set("syscall", syscall);
  return o;
}

// lockHostId(dirFd, name) -> fd (CLOEXEC, holding an exclusive flock) | -errno
// (-EWOULDBLOCK: another process, or another open of ours, holds it).
Napi::Value LockHostId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dir = info[0].As<Napi::Number>().Int32Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  UniqueFd fd(::openat(dir, name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Napi::Number::New(env, -errno);
  // Per open file description: two opens in this process exclude each other too, and the
  // kernel drops the lock when the last descriptor of it closes (this process exiting).
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) return Napi::Number::New(env, -errno);
  int lock = fd.release();
  TrackFd(env, lock);  // closed by binding.closeFd, or with the environment
  return Napi::Number::New(env, lock);
}

// The helper process of IdmapUserns: it only waits to be killed. It shares our memory
// (CLONE_VM) on its own small stack and runs with every signal blocked, so none of Node's
// handlers ever runs in it; SIGKILL ends it.
int WaitForKill(void*) noexcept {
  for (;;) ::syscall(SYS_ppoll, nullptr, 0, nullptr, nullptr, 0);  // no pause(2) on arm64
  return 0;
}

// idmapUserns(uidMap, gidMap) -> fd of a user namespace with these maps | { errno, syscall }.
// A user namespace has maps only while a process is in it: a helper is cloned into a new one,
// its maps written (this process is root), the namespace opened, and the helper killed.
Napi::Value IdmapUserns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string maps[2] = {info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value()};
  constexpr size_t kStack = 16 * 1024;
  void* stack = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return Errno(env, errno, "mmap");
  sigset_t all, saved;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  pid_t pid = ::clone(WaitForKill, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_NEWUSER | SIGCHLD, nullptr);
  int clone_err = errno;
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) {
    ::munmap(stack, kStack);
    return Errno(env, clone_err, "clone");
  }
  int err = 0;
  const char* failed = "";
  const char* files[3] = {"uid_map", "setgroups", "gid_map"};
  const std::string data[3] = {maps[0], "deny", maps[1]};
  for (int i = 0; i < 3 && !err; i++) {
    std::string path = "/proc/" + std::to_string(pid) + "/" + files[i];
    UniqueFd f(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!f || ::write(f.get(), data[i].data(), data[i].size()) != static_cast<ssize_t>(data[i].size())) {
      err = errno ? errno : EIO;
      failed = "write";
    }
  }
  UniqueFd ns;
  if (!err) {
    std::string path = "/proc/" + std::to_string(pid) + "/ns/user";
    ns.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) {
      err = errno;
      failed = "open";
    }
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  ::munmap(stack, kStack);  // only once the helper is gone
  if (err) return Errno(env, err, failed);
  int userns = ns.release();
  TrackFd(env, userns);
  return Napi::Number::New(env, userns);
}

// idmapTree(source, recursive, attrs, usernsFd) -> { fd, idmapped } | { errno, syscall }:
// a detached copy of the mount at `source` (resolved here, in this process's root, once) with
// MOUNT_ATTR_* `attrs` set and, for a directory or a regular file, the idmapping of
// `usernsFd`. Device nodes, FIFOs and sockets are never idmapped: through an idmapped mount
// the sandbox would own them and could chmod the host's node.
Napi::Value IdmapTree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string source = info[0].As<Napi::String>().Utf8Value();
  bool recursive = info[1].ToBoolean();
  uint64_t attrs = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  int userns = info[3].As<Napi::Number>().Int32Value();
  unsigned flags = kOpenTreeClone | O_CLOEXEC | (recursive ? kAtRecursive : 0);
  UniqueFd tree(static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, source.c_str(), flags)));
  if (!tree) return Errno(env, errno, "open_tree");
  struct stat st;
  if (::fstat(tree.get(), &st) < 0) return Errno(env, errno, "fstat");
  bool idmap = S_ISDIR(st.st_mode) || S_ISREG(st.st_mode);
  MountAttr attr{attrs | (idmap ? kMountAttrIdmap : 0), 0, 0, idmap ? static_cast<uint64_t>(userns) : 0};
  if (attr.attr_set != 0 &&
      ::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | (recursive ? kAtRecursive : 0), &attr, sizeof attr) < 0) {
    return Errno(env, errno, "mount_setattr");
  }
  Napi::Object result = Napi::Object::New(env);
  int fd = tree.release();
  TrackFd(env, fd);
  result.Set("fd", fd);
  result.Set("idmapped", idmap);
  return result;
}

}  // namespace

namespace {
// One host-id clone at a time: the dumpable flag is the whole process's, and another thread's
// switch back must not make it dumpable while a child's copy of the address space is made.
std::mutex g_host_id_clone;
}  // namespace

CloneAsHostId::CloneAsHostId(long id) : active_(id >= 0) {
  if (!active_) return;
  lock_ = std::unique_lock<std::mutex>(g_host_id_clone);
  Switch(id);
}

void CloneAsHostId::Switch(long id) {
  // Save everything that is changed; the destructor puts it back.
  if (::syscall(SYS_getresuid, &ruid_, &euid_, &suid_) < 0 || ::syscall(SYS_getresgid, &rgid_, &egid_, &sgid_) < 0) {
    return Fail(errno, "getresuid");
  }
  int n = static_cast<int>(::syscall(SYS_getgroups, 0, nullptr));
  if (n < 0) return Fail(errno, "getgroups");
  groups_.resize(static_cast<size_t>(n));
  if (n > 0 && ::syscall(SYS_getgroups, n, groups_.data()) < 0) return Fail(errno, "getgroups");
  securebits_ = ::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  dumpable_ = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  changed_ = true;
  // Keep the effective capabilities across the uid change (it would clear them), so that the
  // kernel still sees a privileged creator (e.g. AppArmor's restriction of unprivileged
  // user namespaces). Best effort: without CAP_SETPCAP the clone works all the same here.
  if (securebits_ >= 0) ::prctl(PR_SET_SECUREBITS, securebits_ | SECBIT_NO_SETUID_FIXUP, 0, 0, 0);
  // No supplementary group of ours (root's) is inherited: with setgroups denied in the
  // sandbox it could never drop them.
  if (::syscall(SYS_setgroups, 0, nullptr) < 0) return Fail(errno, "setgroups");
  // Only the effective ids become the host id: the new user namespace's owner is the
  // effective uid. The real and saved ids stay ours, so that no process running as the host
  // id may signal this thread (or the child, before its own setresuid) meanwhile, and the
  // destructor can switch back. The euid change makes the address space non-dumpable
  // (suid_dumpable): the child's copy of it stays so, out of ptrace's reach of that id
  // (which owns the child's user namespace) until execve. The parent writes the child's maps
  // (lib/identity.ts: a host id implies parent-written maps and a fork-like clone).
  if (SetResGid(-1, id, -1) < 0) return Fail(errno, "setresgid");
  if (SetResUid(-1, id, -1) < 0) return Fail(errno, "setresuid");
}

void CloneAsHostId::Fail(int err, const char* syscall) {
  err_ = err;
  syscall_ = syscall;
}

CloneAsHostId::~CloneAsHostId() {
  if (!active_ || !changed_) return;
  // Switching back is allowed: the saved ids are the old ones. Failing here would leave a
  // Node thread with another identity; the kernel gives no reason for it to fail.
  if (SetResUid(ruid_, euid_, suid_) < 0 || SetResGid(rgid_, egid_, sgid_) < 0 ||
      ::syscall(SYS_setgroups, groups_.size(), groups_.data()) < 0) {
    ::abort();
  }
  if (securebits_ >= 0) ::prctl(PR_SET_SECUREBITS, securebits_, 0, 0, 0);
  if (dumpable_ >= 0) ::prctl(PR_SET_DUMPABLE, dumpable_, 0, 0, 0);
}

void InitHostIds(Napi::Env env, Napi::Object exports) {
  exports.Set("lockHostId", Napi::Function::New(env, LockHostId, "lockHostId"));
  exports.Set("idmapUserns", Napi::Function::New(env, IdmapUserns, "idmapUserns"));
  exports.Set("idmapTree", Napi::Function::New(env, IdmapTree, "idmapTree"));
}

}  // namespace nsjail
