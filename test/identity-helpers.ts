/** Helpers for the identity and seccomp tests: a small C probe compiled with cc per test file. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// Each argument is one probe; each prints one line: "<probe> ok", "<probe> errno=<n>" or a value.
const PROBE_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// A grandchild that exits as an orphan; then wait up to ms for whoever inherited it to reap it.
static const char* Orphan(long ms) {
  int fds[2];
  if (pipe(fds) < 0) return "pipe-failed";
  pid_t a = fork();
  if (a == 0) {
    pid_t b = fork();
    if (b == 0) _exit(0);
    if (write(fds[1], &b, sizeof b) != sizeof b) _exit(1);
    _exit(0);
  }
  pid_t b = -1;
  if (read(fds[0], &b, sizeof b) != sizeof b) return "read-failed";
  waitpid(a, NULL, 0);
  for (long waited = 0; waited < ms; waited += 10) {
    if (kill(b, 0) < 0 && errno == ESRCH) return "reaped";
    usleep(10000);
  }
  return "zombie";
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    const char* w = argv[i];
    long r = 0;
    errno = 0;
    if (!strcmp(w, "ptrace")) {
      r = ptrace(PTRACE_TRACEME, 0, 0, 0);
    } else if (!strcmp(w, "mount")) {
      r = mount("none", "/mnt", "tmpfs", 0, NULL);
    } else if (!strcmp(w, "bpf")) {
      union bpf_attr attr;
      memset(&attr, 0, sizeof attr);
      attr.map_type = BPF_MAP_TYPE_ARRAY;
      attr.key_size = 4;
      attr.value_size = 4;
      attr.max_entries = 1;
      r = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    } else if (!strcmp(w, "getpid")) {
      r = syscall(SYS_getpid);
    } else if (!strcmp(w, "x32")) {
#ifdef __x86_64__
      r = syscall(0x40000000 | SYS_getpid);
#else
      r = -1;
      errno = ENOSYS;
#endif
    } else if (!strcmp(w, "personality-linux")) {
      r = personality(PER_LINUX);
    } else if (!strcmp(w, "personality-norandom")) {
      r = personality(PER_LINUX | ADDR_NO_RANDOMIZE);
    } else if (!strcmp(w, "userns")) {
      r = unshare(CLONE_NEWUSER);
    } else if (!strcmp(w, "socket-inet")) {
      r = socket(AF_INET, SOCK_STREAM, 0);
    } else if (!strcmp(w, "socket-unix")) {
      r = socket(AF_UNIX, SOCK_STREAM, 0);
    } else if (!strcmp(w, "clocks")) {
      struct timespec mono, boot;
      clock_gettime(CLOCK_MONOTONIC, &mono);
      clock_gettime(CLOCK_BOOTTIME, &boot);
      printf("clocks %lld %lld\n", (long long)mono.tv_sec, (long long)boot.tv_sec);
      fflush(stdout);
      continue;
    } else if (!strncmp(w, "orphan:", 7)) {
      printf("orphan %s\n", Orphan(atol(w + 7)));
      fflush(stdout);
      continue;
    } else {
      printf("%s unknown\n", w);
      fflush(stdout);
      continue;
    }
    if (r < 0) printf("%s errno=%d\n", w, errno);
    else printf("%s ok\n", w);
    fflush(stdout);
  }
  return 0;
}
`;

/** A temp dir (mode 0755, so that other uids can use what is in it) with the probe compiled in it. */
export function buildProbe(): { dir: string; probe: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-identity-'));
  fs.chmodSync(dir, 0o755);
  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    fs.writeFileSync(path.join(dir, 'probe.c'), PROBE_SOURCE);
    execFileSync('cc', ['-O2', '-o', path.join(dir, 'probe'), path.join(dir, 'probe.c')], { stdio: 'pipe' });
  } catch (e) {
    cleanup();
    throw e;
  }
  return { dir, probe: path.join(dir, 'probe'), cleanup };
}

/** Parses probe output into { probe: 'ok' | 'errno=N' | value }. */
export function probeResults(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.trim().split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) out[line.slice(0, space)] = line.slice(space + 1);
  }
  return out;
}

/** 'errno=<n>' for an errno name, as the probe prints it. */
export function errnoOf(name: keyof typeof os.constants.errno): string {
  return `errno=${os.constants.errno[name]}`;
}

/** The capability and no_new_privs lines of /proc/self/status, as numbers. */
export function statusFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s*(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].trim();
  }
  return out;
}
