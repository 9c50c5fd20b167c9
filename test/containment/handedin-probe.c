/* The attack probe of the containment tests (handed-in.test.ts, sockets.test.ts,
 * socket-memory.test.ts): each command prints one line, "ok ..." or the errno's name. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Results go to stdout, or to stderr with PROBE_STDERR set (when stdout is what is probed). */
static FILE* out;

static int report(int rc) {
  if (rc < 0) fprintf(out, "%s\n", strerrorname_np(errno));
  else fprintf(out, "ok\n");
  fflush(out);
  return 0;
}

/* Queues data into loopback TCP connections nobody reads, until `max` bytes or until new
 * connections take almost nothing. Prints the running total as "queued N" lines. */
static int tcp_queue(long long max) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr*)&addr, sizeof addr) < 0 || listen(listener, 512) < 0 ||
      getsockname(listener, (struct sockaddr*)&addr, &len) < 0) return report(-1);
  static char chunk[1 << 16];
  memset(chunk, 'x', sizeof chunk);
  long long total = 0;
  int small = 0;
  for (int c = 0; c < 400 && total < max && small < 3; c++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr*)&addr, sizeof addr) < 0) break;
    int peer = accept(listener, NULL, NULL); /* kept open and never read */
    if (peer < 0) break;
    int big = 64 << 20;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    fcntl(s, F_SETFL, O_NONBLOCK);
    long long here = 0;
    for (int stalls = 0; stalls < 50 && total + here < max;) {
      ssize_t n = write(s, chunk, sizeof chunk);
      if (n > 0) {
        here += n;
        stalls = 0;
      } else if (n < 0 && errno == EAGAIN) {
        stalls++;
        usleep(2000); /* let loopback move the send queue into the receiver's */
      } else {
        break;
      }
    }
    total += here;
    small = here < (64 << 10) ? small + 1 : 0;
    printf("queued %lld\n", total);
    fflush(stdout);
  }
  printf("done %lld\n", total);
  return 0;
}

int main(int argc, char** argv) {
  out = getenv("PROBE_STDERR") ? stderr : stdout;
  if (argc < 2) return 2;
  const char* cmd = argv[1];
  if (!strcmp(cmd, "fdlink") && argc == 3) { /* what fd N is, as /proc/self/fd shows it */
    char path[64], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%s", argv[2]);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) return report(-1);
    target[n] = 0;
    fprintf(out, "%s\n", target);
    return 0;
  }
  if (!strcmp(cmd, "fchmod") && argc == 4) return report(fchmod(atoi(argv[2]), strtol(argv[3], NULL, 8)));
  if (!strcmp(cmd, "futimes") && argc == 3) {
    struct timespec times[2] = {{0, 0}, {0, 0}};
    return report(futimens(atoi(argv[2]), times));
  }
  if (!strcmp(cmd, "ftouch") && argc == 3) return report(futimens(atoi(argv[2]), NULL)); /* UTIME_NOW: write access is enough */
  if (!strcmp(cmd, "touch") && argc == 3) return report(utimensat(AT_FDCWD, argv[2], NULL, 0));
  if (!strcmp(cmd, "chmod") && argc == 4) return report(chmod(argv[2], strtol(argv[3], NULL, 8)));
  if (!strcmp(cmd, "utimes") && argc == 3) {
    struct timespec times[2] = {{0, 0}, {0, 0}};
    return report(utimensat(AT_FDCWD, argv[2], times, 0));
  }
  if (!strcmp(cmd, "chown") && argc == 3) return report(chown(argv[2], (uid_t)-1, (gid_t)-1)); /* changes only ctime */
  if (!strcmp(cmd, "write") && argc == 3) { /* device I/O: open for writing and write a byte */
    int fd = open(argv[2], O_WRONLY);
    return report(fd < 0 ? -1 : (int)write(fd, "x", 1));
  }
  if (!strcmp(cmd, "read") && argc == 3) {
    char c;
    int fd = open(argv[2], O_RDONLY);
    return report(fd < 0 ? -1 : (int)read(fd, &c, 1));
  }
  if (!strcmp(cmd, "readstdin")) { /* how many bytes fd 0 gives before end of file */
    char buf[256];
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0) return report(-1);
    printf("read %zd\n", n);
    return 0;
  }
  if (!strcmp(cmd, "socket") && argc == 4) {
    int fd = socket(atoi(argv[2]), atoi(argv[3]), 0);
    report(fd);
    if (fd >= 0) close(fd);
    return 0;
  }
  if (!strcmp(cmd, "socketpair") && argc == 4) {
    int sv[2];
    return report(socketpair(atoi(argv[2]), atoi(argv[3]), 0, sv));
  }
  if (!strcmp(cmd, "io_uring")) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(SYS_io_uring_setup, 4, &p);
    report((int)fd);
    if (fd >= 0) close((int)fd);
    return 0;
  }
  if (!strcmp(cmd, "vsockbind") && argc == 4) { /* binds VMADDR_CID_ANY:PORT, holds it SECONDS; never connects */
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0) return report(-1);
    struct sockaddr_vm vm = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = (unsigned)atoi(argv[2])};
    if (bind(fd, (struct sockaddr*)&vm, sizeof vm) < 0) return report(-1);
    report(0);
    sleep((unsigned)atoi(argv[3]));
    close(fd);
    return 0;
  }
  if (!strcmp(cmd, "tcpqueue") && argc == 3) return tcp_queue(atoll(argv[2]));
  return 2;
}
