#!/bin/sh
# PID 1 after switch_root, on the overlay over the shared tree: the mounts of a normal
# systemd-less host with a pure cgroup v2 hierarchy, then the test program
# (test/kernels/guest-test.js), its exit status printed for the host, and a power-off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# nsdelegate, as systemd mounts it: cgroup namespaces are delegation boundaries.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
. /kernel-test.env
# The guest's /tmp is a tmpfs of its own; a checkout under the host's /tmp (a CI clone, say)
# is bound back at the same path over it, since the build's paths are absolute.
case $TEST_DIR in
  /tmp/*) mkdir -p /kernel-test-project && mount --bind "$TEST_DIR" /kernel-test-project ;;
esac
mount -t tmpfs -o mode=1777 tmpfs /tmp
if [ -d /kernel-test-project ]; then
  mkdir -p "$TEST_DIR" && mount --bind /kernel-test-project "$TEST_DIR"
fi
mount -t tmpfs -o mode=0755 tmpfs /run
ip link set lo up 2>/dev/null || busybox ip link set lo up
hostname kernel-test
echo "KERNEL-TEST-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r) machine=$(uname -m)"
# The CPU features the guest's programs see (glibc picks its SVE string functions by them).
echo "KERNEL-TEST-CPU: $(grep -m 1 -i '^features' /proc/cpuinfo | cut -d: -f2)"
cd "$TEST_DIR" || { echo "KERNEL-TEST-RC=98"; echo o > /proc/sysrq-trigger; sleep 5; exit 1; }
# Unhandled faults logged (the default on x86_64; arm64 reads the same switch).
echo 1 >/proc/sys/debug/exception-trace 2>/dev/null || true
# and a core file of a test program that dies of a signal, for guest-core.js below.
echo /tmp/core.%p >/proc/sys/kernel/core_pattern
ulimit -c unlimited
# Also of a process whose ids changed (the addon's host ids make Node non-dumpable for a while).
echo 1 >/proc/sys/fs/suid_dumpable
start=$(cut -d' ' -f1 /proc/uptime)
# Orphans of the tests are reparented to this shell, whose wait reaps them.
timeout -s KILL "$TEST_TIMEOUT" $TEST_COMMAND &
wait $!
rc=$?
echo "KERNEL-TEST-RUNTIME start=$start end=$(cut -d' ' -f1 /proc/uptime)"
# A test program that died of a signal: the kernel's account of it (arm64 and x86_64 log
# unhandled faults with the PC, the mapping it fell in and the registers).
if [ "$rc" -ne 0 ]; then
  dmesg | grep -A 40 -e 'unhandled' -e 'traps:' -e 'segfault at' | head -n 80 | sed 's/^/KERNEL-TEST-DMESG: /'
  for core in /tmp/core.*; do
    [ -e "$core" ] && node "$TEST_DIR/test/kernels/guest-core.js" "$core" 2>&1 | sed 's/^/KERNEL-TEST-CORE: /'
  done
fi
echo "KERNEL-TEST-RC=$rc"
sync
echo o > /proc/sysrq-trigger
sleep 10
