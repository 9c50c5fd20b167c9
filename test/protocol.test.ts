/**
 * The library options behind bubblewrap's process protocol and defaults (lib/protocol.ts,
 * lib/identity.ts, lib/filesystem.ts): `info`, `blockFd`, `userNamespaceBlockFd`,
 * `capabilities: 'unchanged'`, `denySetgroups`, `lockMounts: false`, a procfs of a shared
 * PID namespace, `remount-ro` entries, file mount points 0444. Real kernel throughout.
 */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { prepareSandbox, spawnIsolated, spawnIsolatedAsync } from '../lib';
import { catchError, makeTempDir, sh } from './helpers';

jest.setTimeout(30000);

const SYS_read = process.arch === 'arm64' ? 63 : 0;
const hostNs = (name: string): number => fs.statSync(`/proc/self/ns/${name}`).ino;

/** [read end (blocking: opened read-write), write end] of a FIFO; Node has no pipe(2). */
function fifoPair(): [number, number] {
  const dir = fs.mkdtempSync('/tmp/nsjail-node-fifo-');
  try {
    const fifo = path.join(dir, 'p');
    child_process.execFileSync('mkfifo', [fifo]);
    return [fs.openSync(fifo, fs.constants.O_RDWR), fs.openSync(fifo, fs.constants.O_WRONLY)];
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
}

describe('info', () => {
  test('the namespaces\' ids are on the handle and, with fd, written as bubblewrap\'s info; the fd is closed', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = path.join(dir, 'info.json');
      const fd = fs.openSync(file, 'w');
      const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'stat -L -c %i /proc/self/ns/net /proc/self/ns/mnt /proc/self/ns/pid'], net: true, mount: true, pid: true, info: { fd } });
      let stdout = '';
      child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
      await child.closed;
      expect(() => fs.fstatSync(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
      const [net, mnt, pid] = stdout.trim().split('\n').map(Number);
      expect(child.namespaceIds).toEqual({ mnt, net, pid });
      expect(pid).not.toBe(hostNs('pid')); // control: they are the sandbox's, not ours
      expect(fs.readFileSync(file, 'utf8')).toBe(`{\n    "child-pid": ${child.pid},\n    "mnt-namespace": ${mnt},\n    "net-namespace": ${net},\n    "pid-namespace": ${pid}\n}\n`);
    } finally {
      cleanup();
    }
  });

  test('without info there are no ids', async () => {
    const child = spawnIsolated({ command: '/bin/true', net: true });
    await child;
    expect(child.namespaceIds).toBeNull();
  });

  test('bad values are refused by name before anything starts', () => {
    expect(catchError(() => spawnIsolated({ command: '/bin/true', info: { fd: -1 } })).message).toMatch(/options\.info\.fd must be a file descriptor/);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', info: { file: 3 } as never })).message).toMatch(/info\.file/);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', blockFd: 1.5 })).message).toMatch(/options\.blockFd must be a file descriptor/);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', userNamespaceBlockFd: 0 })).message).toMatch(/userNamespaceBlockFd needs user: true/);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', user: true, userNamespaceBlockFd: 0 })).message).toMatch(/userNamespaceBlockFd needs info/);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', user: true, info: {}, userNamespaceBlockFd: 0, uidMap: [{ inside: 0, outside: 0, count: 1 }] })).message)
      .toMatch(/uidMap cannot be given with userNamespaceBlockFd/);
  });

  test('a prepared sandbox refuses them: their fds serve one spawn', () => {
    for (const [key, extra] of [['info', { info: {} }], ['blockFd', { blockFd: 0 }], ['info', { user: true, info: {}, userNamespaceBlockFd: 0 }]] as const) {
      const e = catchError(() => prepareSandbox({ command: '/bin/true', ...extra }));
      expect(e).toBeInstanceOf(TypeError);
      expect(e.message).toBe(`prepareSandbox: options.${key} is for a single spawn (its file descriptor is used up by it): use spawnIsolated`);
    }
  });
});

describe('blockFd', () => {
  test('the child waits in read(2) on it, set up, until data comes; then the program runs', async () => {
    const [r, w] = fifoPair();
    const [ir, iw] = fifoPair();
    try {
      const pending = spawnIsolatedAsync({ command: '/bin/echo', args: ['ran'], info: { fd: iw }, blockFd: r });
      // The info tells the child's pid before it blocks.
      const buf = Buffer.alloc(256);
      const n = fs.readSync(ir, buf);
      const pid = Number(/"child-pid": (\d+)/.exec(buf.subarray(0, n).toString())![1]);
      for (let waited = 0; ; waited++) {
        const [nr, fd] = fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ');
        if (Number(nr) === SYS_read && Number(fd) === r) break;
        if (waited > 500) throw new Error('the child never blocked in read on blockFd');
        await new Promise((res) => setTimeout(res, 20));
      }
      fs.writeSync(w, 'x');
      const { child } = await pending;
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      expect((await child.closed).exitCode).toBe(0);
      expect(out).toBe('ran\n');
    } finally {
      for (const fd of [r, w, ir]) fs.closeSync(fd);
    }
  });
});

describe('bubblewrap\'s weaker defaults, as options', () => {
  test("capabilities: 'unchanged' keeps this process's sets (default: none)", async () => {
    const own = /^CapEff:\s+(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
    expect((await sh('grep ^CapEff: /proc/self/status', { capabilities: 'unchanged' })).stdout).toBe(`CapEff:\t${own}\n`);
    expect((await sh('grep ^CapEff: /proc/self/status')).stdout).toBe('CapEff:\t0000000000000000\n');
  });

  test("capabilities: 'unchanged' with user: true: this process's effective set, bounding included, none inheritable or ambient", async () => {
    const own = /^CapEff:\s+(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
    const r = await sh('grep -E "^Cap(Inh|Eff|Bnd|Amb):" /proc/self/status', { user: true, capabilities: 'unchanged' });
    expect(r.stdout).toBe(`CapInh:\t0000000000000000\nCapEff:\t${own}\nCapBnd:\t${own}\nCapAmb:\t0000000000000000\n`);
  });

  test('denySetgroups: setgroups is denied in a parent-written namespace (default: allowed)', async () => {
    const map = [{ inside: 0, outside: 0, count: 1 }];
    expect((await sh('cat /proc/self/setgroups', { user: true, uidMap: map, gidMap: map, denySetgroups: true })).stdout).toBe('deny\n');
    expect((await sh('cat /proc/self/setgroups', { user: true, uidMap: map, gidMap: map })).stdout).toBe('allow\n');
    expect(catchError(() => spawnIsolated({ command: '/bin/true', user: true, denySetgroups: true, groups: [0] })).message).toMatch(/groups cannot be given with denySetgroups/);
  });

  test('lockMounts: false leaves the program in the mount namespace info reports (default: a locked copy)', async () => {
    const opts = { user: true, mount: true, capabilities: ['CAP_SYS_ADMIN' as const], info: {} };
    const unlocked = spawnIsolated({ ...opts, command: '/bin/sh', args: ['-c', 'stat -L -c %i /proc/self/ns/mnt'], lockMounts: false });
    let a = '';
    unlocked.stdout!.on('data', (c: Buffer) => (a += c.toString()));
    await unlocked.closed;
    expect(Number(a)).toBe(unlocked.namespaceIds!.mnt);
    const locked = spawnIsolated({ ...opts, command: '/bin/sh', args: ['-c', 'stat -L -c %i /proc/self/ns/mnt'] });
    let b = '';
    locked.stdout!.on('data', (c: Buffer) => (b += c.toString()));
    await locked.closed;
    expect(Number(b)).not.toBe(locked.namespaceIds!.mnt);
  });

  test('a proc entry with sharedPidNamespace binds this PID namespace\'s /proc (refused without it)', async () => {
    const r = await sh('readlink /proc/self/ns/pid; test -d /proc/1 && echo host-init', {
      mount: true, mounts: [{ type: 'bind', source: '/', target: '/', readonly: true }, { type: 'proc', sharedPidNamespace: true }],
    });
    expect(r.stdout).toBe(`${fs.readlinkSync('/proc/self/ns/pid')}\nhost-init\n`);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', mount: true, mounts: [{ type: 'proc' }] })).message).toMatch(/needs pid: true/);
  });

  test('a remount-ro entry makes one mount read-only (control: writable without it)', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const mounts = [{ type: 'bind' as const, source: '/', target: '/', readonly: true }, { type: 'bind' as const, source: dir, target: '/mnt' }];
      expect((await sh('echo x > /mnt/f && echo ok', { mount: true, mounts })).stdout).toBe('ok\n');
      const r = await sh('echo x > /mnt/g || echo refused', { mount: true, mounts: [...mounts, { type: 'remount-ro', target: '/mnt' }] });
      expect(r.stdout).toBe('refused\n');
      expect(fs.existsSync(path.join(dir, 'g'))).toBe(false);
    } finally {
      cleanup();
    }
  });
});
