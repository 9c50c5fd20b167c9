// Child-side path resolution inside the mount plan's roots (declared in child_paths.h): every
// lookup is an openat2(RESOLVE_IN_ROOT) from a root's fd, so no symlink or ".." leads a
// mount or a write outside it. Async-signal-safe only (see child.cc).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "child_paths.h"

namespace nsjail {
namespace {

// Kernel ABI (uapi linux/openat2.h, asm-generic/unistd.h). The number is the same on every
// architecture for this system call; defined here so older headers build.
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct OpenHow {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
constexpr uint64_t kResolveNoMagiclinks = 0x02;
constexpr uint64_t kResolveInRoot = 0x10;

long OpenDir(const char* path) noexcept { return ::open(path, O_PATH | O_DIRECTORY | O_CLOEXEC); }

}  // namespace

// Resolves `rel` inside the directory `root` as if it were "/": absolute symlinks and ".."
// stay in it, /proc magic links are refused. EAGAIN means a rename or mount somewhere on
// the system raced with a ".." step (the kernel then refuses rather than risk an escape):
// trying again is what openat2(2) asks for.
long OpenInRoot(int root, const char* rel, uint64_t flags) noexcept {
  OpenHow how{flags | O_CLOEXEC, 0, kResolveInRoot | kResolveNoMagiclinks};
  long fd = -1;
  for (int attempt = 0; attempt < 64; attempt++) {
    fd = ::syscall(SYS_openat2, root, rel, &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return fd;
}

// A root directory of the mount plan, opened at its first use and kept in `*slot` until the
// next root switch (CloseFsRoots): -1 with errno when it cannot be opened. Not to be closed
// by the caller.
int CachedDir(int* slot, const char* path) noexcept {
  if (*slot < 0) *slot = static_cast<int>(OpenDir(path));
  return *slot;
}

void CloseFsRoots(FsRoots* roots) noexcept {
  int* fds[] = {&roots->old_root, &roots->new_root, &roots->staging};
  for (int* fd : fds) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

// After a mount attached at the target root itself ("."): the kept fd is of the directory
// under that mount, so the root is opened again next time, reaching the new mount.
int AfterAttach(int err, const Step& s, FsRoots* roots) noexcept {
  if (err == 0 && s.path[0] == '.' && s.path[1] == '\0') {
    int* slot = (s.flags & kInStaging) ? &roots->staging : &roots->new_root;
    if (*slot >= 0) ::close(*slot);
    *slot = -1;
  }
  return err;
}

int TargetRoot(const Step& s, FsRoots* roots) noexcept {
  return (s.flags & kInStaging) ? CachedDir(&roots->staging, "/") : CachedDir(&roots->new_root, kNewRoot);
}

int HostRoot(FsRoots* roots) noexcept { return CachedDir(&roots->old_root, kOldRoot); }

// An O_PATH fd on `rel` (normalised by lib/: no leading or doubled '/', no "." or ".."
// components, or exactly ".") inside `root`, or -errno. Missing parents are made
// `parent_mode` directories and a missing last component is made as `last` says. Each prefix is resolved
// again from the root, so a symlink met on the way is followed only inside the root, and
// mkdirat/openat only ever create a plain name in a directory already resolved inside it.
long ResolveTarget(int root, const char* rel, Create last, unsigned mode, unsigned parent_mode, bool* created) noexcept {
  if (created) *created = false;
  long fd = OpenInRoot(root, rel, O_PATH);
  if (fd >= 0 || errno != ENOENT || last == Create::kNothing) return fd >= 0 ? fd : -errno;
  char buf[4096];
  size_t len = std::strlen(rel);
  if (len >= sizeof buf) return -ENAMETOOLONG;
  std::memcpy(buf, rel, len + 1);
  // The deepest ancestor that exists, looked up from the end: usually the parent (one
  // lookup, not one per component). Each found or made prefix is resolved from the root.
  int parent = -1;
  size_t start = 0;
  for (size_t cut = len; cut > 0;) {
    while (cut > 0 && buf[cut - 1] != '/') cut--;
    if (cut == 0) break;
    buf[cut - 1] = '\0';
    long dir = OpenInRoot(root, buf, O_PATH);
    int err = errno;
    buf[cut - 1] = '/';
    if (dir >= 0) {
      parent = static_cast<int>(dir);
      start = cut;
      break;
    }
    if (err != ENOENT) return -err;
    cut--;
  }
  for (;;) {
    size_t end = start;
    while (buf[end] != '\0' && buf[end] != '/') end++;
    bool is_last = buf[end] == '\0';
    buf[end] = '\0';
    int dir = parent >= 0 ? parent : root;
    const char* name = buf + start;
    int rc;
    if (is_last && last == Create::kFile) {
      rc = ::openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      if (rc >= 0) rc = ::close(rc);
    } else {
      rc = ::mkdirat(dir, name, is_last ? mode : parent_mode);
    }
    if (rc < 0 && errno != EEXIST) {
      int err = errno;
      if (parent >= 0) ::close(parent);
      return -err;
    }
    if (rc == 0 && is_last && created) *created = true;
    long child = OpenInRoot(root, buf, O_PATH);
    int err = errno;
    if (parent >= 0) ::close(parent);
    if (child < 0) return -err;
    if (is_last) return child;
    parent = static_cast<int>(child);
    buf[end] = '/';
    start = end + 1;
  }
}

// Splits `rel` into its parent (resolved, created as needed) and last name, copied to `name`.
long ResolveParent(int root, const char* rel, char (&name)[256], unsigned parent_mode) noexcept {
  const char* slash = std::strrchr(rel, '/');
  const char* last = slash ? slash + 1 : rel;
  size_t len = std::strlen(last);
  if (len == 0 || len >= sizeof name) return -EINVAL;
  std::memcpy(name, last, len + 1);
  if (!slash) {
    int fd = ::fcntl(root, F_DUPFD_CLOEXEC, 0);
    return fd >= 0 ? fd : -errno;
  }
  char parent[4096];
  size_t plen = static_cast<size_t>(slash - rel);
  if (plen >= sizeof parent) return -ENAMETOOLONG;
  std::memcpy(parent, rel, plen);
  parent[plen] = '\0';
  return ResolveTarget(root, parent, Create::kDir, parent_mode, parent_mode);
}

// The mode of the missing parents a step makes: 0755 unless lib/ says otherwise (bubblewrap
// takes the group and other bits away when the entry's own mode gives those classes nothing).
unsigned ParentMode(const Step& s) noexcept {
  return (s.flags & kParentMode) ? static_cast<unsigned>(s.values[1] & 0777) : 0755;
}

}  // namespace nsjail
