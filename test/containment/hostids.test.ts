/**
 * The sandbox's root is not host root: as root with `user: true` a sandbox runs on an
 * unprivileged host id of its own (lib/hostids.ts), so it owns nothing host root owns
 * (device nodes, fd 0, root's keys, root-only /proc files) and shares no per-user kernel
 * count with root or another sandbox; writable binds are idmapped so the caller's files stay
 * writable. Each attack has a control run with an explicit host-root map, which is what every
 * sandbox got before. Real kernel, run as root; the rootless part as uid 65534 through setpriv.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configureHostIds, hostIdRange, hostSystemMounts, IsolationError, spawnIsolated, type MountEntry, type SpawnOptions } from '../../lib';
import { heldHostIds } from '../../lib/hostids';
import { run, stageLibraryForOtherUsers } from '../helpers';
import { cgroupOf } from '../limits-helpers';

const DEFAULT_RANGE = { ...hostIdRange() };
const ROOT_MAP = { uidMap: [{ inside: 0, outside: 0, count: 1 }], gidMap: [{ inside: 0, outside: 0, count: 1 }] };

const PROBE_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "inotify") == 0) {
    /* As many inotify instances as the kernel allows this user; "hold": keep them until stdin closes. */
    int n = 0, err = 0;
    for (;;) { if (inotify_init1(IN_CLOEXEC) < 0) { err = errno; break; } n++; }
    printf("%d %d\n", n, err);
    fflush(stdout);
    if (argc >= 3) { char c; while (read(0, &c, 1) > 0) {} }
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "add-key") == 0) {
    long id = syscall(SYS_add_key, "user", argv[2], "x", 1, -4 /* KEY_SPEC_USER_KEYRING */);
    if (id < 0) { perror("add_key"); return 1; }
    printf("%ld\n", id);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "drop-key") == 0) {
    long id = atol(argv[2]);
    syscall(SYS_keyctl, 3 /* KEYCTL_REVOKE */, id);
    return syscall(SYS_keyctl, 9 /* KEYCTL_UNLINK */, id, -4) < 0 ? 1 : 0;
  }
  return 2;
}
`;

let tools: string; // 0755 dir with the probe: read-only binds are read as the sandbox's unprivileged id
let probe: string;

beforeAll(() => {
  if (process.geteuid?.() !== 0) throw new Error('this file runs as root (the rootless part uses setpriv)');
  tools = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-hostids-'));
  fs.chmodSync(tools, 0o755);
  fs.writeFileSync(path.join(tools, 'probe.c'), PROBE_SOURCE);
  probe = path.join(tools, 'probe');
  execFileSync('cc', ['-O2', '-o', probe, path.join(tools, 'probe.c')], { stdio: 'pipe' });
});

afterAll(() => {
  if (tools) fs.rmSync(tools, { recursive: true, force: true });
});

/** README's sandbox for untrusted code, plus `mounts` and `options`. */
function recommended(mounts: MountEntry[] = [], options: Partial<SpawnOptions> = {}): Omit<SpawnOptions, 'command'> {
  return {
    pid: true, net: true, mount: true, uts: true, ipc: true, user: true, init: true,
    mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'dev' }, { type: 'tmpfs', target: '/tmp', size: '64m' },
      { type: 'bind', source: tools, target: '/tools', readonly: true }, ...mounts],
    ...options,
  };
}

/** The host's view of a pid's uid line: real, effective, saved, fs. */
function hostUids(pid: number): number[] {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'))!;
  return line.split(/\s+/).slice(1).map(Number);
}

function inRange(id: number): boolean {
  const { base, count } = hostIdRange();
  return id >= base && id < base + count;
}

/** First line of a stream. */
function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (d: Buffer) => {
      text += d;
      if (text.includes('\n')) resolve(text.split('\n')[0]);
    });
    stream.on('end', () => reject(new Error(`no line: '${text}'`)));
  });
}

describe('host ids as root with user: true', () => {
  test('the program runs on a host id of the range, not 0; two at once get two ids; both are released after exit', async () => {
    const a = spawnIsolated({ command: '/bin/sleep', args: ['5'], ...recommended(), stdio: 'ignore' });
    const b = spawnIsolated({ command: '/bin/sleep', args: ['5'], ...recommended(), stdio: 'ignore' });
    try {
      // With init the program is init's child; init itself runs on the same id.
      const [ua, ub] = [hostUids(a.pid), hostUids(b.pid)];
      for (const uids of [ua, ub]) {
        expect(new Set(uids).size).toBe(1);
        expect(inRange(uids[0])).toBe(true);
      }
      expect(ua[0]).not.toBe(ub[0]);
      expect(heldHostIds()).toEqual(expect.arrayContaining([ua[0], ub[0]]));
      a.kill();
      b.kill();
      await Promise.all([a, b]);
      expect(heldHostIds()).not.toContain(ua[0]);
      expect(heldHostIds()).not.toContain(ub[0]);
    } finally {
      a.kill();
      b.kill();
    }
  });

  test('with limits: the parent joins the child to its cgroup (the host id may not), and the pids limit holds', async () => {
    const c = spawnIsolated({ command: '/bin/sh', args: ['-c', 'read x; for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>/dev/null; wait; echo done'], ...recommended(), limits: { pids: 4 } });
    try {
      expect(inRange(hostUids(c.pid)[0])).toBe(true);
      expect(cgroupOf(c.pid, 'pids')).toMatch(/nsjail-node/);
      c.stdin!.end('\n');
      const out = await Promise.all([new Promise<string>((resolve) => { let t = ''; c.stdout!.on('data', (d) => (t += d)); c.stdout!.on('end', () => resolve(t)); }), c]);
      expect(out[1].pidsLimitHit).toBe(true);
    } finally {
      c.kill();
    }
  });

  test('a process that joins the sandbox\'s user namespace becomes the sandbox\'s root (its host id), not host root there', async () => {
    const a = spawnIsolated({ command: '/bin/sh', args: ['-c', 'read x'], user: true, pid: true, stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      const b = spawnIsolated({ command: '/bin/sh', args: ['-c', 'read x'], join: { user: a }, stdio: ['pipe', 'ignore', 'ignore'] });
      try {
        const hostId = hostUids(a.pid)[0];
        expect(inRange(hostId)).toBe(true);
        expect(hostUids(b.pid)).toEqual([hostId, hostId, hostId, hostId]);
      } finally {
        b.stdin!.end('\n');
        await b;
      }
    } finally {
      a.stdin!.end('\n');
      await a;
    }
  });

  test('an id is released when the spawn fails, and a bad range is refused before anything starts', async () => {
    const before = heldHostIds();
    expect(() => spawnIsolated({ command: '/no/such/program', ...recommended() })).toThrow(IsolationError);
    expect(heldHostIds()).toEqual(before);
    expect(() => configureHostIds({ base: 0, count: 10 })).toThrow(RangeError);
    expect(() => configureHostIds({ base: 65500, count: 100 })).toThrow(/overflow id/);
  });

  test('another Node process never gets an id this one holds (and vice versa), through the shared lock files', async () => {
    // A range of two ids no other test uses: the other process holds one, this one the other.
    const base = 0x71000000 + ((process.pid * 2) % 0x100000);
    const range = { base, count: 2 };
    const { dist, cleanup } = stageLibraryForOtherUsers();
    const script = String.raw`
      const lib = require(process.argv[1]);
      const c = lib.spawnIsolated({ command: '/bin/sh', args: ['-c', 'cat /proc/self/uid_map; read x'], user: true, stdio: ['pipe', 'pipe', 'inherit'] });
      c.stdout.pipe(process.stdout);
      process.stdin.pipe(c.stdin);
      c.then((s) => process.exit(s.exitCode ?? 1));
    `;
    const other = spawn(process.execPath, ['-e', script, dist], { env: { ...process.env, NSJAIL_NODE_HOST_IDS: `${base}:2` }, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const theirs = Number((await firstLine(other.stdout!)).trim().split(/\s+/)[1]);
      expect([base, base + 1]).toContain(theirs);
      configureHostIds(range);
      const mine = spawnIsolated({ command: '/bin/sleep', args: ['5'], user: true, stdio: 'ignore' });
      try {
        expect(hostUids(mine.pid)[0]).toBe(theirs === base ? base + 1 : base);
        // Both ids are held now, one by each process: a third sandbox gets none.
        const full = (() => {
          try {
            spawnIsolated({ command: '/bin/true', user: true });
          } catch (e) {
            return e as IsolationError;
          }
          return null;
        })();
        expect(full).toBeInstanceOf(IsolationError);
        expect(full!.message).toMatch(/host-ids.*EAGAIN.*held by live sandboxes/);
      } finally {
        mine.kill();
        await mine;
      }
      other.stdin!.end('\n');
      await new Promise((resolve) => other.on('exit', resolve));
      // The other process is gone with its lock: its id is free for this one.
      const again = spawnIsolated({ command: '/bin/sleep', args: ['5'], user: true, stdio: 'ignore' });
      const again2 = spawnIsolated({ command: '/bin/sleep', args: ['5'], user: true, stdio: 'ignore' });
      expect([hostUids(again.pid)[0], hostUids(again2.pid)[0]].sort()).toEqual([base, base + 1]);
      again.kill();
      again2.kill();
      await Promise.all([again, again2]);
    } finally {
      other.kill('SIGKILL');
      cleanup();
      configureHostIds(DEFAULT_RANGE);
    }
  });
});


describe('attacks on host root\'s objects (control: an explicit host-root map)', () => {
  let dir: string;
  let node: string;
  let sentinel: string;
  const OLD = new Date('2001-02-03T04:05:06Z');

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-hostids-attack-'));
    fs.chmodSync(dir, 0o755); // the sandbox's host id binds it: it must reach it
    node = path.join(dir, 'null');
    // A device node of the test's own (the host's /dev/null's numbers), 0666 and root's.
    execFileSync('mknod', ['-m', '0666', node, 'c', '1', '3']);
    sentinel = path.join(dir, 'sentinel');
    fs.writeFileSync(sentinel, 'host\n', { mode: 0o644 });
    fs.chmodSync(sentinel, 0o644);
    fs.utimesSync(node, OLD, OLD);
    fs.utimesSync(sentinel, OLD, OLD);
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  // chmod and an explicit-time utimensat (touch -d) need ownership (or CAP_FOWNER over it):
  // the node through a writable bind, the sentinel through fd 0 (a host file handed in).
  const ATTACK = 'chmod 0600 /attack/null && echo chmod-node; touch -d "2020-01-01" /attack/null && echo touch-node; ' +
    'chmod 0600 /proc/self/fd/0 && echo chmod-stdin; touch -d "2020-01-01" /proc/self/fd/0 && echo touch-stdin; true';

  async function attack(options: Partial<SpawnOptions>): Promise<string> {
    const fd = fs.openSync(sentinel, 'r');
    try {
      const r = await run({ command: '/bin/sh', args: ['-c', ATTACK], ...recommended([{ type: 'bind', source: node, target: '/attack/null' }], options), stdio: [fd, 'pipe', 'pipe'] });
      expect(r.exitCode).toBe(0);
      return r.stdout;
    } finally {
      fs.closeSync(fd);
    }
  }

  test('the recommended sandbox can neither chmod nor touch a host device node bound in writable, nor fd 0\'s host file', async () => {
    expect(await attack({})).toBe('');
    for (const p of [node, sentinel]) {
      const st = fs.statSync(p);
      expect((st.mode & 0o7777).toString(8)).toBe(p === node ? '666' : '644');
      expect(st.mtime.getTime()).toBe(OLD.getTime());
    }
  });

  test('control: with an explicit host-root map the same program changes both', async () => {
    expect(await attack(ROOT_MAP)).toBe('chmod-node\ntouch-node\nchmod-stdin\ntouch-stdin\n');
    expect(fs.statSync(node).mode & 0o7777).toBe(0o600);
    expect(fs.statSync(sentinel).mode & 0o7777).toBe(0o600);
    expect(fs.statSync(sentinel).mtime.getTime()).not.toBe(OLD.getTime());
  });
});

describe('root-only /proc files and root\'s keys (control: an explicit host-root map)', () => {
  let keyId: string | undefined;
  const name = `nsjail-node-hostids-${process.pid}-${Date.now()}`;

  beforeAll(() => {
    // A key in host root's user keyring, made by the test, named uniquely.
    keyId = execFileSync(probe, ['add-key', name], { encoding: 'utf8' }).trim();
  });

  afterAll(() => {
    if (keyId) execFileSync(probe, ['drop-key', keyId]);
  });

  const SCRIPT = `grep -c ${name} /proc/keys; head -c 10 /proc/slabinfo >/dev/null 2>&1 && echo slabinfo; head -c 8 /proc/kpageflags >/dev/null 2>&1 && echo kpageflags; true`;

  test('the key is there on the host (the test can see what it looks for)', () => {
    expect(fs.readFileSync('/proc/keys', 'utf8')).toContain(name);
  });

  test('in the recommended sandbox: no key of root in /proc/keys, no slabinfo, no kpageflags', async () => {
    const r = await run({ command: '/bin/sh', args: ['-c', SCRIPT], ...recommended() });
    expect(r.stdout).toBe('0\n');
  });

  test('control: with an explicit host-root map all three are readable', async () => {
    const r = await run({ command: '/bin/sh', args: ['-c', SCRIPT], ...recommended([], ROOT_MAP) });
    expect(r.stdout).toBe('1\nslabinfo\nkpageflags\n');
  });
});

describe('per-user kernel counts: inotify instances (control: an explicit host-root map)', () => {
  const max = Number(fs.readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));

  /** Sandbox A takes every inotify instance it can and holds them; then B takes what it can. */
  async function twoSandboxes(options: Partial<SpawnOptions>): Promise<[number, number]> {
    const a = spawnIsolated({ command: '/tools/probe', args: ['inotify', 'hold'], ...recommended([], options), stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      const held = Number((await firstLine(a.stdout!)).split(' ')[0]);
      const b = await run({ command: '/tools/probe', args: ['inotify'], ...recommended([], options) });
      return [held, Number(b.stdout.split(' ')[0])];
    } finally {
      a.stdin!.end();
      a.stdout!.resume();
      await a;
    }
  }

  test('each sandbox has the whole per-user allowance, whatever another one holds', async () => {
    expect(await twoSandboxes({})).toEqual([max, max]);
  });

  test('control: with host root\'s map the second one gets what the first left of root\'s allowance', async () => {
    const [a, b] = await twoSandboxes(ROOT_MAP);
    expect(a).toBeGreaterThan(0);
    expect(a + b).toBeLessThanOrEqual(max);
  });
});

describe('writable binds are idmapped from their owner, never from root', () => {
  const OWNER = 12345; // an unprivileged owner the test gives its directory
  const SCRIPT = 'stat -c "%u %g %a" /data /data/old; echo new > /data/new && mkdir /data/sub && echo ok; ' +
    'touch /data/suid && chmod 4755 /data/suid && echo chmod-suid; cat /proc/self/uid_map';

  test("sandbox root writes into a 0700 dir of an unprivileged owner bound writable; on the host the files are that owner's", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-hostids-rw-'));
    try {
      fs.writeFileSync(path.join(dir, 'old'), 'x');
      fs.chownSync(dir, OWNER, OWNER);
      fs.chownSync(path.join(dir, 'old'), OWNER, OWNER);
      const r = await run({ command: '/bin/sh', args: ['-c', SCRIPT], ...recommended([{ type: 'bind', source: dir, target: '/data' }]) });
      const lines = r.stdout.trim().split('\n');
      expect(lines.slice(0, 4)).toEqual(['0 0 700', '0 0 644', 'ok', 'chmod-suid']);
      expect(inRange(Number(lines[4].trim().split(/\s+/)[1]))).toBe(true); // really on a host id
      for (const p of ['new', 'sub', 'suid']) {
        const st = fs.statSync(path.join(dir, p));
        expect([st.uid, st.gid]).toEqual([OWNER, OWNER]);
      }
      expect(fs.readFileSync(path.join(dir, 'new'), 'utf8')).toBe('new\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // Idmapped from root, what the sandbox creates would be root's on the host, and a setuid
  // file there a root shell for any host user who can reach it.
  test("a root-owned writable dir is not idmapped: the sandbox creates files only where its modes let others, as its host id, and its setuid file is not root's", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-hostids-rootrw-'));
    try {
      fs.writeFileSync(path.join(dir, 'old'), 'x');
      fs.chmodSync(dir, 0o1777);
      const r = await run({ command: '/bin/sh', args: ['-c', SCRIPT], ...recommended([{ type: 'bind', source: dir, target: '/data' }]) });
      const lines = r.stdout.trim().split('\n');
      expect(lines.slice(0, 4)).toEqual(['65534 65534 1777', '65534 65534 644', 'ok', 'chmod-suid']);
      const hostId = Number(lines[4].trim().split(/\s+/)[1]);
      expect(inRange(hostId)).toBe(true);
      for (const p of ['new', 'sub', 'suid']) {
        const st = fs.statSync(path.join(dir, p));
        expect([st.uid, st.gid]).toEqual([hostId, hostId]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('control: with an explicit host-root map the same program makes a setuid file of root in that dir', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-hostids-rootrw-'));
    try {
      fs.writeFileSync(path.join(dir, 'old'), 'x');
      await run({ command: '/bin/sh', args: ['-c', SCRIPT], ...recommended([{ type: 'bind', source: dir, target: '/data' }], ROOT_MAP) });
      const st = fs.statSync(path.join(dir, 'suid'));
      expect([st.uid, st.mode & 0o7777]).toEqual([0, 0o4755]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a read-only bind is not idmapped: root\'s 0600 file in it is unreadable for the sandbox', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-hostids-ro-'));
    try {
      fs.chmodSync(dir, 0o755);
      fs.writeFileSync(path.join(dir, 'secret'), 'x', { mode: 0o600 });
      fs.writeFileSync(path.join(dir, 'public'), 'y', { mode: 0o644 });
      const r = await run({ command: '/bin/sh', args: ['-c', 'cat /ro/public; cat /ro/secret 2>/dev/null || echo refused'], ...recommended([{ type: 'bind', source: dir, target: '/ro', readonly: true }]) });
      expect(r.stdout).toBe('yrefused\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an unprivileged caller (uid 65534 through setpriv)', () => {
  test('keeps mapping the sandbox to itself, and leases no host id', async () => {
    const { dist, cleanup } = stageLibraryForOtherUsers();
    try {
      const script = String.raw`
        const lib = require(process.argv[1]);
        const c = lib.spawnIsolated({ command: '/bin/sh', args: ['-c', 'cat /proc/self/uid_map /proc/self/gid_map'], user: true, pid: true, mount: true, stdio: ['ignore', 'pipe', 'inherit'] });
        let out = ''; c.stdout.on('data', (d) => (out += d));
        c.then(() => process.stdout.write(JSON.stringify({ out, held: require(require('path').join(require('path').dirname(process.argv[1]), 'hostids.js')).heldHostIds() })));
      `;
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script, dist],
          { cwd: '/', timeout: 30000 }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)));
      });
      const report = JSON.parse(stdout) as { out: string; held: number[] };
      expect(report.out.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '))).toEqual(['0 65534 1', '0 65534 1']);
      expect(report.held).toEqual([]);
    } finally {
      cleanup();
    }
  });
});
