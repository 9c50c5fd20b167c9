/**
 * The containment classes again, as an unprivileged user: the library runs in a Node process
 * as uid/gid 65534 with no groups (setpriv), against host targets the test made (some owned by
 * uid 65534, so that the user could reach them without a sandbox: the CONTROL shows it does).
 * The recommended configuration is the README's, less limits.memory and limits.pids: their
 * cgroups (and limits.cpuTime's cpuacct accounting) need a delegated cgroup, which uid 65534
 * has not got here; limits.wallTime stays.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { RunOptions } from '../../lib';
import {
  ATTACK, NOBODY, WORK, buildAttack, killByMarker, withHostIpc, markedSleepSeconds, marker, pidsWithMarker, recommended as rootRecommended,
  results, runCases, startHostSleep, tempDir, without, type Case, type RootlessOutcome,
} from './attack';

let built: ReturnType<typeof buildAttack>;
beforeAll(() => {
  built = buildAttack();
});
afterAll(() => built?.cleanup());

/** The recommended configuration without the cgroup limits (see the file's comment). */
function recommended(args: string[], command = ATTACK): RunOptions {
  return { ...rootRecommended(built.work, command, args), limits: { wallTime: 20000 } };
}

/** Runs the cases as uid 65534; checks that it really ran as that user. */
async function asNobody(cases: Record<string, Case>): Promise<Record<string, RootlessOutcome & { results: Record<string, string> }>> {
  const report = await runCases(cases, { asNobody: true });
  expect(report.uid).toBe(NOBODY);
  return Object.fromEntries(Object.entries(report.results).map(([k, v]) => [k, { ...v, results: results(v.stdout ?? '') }]));
}

const asNobodyTool = (...args: string[]): string =>
  execFileSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...args], { encoding: 'utf8' });

describe('as uid 65534', () => {
  test("uid 65534's own host sleep cannot be seen, signalled, ptraced or read through /proc/<pid>/mem from its sandbox; CONTROL: the same user without a sandbox does all four to another such sleep", async () => {
    const target = startHostSleep(true);
    const other = startHostSleep(true);
    try {
      const attack = (pid: number, mark: string): string[] => ['sees', mark.slice(0, 3), mark.slice(3), 'signal0', String(pid), 'ptrace', String(pid), 'mem', String(pid), 'kill', String(pid)];
      const r = await asNobody({
        sandbox: recommended(attack(target.pid, target.mark)),
        bare: without(recommended(attack(target.pid, target.mark)), 'seccomp'),
        control: { command: built.program, args: attack(other.pid, other.mark) },
      });
      expect(r.sandbox).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.sandbox.results).toEqual({ sees: 'no', signal0: 'errno=ESRCH', ptrace: 'errno=EPERM', mem: 'errno=ENOENT', kill: 'errno=ESRCH' });
      expect(r.bare.results).toEqual({ sees: 'no', signal0: 'errno=ESRCH', ptrace: 'errno=ESRCH', mem: 'errno=ENOENT', kill: 'errno=ESRCH' });
      expect(target.alive()).toBe(true);
      expect(r.control.results).toEqual({ sees: 'yes', signal0: 'ok', ptrace: 'ok', mem: 'ok', kill: 'ok' });
      expect(other.alive()).toBe(false);
    } finally {
      target.stop();
      other.stop();
    }
  });

  test('a host listener on 127.0.0.1 and a host abstract socket are unreachable from its net: true sandbox; CONTROL: without net, both are reached', async () => {
    let accepted = 0;
    const open = async (address: object): Promise<net.Server> => {
      const server = net.createServer((s) => {
        accepted++;
        s.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(address, resolve);
      });
      return server;
    };
    const name = marker('nsjail-test');
    const tcp = await open({ port: 0, host: '127.0.0.1' });
    const unix = await open({ path: `\0${name}` });
    try {
      const args = ['tcp', String((tcp.address() as net.AddressInfo).port), 'abstract', name];
      const r = await asNobody({ sandbox: recommended(args), control: without(recommended(args), 'net') });
      expect(r.sandbox).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.sandbox.results).toEqual({ tcp: 'errno=ECONNREFUSED', abstract: 'errno=ECONNREFUSED' });
      expect(r.control.results).toEqual({ tcp: 'ok', abstract: 'ok' });
      for (let i = 0; i < 100 && accepted < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(accepted).toBe(2); // the control's two, none from the sandbox
    } finally {
      await new Promise((resolve) => tcp.close(resolve));
      await new Promise((resolve) => unix.close(resolve));
    }
  });

  test('host SysV shared memory, a message queue and a POSIX message queue (mode 0644) are invisible in its ipc: true sandbox; CONTROL: without ipc, all three are reached', async () => {
    await withHostIpc(built.hostSetup, async (args) => {
      const r = await asNobody({ sandbox: recommended(args), control: without(recommended(args), 'ipc') });
      expect(r.sandbox).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.sandbox.results).toEqual({ shm: 'errno=EINVAL', msg: 'errno=EINVAL', mq: 'errno=ENOENT' });
      expect(r.control.results).toEqual({ shm: 'ok', msg: 'ok', mq: 'host message' });
    });
  });

  test("a key in uid 65534's own user keyring cannot be described, read or linked from its sandbox; CONTROL: the same user without a sandbox reads it", async () => {
    const payload = marker('secret');
    let serial = '';
    try {
      serial = asNobodyTool(built.hostSetup, 'key-add', marker('nsjail-test-key'), payload).trim();
      expect(serial).toMatch(/^\d+$/);
      const args = ['key-describe', serial, 'key-read', serial, 'key-link', serial];
      const r = await asNobody({ sandbox: recommended(args), control: { command: built.program, args: ['key-read', serial] } });
      expect(r.sandbox).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.sandbox.results).toEqual({ 'key-describe': 'errno=EPERM', 'key-read': 'errno=EPERM', 'key-link': 'errno=EPERM' });
      expect(r.control.results).toEqual({ 'key-read': payload });
    } finally {
      if (serial) asNobodyTool(built.hostSetup, 'key-invalidate', serial);
    }
  });

  test('the chroot breakout, remount,rw and umount of the read-only /work, and mknod fail in its sandbox, host files unchanged; CONTROL: a chroot without a mount namespace (user: true, CAP_SYS_CHROOT) escapes, and with CAP_SYS_ADMIN kept a read-only tmpfs it mounts itself is remounted', async () => {
    const host = tempDir('nsjail-node-sentinel-');
    const rootfs = tempDir('nsjail-node-rootfs-');
    const sentinel = path.join(host.dir, 'sentinel');
    const workSentinel = path.join(built.work, 'sentinel');
    try {
      fs.writeFileSync(sentinel, 'host only\n');
      fs.writeFileSync(workSentinel, 'host only\n');
      fs.chmodSync(workSentinel, 0o666);
      fs.copyFileSync(built.program, path.join(rootfs.dir, 'attack'));
      fs.chmodSync(path.join(rootfs.dir, 'attack'), 0o755);
      fs.mkdirSync(path.join(rootfs.dir, 'tmp'), { mode: 0o777 });
      fs.chmodSync(path.join(rootfs.dir, 'tmp'), 0o777);

      const args = ['chroot-escape', sentinel, 'remount', WORK, 'umount', WORK, 'write', `${WORK}/sentinel`, 'mknod-char', '/tmp/null'];
      // The sandbox's mounts are locked (lock-mounts), so the control remounts a tmpfs the
      // program mounts itself, after the lock: the remount mechanism works where nothing locks it.
      const ownTmpfs = recommended(['-c', `mkdir /tmp/own && mount -t tmpfs -o ro own /tmp/own && exec ${ATTACK} remount /tmp/own`], '/bin/sh');
      const r = await asNobody({
        sandbox: recommended(args),
        bare: without(recommended(args), 'seccomp'),
        chroot: { command: '/attack', args: ['chroot-escape', sentinel], root: rootfs.dir, user: true, capabilities: ['CAP_SYS_CHROOT'] },
        remount: { ...without(ownTmpfs, 'seccomp'), capabilities: ['CAP_SYS_ADMIN'] },
      });
      const expected = { 'chroot-escape': 'errno=EPERM', remount: 'errno=EPERM', umount: 'errno=EPERM', write: 'errno=EROFS', 'mknod-char': 'errno=EPERM' };
      expect(r.sandbox).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.sandbox.results).toEqual(expected);
      expect(r.bare.results).toEqual(expected);
      expect(fs.readFileSync(workSentinel, 'utf8')).toBe('host only\n');
      expect(r.chroot.results).toEqual({ 'chroot-escape': 'ok' });
      expect(r.remount.results).toEqual({ remount: 'ok' });
    } finally {
      fs.rmSync(workSentinel, { force: true });
      host.cleanup();
      rootfs.cleanup();
    }
  });

  test('a setuid-root program gives no privilege in its sandbox; CONTROL: the same user without a sandbox and with noNewPrivs false runs it with euid 0', async () => {
    const suid = `${WORK}/attack-suid`;
    const r = await asNobody({
      sandbox: { ...recommended(['euid'], suid), uid: 1000, gid: 1000 },
      noNnp: { ...without(recommended(['euid'], suid), 'seccomp'), uid: 1000, gid: 1000, noNewPrivs: false, socketFamilyFilter: false },
      control: { command: built.setuid, args: ['euid'], noNewPrivs: false },
    });
    expect(r.sandbox).toMatchObject({ status: 'ok', stderr: '', stdout: 'euid 1000\n' });
    expect(r.noNnp).toMatchObject({ status: 'ok', stdout: 'euid 1000\n' });
    expect(r.control).toMatchObject({ stdout: 'euid 0\n' });
  });

  test('a daemonized descendant does not outlive its sandbox; CONTROL: without a pid namespace, it survives', async () => {
    const mark = markedSleepSeconds();
    try {
      const args = ['daemon', '/bin/sleep', mark];
      const noProc = recommended(args);
      const r = await asNobody({
        sandbox: recommended(args),
        control: { ...without(noProc, 'pid', 'init'), mounts: (noProc.mounts ?? []).filter((m) => m.type !== 'proc') },
      });
      expect(r.sandbox).toMatchObject({ status: 'ok', stdout: 'daemon ok\n' });
      expect(r.control).toMatchObject({ status: 'ok', stdout: 'daemon ok\n' });
      // The control's daemon is there; the sandbox's (same marker) is not: exactly one.
      expect(pidsWithMarker(mark)).toHaveLength(1);
    } finally {
      killByMarker(mark);
    }
  });
});
