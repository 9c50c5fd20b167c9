'use strict';
// The unprivileged half of guest-test.js: run as uid 65534 by it, inside a cgroup v2
// directory delegated to that uid the way systemd's Delegate=yes does (chowned), it checks
// doctor's report and follows doctor's cgroup advice literally. Exits non-zero on a failure.
//   node test/kernels/guest-unprivileged.js <package directory> <delegated cgroup>
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

if (!fs.existsSync('/kernel-test.env')) {
  console.error('guest-unprivileged.js runs only inside the qemu guests of scripts/test-kernels.sh');
  process.exit(2);
}

const [pkg, delegated] = process.argv.slice(2);
const { spawnIsolated, runIsolated, doctor, formatDoctorReport, IsolationError } = require(pkg);
const read = (file) => fs.readFileSync(file, 'utf8');

(async () => {
  assert.equal(process.getuid(), 65534);
  const report = await doctor();
  console.log(formatDoctorReport(report));
  assert.equal(report.cgroups.v2.cgroup, delegated);
  assert.equal(report.cgroups.v2.delegated, true);
  const advice = report.checks.find((c) => c.id === 'cgroups').advice ?? '';
  // The advice: leave the delegated cgroup for a child of it, then pass it as cgroupParent.
  assert.match(advice, /cgroupParent/);
  assert.match(advice, /cgroup\.procs/);

  // Control: as long as this process is in the delegated cgroup itself, cgroup v2 cannot
  // enable controllers for its children (no internal processes): EBUSY, with the way out.
  const options = { command: '/bin/sh', args: ['-c', 'exit 0'], user: true, cgroupParent: delegated, limits: { memory: 48 << 20, pids: 16 } };
  assert.throws(() => spawnIsolated(options), (e) => e instanceof IsolationError && e.code === 'EBUSY' && /cgroup\.procs/.test(e.message));

  // What the advice says: a child cgroup for this process.
  const own = path.join(delegated, 'supervisor');
  fs.mkdirSync(own);
  fs.writeFileSync(path.join(own, 'cgroup.procs'), String(process.pid));
  const fine = await runIsolated(options);
  assert.equal(fine.status, 'ok', fine.stderr);
  assert.ok(fine.memoryPeakBytes > 0);
  const oom = await runIsolated({ ...options, args: ['-c', 'exec tail /dev/zero'] });
  assert.equal(oom.status, 'memory');

  // A user namespace of an unprivileged caller: its own uid as 0 inside, read from outside.
  const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo up; read x'], user: true, pid: true, stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  assert.deepEqual(read(`/proc/${child.pid}/uid_map`).trim().split(/\s+/), ['0', '65534', '1']);
  assert.equal(read(`/proc/${child.pid}/setgroups`).trim(), 'deny');
  child.stdin.end('\n');
  assert.equal((await child).status, 'ok');

  // Nothing left but this process's own cgroup.
  assert.deepEqual(fs.readdirSync(delegated, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name), ['supervisor']);
  console.log('unprivileged: all passed');
})().catch((e) => {
  console.log(`unprivileged: failed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
});
