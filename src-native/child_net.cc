// Child steps: UTS and network namespaces. Async-signal-safe only (see child.cc).
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "child_steps.h"

namespace nsjail {

int StepSetHostname(const Step& s) noexcept { return ::sethostname(s.data, s.data_len) < 0 ? errno : 0; }

// setns(fd, flags = CLONE_NEW*): the fd in values[0] was opened by the parent before clone
// (checked there, and unaffected by namespaces joined before it); with a path instead, the
// child opens it itself.
int StepSetns(const Step& s) noexcept {
  int nstype = static_cast<int>(s.flags);
  if (s.path == nullptr) return ::setns(static_cast<int>(s.values[0]), nstype) < 0 ? errno : 0;
  int fd = ::open(s.path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ::setns(fd, nstype) < 0 ? errno : 0;
  ::close(fd);
  return err;
}

// `ip link set lo up`: a new network namespace starts with `lo` down (and without 127.0.0.1,
// which the kernel adds when it comes up).
int StepLoopbackUp(const Step&) noexcept {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, "lo", 3);
  int err = 0;
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
    err = errno;
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) err = errno;
  }
  ::close(fd);
  return err;
}

}  // namespace nsjail
