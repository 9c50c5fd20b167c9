'use strict';
// The kernel-facing checks that differ by kernel version, cgroup version and architecture,
// run as root inside a qemu guest by scripts/test-kernels.sh (npm run test:kernels): the
// guest is a throwaway machine with a pure cgroup v2 hierarchy, so this program may create
// cgroups, veths and users' processes freely. Everything is asserted from outside the
// sandbox (the host side of the guest). Plain Node (18+), no test framework:
//   node test/kernels/guest-test.js <directory of the nsjail-node package>
// Prints `ok - name` or `not ok - name: reason` per check and `N passed, N failed`.
const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// It changes the machine it runs on (cgroups at the root, a chroot at the end): only in a guest,
// whose stage2.sh leaves this file at its root.
if (!fs.existsSync('/kernel-test.env')) {
  console.error('guest-test.js runs only inside the qemu guests of scripts/test-kernels.sh (npm run test:kernels)');
  process.exit(2);
}

const pkg = path.resolve(process.argv[2] || path.join(__dirname, '..', '..'));
const lib = require(pkg);
const raw = require(path.join(pkg, 'dist', 'syscalls.js'));
const { spawnIsolated, runIsolated, hostSystemMounts, doctor, formatDoctorReport, IsolationError, compileSeccomp } = lib;
// Internal (not exported): a filter compiled for another architecture, for the arch check.
const { compileSeccompFor, nativeSeccompTarget } = require(path.join(pkg, 'dist', 'seccomp.js'));

const CGROOT = '/sys/fs/cgroup';
const ROOTED = { mount: true, pid: true, mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'dev' }, { type: 'tmpfs', target: '/tmp' }] };
const seenCgroups = new Set(); // every sandbox cgroup seen, all checked gone at the end
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sh = (script, extra = {}) => runIsolated({ command: '/bin/sh', args: ['-c', script], ...extra });
const read = (file) => fs.readFileSync(file, 'utf8');
const nsId = (pid, kind) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);
const alive = (pid) => {
  try {
    return !/^\S+ \(.*\) Z/.test(read(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
};

/** The cgroup v2 directory of a live process, read from the host side. */
function cgroupOf(pid) {
  const rel = read(`/proc/${pid}/cgroup`).match(/^0::(.*)$/m)[1];
  const dir = path.join(CGROOT, rel);
  if (path.basename(dir).startsWith('nsjail-')) seenCgroups.add(dir);
  return dir;
}

/** A sandbox that blocks on stdin until `release()`; for reading its state from outside. */
async function held(options) {
  const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo up; read x; echo done'], stdio: ['pipe', 'pipe', 'inherit'], ...options });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', () => reject(new Error('the sandbox exited before it was up')));
  });
  return { child, release: async () => { child.stdin.end('\n'); return child; } };
}

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

// ---------------------------------------------------------------------------------------
check('spawn with every namespace kind: the program is in new pid, net, mnt, uts, ipc, user, cgroup and time namespaces', async () => {
  const { child, release } = await held({ pid: true, net: true, mount: true, uts: true, ipc: true, user: true, cgroup: true, time: true });
  for (const kind of ['pid', 'net', 'mnt', 'uts', 'ipc', 'user', 'cgroup', 'time']) {
    // pid and time apply to children: the program is the child of the sandbox's init.
    assert.notEqual(nsId(child.pid, kind), nsId(process.pid, kind), `${kind} namespace`);
  }
  const status = await (await release());
  assert.equal(status.status, 'ok');
});

for (const engine of ['clone3', 'clone']) {
  check(`clone engine ${engine} (NSJAIL_NODE_CLONE=${engine}): a pid+user sandbox starts and its exit arrives through the pidfd`, async () => {
    process.env.NSJAIL_NODE_CLONE = engine;
    let child;
    try {
      child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'exit 7'], pid: true, user: true, stdio: 'ignore' });
    } finally {
      delete process.env.NSJAIL_NODE_CLONE;
    }
    const fds = fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } });
    assert.ok(fds.includes('anon_inode:[pidfd]'), 'a pidfd is held for the sandbox');
    const status = await child;
    assert.equal(status.exitCode, 7);
    assert.equal(status.status, 'exit');
  });
}

check('clone fallback without clone3: under a filter that answers clone3 with ENOSYS (a kernel before 5.3), a Node process still spawns sandboxes', async () => {
  const script = `const { spawnIsolated } = require(${JSON.stringify(pkg)});
    spawnIsolated({ command: '/bin/sh', args: ['-c', 'exit 4'], pid: true, stdio: 'ignore' }).then((s) => console.log('inner exit ' + s.exitCode));`;
  const noClone3 = { defaultAction: 'allow', rules: [{ syscalls: ['clone3'], action: { errno: 'ENOSYS' } }] };
  // Kept (a root caller's sandbox has none by default): CAP_SYS_ADMIN for the inner PID namespace, CAP_SETPCAP to drop the rest.
  const r = await runIsolated({ command: process.execPath, args: ['-e', script], env: process.env, seccomp: noClone3, capabilities: ['CAP_SYS_ADMIN', 'CAP_SETPCAP'] });
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, 'inner exit 4\n');
  // Control: the filter does refuse clone3 (the engine forced to clone3 fails with ENOSYS).
  const forced = await runIsolated({ command: process.execPath, args: ['-e', script], env: { ...process.env, NSJAIL_NODE_CLONE: 'clone3' }, seccomp: noClone3, capabilities: ['CAP_SYS_ADMIN', 'CAP_SETPCAP'] });
  assert.match(forced.stderr, /ENOSYS/);
});

check('raw layer: unshare(net) and setns back move only this thread; unshare(user) is refused with EINVAL; waitpid', async () => {
  const self = () => fs.readlinkSync(`/proc/self/task/${process.pid}/ns/net`);
  const before = self();
  const fd = fs.openSync('/proc/self/ns/net', 'r');
  try {
    raw.unshare(['net']);
    assert.notEqual(self(), before);
    raw.setns(fd, 'net');
    assert.equal(self(), before);
  } finally {
    fs.closeSync(fd);
  }
  assert.throws(() => raw.unshare(['user']), (e) => e instanceof IsolationError && e.code === 'EINVAL');
  const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'exit 3'], pid: true, stdio: 'ignore' });
  assert.equal((await raw.waitpid(child.pid)).exitCode, 3);
  await assert.rejects(raw.waitpid(1), (e) => e.code === 'ECHILD');
});

check('pivot_root into a tmpfs root with read-only binds (open_tree, mount_setattr, move_mount), an overlay over two host layers, dir/file/chmod modes', async () => {
  const dir = fs.mkdtempSync('/var/tmp/kt-fs-');
  try {
    for (const layer of ['a', 'b']) {
      fs.mkdirSync(path.join(dir, layer));
      fs.writeFileSync(path.join(dir, layer, 'same'), `from ${layer}\n`);
      fs.writeFileSync(path.join(dir, layer, `only-${layer}`), `${layer}\n`);
    }
    fs.mkdirSync(path.join(dir, 'data'));
    const mountsBefore = read('/proc/self/mountinfo');
    const r = await sh(
      'cat /ov/same /ov/only-a /ov/only-b; echo new > /ov/new && cat /ov/new; ' +
      'touch /data/x 2>/dev/null && echo data-writable; test -e /var/tmp && echo host-visible; ' +
      'stat -c %a /made /made/f; echo pid=$$',
      {
        ...ROOTED, readonlyRoot: true,
        mounts: [...ROOTED.mounts, { type: 'overlay', target: '/ov', lower: [path.join(dir, 'a'), path.join(dir, 'b')] },
          { type: 'bind', source: path.join(dir, 'data'), target: '/data', readonly: true },
          // Modes set on the resolved descriptor: by fchmodat2 from 6.6, before that through it.
          { type: 'dir', target: '/made', mode: 0o711 }, { type: 'file', target: '/made/f', content: 'f', mode: 0o640 },
          { type: 'chmod', target: '/made/f', mode: 0o604 }],
      },
    );
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, 'from a\na\nb\nnew\n711\n604\npid=1\n');
    assert.equal(r.status, 'ok');
    // From outside: the layers are unchanged, the bind got nothing, no mount reached the host.
    assert.deepEqual(fs.readdirSync(path.join(dir, 'a')).sort(), ['only-a', 'same']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'data')), []);
    assert.equal(read('/proc/self/mountinfo'), mountsBefore);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

check('an overlay with a private upper layer inside a user namespace (userxattr) on a host id', async () => {
  const dir = fs.mkdtempSync('/var/tmp/kt-ovu-');
  try {
    // Host root's files are nobody's inside: a new file in a directory anyone may write.
    fs.chmodSync(dir, 0o777);
    fs.writeFileSync(path.join(dir, 'file'), 'lower\n', { mode: 0o644 });
    const r = await sh('cat /ov/file; echo new > /ov/new && cat /ov/new; id -u', {
      ...ROOTED, user: true, mounts: [...ROOTED.mounts, { type: 'overlay', target: '/ov', lower: [dir] }],
    });
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, 'lower\nnew\n0\n');
    assert.deepEqual(fs.readdirSync(dir), ['file']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

check('user namespace as root: uid/gid maps written by the parent, read from outside', async () => {
  const { child, release } = await held({ user: true, pid: true, uidMap: [{ inside: 0, outside: 200000, count: 1000 }], gidMap: [{ inside: 0, outside: 200000, count: 1000 }] });
  assert.deepEqual(read(`/proc/${child.pid}/uid_map`).trim().split(/\s+/), ['0', '200000', '1000']);
  assert.deepEqual(read(`/proc/${child.pid}/gid_map`).trim().split(/\s+/), ['0', '200000', '1000']);
  assert.match(read(`/proc/${child.pid}/status`), /^Uid:\s+200000\s+200000\s+200000\s+200000$/m);
  assert.equal((await (await release())).status, 'ok');
});

check('seccomp: a rule by name from the syscall table gives its errno (control: none without the filter)', async () => {
  const script = 'mkdir /tmp/kt-seccomp-dir 2>&1; echo rc=$?';
  const control = await sh(script, ROOTED);
  assert.equal(control.stdout, 'rc=0\n');
  const denied = await sh(script, { ...ROOTED, seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['mkdir', 'mkdirat'], action: { errno: 'EXDEV' } }] } });
  assert.match(denied.stdout, /cross-device link\nrc=1\n$/i);
  const target = nativeSeccompTarget();
  assert.equal(target.arch, process.arch === 'arm64' ? 'aarch64' : 'x86_64');
  assert.equal(typeof compileSeccomp, 'function');
});

check(`seccomp architecture check on ${os.machine ? os.machine() : process.arch}: a filter of another architecture sees every call as foreign (SIGSYS), the native one allows`, async () => {
  const native = nativeSeccompTarget();
  const other = native.arch === 'aarch64'
    ? { ...native, arch: 'x86_64', auditArch: 0xc000003e, x32Bit: 0x40000000 }
    : { ...native, arch: 'aarch64', auditArch: 0xc00000b7, x32Bit: 0 };
  const ok = await sh('echo fine', { seccomp: { bpf: compileSeccompFor({ defaultAction: 'allow' }, native, 'test') } });
  assert.equal(ok.stdout, 'fine\n');
  const foreign = await sh('echo fine', { seccomp: { bpf: compileSeccompFor({ defaultAction: 'allow' }, other, 'test') } });
  assert.equal(foreign.signal, 'SIGSYS');
  assert.equal(foreign.stdout, '');
  const preset = await sh('echo preset', { ...ROOTED, seccomp: lib.seccompPresets.sandboxDefault });
  assert.equal(preset.stdout, 'preset\n');
});

check('time namespace: offsets seen inside (/proc/uptime) and in /proc/PID/timens_offsets from outside', async () => {
  const { child, release } = await held({ time: true, pid: true, mount: true, mounts: ROOTED.mounts, timeOffsets: { boottime: 100000, monotonic: 50000 } });
  const offsets = read(`/proc/${child.pid}/timens_offsets`);
  assert.match(offsets, /^monotonic\s+50000\s+0$/m);
  assert.match(offsets, /^boottime\s+100000\s+0$/m);
  await release();
  const r = await sh('cut -d" " -f1 /proc/uptime', { time: true, pid: true, mount: true, mounts: ROOTED.mounts, timeOffsets: { boottime: 100000 } });
  assert.ok(Number(r.stdout) >= 100000, `uptime inside ${r.stdout}`);
  assert.ok(os.uptime() < 100000);
});

// ---------------------------------------------------------------------------------------
// cgroup v2, as root under the default parent /sys/fs/cgroup/nsjail-node

check('cgroup v2 memory.max: an OOM kill is reported as status memory, with memory.peak in the accounting', async () => {
  const limit = 48 * 1024 * 1024;
  const { child, release } = await held({ pid: true, limits: { memory: limit } });
  const dir = cgroupOf(child.pid);
  assert.equal(read(path.join(dir, 'memory.max')).trim(), String(limit));
  // No swap beyond the limit unless memorySwap says so (Debian's kernels account swap).
  assert.equal(read(path.join(dir, 'memory.swap.max')).trim(), '0');
  await release();
  const r = await sh('exec tail /dev/zero', { pid: true, limits: { memory: limit } });
  assert.equal(r.status, 'memory');
  assert.equal(r.oomKilled, true);
  assert.equal(r.signal, 'SIGKILL');
  assert.equal(typeof r.memoryPeakBytes, 'number');
  assert.ok(r.memoryPeakBytes > limit / 2 && r.memoryPeakBytes <= limit + 4096, `memory.peak ${r.memoryPeakBytes}`);
  const fine = await sh('exit 0', { limits: { memory: limit } });
  assert.equal(fine.status, 'ok');
  assert.equal(fine.oomKilled, false);
  assert.ok(fine.memoryPeakBytes > 0);
});

check('cgroup v2 pids.max: a fork beyond the limit fails and is reported (control: no hit without it)', async () => {
  const script = 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done 2>/dev/null; wait; exit 0';
  const { child, release } = await held({ limits: { pids: 4 } });
  assert.equal(read(path.join(cgroupOf(child.pid), 'pids.max')).trim(), '4');
  await release();
  const limited = await sh(script, { pid: true, limits: { pids: 4 } });
  assert.equal(limited.pidsLimitHit, true);
  const control = await sh(script, { pid: true, limits: { pids: 64 } });
  assert.equal(control.pidsLimitHit, false);
});

check('cgroup v2 cpu.max: a busy loop under limits.cpu 0.1 is throttled (cpu.stat nr_throttled, read from outside)', async () => {
  const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'while :; do :; done'], pid: true, stdio: 'ignore', limits: { cpu: 0.1 } });
  try {
    const dir = cgroupOf(child.pid);
    assert.equal(read(path.join(dir, 'cpu.max')).trim(), '10000 100000');
    let stat;
    for (let i = 0; i < 100; i++) {
      stat = Object.fromEntries(read(path.join(dir, 'cpu.stat')).trim().split('\n').map((l) => l.split(' ')));
      if (Number(stat.nr_throttled) >= 3) break;
      await sleep(100);
    }
    assert.ok(Number(stat.nr_throttled) >= 3 && Number(stat.throttled_usec) > 0, `cpu.stat ${JSON.stringify(stat)}`);
  } finally {
    child.kill('SIGKILL');
  }
  const status = await child;
  assert.equal(status.signal, 'SIGKILL');
  assert.ok(status.cpuTimeMs > 0);
});

check('cgroup v2 cgroup.kill ends a process that left the process group and session (control: without a cgroup it survives)', async () => {
  const escape = 'setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; read x';
  const run = async (options) => {
    const child = spawnIsolated({ command: '/bin/sh', args: ['-c', escape], stdio: ['pipe', 'pipe', 'inherit'], ...options });
    const escaped = Number(await new Promise((resolve) => child.stdout.once('data', (d) => resolve(String(d).trim()))));
    // setsid has run once the escaped process is in its own session.
    for (let i = 0; i < 100 && read(`/proc/${escaped}/stat`).split(') ')[1].split(' ')[4] !== String(escaped); i++) await sleep(20);
    if (options.limits) cgroupOf(escaped);
    child.kill('SIGKILL');
    await child;
    return escaped;
  };
  const control = await run({});
  try {
    assert.ok(alive(control), 'without a cgroup the escaped process survives the kill');
  } finally {
    process.kill(control, 'SIGKILL');
  }
  const contained = await run({ limits: { pids: 32 } });
  for (let i = 0; i < 100 && alive(contained); i++) await sleep(20);
  assert.ok(!alive(contained), 'the escaped process is gone with the cgroup');
});

check('cgroup: true with limits under nsdelegate: the program sees its own cgroup as the root, the host sees the sandbox leaf', async () => {
  const { child, release } = await held({ cgroup: true, pid: true, mount: true, mounts: ROOTED.mounts, limits: { pids: 16 } });
  const dir = cgroupOf(child.pid);
  assert.match(path.basename(dir), /^nsjail-/);
  assert.notEqual(nsId(child.pid, 'cgroup'), nsId(process.pid, 'cgroup'));
  await release();
  const r = await sh('cat /proc/self/cgroup', { cgroup: true, pid: true, mount: true, mounts: ROOTED.mounts, limits: { pids: 16 } });
  assert.equal(r.stdout, '0::/\n');
});

check('every sandbox cgroup made so far is removed, and the default parent with them', async () => {
  assert.ok(seenCgroups.size >= 4, `saw ${seenCgroups.size} cgroups`);
  for (const dir of seenCgroups) assert.ok(!fs.existsSync(dir), `${dir} is left`);
  assert.ok(!fs.existsSync(path.join(CGROOT, lib.DEFAULT_CGROUP_PARENT)), 'the default parent is left');
});

// ---------------------------------------------------------------------------------------

check('veth with IPv4 and IPv6: the sandbox reaches a server on the host end over both', async () => {
  const got = [];
  const server = net.createServer((s) => s.on('data', (d) => { got.push(`${s.remoteAddress} ${String(d).trim()}`); s.end(); }));
  await new Promise((r) => server.listen(0, '::', r));
  const port = server.address().port;
  try {
    const send = (addr, text) => `for i in 1 2 3 4 5 6 7 8 9 10; do echo ${text} | busybox nc -w 3 ${addr} ${port} && break; sleep 0.5; done`;
    const r = await sh(`${send('10.231.0.1', 'v4')}; ${send('fd00:231::1', 'v6')}; ip -o addr 2>/dev/null || busybox ip -o addr`, {
      net: true, pid: true,
      veth: { hostName: 'kt-veth0', hostAddress: '10.231.0.1/24', sandboxAddress: '10.231.0.2/24', ipv6: { host: 'fd00:231::1/64', sandbox: 'fd00:231::2/64' } },
    });
    assert.equal(r.status, 'ok', r.stderr);
    assert.deepEqual(got.sort(), ['::ffff:10.231.0.2 v4', 'fd00:231::2 v6']);
    assert.ok(!os.networkInterfaces()['kt-veth0'], 'the host end is removed with the sandbox');
  } finally {
    server.close();
  }
});

check('runIsolated statuses: ok, exit, signal, timeout, maxBuffer', async () => {
  assert.equal((await sh('exit 0')).status, 'ok');
  const exit = await sh('exit 5');
  assert.deepEqual([exit.status, exit.exitCode], ['exit', 5]);
  // Not as PID 1 of a PID namespace, which ignores signals it has no handler for.
  const signal = await sh('kill -TERM $$');
  assert.deepEqual([signal.status, signal.signal], ['signal', 'SIGTERM']);
  const timeout = await sh('sleep 30', { pid: true, timeout: 500 });
  assert.deepEqual([timeout.status, timeout.killedBy], ['timeout', 'timeout']);
  const big = await sh('head -c 100000 /dev/zero', { maxBuffer: 1000, encoding: 'buffer' });
  assert.deepEqual([big.status, big.killedBy, big.stdout.length], ['signal', 'maxBuffer', 1000]);
});

check('doctor on this kernel: cgroup v2 with memory, pids and cpu, clone3 and clone, every namespace', async () => {
  const r = await doctor();
  console.log(formatDoctorReport(r).replace(/^(?=.)/gm, '    '));
  assert.equal(r.host.kernel, os.release());
  assert.equal(r.cgroups.mode, 'v2');
  for (const c of ['memory', 'pids', 'cpu']) assert.ok(r.cgroups.v2.controllers.includes(c), c);
  assert.equal(r.cgroups.limits.works, true);
  assert.equal(r.cgroups.socketMemory, 'v2');
  assert.equal(r.clone.clone3.works, true);
  assert.equal(r.clone.clone.works, true);
  for (const [kind, attempt] of Object.entries(r.namespaces)) assert.equal(attempt.works, true, kind);
  assert.ok(r.checks.every((c) => c.level !== 'fail'), JSON.stringify(r.checks.filter((c) => c.level === 'fail')));
});

check('unprivileged (uid 65534) in a delegated cgroup v2 subtree, as doctor advises: user namespace maps, limits under cgroupParent', async () => {
  // What systemd's Delegate=yes does: the unit's cgroup and its control files chowned to the user.
  // And the controllers enabled above it, as systemd enables them for user@.service
  // (the root sandboxes above have enabled them too; this keeps the check independent).
  const delegated = path.join(CGROOT, 'kt-delegated');
  fs.writeFileSync(path.join(CGROOT, 'cgroup.subtree_control'), '+cpu +memory +pids');
  fs.mkdirSync(delegated);
  try {
    for (const f of ['', 'cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads']) fs.chownSync(path.join(delegated, f), 65534, 65534);
    const script = path.join(__dirname, 'guest-unprivileged.js');
    const r = childProcess.spawnSync('/bin/sh', ['-c', `echo $$ > ${delegated}/cgroup.procs && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$0" "$@"`,
      process.execPath, script, pkg, delegated], { encoding: 'utf8', timeout: 300_000, cwd: '/' });
    process.stdout.write(r.stdout.replace(/^(?=.)/gm, '    '));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^unprivileged: all passed$/m);
  } finally {
    for (const entry of fs.readdirSync(delegated, { withFileTypes: true })) if (entry.isDirectory()) fs.rmdirSync(path.join(delegated, entry.name));
    fs.rmdirSync(delegated);
  }
});

check('raw layer chroot (last: it changes the root of this whole process)', async () => {
  const dir = fs.mkdtempSync('/tmp/kt-chroot-');
  fs.writeFileSync(path.join(dir, 'inside-the-chroot'), '');
  raw.chroot(dir);
  assert.ok(fs.existsSync('/inside-the-chroot'));
  assert.ok(!fs.existsSync('/proc/self'));
});

(async () => {
  let passed = 0;
  let failed = 0;
  // KERNEL_TEST_ONLY=regex runs only the checks whose names match (for a hand-run guest).
  const only = process.env.KERNEL_TEST_ONLY ? new RegExp(process.env.KERNEL_TEST_ONLY) : undefined;
  for (const { name, fn } of checks.filter((c) => !only || only.test(c.name))) {
    const start = Date.now();
    try {
      await fn();
      passed++;
      console.log(`ok - ${name} (${Date.now() - start} ms)`);
    } catch (e) {
      failed++;
      console.log(`not ok - ${name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  console.log(`${os.release()} ${process.arch}: ${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
})();
