#!/bin/busybox sh
# PID 1 of the guest's initramfs (scripts/test-kernels.sh packs it with busybox-static and the
# modules listed in /modules.list, from the unpacked Debian kernel package). It mounts the
# shared tree (virtio-9p, read-only) under a tmpfs overlay and switches to it, where stage2.sh
# mounts /proc, /sys, cgroup2 and /dev and runs the test. Any failure powers the machine off,
# so that the host's qemu returns instead of waiting for its timeout.
/bin/busybox mkdir -p /proc /sys /dev /bin
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
fail() { echo "KERNEL-TEST-INIT-FAILED: $*"; echo o > /proc/sysrq-trigger; sleep 5; exit 1; }
for m in $(cat /modules.list); do
  insmod "/modules/$m" || fail "insmod $m"
done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose shared /lower || fail "mount 9p"
mount -t tmpfs -o size=512m,mode=0755 rw /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "mount overlay"
cp /stage2.sh /newroot/kernel-test-stage2.sh || fail "copy stage2"
cp /test.env /newroot/kernel-test.env || fail "copy test.env"
umount /proc /dev
exec switch_root /newroot /bin/sh /kernel-test-stage2.sh
