// Child steps: files, mounts and the root switch. Async-signal-safe only (see child.cc).
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child_steps.h"

namespace nsjail {

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

int StepPivotRoot(const Step& s) noexcept {
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then
  // removes the old root without needing a directory for it inside the new root.
  if (::chdir(s.path) < 0) return errno;
  if (::syscall(SYS_pivot_root, ".", ".") < 0) return errno;
  if (::umount2(".", MNT_DETACH) < 0) return errno;
  return ::chdir("/") < 0 ? errno : 0;
}

int StepChroot(const Step& s) noexcept {
  if (::chroot(s.path) < 0) return errno;
  return ::chdir("/") < 0 ? errno : 0;
}

int StepChdir(const Step& s) noexcept { return ::chdir(s.path) < 0 ? errno : 0; }

}  // namespace nsjail
