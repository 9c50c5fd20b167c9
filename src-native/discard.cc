// The draining thread of discard.h: one per process, started with the first 'ignore', waiting
// in epoll for the pipes it owns. Data goes to /dev/null by splice (no copy into user space),
// or is read and dropped where splice cannot be used.
#include "discard.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <mutex>

namespace nsjail {
namespace {

int epoll_fd = -1;
int null_fd = -1;  // this process's own /dev/null, never handed to a sandbox; -1: read instead
int start_error = 0;

// Drops one pipeful of what is in the pipe: a program that writes without pause must not keep
// this thread from the other sandboxes' pipes (epoll reports this one again while it holds
// data). True once it is empty and has no writer left (or is broken).
bool Drain(int fd) {
  static char buffer[64 * 1024];  // only this thread reads into it
  for (;;) {
    ssize_t n = null_fd >= 0 ? ::splice(fd, nullptr, null_fd, nullptr, 1 << 20, SPLICE_F_NONBLOCK) : -1;
    if (n < 0 && (null_fd < 0 || errno == EINVAL)) n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) return false;
    if (n == 0) return true;  // end of file: every writer is gone
    if (errno == EINTR) continue;
    return errno != EAGAIN;
  }
}

void* Loop(void*) {
  epoll_event events[32];
  for (;;) {
    int n = ::epoll_wait(epoll_fd, events, 32, -1);
    if (n < 0) continue;  // EINTR
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (Drain(fd)) {
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
      }
    }
  }
  return nullptr;
}

void Start() {
  epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) {
    start_error = errno;
    return;
  }
  null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  // Created with every signal blocked, which it keeps: signals go to the threads that want them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t id;
  start_error = ::pthread_create(&id, &attr, Loop, nullptr);
  pthread_attr_destroy(&attr);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (start_error == 0) ::pthread_setname_np(id, "nsjail-discard");
}

}  // namespace

int DiscardOutput(int read_fd) {
  static std::once_flag once;
  std::call_once(once, Start);
  int err = start_error;
  epoll_event event{};
  event.events = EPOLLIN;  // EPOLLHUP is always reported
  event.data.fd = read_fd;
  if (err == 0 && ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, read_fd, &event) < 0) err = errno;
  if (err != 0) ::close(read_fd);
  return err;
}

}  // namespace nsjail
