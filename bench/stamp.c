/*
 * stamp.c: the program the bench's breakdown section starts instead of /bin/true.
 *
 * It appends two CLOCK_MONOTONIC readings in ns (when its main began, and just before it
 * exits) as two native 64-bit integers to "<argv[0]>.stamps", which the bench truncates
 * before each spawn. With the spawner's own readings (before the spawn call, when the
 * call returned, when the exit was known) they split a spawn into: the set-up until
 * exec, the kernel's exec and the dynamic loader until main, the program, and the
 * exit's way back to the spawner.
 *
 * Exit status 0, or 1 when the file cannot be written.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long long stamps[2];
    stamps[0] = now_ns();
    (void)argc;
    char path[4096];
    if (snprintf(path, sizeof path, "%s.stamps", argv[0]) >= (int)sizeof path) return 1;
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return 1;
    stamps[1] = now_ns();
    if (write(fd, stamps, sizeof stamps) != (ssize_t)sizeof stamps) return 1;
    return 0;
}
