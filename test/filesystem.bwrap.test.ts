/**
 * The mount entries bubblewrap's --bind-data, --bind-fd and --perms build on: data entries,
 * binds by sourceFd, and the modes of the parents an entry makes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostSystemMounts, IsolationError, spawnIsolated, type MountEntry, type SpawnOptions } from '../lib';
import { catchError, hostMountinfo, makeTempDir, sh } from './helpers';

let mountinfoBefore = '';
beforeEach(() => {
  mountinfoBefore = hostMountinfo();
});
afterEach(() => {
  expect(hostMountinfo()).toBe(mountinfoBefore);
});

/** An empty tmpfs root with the host's programs and a scratch /tmp, plus `extra`. */
function sandbox(extra: MountEntry[], options: Partial<SpawnOptions> = {}): Omit<SpawnOptions, 'command' | 'args'> {
  return { mount: true, mounts: [...hostSystemMounts(), { type: 'tmpfs', target: '/tmp' }, ...extra], ...options };
}

describe('data entries (--bind-data)', () => {
  test('the content is bound over the target with its mode; readonly refuses writes (EROFS), without readonly they stay inside', async () => {
    const r = await sh(
      'stat -c "%a %s" /tmp/ro/f /tmp/rw/f; cat /tmp/ro/f; echo x > /tmp/ro/f || echo ro-refused; echo changed > /tmp/rw/f && cat /tmp/rw/f; stat -c %a /tmp/ro /tmp/rw',
      sandbox([
        { type: 'data', target: '/tmp/ro/f', content: 'hello\n', readonly: true },
        { type: 'data', target: '/tmp/rw/f', content: Buffer.from('abc'), mode: 0o640 },
      ]),
    );
    expect(r.stderr).toMatch(/Read-only file system/);
    // 0600 by default; the parents made for it lose group and other bits (bubblewrap's rule).
    expect(r.stdout).toBe('600 6\n640 3\nhello\nro-refused\nchanged\n700\n750\n');
  });

  test('over an existing file of a read-only root, where a file entry cannot write', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const root = path.join(dir, 'root');
      fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(root, 'etc', 'conf'), 'host version\n');
      const base = { mount: true, root, readonlyRoot: true, mounts: [...hostSystemMounts()] };
      const bound = await sh('cat /etc/conf', { ...base, mounts: [...base.mounts, { type: 'data', target: '/etc/conf', content: 'sandbox version\n', readonly: true }] });
      expect(bound).toMatchObject({ exitCode: 0, stdout: 'sandbox version\n' });
      // The host's file is untouched.
      expect(fs.readFileSync(path.join(root, 'etc', 'conf'), 'utf8')).toBe('host version\n');
    } finally {
      cleanup();
    }
  });

  test('a directory target is refused by name (EISDIR); bad content and mode are refused before any process starts', () => {
    const err = catchError(() => spawnIsolated({ command: '/bin/true', ...sandbox([{ type: 'dir', target: '/tmp/d' }, { type: 'data', target: '/tmp/d', content: 'x' }]) }));
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ code: 'EISDIR', step: expect.stringMatching(/^mounts\[\d+\] data$/), path: '/tmp/d' });
    expect(catchError(() => spawnIsolated({ command: '/bin/true', mount: true, mounts: [{ type: 'data', target: '/f', content: 5 as unknown as string }] })).message)
      .toMatch(/options\.mounts\[0\]\.content must be a string or a Buffer/);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', mount: true, mounts: [{ type: 'data', target: '/f', content: '', mode: 0o10000 }] }))).toBeInstanceOf(RangeError);
  });
});

test('a file bound onto a missing target gets a mount point of mode 0444 (bubblewrap\'s), seen in a host root', async () => {
  const { dir, cleanup } = makeTempDir();
  try {
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(dir, 'some-file'), 'x');
    const r = await sh('cat /new-file-mountpoint', { mount: true, root, mounts: [...hostSystemMounts(), { type: 'bind', source: path.join(dir, 'some-file'), target: '/new-file-mountpoint' }] });
    expect(r.stdout).toBe('x');
    expect((fs.statSync(path.join(root, 'new-file-mountpoint')).mode & 0o7777).toString(8)).toBe('444');
    expect(fs.statSync(path.join(root, 'new-file-mountpoint')).size).toBe(0);
  } finally {
    cleanup();
  }
});

describe('binds by sourceFd (--bind-fd)', () => {
  test('what the fd is open on is bound, read-only with readonly', async () => {
    const { dir, cleanup } = makeTempDir();
    const fd = fs.openSync(dir, 'r');
    try {
      fs.writeFileSync(path.join(dir, 'file-data'), 'foobar\n');
      const r = await sh('cat /in/file-data; echo x > /in/new || echo refused', sandbox([{ type: 'bind', sourceFd: fd, target: '/in', readonly: true }]));
      expect(r.stdout).toBe('foobar\nrefused\n');
      expect(fs.existsSync(path.join(dir, 'new'))).toBe(false);
    } finally {
      fs.closeSync(fd);
      cleanup();
    }
  });

  test('the directory the fd is open on is bound, also after it was renamed and an impostor put at its old path; control: a bind by that path gets the impostor', async () => {
    const { dir, cleanup } = makeTempDir();
    const original = path.join(dir, 'shared');
    fs.mkdirSync(original);
    fs.writeFileSync(path.join(original, 'which'), 'original\n');
    const fd = fs.openSync(original, 'r');
    try {
      fs.renameSync(original, path.join(dir, 'moved'));
      fs.mkdirSync(original);
      fs.writeFileSync(path.join(original, 'which'), 'impostor\n');
      const byFd = await sh('cat /in/which', sandbox([{ type: 'bind', sourceFd: fd, target: '/in' }]));
      expect(byFd.stdout).toBe('original\n');
      const byPath = await sh('cat /in/which', sandbox([{ type: 'bind', source: original, target: '/in' }]));
      expect(byPath.stdout).toBe('impostor\n');
    } finally {
      fs.closeSync(fd);
      cleanup();
    }
  });

  test('refused before any process starts: a closed fd, a deleted file, source with sourceFd, no target', () => {
    const { dir, cleanup } = makeTempDir();
    const fd = fs.openSync(dir, 'r');
    // A deleted file: open, with no path left to bind.
    fs.writeFileSync(path.join(dir, 'gone'), '');
    const deleted = fs.openSync(path.join(dir, 'gone'), 'r');
    fs.unlinkSync(path.join(dir, 'gone'));
    try {
      const attempt = (entry: Record<string, unknown>): Error =>
        catchError(() => spawnIsolated({ command: '/bin/true', mount: true, mounts: [entry as unknown as MountEntry] }));
      expect(attempt({ type: 'bind', sourceFd: 987654, target: '/x' }).message).toMatch(/mounts\[0\]\.sourceFd 987654 is not an open file descriptor/);
      expect(attempt({ type: 'bind', sourceFd: deleted, target: '/x' }).message).toMatch(/mounts\[0\]\.sourceFd .* has no path to bind/);
      expect(attempt({ type: 'bind', sourceFd: fd, source: dir, target: '/x' }).message).toMatch(/takes source or sourceFd, not both/);
      expect(attempt({ type: 'bind', sourceFd: fd }).message).toMatch(/mounts\[0\]\.target is required with sourceFd/);
      expect(attempt({ type: 'bind', sourceFd: -1, target: '/x' })).toBeInstanceOf(TypeError);
    } finally {
      for (const f of [fd, deleted]) fs.closeSync(f);
      cleanup();
    }
  });
});

describe('modes of the parents an entry makes (--perms)', () => {
  test('0755, less the group or other bits when the entry gives that class nothing', async () => {
    const modes = [0o1777, 0o755, 0o644, 0o750, 0o710, 0o720, 0o640, 0o700, 0o600, 0o705, 0o604, 0o000];
    const r = await sh(
      `${modes.map((m) => `stat -c %a /tmp/p${m.toString(8)} /tmp/p${m.toString(8)}/dir`).join('; ')}; stat -c %a /tmp/plain /tmp/t/x /tmp/t`,
      sandbox([
        ...modes.map((m): MountEntry => ({ type: 'dir', target: `/tmp/p${m.toString(8)}/dir`, mode: m })),
        { type: 'dir', target: '/tmp/plain/dir' },
        { type: 'tmpfs', target: '/tmp/t/x', mode: 0o700 },
      ]),
    );
    expect(r.stderr).toBe('');
    const got = r.stdout.trim().split('\n');
    const parents = ['755', '755', '755', '750', '750', '750', '750', '700', '700', '705', '705', '700'];
    expect(modes.map((_, i) => got[2 * i])).toEqual(parents);
    // The directory itself has exactly its mode (not umasked).
    expect(modes.map((_, i) => got[2 * i + 1])).toEqual(modes.map((m) => m.toString(8)));
    expect(got.slice(-3)).toEqual(['755', '700', '700']);
  });
});
