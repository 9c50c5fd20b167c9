/*
 * floor.c: the kernel's floor for "spawn /bin/true in fresh namespaces".
 *
 * Does raw clone(2) + execve(2) + waitpid(2) in a loop and prints one line per
 * measured iteration: the wall time in nanoseconds from just before clone to
 * just after waitpid returned, and from just before clone to clone's return
 * (with CLONE_VFORK that is when the child has exec'd: the part of a spawn that
 * a synchronous spawn call cannot avoid blocking for). Nothing else happens in between, so no library
 * can do the same work faster: every other variant in the benchmark is
 * reported as a ratio to this number.
 *
 * It uses the same clone flags as spawnIsolated (CLONE_VM | CLONE_VFORK plus
 * the namespace flags), with its own mmap'd stack, so the comparison is the
 * work the kernel must do, not a different strategy.
 *
 * usage: floor <iterations> [sets] [warmup] [args] [vars]
 *   sets    comma-separated namespace sets, default "b":
 *             none  no namespaces
 *             b     pid + net + mount + uts + ipc
 *             c     b + user + cgroup
 *             bp    b, and the child first does in raw system calls what
 *                   spawnIsolated's child does by default for (b) (see
 *                   policy_steps): the cost of that set-up in the kernel, so that
 *                   spawnIsolated(b) / bp is the library's own overhead. Needs root.
 *                   The seccomp filters that set-up installs (net: true's socket-family
 *                   filter) are the library's own programs: FLOOR_SECCOMP names files
 *                   of raw struct sock_filter arrays, colon-separated, which bp
 *                   installs in that order (the bench writes them from the library's
 *                   plan for (b)); without it bp installs none.
 *           With several sets the iterations interleave (none b c none b c ...)
 *           so that noise hits every set alike.
 *   warmup  rounds run first and not printed (default 2): they fault in the
 *           stack and the libc paths so the first printed sample is not a cold one.
 *   args    arguments after argv[0], "arg-%08d" (12 bytes each, as the bench's
 *           argv rows give spawnIsolated), default 0
 *   vars    environment variables "BENCH_VAR_<i>=value-<i>" (as the bench's env
 *           rows), default 0: an empty environment. The kernel copies argv and
 *           envp into the new program at every execve: that copy is in the floor.
 *
 * FLOOR_PROGRAM, if set, is run instead of /bin/true (the breakdown section's
 * bench/stamp.c).
 *
 * Output: one line per measured spawn, "<set> <total ns> <clone-return ns> <start>":
 * <start> is CLOCK_MONOTONIC in ns just before clone, to line the spawn up with the
 * times its program reports (bench/stamp.c).
 *
 * Exit status 0 when every iteration exec'd and exited 0; 1 otherwise, with
 * the reason on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

static char *default_argv[] = {"/bin/true", NULL};
static char *const default_envp[] = {NULL};
static char *const *child_argv = default_argv;
static char *const *child_envp = default_envp;

/* n strings made by fmt from their index, after `first` if given; NULL-terminated. */
static char **make_strings(const char *first, long n, int pairs) {
    char **list = calloc((size_t)n + 2, sizeof *list);
    if (!list) return NULL;
    long at = 0;
    if (first) list[at++] = (char *)first;
    for (long i = 0; i < n; i++) {
        char buf[64];
        if (pairs) snprintf(buf, sizeof buf, "BENCH_VAR_%ld=value-%ld", i, i);
        else snprintf(buf, sizeof buf, "arg-%08ld", i);
        if (!(list[at++] = strdup(buf))) return NULL;
    }
    return list;
}

#define MAX_FILTERS 4
/* The seccomp programs bp installs (FLOOR_SECCOMP), read before the first spawn. */
static struct sock_fprog filters[MAX_FILTERS];
static int nfilters;

/* Reads FLOOR_SECCOMP's files into filters[]; 0, or -1 with the reason on stderr. */
static int load_filters(void) {
    const char *list = getenv("FLOOR_SECCOMP");
    if (!list || !*list) return 0;
    char *copy = strdup(list);
    for (char *file = strtok(copy, ":"); file; file = strtok(NULL, ":")) {
        FILE *f = fopen(file, "rb");
        if (!f || nfilters == MAX_FILTERS) {
            fprintf(stderr, "floor: FLOOR_SECCOMP: %s: %s\n", file, f ? "too many filters" : strerror(errno));
            return -1;
        }
        struct sock_filter *prog = malloc(4096 * sizeof *prog);
        size_t n = prog ? fread(prog, sizeof *prog, 4096, f) : 0;
        fclose(f);
        if (n == 0) {
            fprintf(stderr, "floor: FLOOR_SECCOMP: %s: empty or unreadable\n", file);
            return -1;
        }
        filters[nfilters].len = (unsigned short)n;
        filters[nfilters].filter = prog;
        nfilters++;
    }
    return 0;
}

/* A pidfd of this process: the child checks it after arming its parent-death signal. */
static int self_pidfd = -1;

/* As src-native/child.cc arms the death signal: then a look at whether the parent died
 * before (its pidfd readable, or getppid changed). */
static int arm_death_signal(void) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) return -1;
    struct pollfd p = {self_pidfd, POLLIN, 0};
    struct timespec now = {0, 0};
    if (syscall(SYS_ppoll, &p, 1, &now, NULL, 0) != 0) return -1;
    (void)getppid();
    return 0;
}

/* The set-up spawnIsolated's child makes by default for (b), in the same order
 * (src-native/child.cc and its steps): signal dispositions reset for the signals
 * /proc/self/status lists as ignored or caught, parent-death signal, new session,
 * stdio on /dev/null, every other fd close-on-exec, mounts private, lo up, every
 * capability dropped (bounding set included), the death signal armed again (after a
 * credential change), no_new_privs, once more before the seccomp filters, signal mask
 * cleared. Returns 0, or -1 when a step failed. */
static int policy_steps(int dev_null) {
    char text[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return -1;
    text[n] = '\0';
    unsigned long long mask = 0;
    const char *at = strstr(text, "\nSigIgn:");
    if (at) mask = strtoull(at + 8, NULL, 16);
    at = strstr(text, "\nSigCgt:");
    if (at) mask |= strtoull(at + 8, NULL, 16);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP && (mask & (1ULL << (sig - 1)))) sigaction(sig, &dfl, NULL);
    if (arm_death_signal() < 0 || setsid() < 0) return -1;
    for (int i = 0; i < 3; i++)
        if (dup2(dev_null, i) < 0) return -1;
    if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) < 0) return -1;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return -1;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) return -1;
    close(sock);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    if (syscall(SYS_capget, &header, caps) < 0 || syscall(SYS_capset, &header, caps) < 0) return -1;
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break;
            return -1;
        }
    memset(caps, 0, sizeof caps);
    if (syscall(SYS_capset, &header, caps) < 0) return -1;
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return -1;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return -1;
    if (arm_death_signal() < 0) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    if (arm_death_signal() < 0) return -1;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int i = 0; i < nfilters; i++)
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filters[i]) < 0) return -1;
    sigprocmask(SIG_SETMASK, &none, NULL);
    return 0;
}

/* Runs in the child, on its own stack, sharing our memory (CLONE_VM) until
 * execve: so it may only make syscalls, and must not return. arg: the /dev/null
 * fd for policy_steps, or NULL for none. */
static int child_main(void *arg) {
    if (arg && policy_steps(*(int *)arg) < 0) _exit(126);
    execve(child_argv[0], child_argv, child_envp);
    _exit(127);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int ns_flags(const char *set) {
    const int b = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
    if (strcmp(set, "none") == 0) return 0;
    if (strcmp(set, "b") == 0) return b;
    if (strcmp(set, "c") == 0) return b | CLONE_NEWUSER | CLONE_NEWCGROUP;
    if (strcmp(set, "bp") == 0) return b;
    return -1;
}

/* One spawn; returns elapsed ns (and the time clone took in *clone_ns), or -1
 * on failure (reason on stderr). */
static long long spawn_once(char *stack_top, int flags, int policy, long long *clone_ns, long long *start_ns) {
    long long t0 = now_ns();
    *start_ns = t0;
    /* With the set-up, also what spawnIsolated's parent does around clone: /dev/null
     * opened for the child's stdio, every signal blocked until clone returns. */
    int dev_null = -1;
    sigset_t all, saved;
    if (policy) {
        dev_null = open("/dev/null", O_RDWR | O_CLOEXEC);
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, &saved);
    }
    pid_t pid = clone(child_main, stack_top, flags, policy ? &dev_null : NULL);
    if (policy) {
        sigprocmask(SIG_SETMASK, &saved, NULL);
        close(dev_null);
    }
    *clone_ns = now_ns() - t0;
    if (pid < 0) {
        fprintf(stderr, "floor: clone: %s\n", strerror(errno));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "floor: waitpid: %s\n", strerror(errno));
            return -1;
        }
    }
    long long t1 = now_ns();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floor: child did not exit 0 (status 0x%x%s)\n", status,
                WIFEXITED(status) && WEXITSTATUS(status) == 126 ? ": a set-up step of bp failed (bp needs root)" : "");
        return -1;
    }
    return t1 - t0;
}

#define MAX_SETS 8

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor <iterations> [none|b|c|bp[,...]] [warmup] [args] [vars]\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    long warmup = argc > 3 ? strtol(argv[3], NULL, 10) : 2;
    long nargs = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
    long nvars = argc > 5 ? strtol(argv[5], NULL, 10) : 0;
    if (n < 1 || warmup < 0 || nargs < 0 || nvars < 0) {
        fprintf(stderr, "floor: bad arguments\n");
        return 2;
    }

    if (load_filters() < 0) return 1;
    self_pidfd = (int)syscall(434 /* SYS_pidfd_open */, getpid(), 0);
    const char *program = getenv("FLOOR_PROGRAM");
    if (program && *program) default_argv[0] = (char *)program;
    if (nargs > 0 && !(child_argv = make_strings(default_argv[0], nargs, 0))) return 1;
    if (nvars > 0 && !(child_envp = make_strings(NULL, nvars, 1))) return 1;

    /* Parse the comma-separated sets. */
    char *names[MAX_SETS];
    int flags[MAX_SETS];
    int policy[MAX_SETS];
    int nsets = 0;
    char *list = strdup(argc > 2 ? argv[2] : "b");
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int ns = ns_flags(tok);
        if (ns < 0 || nsets == MAX_SETS) {
            fprintf(stderr, "floor: bad set '%s'\n", tok);
            return 2;
        }
        names[nsets] = tok;
        policy[nsets] = strcmp(tok, "bp") == 0;
        /* CLONE_VM | CLONE_VFORK as glibc's posix_spawn and spawnIsolated do: no
         * page table copy, and we sleep until the child has exec'd. SIGCHLD so that
         * a plain waitpid reaps it. */
        flags[nsets] = CLONE_VM | CLONE_VFORK | SIGCHLD | ns;
        nsets++;
    }

    /* Its own stack with a guard page below it: the child runs on it until execve. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, STACK_SIZE + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        perror("floor: mmap");
        return 1;
    }
    if (mprotect(map, page, PROT_NONE) != 0) {
        perror("floor: mprotect");
        return 1;
    }
    char *stack_top = map + page + STACK_SIZE;

    /* Node ignores these two from its start: the set-up resets them, as it does in Node. */
    for (int s = 0; s < nsets; s++)
        if (policy[s]) {
            signal(SIGPIPE, SIG_IGN);
            signal(SIGXFSZ, SIG_IGN);
        }

    long long ignored, ignored_start;
    for (long i = 0; i < warmup; i++)
        for (int s = 0; s < nsets; s++)
            if (spawn_once(stack_top, flags[s], policy[s], &ignored, &ignored_start) < 0) return 1;

    /* Collect first, print after: stdio must not run between the timed spawns. */
    long long *t = calloc((size_t)(n * nsets), sizeof *t);
    long long *c = calloc((size_t)(n * nsets), sizeof *c);
    long long *st = calloc((size_t)(n * nsets), sizeof *st);
    if (!t || !c || !st) return 1;
    for (long i = 0; i < n; i++)
        for (int s = 0; s < nsets; s++) {
            long k = i * nsets + s;
            if ((t[k] = spawn_once(stack_top, flags[s], policy[s], &c[k], &st[k])) < 0) return 1;
        }
    for (long i = 0; i < n; i++)
        for (int s = 0; s < nsets; s++)
            printf("%s %lld %lld %lld\n", names[s], t[i * nsets + s], c[i * nsets + s], st[i * nsets + s]);
    return 0;
}
