/**
 * join.user with new mount, UTS, IPC and network namespaces (bubblewrap's --userns with a
 * mount plan): they are unshared after the join, so the joined user namespace owns them.
 */
import * as fs from 'node:fs';
import { spawnIsolated, type IsolatedProcess } from '../lib';
import { validateOptions } from '../lib/options';
import { compilePlan } from '../lib/plan';
import { binding } from '../lib/binding';
import { hostMountinfo, makeTempDir, sh } from './helpers';

/** A sandbox in a new user and PID namespace that waits, and what its namespaces are. */
async function holder(): Promise<{ child: IsolatedProcess; ns: Record<string, string> }> {
  const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo ready; exec sleep 60'], user: true, pid: true, stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
  const ns: Record<string, string> = {};
  for (const kind of ['user', 'pid', 'mnt']) ns[kind] = fs.readlinkSync(`/proc/${child.pid}/ns/${kind}`);
  return { child, ns };
}

test('namespaces given as /proc/self/fd/N are joined, and the new mount and UTS namespaces made after the user join; control: without join.user the user namespace is the host\'s', async () => {
  const before = hostMountinfo();
  const { child, ns } = await holder();
  const userFd = fs.openSync(`/proc/${child.pid}/ns/user`, 'r');
  const pidFd = fs.openSync(`/proc/${child.pid}/ns/pid`, 'r');
  try {
    const script = 'for k in user pid mnt; do readlink /proc/self/ns/$k; done; hostname; id -u; echo x > /tmp/f && cat /tmp/f';
    const options = {
      mount: true, uts: true, hostname: 'joined',
      mounts: [{ type: 'bind' as const, source: '/', target: '/' }, { type: 'tmpfs' as const, target: '/tmp' }],
    };
    const r = await sh(script, { ...options, join: { user: `/proc/self/fd/${userFd}`, pid: `/proc/self/fd/${pidFd}` } });
    expect(r.stderr).toBe('');
    const [user, pid, mnt, hostname, uid, written] = r.stdout.trim().split('\n');
    expect([user, pid]).toEqual([ns.user, ns.pid]);
    expect(mnt).not.toBe(ns.mnt);
    expect(mnt).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'));
    // Root of the joined namespace, which mapped its own root.
    expect([hostname, uid, written]).toEqual(['joined', '0', 'x']);

    const control = await sh('readlink /proc/self/ns/user', options);
    expect(control.stdout.trim()).toBe(fs.readlinkSync('/proc/self/ns/user'));
    expect(control.stdout.trim()).not.toBe(ns.user);
    expect(hostMountinfo()).toBe(before);
  } finally {
    fs.closeSync(userFd);
    fs.closeSync(pidFd);
    child.kill('SIGKILL');
    await child.exited;
  }
});

test('the plan: the user namespace joined, then the new namespaces unshared and its root\'s ids taken, before the mount plan', () => {
  const labels = compilePlan(validateOptions({ command: '/bin/true', mount: true, net: true, join: { user: 7 } })).labels.map((l) => l.step);
  const at = (name: string): number => labels.indexOf(name);
  expect(at('join-user')).toBeGreaterThanOrEqual(0);
  expect(at('namespaces-in-joined-user')).toBe(at('join-user') + 1);
  expect(at('ids-in-joined-user')).toBeGreaterThan(at('namespaces-in-joined-user'));
  expect(at('make-private')).toBeGreaterThan(at('ids-in-joined-user'));
  const plan = compilePlan(validateOptions({ command: '/bin/true', mount: true, net: true, join: { user: 7 } }));
  const { CLONE_NEWNS, CLONE_NEWNET } = binding.constants;
  expect(plan.native.cloneFlags & (CLONE_NEWNS | CLONE_NEWNET)).toBe(0);
  expect(plan.native.steps.find((s) => s.op === 'unshare')?.flags).toBe(CLONE_NEWNS | CLONE_NEWNET);
  // What cannot be made after the join is still refused by name.
  expect(() => spawnIsolated({ command: '/bin/true', cgroup: true, join: { user: 1 } })).toThrow(/options.join.user cannot be combined with new namespaces \(cgroup: true\)/);
});

test('join.userAfterSetup: the program starts in a user namespace nested in the joined one, entered after the mounts; control: without it, the joined one', async () => {
  // A sandbox whose shell stays in its user namespace while a child runs in a nested one
  // (mapping root there needs CAP_SETFCAP in the parent namespace: Linux 5.12+).
  const outer = spawnIsolated({
    command: '/bin/sh', args: ['-c', 'unshare --user --map-root-user sleep 60 & sleep 0.2; echo ready; wait'],
    user: true, capabilities: ['CAP_SETFCAP'], stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    await new Promise<void>((resolve) => outer.stdout?.once('data', () => resolve()));
    const inner = Number(fs.readFileSync(`/proc/${outer.pid}/task/${outer.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    const nested = fs.readlinkSync(`/proc/${inner}/ns/user`);
    expect(nested).not.toBe(fs.readlinkSync(`/proc/${outer.pid}/ns/user`));
    const options = { mount: true, mounts: [{ type: 'bind' as const, source: '/', target: '/', readonly: true }, { type: 'tmpfs' as const, target: '/tmp' }] };
    const r = await sh('readlink /proc/self/ns/user; id -u; test -d /tmp && echo mounted', { ...options, join: { user: outer.pid, userAfterSetup: `/proc/${inner}/ns/user` } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${nested}\n0\nmounted\n`);
    const control = await sh('readlink /proc/self/ns/user', { ...options, join: { user: outer.pid } });
    expect(control.stdout).toBe(`${fs.readlinkSync(`/proc/${outer.pid}/ns/user`)}\n`);
    expect(() => spawnIsolated({ command: '/bin/true', join: { userAfterSetup: 'relative' } })).toThrow(/options\.join\.userAfterSetup must be a pid or a path/);
  } finally {
    outer.kill('SIGKILL');
    await outer.exited;
  }
});

test('join.user with a new mount namespace and CAP_SYS_ADMIN kept: the mounts are locked, so a read-only bind cannot be remounted writable; control: with lockMounts: false the attack writes the host file', async () => {
  const { child } = await holder();
  const { dir, cleanup } = makeTempDir();
  try {
    // Root of the joined namespace is this host id: the sentinel directory is its own, so
    // only the read-only bind keeps the program from writing there.
    const hostId = Number(fs.readFileSync(`/proc/${child.pid}/uid_map`, 'utf8').trim().split(/\s+/)[1]);
    expect(hostId).toBeGreaterThan(0);
    fs.chownSync(dir, hostId, hostId);
    const sentinel = `${dir}/written`;
    const attack = `mount -o remount,bind,rw ${dir} 2>/dev/null && echo remounted; echo pwned > ${sentinel} 2>/dev/null && echo wrote; true`;
    const options = {
      mount: true, join: { user: child.pid }, capabilities: ['CAP_SYS_ADMIN' as const],
      mounts: [{ type: 'bind' as const, source: '/', target: '/' }, { type: 'bind' as const, source: dir, readonly: true }],
    };
    const control = await sh(attack, { ...options, lockMounts: false });
    expect(control.stdout).toBe('remounted\nwrote\n');
    expect(fs.readFileSync(sentinel, 'utf8')).toBe('pwned\n');
    fs.rmSync(sentinel);

    const r = await sh(attack, options);
    expect(r.stdout).toBe('');
    expect(fs.existsSync(sentinel)).toBe(false);
  } finally {
    cleanup();
    child.kill('SIGKILL');
    await child.exited;
  }
});
