/** The filesystem flags of `nsjail-node` end to end: bubblewrap-style roots built from binds, tmpfs, proc, dev, dirs and symlinks. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli, cliSh } from './cli-helpers';
import { makeTempDir } from './helpers';

/** The host's /usr read-only, and /bin, /lib, ... as the host has them (links or binds): enough for /bin/sh and coreutils. */
function systemFlags(): string[] {
  const flags = ['--ro-bind', '/usr', '/usr'];
  for (const dir of ['/bin', '/sbin', '/lib', '/lib64']) {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(dir);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) flags.push('--symlink', fs.readlinkSync(dir), dir);
    else flags.push('--ro-bind', dir, dir);
  }
  return flags;
}

const hostMounts = (): string => fs.readFileSync('/proc/self/mountinfo', 'utf8');

describe('a root built from flags, as bubblewrap builds it', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => {
    tmp = makeTempDir('nsjail-node-cli-fs-');
  });
  afterEach(() => tmp.cleanup());

  test('without --root the entries make up the whole root, and nothing reaches the host', async () => {
    const before = hostMounts();
    const r = await cliSh(
      [...systemFlags(), '--unshare-pid', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--dir', '/work/a/b', '--symlink', '/work/a', '/here'],
      'ls -1 /; echo --; readlink /here; stat -f -c %T /tmp; echo x > /tmp/f && cat /tmp/f; ls /work/a; ' +
        'echo --; ls /proc | grep -c "^[0-9]"; head -c 4 /dev/zero | od -An -tx1 | tr -d " "; ls /dev',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [top, mid, rest] = r.stdout.split('--\n');
    const expectedTop = ['dev', 'here', 'proc', 'tmp', 'usr', 'work', ...['bin', 'sbin', 'lib', 'lib64'].filter((d) => fs.existsSync(`/${d}`))];
    expect(top.split('\n').filter(Boolean).sort()).toEqual(expectedTop.sort());
    const [link, fsType, written, bLine] = mid.split('\n');
    const [procPids, zeros, ...devices] = rest.split('\n');
    expect([link, fsType, written, bLine]).toEqual(['/work/a', 'tmpfs', 'x', 'b']);
    // Its own PID namespace: the shell and the processes of this pipeline, not the host's hundreds.
    expect(Number(procPids)).toBeLessThan(10);
    expect(zeros).toBe('00000000');
    expect(devices.filter(Boolean)).toEqual(expect.arrayContaining(['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm']));
    expect(hostMounts()).toBe(before);
  });

  test('--bind is writable and seen on the host; --ro-bind is not writable', async () => {
    const dir = tmp.dir;
    const rw = await cliSh([...systemFlags(), '--bind', dir, '/data'], 'echo from-inside > /data/file');
    expect(rw).toMatchObject({ code: 0, stderr: '' });
    expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('from-inside\n');

    const ro = await cliSh([...systemFlags(), '--ro-bind', dir, '/data'], 'cat /data/file; echo more > /data/file');
    expect(ro.code).not.toBe(0);
    expect(ro.stdout).toBe('from-inside\n');
    expect(ro.stderr).toMatch(/Read-only file system/);
    expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('from-inside\n');
  });

  test('a relative SRC is taken from the current directory', async () => {
    fs.writeFileSync(path.join(tmp.dir, 'rel'), 'relative\n');
    const r = await cliSh([...systemFlags(), '--ro-bind', path.relative(process.cwd(), tmp.dir), '/data'], 'cat /data/rel');
    expect(r).toMatchObject({ code: 0, stdout: 'relative\n' });
  });

  test('--bind and --ro-bind are nodev; --dev-bind lets device nodes be opened', async () => {
    const write = 'echo x > /null && echo written';
    expect(await cliSh([...systemFlags(), '--dev-bind', '/dev/null', '/null'], write)).toMatchObject({ code: 0, stdout: 'written\n' });
    for (const flag of ['--bind', '--ro-bind']) {
      const r = await cliSh([...systemFlags(), flag, '/dev/null', '/null'], write);
      expect([flag, r.code, r.stdout]).toEqual([flag, expect.any(Number), '']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Permission denied|Read-only/);
    }
  });

  test('--bind-try and --ro-bind-try skip a missing SRC; --bind fails on it with exit 125', async () => {
    const missing = path.join(tmp.dir, 'missing');
    for (const flag of ['--bind-try', '--ro-bind-try']) {
      const r = await cliSh([...systemFlags(), flag, missing, '/data'], 'test -e /data && echo there || echo skipped');
      expect([flag, r.code, r.stdout]).toEqual([flag, 0, 'skipped\n']);
    }
    fs.mkdirSync(missing);
    expect(await cliSh([...systemFlags(), '--ro-bind-try', missing, '/data'], 'test -d /data && echo there')).toMatchObject({ code: 0, stdout: 'there\n' });
    fs.rmdirSync(missing);
    const r = await cli(['--json-status-fd', '3', ...systemFlags(), '--bind', missing, '/data', '/bin/true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).toMatch(/ENOENT/);
    expect(JSON.parse(r.fd3).error).toMatchObject({ code: 'ENOENT' });
  });

  test('with --root the entries are layered on that directory', async () => {
    const root = path.join(tmp.dir, 'root');
    const data = path.join(tmp.dir, 'data');
    fs.mkdirSync(root);
    fs.mkdirSync(data);
    fs.writeFileSync(path.join(root, 'in-root'), 'r\n');
    fs.writeFileSync(path.join(data, 'in-data'), 'd\n');
    const r = await cli(['--root', root, ...systemFlags(), '--ro-bind', data, '/data', '/bin/sh', '-c', 'cat /in-root /data/in-data']);
    expect(r).toMatchObject({ code: 0, stdout: 'r\nd\n', stderr: '' });
  });
});

describe('filesystem flag mistakes exit 2', () => {
  test.each([
    [['--tmpfs', 'tmp', '/bin/true'], "nsjail-node: --tmpfs needs an absolute path inside the sandbox, got 'tmp'"],
    [['--bind', '/tmp', 'data', '/bin/true'], "nsjail-node: --bind needs an absolute path inside the sandbox, got 'data'"],
    [['--symlink', 'usr/bin', 'bin', '/bin/true'], "nsjail-node: --symlink needs an absolute path inside the sandbox, got 'bin'"],
    [['--ro-bind', '/usr'], 'nsjail-node: --ro-bind needs 2 values: --ro-bind SRC DEST'],
    [['--proc', '/proc', '/bin/true'], 'nsjail-node: --proc needs --unshare-pid (a procfs shows the PID namespace it is mounted from: without a new one it would list every host process)'],
  ])('%j', async (args, line) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(line);
  });
});
