/**
 * bubblewrap's modifier, fd, overlay, namespace and seccomp flags on the `nsjail-node` command
 * line (lib/cli-flags-mounts.ts), end to end, written from bubblewrap 0.11.1's manual.
 */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli, cliSh } from './cli-helpers';
import { makeTempDir } from './helpers';
import { spawnIsolated } from '../lib';
import { seccompProgram } from '../lib/seccomp';

// The host's whole tree read-only, and a private /tmp: the suite's $RUN, read-only.
const RUN = ['--ro-bind', '/', '/', '--tmpfs', '/tmp'];

let tmp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  tmp = makeTempDir('nsjail-node-cli-bwrap-');
});
afterEach(() => tmp.cleanup());

/** A file of this process open on `content`, given to the command as fd 4 (see cli()). */
function contentFd(content: string): number {
  const file = path.join(tmp.dir, `fd-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(file, content);
  return fs.openSync(file, 'r');
}

describe('--perms, --size, --chmod', () => {
  test('--perms sets the mode of the next --dir, --tmpfs, --file; --size the next tmpfs\'s size; --chmod changes a mode', async () => {
    const fd = contentFd('data');
    try {
      const r = await cliSh(
        [...RUN, '--perms', '0700', '--dir', '/tmp/a/b', '--perms', '01777', '--size', '1048576', '--tmpfs', '/tmp/t', '--perms', '0640', '--file', '4', '/tmp/f',
          '--dir', '/tmp/c', '--chmod', '1750', '/tmp/c'],
        'stat -c %a /tmp/a /tmp/a/b /tmp/t /tmp/f /tmp/c; df --output=size --block-size=1K /tmp/t | tail -1 | tr -d " "; cat /tmp/f',
        { fds: [fd] },
      );
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('700\n700\n1777\n640\n1750\n1024\ndata');
    } finally {
      fs.closeSync(fd);
    }
  });

  test('bubblewrap\'s refusals, before any process starts (exit status 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['--perms', '0640', '--perms', '0640', '--tmpfs', '/tmp/a'], /--perms given twice for the same action/],
      [['--size', '1048576', '--size', '1048576', '--tmpfs', '/tmp/a'], /--size given twice for the same action/],
      [['--perms', '0644', '--bind', '/', '/x'], /--perms must be followed by an option that creates a file/],
      [['--size', '1024', '--dir', '/tmp/a'], /--size must be followed by --tmpfs/],
      [['--perms', '0888', '--dir', '/tmp/a'], /--perms takes an octal argument <= 07777/],
      [['--size', '0', '--tmpfs', '/tmp/a'], /--size takes a non-zero number of bytes/],
      [['--size', ' -1', '--tmpfs', '/tmp/a'], /--size takes a non-zero number of bytes/],
      [['--size', '18446744073709551616', '--tmpfs', '/tmp/a'], /--size \(for tmpfs\) is limited to/],
      [['--overlay-src', '/tmp', '--chdir', '/'], /--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay/],
      [['--overlay', '/a', '/b', '/tmp/o'], /--overlay requires at least one --overlay-src/],
      [['--overlay-src', '/usr', '--ro-overlay', '/tmp/o'], /--ro-overlay requires at least two --overlay-src/],
      [['--disable-userns'], /--disable-userns requires --unshare-user/],
      [['--unshare-pid', '--as-pid-1', '--lock-file', '/x'], /not compatible with --as-pid-1/],
      [['--bind-fd', '987654', '/x'], /--bind-fd 987654: not an open file descriptor/],
    ];
    for (const [flags, message] of cases) {
      const r = await cli([...RUN, ...flags, 'true']);
      expect({ flags, code: r.code }).toEqual({ flags, code: 2 });
      expect(r.stderr).toMatch(message);
    }
    // A trailing --perms or --overlay-src is refused too.
    expect((await cli([...RUN, '--overlay-src', '/usr', '--', 'true'])).stderr).toMatch(/--overlay-src must be followed/);
  });
});

describe('--file, --bind-data, --ro-bind-data, --bind-fd', () => {
  test('data from fds: a new file (0666), a bound one (0600), read-only with --ro-bind-data over an existing file; --ro-bind-fd binds the fd\'s directory', async () => {
    const fds = [contentFd('new file\n'), contentFd('bound\n'), contentFd('sandbox hostname\n'), fs.openSync(tmp.dir, 'r')];
    fs.writeFileSync(path.join(tmp.dir, 'file-data'), 'foobar\n');
    try {
      const r = await cliSh(
        [...RUN, '--file', '4', '/tmp/f', '--bind-data', '5', '/tmp/bd', '--ro-bind-data', '6', '/etc/hostname', '--ro-bind-fd', '7', '/tmp/dir'],
        'stat -c %a /tmp/f /tmp/bd /etc/hostname; cat /tmp/f /tmp/bd /etc/hostname /tmp/dir/file-data; ' +
          '(echo x > /etc/hostname) 2>/tmp/e || echo ro; (echo x > /tmp/dir/new) 2>/tmp/e || echo ro-fd',
        { fds },
      );
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('666\n600\n600\nnew file\nbound\nsandbox hostname\nfoobar\nro\nro-fd\n');
      expect(fs.existsSync(path.join(tmp.dir, 'new'))).toBe(false);
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
  });
});

describe('overlays', () => {
  test('--overlay-src layers, later ones on top; --overlay writes to RWSRC, --tmp-overlay nowhere, --ro-overlay refuses', async () => {
    const d = (name: string): string => path.join(tmp.dir, name);
    for (const name of ['lower1', 'lower2', 'upper', 'work', 'lower ":,\\']) fs.mkdirSync(d(name));
    fs.writeFileSync(d('lower1/a'), '1');
    fs.writeFileSync(d('lower1/b'), '2');
    fs.writeFileSync(d('lower2/b'), '3');
    fs.writeFileSync(d('upper/a'), '4');
    fs.writeFileSync(d('lower ":,\\/c'), 'odd');
    const r = await cliSh(
      [...RUN, '--overlay-src', d('lower1'), '--overlay-src', d('lower2'), '--overlay', d('upper'), d('work'), '/tmp/rw',
        '--overlay-src', d('lower1'), '--overlay-src', d('lower2'), '--tmp-overlay', '/tmp/tmp',
        '--overlay-src', d('lower1'), '--overlay-src', d('lower ":,\\'), '--ro-overlay', '/tmp/ro'],
      'cat /tmp/rw/a /tmp/rw/b; printf 5 > /tmp/rw/b; printf 6 > /tmp/tmp/b; cat /tmp/tmp/b /tmp/ro/c; echo; (printf 7 > /tmp/ro/a) 2>/tmp/e || echo ro',
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('436odd\nro\n');
    // --overlay's changes land in RWSRC; the lower layers are untouched.
    expect(fs.readFileSync(d('upper/b'), 'utf8')).toBe('5');
    expect(fs.readFileSync(d('lower2/b'), 'utf8')).toBe('3');
    expect(fs.readFileSync(d('lower1/b'), 'utf8')).toBe('2');
  });
});

describe('--userns, --pidns, --disable-userns, --assert-userns-disabled, --lock-file', () => {
  test('--userns and --pidns join the namespaces the fds are open on, with a mount plan of their own', async () => {
    const holder = spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo up; exec sleep 60'], user: true, pid: true, stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve) => holder.stdout?.once('data', () => resolve()));
      const fds = [fs.openSync(`/proc/${holder.pid}/ns/user`, 'r'), fs.openSync(`/proc/${holder.pid}/ns/pid`, 'r')];
      try {
        const r = await cli(['--bind', '/', '/', '--tmpfs', '/tmp', '--userns', '4', '--pidns', '5', 'readlink', '/proc/self/ns/user', '/proc/self/ns/pid'], { fds });
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe(`${fs.readlinkSync(`/proc/${holder.pid}/ns/user`)}\n${fs.readlinkSync(`/proc/${holder.pid}/ns/pid`)}\n`);
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
    } finally {
      holder.kill('SIGKILL');
      await holder.exited;
    }
  });

  test('--userns2 starts the program in the user namespace FD is open on, after the sandbox is set up', async () => {
    const outer = spawnIsolated({
      command: '/bin/sh', args: ['-c', 'unshare --user --map-root-user sleep 60 & sleep 0.2; echo up; wait'],
      user: true, capabilities: ['CAP_SETFCAP'], stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      await new Promise<void>((resolve) => outer.stdout?.once('data', () => resolve()));
      const inner = Number(fs.readFileSync(`/proc/${outer.pid}/task/${outer.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
      const fds = [fs.openSync(`/proc/${outer.pid}/ns/user`, 'r'), fs.openSync(`/proc/${inner}/ns/user`, 'r')];
      try {
        const r = await cli(['--ro-bind', '/', '/', '--tmpfs', '/tmp', '--userns', '4', '--userns2', '5', 'readlink', '/proc/self/ns/user'], { fds });
        expect(r).toMatchObject({ code: 0, stderr: '', stdout: `${fs.readlinkSync(`/proc/${inner}/ns/user`)}\n` });
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
    } finally {
      outer.kill('SIGKILL');
      await outer.exited;
    }
  });

  test('--disable-userns: no user namespace inside; control: without it one can be made; --assert-userns-disabled fails where they can', async () => {
    expect((await cliSh(['--unshare-user', '--dev-bind', '/', '/'], 'unshare --user true && echo made')).stdout).toBe('made\n');
    const r = await cliSh(['--unshare-user', '--disable-userns', '--dev-bind', '/', '/'], 'unshare --user true 2>/dev/null || echo refused');
    expect(r).toMatchObject({ code: 0, stdout: 'refused\n' });
    const asserted = await cli(['--assert-userns-disabled', '--dev-bind', '/', '/', 'true']);
    expect(asserted.code).toBe(125);
    expect(asserted.stderr).toMatch(/assert-user-namespaces-disabled: EEXIST .*not disabled/);
  });

  test('--lock-file: a read lock held while the program runs, also without --unshare-pid', async () => {
    const file = path.join(tmp.dir, 'lock');
    fs.writeFileSync(file, '');
    const ino = fs.statSync(file).ino;
    const locks = (): string[] => fs.readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => l.split(/\s+/)[5]?.endsWith(`:${ino}`));
    // The program waits on a FIFO of the test's until the lock has been looked at.
    const fifo = path.join(tmp.dir, 'go');
    child_process.execFileSync('mkfifo', [fifo]);
    const go = fs.openSync(fifo, 'r+');
    let seen: string[] = [];
    try {
      const r = await cli([...RUN, '--bind', tmp.dir, tmp.dir, '--lock-file', file, 'sh', '-c', `echo up; read x < ${fifo}`], {
        onSpawn: (child) => child.stdout?.once('data', () => {
          seen = locks();
          fs.writeSync(go, 'done\n');
        }),
      });
      expect(r).toMatchObject({ code: 0, stderr: '' });
    } finally {
      fs.closeSync(go);
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/POSIX\s+ADVISORY\s+READ/);
    expect(locks()).toEqual([]);
  });
});

describe('--add-seccomp-fd', () => {
  test('several filters, all applied; not with --seccomp', async () => {
    const deny = (call: string, errno: string): Buffer => seccompProgram('seccomp', { defaultAction: 'allow', rules: [{ syscalls: [call, `${call}at`], action: { errno } }] });
    const filters = [deny('mkdir', 'EPERM'), deny('unlink', 'EACCES')].map((bpf, n) => {
      const file = path.join(tmp.dir, `filter${n}`);
      fs.writeFileSync(file, bpf);
      return file;
    });
    // Fresh fds for each run: the command reads each to its end, and the offset is shared.
    const withFilters = async <T>(run: (fds: number[]) => Promise<T>): Promise<T> => {
      const fds = filters.map((file) => fs.openSync(file, 'r'));
      try {
        return await run(fds);
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
    };
    const script = 'mkdir /tmp/a 2>&1 | sed "s/.*: //"; touch /tmp/f; rm /tmp/f 2>&1 | sed "s/.*: //"';
    const one = await withFilters((fds) => cliSh([...RUN, '--add-seccomp-fd', '4'], script, { fds }));
    expect(one).toMatchObject({ stdout: 'Operation not permitted\n', stderr: '' });
    const both = await withFilters((fds) => cliSh([...RUN, '--add-seccomp-fd', '4', '--add-seccomp-fd', '5'], script, { fds }));
    expect(both.stdout).toBe('Operation not permitted\nPermission denied\n');
    const mixed = await withFilters((fds) => cli([...RUN, '--add-seccomp-fd', '4', '--seccomp', '5', 'true'], { fds }));
    expect(mixed).toMatchObject({ code: 2, stderr: expect.stringMatching(/--seccomp cannot be combined with --add-seccomp-fd/) });
    const mixed2 = await withFilters((fds) => cli([...RUN, '--seccomp', '5', '--add-seccomp-fd', '4', 'true'], { fds }));
    expect(mixed2).toMatchObject({ code: 2, stderr: expect.stringMatching(/--add-seccomp-fd cannot be combined with --seccomp/) });
  });
});
