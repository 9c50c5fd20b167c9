/**
 * Identity and privilege as root: capabilities, no_new_privs and setuid binaries, ids with and
 * without a user namespace, parent-written multi-range maps, and bad input rejected before
 * any process starts. (Unprivileged callers: identity.rootless.test.ts.)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostIdRange, hostSystemMounts, IsolationError, spawnIsolated, type SpawnOptions } from '../lib';
import { lingeringZombies, run, sh } from './helpers';
import { buildProbe, statusFields } from './identity-helpers';

const STATUS = 'grep -E "^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp)" /proc/self/status';
const NO_CAPS = { CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000', CapBnd: '0000000000000000', CapAmb: '0000000000000000' };
const NET_BIND_SERVICE = '0000000000000400'; // bit 10

async function status(options: Omit<SpawnOptions, 'command' | 'args'>): Promise<Record<string, string>> {
  const r = await sh(STATUS, options);
  expect(r).toMatchObject({ exitCode: 0, stderr: '' });
  return statusFields(r.stdout);
}

describe('capabilities and no_new_privs', () => {
  test('by default every capability set is empty and no_new_privs is on, with or without a user namespace', async () => {
    expect(await status({ user: true, pid: true, net: true, mount: true, uts: true, ipc: true })).toMatchObject({ ...NO_CAPS, NoNewPrivs: '1', Uid: '0\t0\t0\t0' });
    expect(await status({})).toMatchObject({ ...NO_CAPS, NoNewPrivs: '1', Uid: '0\t0\t0\t0' });
    expect(await status({ noNewPrivs: false })).toMatchObject({ ...NO_CAPS, NoNewPrivs: '0' });
  });

  test('a kept capability shows in every set, for root and for another uid inside', async () => {
    const kept = { CapInh: NET_BIND_SERVICE, CapPrm: NET_BIND_SERVICE, CapEff: NET_BIND_SERVICE, CapBnd: NET_BIND_SERVICE };
    expect(await status({ user: true, capabilities: ['CAP_NET_BIND_SERVICE'] })).toMatchObject(kept);
    // A non-zero uid keeps it through execve only as an ambient capability.
    expect(await status({ user: true, uid: 1000, gid: 1000, capabilities: ['CAP_NET_BIND_SERVICE'] })).toMatchObject({ ...kept, CapAmb: NET_BIND_SERVICE, Uid: '1000\t1000\t1000\t1000' });
    expect(await status({ uid: 65534, gid: 65534, capabilities: ['CAP_NET_BIND_SERVICE'] })).toMatchObject({ ...kept, CapAmb: NET_BIND_SERVICE, Uid: '65534\t65534\t65534\t65534' });
  });

  test('the kept capability works: uid 1000 binds port 80 with it and not without it', async () => {
    const script = "require('net').createServer().on('error', (e) => { console.log(e.code); process.exit(0); }).listen(80, '0.0.0.0', () => { console.log('bound'); process.exit(0); })";
    const base = { command: process.execPath, args: ['-e', script], user: true, net: true, uid: 1000, gid: 1000 } as const;
    expect((await run({ ...base, capabilities: ['CAP_NET_BIND_SERVICE'] })).stdout.trim()).toBe('bound');
    expect((await run(base)).stdout.trim()).toBe('EACCES');
  });

  describe('a setuid-root binary', () => {
    let dir: string;
    let cleanup: () => void;
    beforeAll(() => {
      ({ dir, cleanup } = buildProbe());
      const id = fs.existsSync('/usr/bin/id') ? '/usr/bin/id' : '/bin/id';
      fs.copyFileSync(id, path.join(dir, 'id'));
      fs.chownSync(path.join(dir, 'id'), 0, 0);
      fs.chmodSync(path.join(dir, 'id'), 0o4755);
    });
    afterAll(() => cleanup?.());

    test('gains nothing under no_new_privs, and gains euid 0 (but no capabilities) without it', async () => {
      const run = (noNewPrivs: boolean) => sh(`${dir}/id; ${STATUS}`, { uid: 65534, gid: 65534, noNewPrivs });
      const guarded = await run(true);
      expect(guarded.exitCode).toBe(0);
      expect(guarded.stdout).toMatch(/^uid=65534\S* gid=65534\S* groups=65534/);
      expect(guarded.stdout).not.toMatch(/euid=/);
      // The control: the bit works on this filesystem, so no_new_privs is what stopped it.
      const open = await run(false);
      expect(open.stdout).toMatch(/^uid=65534\S* gid=65534\S* euid=0/);
      expect(statusFields(open.stdout)).toMatchObject(NO_CAPS);
    });
  });
});

describe('ids', () => {
  test('without a user namespace: setresuid/setresgid and supplementary groups, root\'s groups dropped', async () => {
    const s = await status({ uid: 65534, gid: 65534, groups: [100, 65533] });
    expect(s).toMatchObject({ Uid: '65534\t65534\t65534\t65534', Gid: '65534\t65534\t65534\t65534', Groups: '100 65533' });
    expect((await status({ uid: 1, gid: 1 })).Groups).toBe('');
  });

  test('in a user namespace: the chosen uid/gid inside map to the sandbox\'s host id, written by the parent, with no supplementary group', async () => {
    const r = await sh(`id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -G`, { user: true, uid: 1000, gid: 2000 });
    const [uid, gid, uidMap, gidMap, setgroups, groups] = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    const hostId = uidMap.split(' ')[1];
    const { base, count } = hostIdRange();
    expect(Number(hostId) >= base && Number(hostId) < base + count).toBe(true);
    // Parent-written (the child's memory stays non-dumpable: src-native/hostids.cc), so
    // setgroups stays allowed, over the one mapped gid only: root's groups were never inherited.
    expect({ uid, gid, uidMap, gidMap, setgroups, groups }).toEqual({ uid: '1000', gid: '2000', uidMap: `1000 ${hostId} 1`, gidMap: `2000 ${hostId} 1`, setgroups: 'allow', groups: '2000' });
  });

  test('an explicit one-line map of host root is honoured (written by the parent)', async () => {
    const root = [{ inside: 0, outside: 0, count: 1 }];
    const r = await sh('cat /proc/self/uid_map /proc/self/gid_map', { user: true, uidMap: root, gidMap: root });
    expect(r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '))).toEqual(['0 0 1', '0 0 1']);
  });

  test('multi-range maps and groups are written by the parent', async () => {
    const range = [{ inside: 0, outside: 200000, count: 1000 }, { inside: 1000, outside: 0, count: 1 }];
    const r = await sh('id; cat /proc/self/uid_map /proc/self/setgroups', { user: true, pid: true, mount: true, uid: 5, gid: 7, groups: [8, 1000], uidMap: range, gidMap: range });
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines[0]).toMatch(/^uid=5\S* gid=7\S* groups=/);
    expect(lines[0].replace(/^.*groups=/, '').split(',').map((g) => g.replace(/\(.*/, '')).sort()).toEqual(['1000', '7', '8']);
    expect(lines.slice(1)).toEqual(['0 200000 1000', '1000 0 1', 'allow']);
    expect(await lingeringZombies()).toEqual([]);
  });

  test('a parent-written map need not map this process: the setup (a new root, init, a time namespace) still works', async () => {
    const range = [{ inside: 0, outside: 200000, count: 1000 }];
    const r = await sh('echo $$; id', {
      user: true, pid: true, mount: true, mounts: hostSystemMounts(), init: true, time: true, uidMap: range, gidMap: range, uid: 3, gid: 3, groups: [4],
    });
    expect(r).toMatchObject({ exitCode: 0, stderr: '' });
    expect(r.stdout).toMatch(/^2\nuid=3\S* gid=3\S* groups=3\S*,4/);
  });

  test('groups alone make the parent write the default single-line maps', async () => {
    const r = await sh('id -G; cat /proc/self/setgroups', { user: true, gid: 3, groups: [3] });
    expect(r.stdout.trim().split('\n')).toEqual(['3', 'allow']);
  });
});

describe('session and parent death', () => {
  /** session id and controlling tty of a process, from /proc/PID/stat. */
  const sessionOf = (stat: string): { pid: string; session: string; tty: string } => {
    const [pid] = stat.split(' ');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, session: fields[3], tty: fields[4] };
  };

  test('by default the program leads a new session with no controlling terminal (nothing for TIOCSTI to inject into)', async () => {
    const own = sessionOf((await sh('cat /proc/$$/stat')).stdout);
    expect(own).toEqual({ pid: own.pid, session: own.pid, tty: '0' });
    const shared = sessionOf((await sh('cat /proc/$$/stat', { newSession: false })).stdout);
    expect(shared.session).not.toBe(shared.pid);
  });

  test('by default the sandbox dies with the process that started it', async () => {
    const dist = path.join(__dirname, '..', 'dist', 'index.js');
    const startOrphan = async (dieWithParent: boolean): Promise<number> => {
      const script = `const c = require(${JSON.stringify(dist)}).spawnIsolated({ command: '/bin/sleep', args: ['1000'], stdio: 'ignore', dieWithParent: ${dieWithParent} });` +
        'console.log(c.pid); setInterval(() => {}, 1000);';
      const helper = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const pid = await new Promise<number>((resolve) => helper.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))));
      helper.kill('SIGKILL'); // no exit handlers run: only the kernel's parent-death signal can act
      await new Promise((resolve) => helper.once('exit', resolve));
      return pid;
    };
    const alive = (pid: number): boolean => {
      try {
        return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    const gone = await startOrphan(true);
    for (let i = 0; i < 100 && alive(gone); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(alive(gone)).toBe(false);
    // The control: without it the sandbox outlives its parent (and is killed here).
    const survivor = await startOrphan(false);
    try {
      expect(alive(survivor)).toBe(true);
    } finally {
      process.kill(survivor, 'SIGKILL');
    }
  });
});

describe('bad input is rejected before clone', () => {
  const rejects = (options: Partial<SpawnOptions>, pattern: RegExp, kind: typeof TypeError | typeof RangeError = TypeError) => {
    let error: unknown;
    try {
      spawnIsolated({ command: '/bin/true', ...options });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(kind);
    expect(String((error as Error).message)).toMatch(pattern);
  };

  test('unknown or unsupported capability names', () => {
    rejects({ capabilities: ['CAP_NET_BIND_SERVIC' as 'CAP_CHOWN'] }, /options\.capabilities\[0\] is not a capability: "CAP_NET_BIND_SERVIC" \(did you mean 'CAP_NET_BIND_SERVICE'\?\)/);
    rejects({ capabilities: ['net_admin' as 'CAP_CHOWN'] }, /did you mean 'CAP_NET_ADMIN'/);
    rejects({ capabilities: 'CAP_CHOWN' as unknown as ['CAP_CHOWN'] }, /options\.capabilities must be an array/);
  });

  test('unknown system call names', () => {
    rejects({ seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid', 'ptraec'], action: 'kill' }] } }, /options\.seccomp\.rules\[0\]\.syscalls\[1\] is not a system call: 'ptraec' \(did you mean 'ptrace'\?\)/, RangeError);
  });

  test('overlapping and malformed maps', () => {
    rejects({ user: true, uidMap: [{ inside: 0, outside: 100000, count: 10 }, { inside: 5, outside: 200000, count: 10 }] }, /options\.uidMap ranges 0 and 1 overlap on the inside side/, RangeError);
    rejects({ user: true, gidMap: [{ inside: 0, outside: 100000, count: 10 }, { inside: 10, outside: 100009, count: 1 }] }, /options\.gidMap ranges 0 and 1 overlap on the outside side/, RangeError);
    rejects({ user: true, uidMap: [{ inside: 0, outside: 100000, count: 0 }] }, /options\.uidMap\[0\]\.count must be a positive integer/, RangeError);
    rejects({ user: true, uidMap: [{ inside: -1, outside: 100000, count: 1 }] }, /options\.uidMap\[0\]\.inside must be between 0 and 4294967294/, RangeError);
    rejects({ user: true, uidMap: [{ inside: 0, outside: 4294967290, count: 10 }] }, /options\.uidMap\[0\] runs past the largest id/, RangeError);
    rejects({ user: true, uidMap: [{ inside: 0, outside: 1, count: 1, extra: 1 } as never] }, /unknown option options\.uidMap\[0\]\.extra/);
    rejects({ user: true, uidMap: [] }, /options\.uidMap must be a non-empty array/);
    rejects({ user: true, uidMap: Array.from({ length: 341 }, (_, i) => ({ inside: i, outside: 100000 + i, count: 1 })) }, /at most 340 ranges/, RangeError);
    rejects({ uidMap: [{ inside: 0, outside: 0, count: 1 }] }, /options\.uidMap needs user: true/);
    rejects({ user: true, uid: 20, uidMap: [{ inside: 0, outside: 100000, count: 10 }] }, /options\.uid 20 is not mapped by options\.uidMap/, RangeError);
    rejects({ user: true, groups: [5] }, /options\.groups\[0\] 5 is not mapped by options\.gidMap \(without gidMap only options\.gid is\)/, RangeError);
  });

  test('ids and the other identity options', () => {
    rejects({ uid: 1000 }, /options\.gid must be given with options\.uid without a user namespace/);
    rejects({ uid: 1.5, gid: 0 }, /options\.uid must be an integer id/);
    rejects({ uid: 2 ** 32, gid: 0 }, /options\.uid must be between 0 and 4294967294/, RangeError);
    rejects({ groups: 'wheel' as unknown as number[] }, /options\.groups must be an array of gids/);
    rejects({ timeOffsets: { boottime: 10 } }, /options\.timeOffsets needs time: true/);
    rejects({ time: true, init: false }, /options\.init must not be false with time: true/, RangeError);
    rejects({ time: true, timeOffsets: { uptime: 10 } as never }, /unknown option options\.timeOffsets\.uptime/);
    rejects({ time: true, timeOffsets: { boottime: Infinity } }, /options\.timeOffsets\.boottime must be a number of seconds/);
    rejects({ noNewPrivs: 'yes' as unknown as boolean }, /options\.noNewPrivs must be a boolean/);
  });

  test('a failing identity step is an IsolationError naming the step', async () => {
    let error: unknown;
    try {
      spawnIsolated({ command: '/bin/true', time: true, timeOffsets: { boottime: -1e9 } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IsolationError);
    expect(error).toMatchObject({ step: 'time-offsets', code: 'ERANGE', path: '/proc/self/timens_offsets' });
    expect((error as Error).message).toMatch(/would make a clock negative/);
    expect(await lingeringZombies()).toEqual([]);
  });
});
