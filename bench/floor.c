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
 * usage: floor <iterations> [sets] [warmup]
 *   sets    comma-separated namespace sets, default "b":
 *             none  no namespaces
 *             b     pid + net + mount + uts + ipc
 *             c     b + user + cgroup
 *           With several sets the iterations interleave (none b c none b c ...)
 *           so that noise hits every set alike.
 *   warmup  rounds run first and not printed (default 2): they fault in the
 *           stack and the libc paths so the first printed sample is not a cold one.
 *
 * Output: one line per measured spawn, "<set> <total ns> <clone-return ns>".
 *
 * Exit status 0 when every iteration exec'd and exited 0; 1 otherwise, with
 * the reason on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

static char *const child_argv[] = {"/bin/true", NULL};
static char *const child_envp[] = {NULL};

/* Runs in the child, on its own stack, sharing our memory (CLONE_VM) until
 * execve: so it may only make syscalls, and must not return. */
static int child_main(void *arg) {
    (void)arg;
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
    return -1;
}

/* One spawn; returns elapsed ns (and the time clone took in *clone_ns), or -1
 * on failure (reason on stderr). */
static long long spawn_once(char *stack_top, int flags, long long *clone_ns) {
    long long t0 = now_ns();
    pid_t pid = clone(child_main, stack_top, flags, NULL);
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
        fprintf(stderr, "floor: child did not exit 0 (status 0x%x)\n", status);
        return -1;
    }
    return t1 - t0;
}

#define MAX_SETS 8

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor <iterations> [none|b|c[,...]] [warmup]\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    long warmup = argc > 3 ? strtol(argv[3], NULL, 10) : 2;
    if (n < 1 || warmup < 0) {
        fprintf(stderr, "floor: bad arguments\n");
        return 2;
    }

    /* Parse the comma-separated sets. */
    char *names[MAX_SETS];
    int flags[MAX_SETS];
    int nsets = 0;
    char *list = strdup(argc > 2 ? argv[2] : "b");
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int ns = ns_flags(tok);
        if (ns < 0 || nsets == MAX_SETS) {
            fprintf(stderr, "floor: bad set '%s'\n", tok);
            return 2;
        }
        names[nsets] = tok;
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

    long long ignored;
    for (long i = 0; i < warmup; i++)
        for (int s = 0; s < nsets; s++)
            if (spawn_once(stack_top, flags[s], &ignored) < 0) return 1;

    /* Collect first, print after: stdio must not run between the timed spawns. */
    long long *t = calloc((size_t)(n * nsets), sizeof *t);
    long long *c = calloc((size_t)(n * nsets), sizeof *c);
    if (!t || !c) return 1;
    for (long i = 0; i < n; i++)
        for (int s = 0; s < nsets; s++)
            if ((t[i * nsets + s] = spawn_once(stack_top, flags[s], &c[i * nsets + s])) < 0) return 1;
    for (long i = 0; i < n; i++)
        for (int s = 0; s < nsets; s++)
            printf("%s %lld %lld\n", names[s], t[i * nsets + s], c[i * nsets + s]);
    return 0;
}
