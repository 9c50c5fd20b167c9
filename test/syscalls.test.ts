/**
 * The raw layer acts on the calling thread or process, so each case runs in its own Node
 * process: these calls would otherwise move the test runner itself.
 */
import * as childProcess from 'node:child_process';
import * as path from 'node:path';
import { spawnIsolated } from '../lib';
import { waitpid } from '../lib/syscalls';
import { makeTempDir } from './helpers';

const dist = path.join(__dirname, '..', 'dist');

/** Runs a script in a fresh Node process with `sys` (nsjail-node/syscalls) in scope; returns its JSON output. */
function inFreshNode(body: string): Record<string, unknown> {
  const script = `
    const fs = require('node:fs');
    const sys = require(${JSON.stringify(path.join(dist, 'syscalls.js'))});
    const out = {};
    const attempt = (f) => { try { f(); return null; } catch (e) { return { name: e.name, message: e.message, code: e.code, step: e.step }; } };
    ${body}
    process.stdout.write(JSON.stringify(out));`;
  return JSON.parse(childProcess.execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as Record<string, unknown>;
}

describe('nsjail-node/syscalls', () => {
  test('unshare(net) moves only the calling thread into a new network namespace', () => {
    const out = inFreshNode(`
      const ns = (p) => fs.readlinkSync(p);
      const tids = () => fs.readdirSync('/proc/self/task').filter((t) => Number(t) !== process.pid);
      out.before = ns('/proc/thread-self/ns/net');
      sys.unshare(['net']);
      out.after = ns('/proc/thread-self/ns/net');
      out.others = [...new Set(tids().map((t) => ns('/proc/self/task/' + t + '/ns/net')))];
      out.devs = fs.readFileSync('/proc/thread-self/net/dev', 'utf8').split('\\n').slice(2).filter(Boolean).map((l) => l.split(':')[0].trim());`);
    expect(out.after).not.toBe(out.before);
    expect(out.others).toEqual([out.before]); // every other thread of Node stays behind
    expect(out.devs).toEqual(['lo']);
  });

  test('unshare(user) fails with EINVAL in Node, and the error says why', () => {
    const out = inFreshNode(`out.err = attempt(() => sys.unshare(['user']));`);
    expect(out.err).toMatchObject({ name: 'IsolationError', code: 'EINVAL', step: 'unshare' });
    expect((out.err as { message: string }).message).toMatch(/multithreaded process.*use spawnIsolated/);
  });

  test('setns joins a namespace by path and returns to the original one', () => {
    const out = inFreshNode(`
      const original = fs.readlinkSync('/proc/thread-self/ns/uts');
      const fd = fs.openSync('/proc/thread-self/ns/uts', 'r');
      sys.unshare(['uts']);
      out.moved = fs.readlinkSync('/proc/thread-self/ns/uts') !== original;
      sys.setns(fd, 'uts');
      out.back = fs.readlinkSync('/proc/thread-self/ns/uts') === original;
      out.wrongKind = attempt(() => sys.setns('/proc/self/ns/uts', 'net'));
      out.userInThreads = attempt(() => sys.setns('/proc/self/ns/mnt', 'mnt'));
      out.missing = attempt(() => sys.setns('/no/such/ns', 'net'));
      out.badKind = attempt(() => sys.unshare(['network']));`);
    expect(out).toMatchObject({ moved: true, back: true });
    expect(out.wrongKind).toMatchObject({ code: 'EINVAL' });
    expect((out.userInThreads as { message: string }).message).toMatch(/EINVAL.*multithreaded/);
    expect(out.missing).toMatchObject({ code: 'ENOENT' });
    expect((out.missing as { message: string }).message).toContain('/no/such/ns');
    expect(out.badKind).toMatchObject({ name: 'TypeError' });
    expect((out.badKind as { message: string }).message).toMatch(/unknown namespace 'network'/);
  });

  test('chroot changes the root of the whole process', () => {
    const tmp = makeTempDir();
    try {
      require('node:fs').writeFileSync(path.join(tmp.dir, 'marker'), 'x');
      const out = inFreshNode(`
        sys.chroot(${JSON.stringify(tmp.dir)});
        out.listing = fs.readdirSync('/');
        out.missing = attempt(() => sys.chroot('/nope'));`);
      expect(out.listing).toEqual(['marker']);
      expect(out.missing).toMatchObject({ code: 'ENOENT', step: 'chroot' });
    } finally {
      tmp.cleanup();
    }
  });

  test('waitpid waits for a sandbox of this library, and refuses other pids', async () => {
    const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'exit 5'], stdio: 'ignore' });
    expect(await waitpid(child.pid)).toMatchObject({ pid: child.pid, exitCode: 5, signal: null });
    await expect(waitpid(child.pid)).rejects.toMatchObject({ code: 'ECHILD' });
    await expect(waitpid(process.pid)).rejects.toThrow(/waitpid .*ECHILD.*not a live sandbox/);
  });
});
