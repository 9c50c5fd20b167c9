/**
 * Mount plans seen from inside: every entry kind with its flags, the host-system preset, and
 * the host's mount table unchanged around each sandbox.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostSystemMounts, type MountEntry, type SpawnOptions } from '../lib';
import { buildRootfs } from '../lib/rootfs';
import { hostMountinfo, makeTempDir, run } from './helpers';

let mountinfoBefore = '';
beforeEach(() => {
  mountinfoBefore = hostMountinfo();
});
afterEach(() => {
  // Nothing a sandbox mounted may show (or be left) in the host's mount namespace.
  expect(hostMountinfo()).toBe(mountinfoBefore);
});

/** An empty tmpfs root with the host's programs, /proc and a scratch /tmp, plus `extra`. */
function sandbox(extra: MountEntry[], options: Partial<SpawnOptions> = {}): Omit<SpawnOptions, 'command'> {
  return {
    mount: true,
    pid: true,
    mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'tmpfs', target: '/tmp' }, ...extra],
    ...options,
  };
}

/**
 * Runs a JavaScript probe with the host's node inside the sandbox; it prints one JSON value.
 * `code(fn)` in the probe gives 'ok' or the error code of fn().
 */
async function probe(script: string, options: Omit<SpawnOptions, 'command'>): Promise<Record<string, unknown>> {
  const prelude = "const fs = require('fs'), cp = require('child_process'); const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };";
  const r = await run({ command: process.execPath, args: ['-e', `${prelude}\nconsole.log(JSON.stringify((() => { ${script} })()))`], ...options });
  if (r.exitCode !== 0) throw new Error(`probe failed (${r.exitCode}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** mountinfo lines as { mountPoint: 'options - fstype source superoptions' } (the last mount wins). */
const PARSE_MOUNTINFO = `const mounts = {}; for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\\n')) { const f = l.split(' '); const dash = f.indexOf('-'); mounts[f[4]] = { opts: f[5].split(','), fstype: f[dash + 1] }; }`;

describe('bind', () => {
  test('read-write, read-only (EROFS), noexec (EACCES), nosuid and nodev, try', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      for (const sub of ['rw', 'ro', 'exec']) fs.mkdirSync(path.join(dir, sub));
      fs.writeFileSync(path.join(dir, 'ro', 'kept'), 'host data');
      fs.copyFileSync('/bin/true', path.join(dir, 'exec', 'true'));
      fs.chmodSync(path.join(dir, 'exec', 'true'), 0o755);
      const out = await probe(
        `${PARSE_MOUNTINFO}
        return {
          rwWrite: code(() => fs.writeFileSync('/rw/new', 'from inside')),
          roWrite: code(() => fs.writeFileSync('/ro/new', 'x')),
          roUnlink: code(() => fs.unlinkSync('/ro/kept')),
          roRead: fs.readFileSync('/ro/kept', 'utf8'),
          execOk: cp.spawnSync('/ex/true').status,
          noexec: cp.spawnSync('/nx/true').error?.code ?? 'ran',
          nxOpts: mounts['/nx'].opts, roOpts: mounts['/ro'].opts, rwOpts: mounts['/rw'].opts,
          tried: fs.existsSync('/maybe'),
        };`,
        sandbox([
          { type: 'bind', source: path.join(dir, 'rw'), target: '/rw' },
          { type: 'bind', source: path.join(dir, 'ro'), target: '/ro', readonly: true },
          { type: 'bind', source: path.join(dir, 'exec'), target: '/ex', readonly: true },
          { type: 'bind', source: path.join(dir, 'exec'), target: '/nx', noexec: true, nosuid: true, nodev: true },
          { type: 'bind', source: '/no/such/source', target: '/maybe', try: true },
        ]),
      );
      expect(out).toMatchObject({ rwWrite: 'ok', roWrite: 'EROFS', roUnlink: 'EROFS', roRead: 'host data', execOk: 0, noexec: 'EACCES', tried: false });
      expect(out.nxOpts).toEqual(expect.arrayContaining(['noexec', 'nosuid', 'nodev']));
      expect(out.roOpts).toContain('ro');
      expect(out.rwOpts).toContain('rw');
      // The read-write bind is the host directory; the read-only one was not touched.
      expect(fs.readFileSync(path.join(dir, 'rw', 'new'), 'utf8')).toBe('from inside');
      expect(fs.readdirSync(path.join(dir, 'ro'))).toEqual(['kept']);
    } finally {
      cleanup();
    }
  });

  test('recursive (the default) brings the mounts under the source, recursive: false does not; a file binds onto a file', async () => {
    // The host's /dev has devpts mounted at /dev/pts: bound recursively, ptmx is there.
    const out = await probe(
      `${PARSE_MOUNTINFO}
      return {
        rec: fs.readdirSync('/rdev/pts').includes('ptmx'), recType: mounts['/rdev/pts']?.fstype, recRo: mounts['/rdev/pts']?.opts.includes('ro'),
        flat: fs.readdirSync('/ndev/pts'),
        file: fs.statSync('/hostname').isFile(), content: fs.readFileSync('/hostname', 'utf8'),
      };`,
      sandbox([
        { type: 'bind', source: '/dev', target: '/rdev', readonly: true },
        { type: 'bind', source: '/dev', target: '/ndev', readonly: true, recursive: false },
        { type: 'bind', source: '/etc/hostname', target: '/hostname', readonly: true },
      ]),
    );
    expect(out).toEqual({ rec: true, recType: 'devpts', recRo: true, flat: [], file: true, content: fs.readFileSync('/etc/hostname', 'utf8') });
  });
});

describe('tmpfs', () => {
  test('size (ENOSPC past it), mode, nosuid and nodev by default, read-only', async () => {
    const out = await probe(
      `${PARSE_MOUNTINFO}
      return {
        small: code(() => fs.writeFileSync('/small/fits', Buffer.alloc(32 * 1024))),
        full: code(() => fs.writeFileSync('/small/big', Buffer.alloc(1024 * 1024))),
        mode: (fs.statSync('/small').mode & 0o7777).toString(8),
        opts: mounts['/small'].opts, fstype: mounts['/small'].fstype,
        ro: code(() => fs.writeFileSync('/empty/x', '')),
        sticky: (fs.statSync('/sticky').mode & 0o7777).toString(8),
      };`,
      sandbox([
        { type: 'tmpfs', target: '/small', size: 64 * 1024, mode: 0o700 },
        { type: 'tmpfs', target: '/empty', readonly: true },
        { type: 'tmpfs', target: '/sticky', mode: 0o1777, size: '1m' },
      ]),
    );
    expect(out).toMatchObject({ small: 'ok', full: 'ENOSPC', mode: '700', fstype: 'tmpfs', ro: 'EROFS', sticky: '1777' });
    expect(out.opts).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
  });
});

describe('proc', () => {
  test('a fresh procfs of the sandbox: only its processes, sensitive parts read-only', async () => {
    const out = await probe(
      `${PARSE_MOUNTINFO}
      return {
        pids: fs.readdirSync('/proc').filter((e) => /^\\d+$/.test(e)).map(Number),
        self: fs.readlinkSync('/proc/self'),
        fstype: mounts['/proc'].fstype, opts: mounts['/proc'].opts,
        readonly: ['/proc/sys', '/proc/sysrq-trigger', '/proc/irq', '/proc/bus'].filter((p) => fs.existsSync(p)).map((p) => [p, mounts[p]?.opts.includes('ro')]),
        sysctl: code(() => fs.writeFileSync('/proc/sys/kernel/hostname', 'changed')),
      };`,
      // uts: a write to kernel/hostname, if it ever got through, would change only the sandbox's name.
      sandbox([], { uts: true }),
    );
    // node is PID 1; nothing of the host (our own PID is far above).
    expect(out.pids).toEqual([1]);
    expect(out.self).toBe('1');
    expect(out).toMatchObject({ fstype: 'proc', sysctl: 'EROFS' });
    expect(out.opts).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
    const readonly = out.readonly as [string, boolean][];
    expect(readonly.map(([p]) => p)).toEqual(expect.arrayContaining(['/proc/sys', '/proc/irq', '/proc/bus']));
    for (const [p, ro] of readonly) expect([p, ro]).toEqual([p, true]);
  });
});

describe('dev', () => {
  test('a minimal /dev: the usual nodes, a private devpts, shm, and the /proc links', async () => {
    const out = await probe(
      `${PARSE_MOUNTINFO}
      const read16 = (p) => { const fd = fs.openSync(p, 'r'); const b = Buffer.alloc(16); fs.readSync(fd, b); fs.closeSync(fd); return [...b]; };
      const ptmx = fs.openSync('/dev/ptmx', 'r+');
      const ptys = fs.readdirSync('/dev/pts');
      fs.closeSync(ptmx);
      return {
        entries: fs.readdirSync('/dev').sort(),
        chars: ['null', 'zero', 'full', 'random', 'urandom', 'tty'].map((n) => fs.statSync('/dev/' + n).isCharacterDevice()),
        nullWrite: code(() => fs.writeFileSync('/dev/null', 'discarded')),
        full: code(() => fs.writeFileSync('/dev/full', 'x')),
        zero: read16('/dev/zero').every((x) => x === 0),
        random: read16('/dev/urandom').some((x) => x !== 0),
        links: ['ptmx', 'fd', 'stdin', 'stdout', 'stderr', 'core'].map((n) => fs.readlinkSync('/dev/' + n)),
        ptys, fdDir: fs.readdirSync('/dev/fd').includes('1'),
        types: { dev: mounts['/dev'].fstype, pts: mounts['/dev/pts'].fstype, shm: mounts['/dev/shm'].fstype },
        devOpts: mounts['/dev'].opts,
        nodeOpts: ['null', 'zero', 'full', 'random', 'urandom', 'tty'].map((n) => mounts['/dev/' + n].opts.includes('ro')),
        shm: code(() => fs.writeFileSync('/dev/shm/seg', 'x')),
      };`,
      sandbox([{ type: 'dev' }]),
    );
    expect(out.entries).toEqual(['core', 'fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero']);
    expect(out.chars).toEqual([true, true, true, true, true, true]);
    expect(out).toMatchObject({ nullWrite: 'ok', full: 'ENOSPC', zero: true, random: true, fdDir: true, shm: 'ok' });
    expect(out.links).toEqual(['pts/ptmx', '/proc/self/fd', '/proc/self/fd/0', '/proc/self/fd/1', '/proc/self/fd/2', '/proc/kcore']);
    // A private devpts instance: only the pty just opened, none of the host's.
    expect(out.ptys).toEqual(['0', 'ptmx']);
    expect(out.types).toEqual({ dev: 'tmpfs', pts: 'devpts', shm: 'tmpfs' });
    expect(out.devOpts).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    // The host's nodes are bound read-only (chmod and utimes: test/containment/handed-in.test.ts).
    expect(out.nodeOpts).toEqual([true, true, true, true, true, true]);
  });

  test('a device node made inside does not open (nodev)', async () => {
    const r = await run({
      command: '/bin/sh',
      args: ['-c', 'mknod /dev/mynull c 1 3 && (echo > /dev/mynull) 2>&1; echo "status $?"'],
      ...sandbox([{ type: 'dev' }], { capabilities: ['CAP_MKNOD'] }),
    });
    expect(r.stdout).toMatch(/Permission denied\nstatus [1-9]/);
  });
});

describe('mqueue', () => {
  test('a message-queue filesystem of the sandbox\'s IPC namespace', async () => {
    const r = await run({
      command: '/bin/sh',
      args: ['-c', 'grep " /dev/mqueue " /proc/self/mountinfo | sed "s/.* - //" | cut -d" " -f1; : > /dev/mqueue/q && cat /dev/mqueue/q'],
      ...sandbox([{ type: 'mqueue' }], { ipc: true }),
    });
    // Creating a file there makes a POSIX message queue, which reports its state.
    expect(r.stdout).toMatch(/^mqueue\nQSIZE:0 /);
    expect(r.exitCode).toBe(0);
  });
});

describe('dir, file, symlink, chmod', () => {
  test('each is made inside with its mode and content', async () => {
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 0]);
    const out = await probe(
      `const mode = (p) => (fs.statSync(p).mode & 0o7777).toString(8);
      return {
        dir: [fs.statSync('/a/b/c').isDirectory(), mode('/a/b/c'), mode('/a/b')],
        text: [fs.readFileSync('/etc/motd', 'utf8'), mode('/etc/motd')],
        binary: [...fs.readFileSync('/data/blob')],
        link: [fs.readlinkSync('/cfg'), fs.readFileSync('/cfg', 'utf8')],
        chmod: mode('/shared'),
      };`,
      sandbox([
        { type: 'dir', target: '/a/b/c', mode: 0o711 },
        { type: 'file', target: '/etc/motd', content: 'hello inside\n', mode: 0o600 },
        { type: 'file', target: '/data/blob', content: binary },
        { type: 'symlink', target: '/cfg', to: 'etc/motd' },
        { type: 'dir', target: '/shared' },
        { type: 'chmod', target: '/shared', mode: 0o1777 },
      ]),
    );
    expect(out).toEqual({
      dir: [true, '711', '755'],
      text: ['hello inside\n', '600'],
      binary: [...binary],
      link: ['etc/motd', 'hello inside\n'],
      chmod: '1777',
    });
  });
});

describe('overlay', () => {
  test('a tmpfs upper layer: changes inside, host lower layers untouched', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const [top, bottom] = [path.join(dir, 'top'), path.join(dir, 'bottom')];
      fs.mkdirSync(top);
      fs.mkdirSync(bottom);
      fs.writeFileSync(path.join(top, 'shared'), 'top');
      fs.writeFileSync(path.join(bottom, 'shared'), 'bottom');
      fs.writeFileSync(path.join(bottom, 'only-bottom'), 'b');
      const out = await probe(
        `${PARSE_MOUNTINFO}
        const before = fs.readdirSync('/merged').sort();
        const shared = fs.readFileSync('/merged/shared', 'utf8');
        fs.writeFileSync('/merged/new', 'n');
        fs.writeFileSync('/merged/shared', 'changed');
        fs.unlinkSync('/merged/only-bottom');
        return { before, shared, after: fs.readdirSync('/merged').sort(), fstype: mounts['/merged'].fstype,
          ro: code(() => fs.writeFileSync('/ro/x', '')), roList: fs.readdirSync('/ro').sort() };`,
        sandbox([
          { type: 'overlay', target: '/merged', lower: [top, bottom] },
          { type: 'overlay', target: '/ro', lower: [top, bottom], readonly: true },
        ]),
      );
      expect(out).toEqual({
        before: ['only-bottom', 'shared'],
        shared: 'top',
        after: ['new', 'shared'],
        fstype: 'overlay',
        ro: 'EROFS',
        roList: ['only-bottom', 'shared'],
      });
      expect(fs.readdirSync(top)).toEqual(['shared']);
      expect(fs.readFileSync(path.join(top, 'shared'), 'utf8')).toBe('top');
      expect(fs.readdirSync(bottom).sort()).toEqual(['only-bottom', 'shared']);
    } finally {
      cleanup();
    }
  });

  test('host upper and work directories: changes land in upper', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const [lower, upper, work] = ['lower', 'upper', 'work'].map((d) => path.join(dir, d));
      for (const d of [lower, upper, work]) fs.mkdirSync(d);
      fs.writeFileSync(path.join(lower, 'base'), 'base');
      const r = await run({
        command: '/bin/sh',
        args: ['-c', 'cat /o/base && echo kept > /o/made'],
        ...sandbox([{ type: 'overlay', target: '/o', lower: [lower], upper, work }]),
      });
      expect(r).toMatchObject({ stdout: 'base', exitCode: 0 });
      expect(fs.readFileSync(path.join(upper, 'made'), 'utf8')).toBe('kept\n');
      expect(fs.readdirSync(lower)).toEqual(['base']);
    } finally {
      cleanup();
    }
  });
});

describe('the new root', () => {
  test('the host\'s /bin/sh and node run in an empty tmpfs root plus the preset', async () => {
    const mounts = hostSystemMounts();
    // The preset keeps merged-/usr symlinks as symlinks and binds real directories read-only.
    for (const dir of ['/bin', '/lib', '/lib64', '/sbin']) {
      const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
      if (stat?.isSymbolicLink()) expect(mounts).toContainEqual({ type: 'symlink', target: dir, to: fs.readlinkSync(dir) });
      else if (stat?.isDirectory()) expect(mounts).toContainEqual(expect.objectContaining({ type: 'bind', source: dir, readonly: true }));
    }
    const shell = await run({ command: '/bin/sh', args: ['-c', 'echo "$0 runs"; ls /'], mount: true, mounts });
    expect(shell.stdout.split('\n')[0]).toBe('/bin/sh runs');
    // Nothing but what the preset put there.
    const top = new Set(mounts.map((m) => ('target' in m && m.target ? m.target : (m as { source: string }).source).split('/')[1]));
    expect(shell.stdout.trim().split('\n').slice(1).sort()).toEqual([...top].sort());
    const node = await run({ command: process.execPath, args: ['-p', 'process.version'], mount: true, mounts });
    expect(node).toMatchObject({ exitCode: 0, stdout: `${process.version}\n` });
  });

  test('readonlyRoot: writes outside the scratch tmpfs fail', async () => {
    const r = await run({
      command: '/bin/sh',
      args: ['-c', 'for f in /new /usr/new /etc/new /bin/new /tmp/new; do if (echo > $f) 2>/dev/null; then echo "$f written"; else echo "$f refused"; fi; done'],
      ...sandbox([{ type: 'dev' }], { readonlyRoot: true }),
    });
    expect(r.stdout).toBe('/new refused\n/usr/new refused\n/etc/new refused\n/bin/new refused\n/tmp/new written\n');
    expect(fs.existsSync('/usr/new')).toBe(false);
  });

  test('with root, mounts are layered on that directory', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      fs.writeFileSync(path.join(dir, 'from-root'), 'root file');
      const r = await run({
        command: '/bin/sh',
        args: ['-c', 'cat /from-root; echo; ls /; echo scratch > /scratch/x && cat /scratch/x'],
        root: dir,
        mount: true,
        mounts: [...hostSystemMounts(), { type: 'tmpfs', target: '/scratch' }],
      });
      expect(r.exitCode).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe('root file');
      expect(r.stdout).toContain('from-root\n');
      expect(r.stdout.endsWith('scratch\n')).toBe(true);
      // Mount points were made in the host directory (documented); the tmpfs content was not.
      expect(fs.readdirSync(path.join(dir, 'scratch'))).toEqual([]);
    } finally {
      cleanup();
    }
  });

  test('readonlyRoot with a root directory alone', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const { programs } = await buildRootfs(dir, ['sh']);
      const script = 'if (echo > /new) 2>&1; then echo written; fi';
      const r = await run({ command: programs.sh, args: ['-c', script], root: dir, mount: true, readonlyRoot: true });
      expect(r.stdout).toMatch(/Read-only file system/);
      expect(fs.existsSync(path.join(dir, 'new'))).toBe(false);
      // The control: the same root without readonlyRoot is writable.
      const w = await run({ command: programs.sh, args: ['-c', script], root: dir, mount: true });
      expect(w.stdout).toBe('written\n');
      expect(fs.existsSync(path.join(dir, 'new'))).toBe(true);
    } finally {
      cleanup();
    }
  });

  test('`rm -rf /` inside leaves every host file in place', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const sentinels = ['a', 'b/c', 'b/d/e'].map((f) => path.join(dir, f));
      for (const f of sentinels) {
        fs.mkdirSync(path.dirname(f), { recursive: true });
        fs.writeFileSync(f, f);
      }
      const usrBefore = fs.readdirSync('/usr/bin').length;
      const script = [
        // Guard: run rm only where / is the sandbox's tmpfs and the host's /usr is read-only.
        '[ "$(stat -f -c %T /)" = tmpfs ] || exit 90',
        '(echo > /usr/.probe) 2>/dev/null && exit 91',
        'rm -rf --no-preserve-root / 2>/dev/null',
        // Shell built-ins only from here: rm removed the /lib64 symlink the loader is found by.
        'for f in /data/a /data/b/d/e /usr/bin/rm; do [ -e $f ] && echo $f; done',
      ].join('\n');
      const r = await run({
        command: '/bin/sh',
        args: ['-c', script],
        // Root's file powers (not CAP_SYS_ADMIN, which could remount a bind read-write).
        ...sandbox([{ type: 'dev' }, { type: 'bind', source: dir, target: '/data', readonly: true }], { capabilities: ['CAP_DAC_OVERRIDE', 'CAP_FOWNER'] }),
      });
      expect(r.stdout).toBe('/data/a\n/data/b/d/e\n/usr/bin/rm\n');
      for (const f of sentinels) expect(fs.readFileSync(f, 'utf8')).toBe(f);
      expect(fs.readdirSync('/usr/bin').length).toBe(usrBefore);
    } finally {
      cleanup();
    }
  });

  test('user: true works with a mount plan (root inside, a host id of its own outside)', async () => {
    const r = await run({
      command: '/bin/sh',
      args: ['-c', 'id -u; cat /proc/self/uid_map; echo x > /tmp/x && cat /tmp/x; (echo > /usr/x) 2>/dev/null || echo refused'],
      ...sandbox([{ type: 'dev' }], { user: true }),
    });
    const lines = r.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    // As root the sandbox runs on a host id of its own (test/containment/hostids.test.ts).
    expect(lines[1]).toMatch(process.geteuid!() === 0 ? /^0 (?!0 )\d+ 1$/ : new RegExp(`^0 ${process.geteuid!()} 1$`));
    expect([lines[0], ...lines.slice(2)]).toEqual(['0', 'x', 'refused', '']);
  });
});
