/** Failures: bad options before any process starts; child failures as IsolationError. */
import { IsolationError, prepareSandbox, spawnIsolated, type SpawnOptions } from '../lib';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { catchError, childCount, lingeringZombies, makeTempDir } from './helpers';

describe('child-side failures', () => {
  test('a missing command: IsolationError ENOENT at step execve, and no zombie', async () => {
    const err = catchError(() => spawnIsolated({ command: '/bin/nosuch', pid: true, net: true })) as IsolationError;
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, step: 'execve', syscall: 'execve', path: '/bin/nosuch' });
    expect(err.message).toBe('spawnIsolated: execve /bin/nosuch: ENOENT (no such file or directory)');
    expect(await lingeringZombies()).toEqual([]);
  });


  test('a file without execute permission gives EACCES; one that is no program, ENOEXEC', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const plain = path.join(dir, 'plain');
      fs.writeFileSync(plain, 'not a program', { mode: 0o644 });
      const junk = path.join(dir, 'junk');
      fs.writeFileSync(junk, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0]), { mode: 0o755 });
      expect(catchError(() => spawnIsolated({ command: plain }))).toMatchObject({ code: 'EACCES', step: 'execve', path: plain });
      const err = catchError(() => spawnIsolated({ command: junk }));
      expect(err).toMatchObject({ code: 'ENOEXEC', step: 'execve', path: junk });
      expect(err.message).toBe(`spawnIsolated: execve ${junk}: ENOEXEC (exec format error)`);
    } finally {
      cleanup();
    }
  });

  test.each([true, false])('a root that does not exist is named in the error (mount: %s)', async (mount) => {
    const err = catchError(() => spawnIsolated({ command: '/bin/true', root: '/no/such/root', mount })) as IsolationError;
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ code: 'ENOENT', path: '/no/such/root', step: mount ? 'bind-root' : 'chroot' });
    expect(err.message).toContain('/no/such/root');
    expect(await lingeringZombies()).toEqual([]);
  });

  // The report travels three ways: through memory shared until exec (the default CLONE_VM
  // clone), through the error pipe from a child cloned without CLONE_VM (parent-written id
  // maps), and through the pipe that init passes on. Each names the same step.
  test.each([
    ['shared memory (CLONE_VM)', {}],
    ['the error pipe (parent-written id maps)', { user: true, uidMap: [{ inside: 0, outside: 0, count: 1 }, { inside: 1, outside: 100000, count: 10 }] }],
    ['the error pipe through init', { pid: true, init: true }],
  ] as [string, Omit<SpawnOptions, 'command'>][])('a failed step and a failed execve are reported through %s', async (_how, extra) => {
    const failedStep = catchError(() => spawnIsolated({ command: '/bin/true', cwd: '/no/such/dir', ...extra })) as IsolationError;
    expect(failedStep).toBeInstanceOf(IsolationError);
    expect(failedStep).toMatchObject({ code: 'ENOENT', step: 'chdir', syscall: 'chdir', path: '/no/such/dir' });
    const failedExec = catchError(() => spawnIsolated({ command: '/bin/nosuch', ...extra })) as IsolationError;
    expect(failedExec).toMatchObject({ code: 'ENOENT', step: 'execve', path: '/bin/nosuch' });
    expect((await spawnIsolated({ command: '/bin/true', ...extra })).exitCode).toBe(0);
    expect(await lingeringZombies()).toEqual([]);
  });

  test('a cwd that does not exist inside the sandbox', () => {
    const err = catchError(() => spawnIsolated({ command: '/bin/true', cwd: '/no/such/dir' })) as IsolationError;
    expect(err).toMatchObject({ code: 'ENOENT', step: 'chdir', syscall: 'chdir', path: '/no/such/dir' });
  });

  test('a root that is a file gives ENOTDIR', () => {
    const err = catchError(() => spawnIsolated({ command: '/bin/true', root: '/etc/hostname' })) as IsolationError;
    expect(err).toMatchObject({ code: 'ENOTDIR', step: 'chroot' });
  });

  test('a root without the program: execve fails inside the new root', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const err = catchError(() => spawnIsolated({ command: '/bin/sh', root: dir, mount: true, pid: true })) as IsolationError;
      expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: '/bin/sh' });
    } finally {
      cleanup();
    }
  });
});

describe('bad options throw before any process starts', () => {
  const cases: [string, unknown, RegExp, ErrorConstructor][] = [
    ['no options', undefined, /options must be an object/, TypeError],
    ['no command', {}, /options.command must be a string/, TypeError],
    ['empty command', { command: '' }, /options.command must not be empty/, RangeError],
    ['NUL in command', { command: '/bin/tr\0ue' }, /options.command must not contain NUL/, RangeError],
    ['args not an array', { command: 'x', args: 'a b' }, /options.args must be an array/, TypeError],
    ['a non-string arg', { command: 'x', args: ['a', 3] }, /options.args\[1\] must be a string/, TypeError],
    ['env not an object', { command: 'x', env: ['A=1'] }, /options.env must be an object/, TypeError],
    ['env key with =', { command: 'x', env: { 'A=B': '1' } }, /key 'A=B' must not contain '='/, RangeError],
    ['env value not a string', { command: 'x', env: { A: 1 } }, /options.env.A must be a string/, TypeError],
    ['an empty env key', { command: 'x', env: { '': '1' } }, /options.env key '' must not be empty/, RangeError],
    ['NUL in an env key', { command: 'x', env: { 'A\0B': '1' } }, /options.env key 'A\0B' must not contain NUL/, RangeError],
    ['NUL in an env value', { command: 'x', env: { A: '1\0' } }, /options.env.A must not contain NUL/, RangeError],
    ['NUL in an arg', { command: 'x', args: ['a', 'b\0'] }, /options.args\[1\] must not contain NUL/, RangeError],
    ['relative root', { command: 'x', root: 'rootfs' }, /options.root must be an absolute path/, RangeError],
    ['relative cwd', { command: 'x', cwd: 'tmp' }, /options.cwd must be an absolute path/, RangeError],
    ['namespace not boolean', { command: 'x', pid: 'yes' }, /options.pid must be a boolean/, TypeError],
    ['hostname without uts', { command: 'x', hostname: 'h' }, /options.hostname needs uts: true/, TypeError],
    ['hostname too long', { command: 'x', uts: true, hostname: 'h'.repeat(65) }, /at most 64 bytes/, RangeError],
    ['bad stdio', { command: 'x', stdio: 'pip' }, /options.stdio must be 'pipe', 'inherit', 'ignore' or a file descriptor/, TypeError],
    ['stdio of 2', { command: 'x', stdio: ['pipe', 'pipe'] }, /must have 3 entries/, RangeError],
    ['negative fd', { command: 'x', stdio: ['pipe', -1, 'pipe'] }, /options.stdio\[1\] must be a file descriptor/, RangeError],
    ['typo', { command: 'x', netw: true }, /unknown option options.netw \(did you mean options.net\?\)/, TypeError],
    ['unknown', { command: 'x', frobnicate: true }, /unknown option options.frobnicate$/, TypeError],
  ];
  test.each(cases)('%s', (_name, options, message, kind) => {
    const before = childCount();
    const err = catchError(() => spawnIsolated(options as SpawnOptions));
    expect(err).toBeInstanceOf(kind);
    expect(err.message).toMatch(message);
    expect(childCount()).toBe(before);
  });

  test('a stdio fd that is not open is reported for that stream', () => {
    const err = catchError(() => spawnIsolated({ command: '/bin/true', stdio: ['ignore', 987654, 'ignore'] })) as IsolationError;
    expect(err).toMatchObject({ code: 'EBADF', step: 'stdio[1]' });
  });

  test('a stdio fd just closed is reported too, not replaced by a pipe the spawn makes under its number; also from a prepared sandbox', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = path.join(dir, 'out');
      const closed = fs.openSync(file, 'w');
      fs.closeSync(closed);
      // The control: the lowest free number is the one just closed, which the spawn's own
      // pipes for 'ignore' would take.
      const reused = fs.openSync(file, 'r');
      expect(reused).toBe(closed);
      fs.closeSync(reused);
      const err = catchError(() => spawnIsolated({ command: '/bin/echo', args: ['x'], stdio: ['ignore', closed, 'ignore'] })) as IsolationError;
      expect(err).toMatchObject({ code: 'EBADF', step: 'stdio[1]' });
      const fd = fs.openSync(file, 'w');
      const box = prepareSandbox({ command: '/bin/echo', args: ['x'], stdio: ['ignore', fd, 'ignore'] });
      fs.closeSync(fd);
      expect(catchError(() => box.spawn())).toMatchObject({ code: 'EBADF', step: 'stdio[1]' });
      expect(fs.readFileSync(file, 'utf8')).toBe('');
    } finally {
      cleanup();
    }
  });
});
