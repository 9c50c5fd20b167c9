/**
 * `file`, `dir` and `chmod` entries against what may already be at their target in a `root`
 * image: a FIFO (an open for writing would wait for a reader forever), a device node (the
 * bytes would reach its driver, also through a read-only bind), a symlink out of the root.
 * Each is refused with an IsolationError naming the entry, and nothing reaches the target;
 * each control shows that the path does lead to that target (a plain write inside the
 * sandbox, or a write through the path string from the host).
 */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostSystemMounts, IsolationError, spawnIsolated, spawnIsolatedAsync, type MountEntry, type SpawnOptions } from '../../lib';
import { catchError, hostMountinfo, lingeringZombies, makeTempDir, sh } from '../helpers';

const DIST = path.join(__dirname, '..', '..', 'dist');

let mountinfoBefore = '';
let temp: ReturnType<typeof makeTempDir>;
let root = '';
beforeEach(() => {
  mountinfoBefore = hostMountinfo();
  temp = makeTempDir('nsjail-node-targets-');
  root = path.join(temp.dir, 'root');
  fs.mkdirSync(root);
});
afterEach(async () => {
  temp.cleanup();
  expect(hostMountinfo()).toBe(mountinfoBefore);
  expect(await lingeringZombies()).toEqual([]);
});

/** A sandbox on `root` with the host's programs bound in, then `entries`. */
const onRoot = (...entries: MountEntry[]): Omit<SpawnOptions, 'command'> => ({
  mount: true, pid: true, root, mounts: [...hostSystemMounts(), ...entries],
});
/** /bin/true in such a sandbox. */
const trueOnRoot = (...entries: MountEntry[]): SpawnOptions => ({ command: '/bin/true', ...onRoot(...entries) });

function mkfifo(p: string): void {
  childProcess.execFileSync('mkfifo', ['-m', '0666', p]);
}

/** Our own character device node: major 1, minor 7 is /dev/full's driver (every write fails with ENOSPC). */
function mkfull(p: string): void {
  childProcess.execFileSync('mknod', ['-m', '0666', p, 'c', '1', '7']);
}

/** Opens a FIFO for reading without waiting for a writer; reads what is there now. */
function fifoReader(p: string): { read: () => string; close: () => void } {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  return {
    read: () => {
      const buffer = Buffer.alloc(64);
      try {
        return buffer.subarray(0, fs.readSync(fd, buffer, 0, 64, null)).toString();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return '';
        throw e;
      }
    },
    close: () => fs.closeSync(fd),
  };
}

const stamp = (p: string): Pick<fs.Stats, 'mode' | 'rdev' | 'ino' | 'mtimeMs' | 'ctimeMs'> => {
  const { mode, rdev, ino, mtimeMs, ctimeMs } = fs.lstatSync(p);
  return { mode, rdev, ino, mtimeMs, ctimeMs };
};

describe('a FIFO at a file target', () => {
  test('with a reader there: refused (EINVAL, not a regular file), sync and async, and no byte reaches the reader', async () => {
    const fifo = path.join(root, 'pipe');
    mkfifo(fifo);
    const reader = fifoReader(fifo);
    try {
      // Control: the sandbox's own write through the same path does reach the reader.
      const control = await sh('printf x > /pipe', onRoot());
      expect(control).toMatchObject({ exitCode: 0, stderr: '' });
      expect(reader.read()).toBe('x');

      const entry: MountEntry = { type: 'file', target: '/pipe', content: 'secret' };
      const err = catchError(() => spawnIsolated(trueOnRoot(entry)));
      expect(err).toBeInstanceOf(IsolationError);
      expect(err).toMatchObject({ code: 'EINVAL', step: 'mounts[' + hostSystemMounts().length + '] file', path: '/pipe' });
      expect(err.message).toMatch(/not a regular file/);
      await expect(spawnIsolatedAsync(trueOnRoot(entry))).rejects.toMatchObject({ code: 'EINVAL', path: '/pipe' });
      expect(reader.read()).toBe('');
      expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
    } finally {
      reader.close();
    }
  });

  test('with no reader: both spawns return at once with the error, and a later async spawn still works', () => {
    const fifo = path.join(root, 'pipe');
    mkfifo(fifo);
    // In a Node process of its own, with a time limit: where the child blocked in open, the
    // sync spawn would freeze that event loop and the async one its spawner thread.
    const script = `
      const lib = require(${JSON.stringify(DIST)});
      const options = JSON.parse(process.argv[1]);
      const entry = { type: 'file', target: '/pipe', content: 'x' };
      const out = {};
      try { lib.spawnIsolated({ ...options, mounts: [...options.mounts, entry] }); out.sync = 'spawned'; } catch (e) { out.sync = e.code; }
      lib.spawnIsolatedAsync({ ...options, mounts: [...options.mounts, entry] })
        .then(() => 'spawned', (e) => e.code)
        .then(async (code) => {
          out.async = code;
          const { child } = await lib.spawnIsolatedAsync(options);
          out.later = (await child).exitCode;
          console.log(JSON.stringify(out));
        });`;
    const result = childProcess.spawnSync(process.execPath, ['-e', script, JSON.stringify(trueOnRoot())], {
      encoding: 'utf8', timeout: 30000, killSignal: 'SIGKILL',
    });
    expect(result.signal).toBeNull(); // SIGKILL: it hung until the time limit
    expect(JSON.parse(result.stdout)).toEqual({ sync: 'EINVAL', async: 'EINVAL', later: 0 });
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
  });
});

describe('a character device node at a file target', () => {
  test('is refused and never opened, directly and through a read-only bind of it', async () => {
    const node = path.join(root, 'full');
    mkfull(node);
    const before = stamp(node);
    // Control: a write through either path reaches the driver, which answers ENOSPC (a
    // read-only bind does not stop writes to a device).
    const bound: MountEntry = { type: 'bind', source: node, target: '/ro-full', readonly: true };
    const control = await sh('printf x | cat > /full; echo "direct $?"; printf x | cat > /ro-full; echo "bound $?"', onRoot(bound));
    expect(control.stdout).toBe('direct 1\nbound 1\n');
    expect(control.stderr).toMatch(/No space left on device[^]*No space left on device/);

    const base = hostSystemMounts().length;
    const direct = catchError(() => spawnIsolated(trueOnRoot({ type: 'file', target: '/full', content: 'x' })));
    expect(direct).toMatchObject({ code: 'EINVAL', step: `mounts[${base}] file`, path: '/full' });
    const throughBind = catchError(() => spawnIsolated(trueOnRoot(bound, { type: 'file', target: '/ro-full', content: 'x' })));
    expect(throughBind).toMatchObject({ code: 'EINVAL', step: `mounts[${base + 1}] file`, path: '/ro-full' });
    expect(stamp(node)).toEqual(before);
  });
});

describe('a symlink at a file target', () => {
  test('pointing out of the root is refused (ELOOP) and the host file it names is untouched', () => {
    const outside = makeTempDir('nsjail-node-sentinel-');
    try {
      const sentinel = path.join(outside.dir, 'sentinel');
      fs.writeFileSync(sentinel, 'host only');
      const link = path.join(root, 'escape');
      fs.symlinkSync(sentinel, link);
      // Control: the target path as a string, opened from the host, leads to the sentinel.
      fs.writeFileSync(link, 'reached');
      expect(fs.readFileSync(sentinel, 'utf8')).toBe('reached');
      fs.writeFileSync(sentinel, 'host only');

      const err = catchError(() => spawnIsolated(trueOnRoot({ type: 'file', target: '/escape', content: 'x' })));
      expect(err).toMatchObject({ code: 'ELOOP', path: '/escape' });
      expect(fs.readFileSync(sentinel, 'utf8')).toBe('host only');
      expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    } finally {
      outside.cleanup();
    }
  });
});

describe('dir and chmod entries on special files', () => {
  test('a dir entry on a FIFO is refused (ENOTDIR) without opening it', () => {
    mkfifo(path.join(root, 'pipe'));
    const err = catchError(() => spawnIsolated(trueOnRoot({ type: 'dir', target: '/pipe' })));
    expect(err).toMatchObject({ code: 'ENOTDIR', path: '/pipe' });
  });

  test('chmod of a FIFO with no reader and of a device node changes their modes, opening neither', async () => {
    const fifo = path.join(root, 'pipe');
    const node = path.join(root, 'full');
    mkfifo(fifo);
    mkfull(node);
    const { exitCode } = await spawnIsolatedAsync(trueOnRoot({ type: 'chmod', target: '/pipe', mode: 0o600 }, { type: 'chmod', target: '/full', mode: 0o640 }))
      .then(({ child }) => child);
    expect(exitCode).toBe(0);
    expect(fs.lstatSync(fifo).mode & 0o7777).toBe(0o600);
    expect(fs.lstatSync(node).mode & 0o7777).toBe(0o640);
    expect(fs.lstatSync(node).isCharacterDevice()).toBe(true);
  });
});
