// Child steps: files, mounts and the root switch. Async-signal-safe only (see child.cc).
// Paths are resolved inside the plan's roots by child_paths.cc (child_paths.h).
//
// A mount plan (lib/filesystem.ts, compiled by lib/mount-steps.ts) runs in three phases:
//   1. StepStageRoot mounts a private tmpfs on a directory every host has, pivots into it and
//      keeps the host's root at /oldroot and an empty /newroot beside it (bubblewrap's model).
//   2. Each entry resolves its target inside /newroot with openat2(RESOLVE_IN_ROOT), so no
//      symlink or ".." ever leads a mount or a write outside the new root, and its host
//      source inside /oldroot the same way; mounts are made with the new mount API
//      (open_tree, fsopen/fsmount, mount_setattr, move_mount) on those file descriptors, and
//      files are written and modes changed through fds checked to be what the entry expects.
//   3. StepPivotRoot makes /newroot the root and detaches the staging tmpfs with the old root.
// These system calls need Linux 5.12 (mount_setattr); older kernels get ENOSYS, which
// lib/mount-steps.ts turns into a hint naming the version.
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "child_paths.h"

namespace nsjail {
namespace {

// Kernel ABI (uapi linux/mount.h, asm-generic/unistd.h). The numbers are the
// same on every architecture for these system calls; defined here so older headers build.
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_open_tree_attr
#define SYS_open_tree_attr 467
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

struct MountAttr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
constexpr unsigned kOpenTreeClone = 1;
constexpr unsigned kMoveMountFEmptyPath = 0x04;
constexpr unsigned kMoveMountTEmptyPath = 0x40;
constexpr unsigned kFsopenCloexec = 1;
constexpr unsigned kFsmountCloexec = 1;
constexpr unsigned kFsconfigSetFlag = 0;
constexpr unsigned kFsconfigSetString = 1;
constexpr unsigned kFsconfigSetFd = 5;
constexpr unsigned kFsconfigCmdCreate = 6;
constexpr unsigned kAtRecursive = 0x8000;
constexpr unsigned kAtEmptyPath = 0x1000;

// A file made as a mount point (a bind of a file onto a missing target): empty and read-only
// to all, as bubblewrap makes it; what is bound over it is what the sandbox sees.
constexpr unsigned kMountPointFileMode = 0444;

// Closes on every return path; errno is read into the return value before it runs.
struct Fd {
  int fd;
  explicit Fd(long f) noexcept : fd(static_cast<int>(f)) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  bool bad() const noexcept { return fd < 0; }
};

int SetAttr(int fd, unsigned long attrs, bool recursive) noexcept {
  if (attrs == 0) return 0;
  MountAttr attr{attrs, 0, 0, 0};
  unsigned flags = kAtEmptyPath | (recursive ? kAtRecursive : 0);
  return ::syscall(SYS_mount_setattr, fd, "", flags, &attr, sizeof attr) < 0 ? errno : 0;
}

// 0 when the resolved target is a directory exactly when `dir` says so; else ENOTDIR (a
// directory mount onto a non-directory) or EISDIR (a file mount onto a directory).
int CheckTargetKind(int target, bool dir) noexcept {
  struct stat st;
  if (::fstat(target, &st) < 0) return errno;
  if (S_ISDIR(st.st_mode) == dir) return 0;
  return dir ? ENOTDIR : EISDIR;
}

int MoveMount(int from, int to) noexcept {
  return ::syscall(SYS_move_mount, from, "", to, "", kMoveMountFEmptyPath | kMoveMountTEmptyPath) < 0 ? errno : 0;
}

// "/oldroot/proc/self/fd/<fd>": the host's procfs (it stays at /oldroot/proc until the final
// pivot), whose fd links lead to the open file itself without resolving any path again.
void ProcFdPath(int fd, char (&out)[48]) noexcept {
  static const char kPrefix[] = "/oldroot/proc/self/fd/";
  std::memcpy(out, kPrefix, sizeof kPrefix - 1);
  char digits[12];
  int n = 0;
  unsigned value = static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  size_t at = sizeof kPrefix - 1;
  while (n > 0) out[at++] = digits[--n];
  out[at] = '\0';
}

// chmod of what the O_PATH fd `fd` (never a symlink: resolved following) refers to, without
// resolving a path again: fchmodat2 on the fd (Linux 6.6); before that, a directory is
// reopened through itself (".": never a device or a FIFO) and anything else is changed
// through its /proc fd link.
int ChmodFd(int fd, unsigned mode) noexcept {
  if (::syscall(SYS_fchmodat2, fd, "", mode, kAtEmptyPath) == 0) return 0;
  if (errno != ENOSYS && errno != EINVAL && errno != EBADF) return errno;
  struct stat st;
  if (::fstat(fd, &st) < 0) return errno;
  if (S_ISDIR(st.st_mode)) {
    Fd dir(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.bad()) return errno;
    return ::fchmod(dir.fd, mode) < 0 ? errno : 0;
  }
  char link[48];
  ProcFdPath(fd, link);
  return ::chmod(link, mode) < 0 ? errno : 0;
}

// What a `file` entry refuses to write into: a symlink is never followed (ELOOP), a directory
// is EISDIR, and a FIFO, socket or device node is never even opened (EINVAL): an open would
// wait for a FIFO's reader or reach a driver, and a device on a read-only mount is writable.
int NotRegularFile(mode_t mode) noexcept {
  if (S_ISREG(mode)) return 0;
  if (S_ISLNK(mode)) return ELOOP;
  return S_ISDIR(mode) ? EISDIR : EINVAL;
}

// Closes every fd it holds when it goes out of scope.
struct FdList {
  static constexpr int kMax = 512;  // overlayfs stacks at most 500 lower layers
  int fds[kMax];
  int count = 0;
  ~FdList() {
    for (int i = 0; i < count; i++) ::close(fds[i]);
  }
};

}  // namespace

int StepWriteFile(const Step& s) noexcept {
  int fd = ::open(s.path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, s.data, s.data_len);
  int err = n < 0 ? errno : (static_cast<size_t>(n) != s.data_len ? EIO : 0);
  ::close(fd);
  return err;
}

int StepMount(const Step& s) noexcept {
  return ::mount(s.source, s.path, s.fstype, s.flags, s.data) < 0 ? errno : 0;
}

int StepMkdir(const Step& s) noexcept { return ::mkdir(s.path, s.mode) < 0 && errno != EEXIST ? errno : 0; }

int StepPivotRoot(const Step& s, FsRoots* roots) noexcept {
  CloseFsRoots(roots);  // the staging root and the host's go
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then
  // removes the old root (with everything mounted under it) without needing a directory
  // for it inside the new root.
  if (::chdir(s.path) < 0) return errno;
  if (::syscall(SYS_pivot_root, ".", ".") < 0) return errno;
  if (::umount2(".", MNT_DETACH) < 0) return errno;
  return ::chdir("/") < 0 ? errno : 0;
}

int StepChroot(const Step& s, FsRoots* roots) noexcept {
  CloseFsRoots(roots);
  if (::chroot(s.path) < 0) return errno;
  return ::chdir("/") < 0 ? errno : 0;
}

int StepChdir(const Step& s) noexcept { return ::chdir(s.path) < 0 ? errno : 0; }

int StepStageRoot(const Step& s, FsRoots* roots) noexcept {
  CloseFsRoots(roots);
  // Mounting over s.path hides nothing for long: after the pivot the host's root, whole
  // again (the staging tmpfs has left s.path), is reachable at /oldroot for bind sources.
  if (::mount("tmpfs", s.path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0) return errno;
  if (::chdir(s.path) < 0) return errno;
  if (::mkdir("newroot", 0755) < 0 || ::mkdir("oldroot", 0755) < 0) return errno;
  if (::syscall(SYS_pivot_root, ".", "oldroot") < 0) return errno;
  return ::chdir("/") < 0 ? errno : 0;
}

namespace {

// A detached tree the parent made before clone (lib/hostids.ts: idmapped writable binds,
// src-native/hostids.cc), attached at s.path. The fd is the parent's: not closed here.
int AttachPrepared(const Step& s, FsRoots* roots) noexcept {
  int tree = static_cast<int>(s.values[0]);
  struct stat st;
  if (::fstat(tree, &st) < 0) return errno;
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  bool dir = S_ISDIR(st.st_mode);
  Fd target(ResolveTarget(root, s.path, dir ? Create::kDir : Create::kFile, dir ? 0755 : kMountPointFileMode));
  if (target.bad()) return -target.fd;
  return AfterAttach(MoveMount(tree, target.fd), s, roots);
}

}  // namespace

int StepBindMount(const Step& s, FsRoots* roots, int32_t* part) noexcept {
  if (s.flags & kPrepared) return AttachPrepared(s, roots);
  // The source: a file this plan wrote in the staging root (a data entry), or a path inside
  // the new root or the host's root.
  int from_root = (s.flags & kSourceInStaging) ? CachedDir(&roots->staging, "/")
                  : (s.flags & kSourceInNewRoot) ? CachedDir(&roots->new_root, kNewRoot)
                                                  : HostRoot(roots);
  if (from_root < 0) return errno;
  *part = 0;  // the source
  Fd source(OpenInRoot(from_root, s.source, O_PATH));
  if (source.bad()) return errno == ENOENT && (s.flags & kTry) ? 0 : errno;
  *part = -1;
  struct stat st;
  if (::fstat(source.fd, &st) < 0) return errno;
  if (s.flags & kSourceFd) {
    // A caller's fd names a mount of another mount namespace, which the kernel does not bind
    // from here (EINVAL): its path (read by lib/ from /proc/self/fd) is bound instead, and
    // must still be the very file the fd is open on.
    struct stat want;
    if (::fstat(static_cast<int>(s.values[0]), &want) < 0) return errno;
    if (want.st_dev != st.st_dev || want.st_ino != st.st_ino) return ESTALE;
  }
  bool recursive = s.flags & kRecursive;
  // A detached copy of the source mount (and, recursive, everything under it) with its flags
  // set before it is attached, so a read-only bind is never writable, not even briefly: in
  // one call where the kernel has open_tree_attr (Linux 6.15), else open_tree + mount_setattr.
  unsigned tree_flags = kOpenTreeClone | O_CLOEXEC | kAtEmptyPath | (recursive ? kAtRecursive : 0);
  unsigned long attrs = s.flags & kAttrMask;
  MountAttr attr{attrs, 0, 0, 0};
  Fd tree(attrs != 0 ? ::syscall(SYS_open_tree_attr, source.fd, "", tree_flags, &attr, sizeof attr) : -1);
  if (attrs == 0 || (tree.bad() && (errno == ENOSYS || errno == EINVAL))) {
    tree.fd = static_cast<int>(::syscall(SYS_open_tree, source.fd, "", tree_flags));
    if (tree.bad()) return errno;
    if (int err = SetAttr(tree.fd, attrs, recursive)) return err;
  }
  if (tree.bad()) return errno;
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  bool dir = S_ISDIR(st.st_mode);
  bool created = false;
  Fd target(ResolveTarget(root, s.path, dir ? Create::kDir : Create::kFile, dir ? 0755 : kMountPointFileMode, ParentMode(s), &created));
  if (target.bad()) return -target.fd;
  // An existing target of the other kind: move_mount would say only EINVAL. (One just made
  // is of the kind it was made as.)
  if (!created) {
    if (int err = CheckTargetKind(target.fd, dir)) return err;
  }
  return AfterAttach(MoveMount(tree.fd, target.fd), s, roots);
}

namespace {

// The next "key\0value\0" pair of a step's data at *p (before end), both NUL-terminated
// within it; advances *p past it. False for a malformed pair.
bool NextPair(const char** p, const char* end, const char** key, const char** value) noexcept {
  const char* k_end = static_cast<const char*>(std::memchr(*p, '\0', static_cast<size_t>(end - *p)));
  if (!k_end || k_end + 1 >= end) return false;
  const char* v_end = static_cast<const char*>(std::memchr(k_end + 1, '\0', static_cast<size_t>(end - k_end - 1)));
  if (!v_end) return false;
  *key = *p;
  *value = k_end + 1;
  *p = v_end + 1;
  return true;
}

// The end of every fsopen-based step: create the superblock, mount it detached, and attach it
// at the step's target, resolved inside the new root.
int CreateAndAttach(int fs_fd, const Step& s, FsRoots* roots) noexcept {
  if (::syscall(SYS_fsconfig, fs_fd, kFsconfigCmdCreate, nullptr, nullptr, 0) < 0) return errno;
  Fd mnt(::syscall(SYS_fsmount, fs_fd, kFsmountCloexec, s.flags & kAttrMask));
  if (mnt.bad()) return errno;
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  Fd target(ResolveTarget(root, s.path, Create::kDir, 0755, ParentMode(s)));
  if (target.bad()) return -target.fd;
  // A filesystem's root is a directory: an existing file there is ENOTDIR, not move_mount's EINVAL.
  if (int err = CheckTargetKind(target.fd, true)) return err;
  return AfterAttach(MoveMount(mnt.fd, target.fd), s, roots);
}

}  // namespace

int StepMountFs(const Step& s, FsRoots* roots) noexcept {
  Fd fs(::syscall(SYS_fsopen, s.fstype, kFsopenCloexec));
  if (fs.bad()) return errno;
  if (s.source && ::syscall(SYS_fsconfig, fs.fd, kFsconfigSetString, "source", s.source, 0) < 0) return errno;
  // s.data holds "key\0value\0" pairs; an empty value sets a flag (e.g. devpts newinstance).
  const char* end = s.data ? s.data + s.data_len : nullptr;
  const char* key;
  const char* value;
  for (const char* p = s.data; p && p < end;) {
    if (!NextPair(&p, end, &key, &value)) return EINVAL;
    long rc = *value ? ::syscall(SYS_fsconfig, fs.fd, kFsconfigSetString, key, value, 0)
                     : ::syscall(SYS_fsconfig, fs.fd, kFsconfigSetFlag, key, nullptr, 0);
    if (rc < 0) return errno;
  }
  return CreateAndAttach(fs.fd, s, roots);
}

int StepMountSetattr(const Step& s, FsRoots* roots) noexcept {
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  Fd target(OpenInRoot(root, s.path, O_PATH));
  if (target.bad()) return errno;
  return SetAttr(target.fd, s.flags & kAttrMask, s.flags & kRecursive);
}

int StepCreateDir(const Step& s, FsRoots* roots) noexcept {
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  bool created = false;
  Fd dir(ResolveTarget(root, s.path, Create::kDir, s.mode & 0777, ParentMode(s), &created));
  if (dir.bad()) return -dir.fd;
  struct stat st;
  if (::fstat(dir.fd, &st) < 0) return errno;
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  // mkdirat applied the umask (inherited by the program too, so it is not changed here).
  return created ? ChmodFd(dir.fd, s.mode) : 0;
}

int StepCreateFile(const Step& s, FsRoots* roots) noexcept {
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  char name[256];
  Fd parent(ResolveParent(root, s.path, name, ParentMode(s)));
  if (parent.bad()) return -parent.fd;
  // A new file: O_EXCL makes it, so nothing else can be what is opened.
  Fd file(::openat(parent.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, s.mode & 0777));
  if (file.bad()) {
    if (errno != EEXIST) return errno;
    // Something is there: look at it through an O_PATH fd, which follows nothing, opens no
    // device and waits for no FIFO reader, and open it for writing only if it is a regular file.
    Fd existing(::openat(parent.fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (existing.bad()) return errno;
    struct stat seen;
    if (::fstat(existing.fd, &seen) < 0) return errno;
    if (int err = NotRegularFile(seen.st_mode)) return err;
    // Without blocking, and checked again: what was swapped in since the look is refused.
    file.fd = ::openat(parent.fd, name, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
    if (file.bad()) return errno;
    struct stat now;
    if (::fstat(file.fd, &now) < 0) return errno;
    if (now.st_dev != seen.st_dev || now.st_ino != seen.st_ino) {
      int err = NotRegularFile(now.st_mode);
      return err ? err : EAGAIN;
    }
    if (::ftruncate(file.fd, 0) < 0) return errno;
  }
  for (size_t done = 0; done < s.data_len;) {
    ssize_t n = ::write(file.fd, s.data + done, s.data_len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return ::fchmod(file.fd, s.mode) < 0 ? errno : 0;
}

int StepCreateSymlink(const Step& s, FsRoots* roots) noexcept {
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  char name[256];
  Fd parent(ResolveParent(root, s.path, name, 0755));
  if (parent.bad()) return -parent.fd;
  if (::symlinkat(s.source, parent.fd, name) == 0) return 0;
  if (errno != EEXIST) return errno;
  // The same link already there (e.g. from a layered root) is fine; anything else is not.
  char existing[4096];
  ssize_t n = ::readlinkat(parent.fd, name, existing, sizeof existing);
  size_t want = std::strlen(s.source);
  return n >= 0 && static_cast<size_t>(n) == want && std::memcmp(existing, s.source, want) == 0 ? 0 : EEXIST;
}

int StepChmod(const Step& s, FsRoots* roots) noexcept {
  int root = TargetRoot(s, roots);
  if (root < 0) return errno;
  // O_PATH: resolving opens nothing (no FIFO wait, no device open); the mode is changed on
  // what this resolved to, never on a path resolved again.
  Fd target(OpenInRoot(root, s.path, O_PATH));
  if (target.bad()) return errno;
  return ChmodFd(target.fd, s.mode);
}

// An overlayfs whose layers reach the kernel as file descriptors, never as path strings it
// would resolve (and split at ':' and ',') again. s.data holds "key\0value\0" pairs: for the
// layer keys (lowerdir+, topmost first, then upperdir and workdir) the value is 'h' (inside
// the host's root, /oldroot) or 's' (inside the staging root) and a relative path, resolved
// here once; other keys are passed on as strings, an empty value as a flag. Each layer is
// given by fd (Linux 6.13); on older kernels by its /proc fd link, one lowerdir+ at a time
// (6.8) or all in one lowerdir string (fsconfig takes strings of up to 256 bytes; before 6.5
// overlayfs has only the legacy option string, which refuses fds with EOPNOTSUPP).
int StepMountOverlay(const Step& s, FsRoots* roots, int32_t* part) noexcept {
  int host = HostRoot(roots);
  if (host < 0) return errno;
  int staging = CachedDir(&roots->staging, "/");
  if (staging < 0) return errno;
  Fd fs(::syscall(SYS_fsopen, "overlay", kFsopenCloexec));
  if (fs.bad()) return errno;
  enum class Pass { kFd, kLinkEach, kLinksJoined } pass = Pass::kFd;
  char joined[256];
  size_t joined_len = 0;
  FdList layers;
  const char* end = s.data ? s.data + s.data_len : nullptr;
  const char* key;
  const char* value;
  for (const char* p = s.data; p && p < end;) {
    if (!NextPair(&p, end, &key, &value)) return EINVAL;
    bool lower = std::strcmp(key, "lowerdir+") == 0;
    if (!lower && std::strcmp(key, "upperdir") != 0 && std::strcmp(key, "workdir") != 0) {
      *part = -1;
      long rc = *value ? ::syscall(SYS_fsconfig, fs.fd, kFsconfigSetString, key, value, 0)
                       : ::syscall(SYS_fsconfig, fs.fd, kFsconfigSetFlag, key, nullptr, 0);
      if (rc < 0) return errno;
      continue;
    }
    int index = layers.count;
    if (index == FdList::kMax || (*value != 'h' && *value != 's')) return EINVAL;
    *part = 2 * index;  // opening it
    long fd = OpenInRoot(*value == 's' ? staging : host, value + 1, O_PATH | O_DIRECTORY);
    if (fd < 0) return errno;
    layers.fds[layers.count++] = static_cast<int>(fd);
    *part = 2 * index + 1;  // handing it to overlayfs
    if (pass == Pass::kFd) {
      if (::syscall(SYS_fsconfig, fs.fd, kFsconfigSetFd, key, nullptr, static_cast<int>(fd)) == 0) continue;
      if ((errno != EINVAL && errno != EOPNOTSUPP) || index != 0) return errno;
      // EOPNOTSUPP: overlayfs still parses a legacy option string (before Linux 6.5), which
      // takes any key now and refuses an unknown one (lowerdir+) only when the mount is
      // created: straight to the one lowerdir string.
      pass = errno == EOPNOTSUPP ? Pass::kLinksJoined : Pass::kLinkEach;  // not by fd: before Linux 6.13
    }
    char link[48];
    ProcFdPath(static_cast<int>(fd), link);
    if (pass == Pass::kLinkEach || !lower) {
      if (::syscall(SYS_fsconfig, fs.fd, kFsconfigSetString, key, link, 0) == 0) continue;
      if (errno != EINVAL || index != 0) return errno;
      pass = Pass::kLinksJoined;  // no lowerdir+: before Linux 6.8
    }
    size_t len = std::strlen(link);
    if (joined_len + len + 2 > sizeof joined) return E2BIG;
    if (joined_len > 0) joined[joined_len++] = ':';
    std::memcpy(joined + joined_len, link, len + 1);
    joined_len += len;
  }
  *part = -1;
  if (joined_len > 0 && ::syscall(SYS_fsconfig, fs.fd, kFsconfigSetString, "lowerdir", joined, 0) < 0) return errno;
  return CreateAndAttach(fs.fd, s, roots);
}

}  // namespace nsjail
