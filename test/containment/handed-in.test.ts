/**
 * Containment: what the library itself hands the sandbox from the host is no handle on host
 * state. The `dev` entry's device nodes are read-only binds (device I/O works; chmod, chown
 * and utimes fail with EROFS), and stdin without input or stdio 'ignore' is a pipe, not the
 * host's /dev/null that the program could fchmod or touch through its fd.
 *
 * The real /dev nodes are only stat'ed before and after; every attack on them uses their
 * current mode and UTIME_NOW, so that even a broken protection could change only times. The
 * controls attack sentinels this test made (a char 1,3 node made with mknod, a file).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnIsolated } from '../../lib';
import { collect, openFdCount } from '../helpers';
import { buildProbe, inodeState, PROBE, recommended, runAsNobody, runProbe, type Outcome, type SandboxOptions } from './handedin-helpers';

const NODES = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty'];
const OLD = new Date('2001-01-01T00:00:00Z');

let probe: { dir: string; cleanup: () => void };
beforeAll(() => {
  probe = buildProbe();
});
afterAll(() => probe?.cleanup());

/** The mode bits of a host file in octal, as the probe's chmod takes them. */
const modeOf = (file: string): string => (fs.statSync(file).mode & 0o7777).toString(8);
const hostNodes = (): ReturnType<typeof inodeState>[] => NODES.map(inodeState);

/** A char 1,3 node (a /dev/null twin) made by this test, mode 0666, with an old mtime. */
function sentinelNode(name: string): string {
  const node = path.join(probe.dir, name);
  execFileSync('mknod', ['-m', '666', node, 'c', '1', '3']);
  fs.utimesSync(node, OLD, OLD);
  return node;
}

/** A regular file made by this test, mode 0666, with an old mtime. */
function sentinelFile(name: string): string {
  const file = path.join(probe.dir, name);
  fs.writeFileSync(file, 'sentinel\n', { mode: 0o666 });
  fs.chmodSync(file, 0o666);
  fs.utimesSync(file, OLD, OLD);
  return file;
}

const out = (o: Outcome): string => `${o.error ? `${o.error.name}: ${o.error.message}` : ''}${o.stdout ?? ''}${o.stderr ?? ''}`.trim();

describe('the dev entry binds the host device nodes read-only', () => {
  test('as root, in the recommended sandbox: chmod, chown and utimes of the nodes fail with EROFS; the host nodes are unchanged; reading and writing them works', async () => {
    const before = hostNodes();
    const options = recommended(probe.dir);
    const attacks: [string[], string][] = [
      [['chmod', '/dev/null', modeOf('/dev/null')], 'EROFS'],
      [['chmod', '/dev/tty', modeOf('/dev/tty')], 'EROFS'],
      [['chown', '/dev/null'], 'EROFS'],
      [['chown', '/dev/urandom'], 'EROFS'],
      [['touch', '/dev/null'], 'EROFS'],
      [['touch', '/dev/zero'], 'EROFS'],
      [['utimes', '/dev/full'], 'EROFS'],
      [['write', '/dev/null'], 'ok'],
      [['write', '/dev/full'], 'ENOSPC'], // the device's own answer: the write reached it
      [['read', '/dev/zero'], 'ok'],
      [['read', '/dev/urandom'], 'ok'],
    ];
    for (const [args, expected] of attacks) {
      const r = await runProbe({ args, options });
      expect(`${args.join(' ')}: ${out(r)}`).toBe(`${args.join(' ')}: ${expected}`);
    }
    expect(hostNodes()).toEqual(before);
  });

  test('control: the same attack on a writable bind of a node this test made changes it on the host; a read-only bind refuses it', async () => {
    const node = sentinelNode('null-twin');
    const before = inodeState(node);
    const writable = recommended(probe.dir);
    writable.mounts = [...writable.mounts!, { type: 'bind', source: node, target: '/sentinel' }];
    expect(out(await runProbe({ args: ['touch', '/sentinel'], options: writable }))).toBe('ok');
    expect(out(await runProbe({ args: ['write', '/sentinel'], options: writable }))).toBe('ok'); // nodev does not apply: a bind's default is dev
    const after = inodeState(node);
    expect(after.mtimeNs).toBeGreaterThan(before.mtimeNs);

    const readonly = recommended(probe.dir);
    readonly.mounts = [...readonly.mounts!, { type: 'bind', source: node, target: '/sentinel', readonly: true }];
    expect(out(await runProbe({ args: ['touch', '/sentinel'], options: readonly }))).toBe('EROFS');
    expect(inodeState(node)).toEqual(after);
  });
});

describe('stdin without input and stdio ignore are pipes, not the host /dev/null', () => {
  // The sandbox's root as host root (an explicit map): the owner of what root owns, so fchmod
  // and futimens succeed, on the pipe's own inode; on a host id they fail with EPERM anyway.
  const asHostRoot = (): SandboxOptions => ({
    ...recommended(probe.dir), uidMap: [{ inside: 0, outside: 0, count: 1 }], gidMap: [{ inside: 0, outside: 0, count: 1 }],
  });

  test('as root, runIsolated without input: fd 0 is an empty pipe; fchmod and futimens on it leave the host /dev/null unchanged', async () => {
    const before = hostNodes();
    const options = asHostRoot();
    expect(out(await runProbe({ args: ['fdlink', '0'], options }))).toMatch(/^pipe:\[\d+\]$/);
    expect(out(await runProbe({ args: ['readstdin'], options }))).toBe('read 0'); // end of file at once, as /dev/null
    expect(out(await runProbe({ args: ['fchmod', '0', modeOf('/dev/null')], options }))).toBe('ok'); // the pipe's own inode
    expect(out(await runProbe({ args: ['ftouch', '0'], options }))).toBe('ok');
    expect(hostNodes()).toEqual(before);
  });

  test("as root, stdio 'ignore': fds 0 and 1 are pipes; fchmod and futimens on them leave the host /dev/null unchanged", async () => {
    const before = hostNodes();
    const options = asHostRoot();
    expect(out(await runProbe({ args: ['fdlink', '0'], options, ignore: true }))).toMatch(/^pipe:\[\d+\]$/);
    expect(out(await runProbe({ args: ['fdlink', '1'], options, ignore: true }))).toMatch(/^pipe:\[\d+\]$/);
    expect(out(await runProbe({ args: ['fchmod', '1', modeOf('/dev/null')], options, ignore: true }))).toBe('ok');
    expect(out(await runProbe({ args: ['ftouch', '1'], options, ignore: true }))).toBe('ok');
    expect(out(await runProbe({ args: ['ftouch', '0'], options, ignore: true }))).toBe('ok');
    expect(hostNodes()).toEqual(before);
  });

  test("stdio 'ignore': output is drained and dropped (a large write completes, exit 0), and the pipe is closed once the program is gone", async () => {
    const options = recommended(probe.dir);
    const ignored = async (): Promise<unknown> => {
      const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'head -c 50000000 /dev/zero; head -c 1000000 /dev/zero >&2; echo end >&2'], ...options, stdio: ['ignore', 'ignore', 'ignore'] });
      return child.exited;
    };
    await ignored(); // the first 'ignore' starts the draining thread (its epoll fd stays)
    // ... and closes that first pipe on its own time: count once nothing has changed for 200 ms.
    let fds = openFdCount();
    for (let steady = 0, i = 0; steady < 4 && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const now = openFdCount();
      steady = now === fds ? steady + 1 : 0;
      fds = now;
    }
    for (let i = 0; i < 3; i++) expect(await ignored()).toMatchObject({ exitCode: 0, signal: null });
    // The draining thread closes each pipe when it sees end of file: wait for it (not a timing assertion).
    for (let i = 0; i < 100 && openFdCount() > fds; i++) await new Promise((r) => setTimeout(r, 50));
    expect(openFdCount()).toBe(fds);
  });

  test('control: stdio given as an fd of a file this test made: futimens and fchmod on fd 0 change that file on the host', async () => {
    const file = sentinelFile('stdin-sentinel');
    const before = inodeState(file);
    const fd = fs.openSync(file, 'r+');
    try {
      const options = recommended(probe.dir);
      const run = async (args: string[]): Promise<string> => {
        const child = spawnIsolated({ command: PROBE, args, ...options, env: { PROBE_STDERR: '1' }, stdio: [fd, fd, 'pipe'] });
        const [stderr] = await Promise.all([collect(child.stderr), child.exited]);
        return stderr.trim();
      };
      expect(await run(['fdlink', '0'])).toBe(file);
      expect(await run(['ftouch', '0'])).toBe('ok');
    } finally {
      fs.closeSync(fd);
    }
    expect(inodeState(file).mtimeNs).toBeGreaterThan(before.mtimeNs);
  });
});

describe('rootless (uid 65534 via setpriv), in the recommended sandbox without cgroup limits', () => {
  test('dev nodes: utimes and chmod fail with EROFS, stdin and ignore are pipes, the host /dev/null is unchanged; control: a writable bind of a node this test made is touched', async () => {
    const node = sentinelNode('nobody-null-twin');
    const nodeBefore = inodeState(node);
    const options = recommended(probe.dir, { rootless: true });
    const writable = { ...options, mounts: [...options.mounts!, { type: 'bind' as const, source: node, target: '/sentinel' }] };
    const before = hostNodes();
    const r = await runAsNobody(probe.dir, {
      touchNull: { args: ['touch', '/dev/null'], options },
      chmodNull: { args: ['chmod', '/dev/null', modeOf('/dev/null')], options },
      writeNull: { args: ['write', '/dev/null'], options },
      stdin: { args: ['fdlink', '0'], options },
      touchStdin: { args: ['ftouch', '0'], options },
      ignoreStdout: { args: ['fdlink', '1'], options, ignore: true },
      touchStdout: { args: ['ftouch', '1'], options, ignore: true },
      control: { args: ['touch', '/sentinel'], options: writable },
    });
    const got = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, out(v)]));
    expect(got).toEqual({
      touchNull: 'EROFS', chmodNull: 'EROFS', writeNull: 'ok',
      stdin: expect.stringMatching(/^pipe:\[\d+\]$/), touchStdin: 'ok',
      ignoreStdout: expect.stringMatching(/^pipe:\[\d+\]$/), touchStdout: 'ok',
      control: 'ok',
    });
    expect(hostNodes()).toEqual(before);
    expect(inodeState(node).mtimeNs).toBeGreaterThan(nodeBefore.mtimeNs);
  }, 120000);
});
