/**
 * disableUserNamespaces / assertUserNamespacesDisabled (bubblewrap's --disable-userns,
 * --assert-userns-disabled) and lockFiles (--lock-file), against the real kernel.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IsolationError, spawnIsolated } from '../lib';
import { catchError, collect, makeTempDir, sh } from './helpers';

const everything = { mount: true, mounts: [{ type: 'bind' as const, source: '/', target: '/' }] };
// unshare(1) from util-linux: makes a user namespace, or says why not.
const TRY_USERNS = 'unshare --user true 2>&1 | sed "s/.*: //"';

describe('user namespaces disabled', () => {
  test('the program cannot make a user namespace, nor raise the limit; control: without the option it can', async () => {
    const control = await sh('unshare --user true && echo made', { ...everything, user: true });
    expect(control.stdout).toBe('made\n');
    const r = await sh(`${TRY_USERNS}; echo 100 > /proc/sys/user/max_user_namespaces 2>/dev/null || echo not-raised; unshare --user true 2>/dev/null || echo still-refused`, {
      ...everything, user: true, disableUserNamespaces: true,
    });
    expect(r.stdout).toBe('No space left on device\nnot-raised\nstill-refused\n');
    // The host's limit is untouched.
    expect(Number(fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8'))).toBeGreaterThan(1);
  });

  test('assertUserNamespacesDisabled fails the spawn where user namespaces can be made, by name', () => {
    const err = catchError(() => spawnIsolated({ command: '/bin/true', assertUserNamespacesDisabled: true }));
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ step: 'assert-user-namespaces-disabled', code: 'EEXIST' });
    expect(err.message).toMatch(/user namespaces are not disabled here/);
  });

  test('disableUserNamespaces needs user: true, refused before any process starts', () => {
    expect(() => spawnIsolated({ command: '/bin/true', disableUserNamespaces: true })).toThrow(/options\.disableUserNamespaces needs user: true/);
    expect(() => spawnIsolated({ command: '/bin/true', user: true, disableUserNamespaces: 1 as unknown as boolean })).toThrow(TypeError);
  });
});

/** The /proc/locks lines on `file` (by inode): "POSIX ADVISORY READ pid ...". */
function locksOn(file: string): string[] {
  const ino = fs.statSync(file).ino;
  return fs.readFileSync('/proc/locks', 'utf8').split('\n').filter((line) => line.split(/\s+/)[5]?.endsWith(`:${ino}`));
}

describe('lockFiles', () => {
  test('a read lock is held on each file while the sandbox runs, released when it ends; control: none without the option', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = path.join(dir, 'lock');
      fs.writeFileSync(file, '');
      for (const pid of [false, true]) {
        const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo up; read x'], ...everything, pid, lockFiles: [file], stdio: ['pipe', 'pipe', 'ignore'] });
        await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
        const held = locksOn(file);
        expect(held).toHaveLength(1);
        expect(held[0]).toMatch(/POSIX\s+ADVISORY\s+READ/);
        child.stdin?.end('done\n');
        const out = collect(child.stdout);
        expect(await child.exited).toMatchObject({ exitCode: 0 });
        await out;
        expect(locksOn(file)).toEqual([]);
      }
      const control = spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo up; read x'], ...everything, stdio: ['pipe', 'pipe', 'ignore'] });
      await new Promise<void>((resolve) => control.stdout?.once('data', () => resolve()));
      expect(locksOn(file)).toEqual([]);
      control.stdin?.end('done\n');
      await control.exited;
    } finally {
      cleanup();
    }
  });

  test('a missing lock file fails the spawn naming it; bad paths and init: false are refused before any process starts', () => {
    const err = catchError(() => spawnIsolated({ command: '/bin/true', ...everything, lockFiles: ['/no/such/lock'] }));
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ step: 'lock-file', path: '/no/such/lock', code: 'ENOENT' });
    expect(() => spawnIsolated({ command: '/bin/true', lockFiles: ['relative'] })).toThrow(/options\.lockFiles\[0\]/);
    expect(() => spawnIsolated({ command: '/bin/true', lockFiles: ['/x'], init: false })).toThrow(/options\.init must not be false with lockFiles/);
  });
});
