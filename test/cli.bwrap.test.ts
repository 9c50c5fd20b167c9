/**
 * nsjail-node-bwrap: bubblewrap 0.11.1's defaults, messages and exit statuses, each from
 * bwrap(1) (bwrap.xml) and bubblewrap.c, run against the real kernel. Where the exact entry
 * point is weaker than `nsjail-node`, the `nsjail-node` run is the control.
 */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BWRAP_BIN, bwrap, bwrapSh, cli, cliSh } from './cli-helpers';
import { makeTempDir } from './helpers';

jest.setTimeout(30000);

const capEff = (status: string): bigint => BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(status)![1]}`);
const ownCapEff = (): bigint => capEff(fs.readFileSync('/proc/self/status', 'utf8'));

describe('usage, version and bubblewrap\'s own errors', () => {
  test('--help prints bwrap\'s usage naming the command as invoked, exit 0', async () => {
    const r = await bwrap(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`usage: ${BWRAP_BIN} [OPTIONS...] [--] COMMAND [ARGS...]`);
    for (const flag of ['--args FD', '--info-fd FD', '--json-status-fd FD', '--userns-block-fd FD', '--level-prefix', '--remount-ro DEST']) {
      expect(r.stdout).toContain(`    ${flag}`);
    }
  });

  test('--version says which bubblewrap it follows', async () => {
    expect(await bwrap(['--version'])).toMatchObject({ code: 0, stdout: 'bubblewrap 0.11.1\n' });
  });

  test('no COMMAND: the usage on stderr, exit 1', async () => {
    const r = await bwrap(['--unshare-net']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^usage: .* \[OPTIONS\.\.\.\] \[--\] COMMAND \[ARGS\.\.\.\]\n/);
  });

  test.each([
    [['--frobnicate', 'true'], 'bwrap: Unknown option --frobnicate'],
    [['-', 'true'], 'bwrap: Unknown option -'],
    [['--chdir=/', 'true'], 'bwrap: Unknown option --chdir=/'],
    [['--bind', '/'], 'bwrap: --bind takes two arguments'],
    [['--chdir'], 'bwrap: --chdir takes one argument'],
    [['--tmpfs'], 'bwrap: --tmpfs takes an argument'],
    [['--info-fd', 'x', 'true'], 'bwrap: Invalid fd: x'],
    [['--seccomp', '0a', 'true'], 'bwrap: Invalid fd: 0a'],
    [['--argv0', 'a', '--argv0', 'b', 'true'], 'bwrap: --argv0 used multiple times'],
    [['--hostname', 'h', 'true'], 'bwrap: Specifying --hostname requires --unshare-uts'],
    [['--as-pid-1', 'true'], 'bwrap: Specifying --as-pid-1 requires --unshare-pid'],
    [['--uid', '5', 'true'], 'bwrap: Specifying --uid requires --unshare-user or --userns'],
    [['--userns-block-fd', '0', 'true'], 'bwrap: --userns-block-fd requires --unshare-user'],
    [['--unshare-user', '--userns-block-fd', '0', 'true'], 'bwrap: --userns-block-fd requires --info-fd'],
    [['--exec-label', 'x', 'true'], 'bwrap: labeling not supported on this system'],
  ])('%j: "%s", exit 1', async (args, line) => {
    const r = await bwrap(args);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: `${line}\n` });
  });

  test('seccomp fds as bubblewrap reads them: the combination refused before any fd is read, each fd read once and closed, the size checked after parsing', async () => {
    const tmp = makeTempDir('nsjail-bwrap-seccomp-');
    try {
      const empty = path.join(tmp.dir, 'empty');
      const odd = path.join(tmp.dir, 'odd');
      fs.writeFileSync(empty, '');
      fs.writeFileSync(odd, Buffer.from([1]));
      const run = async (args: string[], files: string[]): Promise<{ code: number | null; stderr: string }> => {
        const fds = files.map((f) => fs.openSync(f, 'r'));
        try {
          const r = await bwrap(['--ro-bind', '/', '/', ...args, 'true'], { fds });
          return { code: r.code, stderr: r.stderr };
        } finally {
          for (const fd of fds) fs.closeSync(fd);
        }
      };
      // Empty programs: only the combination is wrong, and it is what is reported.
      expect(await run(['--add-seccomp-fd', '4', '--seccomp', '5'], [empty, empty]))
        .toEqual({ code: 1, stderr: 'bwrap: --seccomp cannot be combined with --add-seccomp-fd\n' });
      expect(await run(['--seccomp', '5', '--add-seccomp-fd', '4'], [empty, empty]))
        .toEqual({ code: 1, stderr: 'bwrap: --add-seccomp-fd cannot be combined with --seccomp\n' });
      // The same fd twice: the first read closed it.
      expect(await run(['--add-seccomp-fd', '4', '--add-seccomp-fd', '4'], [empty]))
        .toEqual({ code: 1, stderr: "bwrap: Can't read seccomp data: Bad file descriptor\n" });
      // Sizes after parsing, bubblewrap's multiple-of-8 check over all programs first.
      expect(await run(['--add-seccomp-fd', '4', '--add-seccomp-fd', '5'], [empty, odd]))
        .toEqual({ code: 1, stderr: 'bwrap: Invalid seccomp data, must be multiple of 8\n' });
      expect(await run(['--add-seccomp-fd', '-1'], []))
        .toEqual({ code: 1, stderr: 'bwrap: Invalid fd: -1\n' });
    } finally {
      tmp.cleanup();
    }
  });

  test('a missing bind source: "Can\'t find source path", exit 1', async () => {
    const r = await bwrap(['--bind', '/', '/', '--bind', '/nonexistent-source-of-this-test', '/mnt', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("bwrap: Can't find source path /nonexistent-source-of-this-test: No such file or directory\n");
  });

  test('a program that cannot be executed: "execvp", exit 1 (nsjail-node: 127)', async () => {
    const r = await bwrap(['--bind', '/', '/', 'no-such-program-of-this-test']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: 'bwrap: execvp no-such-program-of-this-test: No such file or directory\n' });
    expect((await cli(['no-such-program-of-this-test'])).code).toBe(127);
  });

  test('the program\'s status is passed on: its code, 128+N for signal N', async () => {
    expect((await bwrapSh([], 'exit 42')).code).toBe(42);
    expect((await bwrapSh([], 'kill -TERM $$')).code).toBe(143);
  });

  test('a repeated --chdir warns, with <4> under --level-prefix', async () => {
    const plain = await bwrap(['--bind', '/', '/', '--chdir', '/', '--chdir', '/', 'true']);
    expect({ code: plain.code, stderr: plain.stderr }).toEqual({ code: 0, stderr: 'bwrap: Only the last --chdir option will take effect\n' });
    const prefixed = await bwrap(['--bind', '/', '/', '--level-prefix', '--chdir', '/', '--chdir', '/', 'true']);
    expect(prefixed.stderr).toBe('<4>bwrap: Only the last --chdir option will take effect\n');
    const error = await bwrap(['--level-prefix', '--frobnicate', 'true']);
    expect(error.stderr).toBe('<3>bwrap: Unknown option --frobnicate\n');
  });
});

describe('bubblewrap\'s defaults, weaker than nsjail-node\'s', () => {
  test('as root without --unshare-user the program keeps root\'s capabilities (nsjail-node: none)', async () => {
    const read = 'grep ^CapEff: /proc/self/status';
    const kept = await bwrapSh([], read);
    expect(capEff(kept.stdout)).toBe(ownCapEff());
    const control = await cliSh([], read);
    expect(capEff(control.stdout)).toBe(0n);
  });

  test('--cap-drop removes one capability, --cap-drop ALL every one, --cap-add brings one back', async () => {
    const read = 'grep ^CapEff: /proc/self/status';
    const CAP_KILL = 5n;
    const dropped = capEff((await bwrapSh(['--cap-drop', 'CAP_KILL'], read)).stdout);
    expect(dropped).toBe(ownCapEff() & ~(1n << CAP_KILL));
    expect(capEff((await bwrapSh(['--cap-drop', 'ALL'], read)).stdout)).toBe(0n);
    expect(capEff((await bwrapSh(['--cap-drop', 'ALL', '--cap-add', 'cap_kill'], read)).stdout)).toBe(1n << CAP_KILL);
  });

  test('no new session unless --new-session (nsjail-node: always one)', async () => {
    const sid = 'ps -o sid= -p $$ | tr -d " "';
    const mine = (await bwrapSh([], 'echo $PPID')).stdout; // the sandbox's parent: nsjail-node-bwrap itself
    expect(mine).not.toBe('');
    const same = await bwrap(['--bind', '/', '/', '/bin/sh', '-c', `${sid}; ps -o sid= -p $PPID | tr -d " "`]);
    const [programSid, parentSid] = same.stdout.trim().split('\n');
    expect(programSid).toBe(parentSid);
    const fresh = await bwrap(['--bind', '/', '/', '--new-session', '/bin/sh', '-c', `${sid}; echo $$`]);
    const [newSid, pid] = fresh.stdout.trim().split('\n');
    expect(newSid).toBe(pid);
  });

  test('--clearenv keeps only PWD, the working directory', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const r = await bwrap(['--bind', '/', '/', '--clearenv', '/usr/bin/env'], { cwd: dir });
      expect(r.stdout).toBe(`PWD=${fs.realpathSync(dir)}\n`);
      const control = await cli(['--clearenv', '/usr/bin/env'], { cwd: dir });
      expect(control.stdout).toBe('');
    } finally {
      cleanup();
    }
  });

  test('the working directory is the current one if the sandbox has it, else /', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      expect((await bwrap(['--bind', '/', '/', '/bin/pwd'], { cwd: dir })).stdout).toBe(`${fs.realpathSync(dir)}\n`);
      expect((await bwrap(['--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib',
        '--symlink', 'usr/lib64', '/lib64', '/bin/sh', '-c', 'pwd; echo $PWD'], { cwd: dir })).stdout).toBe('/\n/\n');
    } finally {
      cleanup();
    }
  });

  test('--proc without --unshare-pid shows the host\'s PID namespace (nsjail-node refuses it)', async () => {
    const r = await bwrap(['--bind', '/', '/', '--tmpfs', '/tmp', '--proc', '/proc', '/bin/sh', '-c', 'readlink /proc/self/ns/pid; test -d /proc/1']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(fs.readlinkSync('/proc/self/ns/pid'));
    const control = await cli(['--proc', '/proc', 'true']);
    expect(control.code).toBe(2);
    expect(control.stderr).toMatch(/--proc needs --unshare-pid/);
  });

  test('a file mount point is created 0444, a directory 0755 (nsjail-node: the same)', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      fs.writeFileSync(path.join(dir, 'some-file'), 'x');
      fs.mkdirSync(path.join(dir, 'some-dir'));
      const r = await bwrap(['--bind', '/', '/', '--bind', `${dir}/some-file`, `${dir}/file-mountpoint`, '--bind', `${dir}/some-dir`, `${dir}/dir-mountpoint`, 'true']);
      expect(r.code).toBe(0);
      expect((fs.statSync(path.join(dir, 'file-mountpoint')).mode & 0o7777).toString(8)).toBe('444');
      expect((fs.statSync(path.join(dir, 'dir-mountpoint')).mode & 0o7777).toString(8)).toBe('755');
    } finally {
      cleanup();
    }
  });

  test('as root, --unshare-user maps the sandbox\'s uid 0 to root (nsjail-node: a host id of its own)', async () => {
    const r = await bwrapSh(['--unshare-user'], 'cat /proc/self/uid_map /proc/self/setgroups');
    expect(r.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' '))).toEqual(['0 0 1', 'deny', '']);
  });
});

describe('flags of bubblewrap 0.11.1', () => {
  test('--argv0 sets argv[0] alone', async () => {
    expect((await bwrap(['--bind', '/', '/', '--argv0', 'right', 'sh', '-c', 'echo $0'])).stdout).toBe('right\n');
    expect((await cli(['--argv0', 'right', 'sh', '-c', 'echo $0'])).stdout).toBe('right\n');
  });

  test('--unshare-user-try makes a user namespace here, --unshare-cgroup-try a cgroup namespace', async () => {
    const r = await bwrapSh(['--unshare-user-try', '--unshare-cgroup-try'], 'readlink /proc/self/ns/user /proc/self/ns/cgroup');
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.not.stringMatching(`^${fs.readlinkSync('/proc/self/ns/user').replace(/[[\]]/g, '\\$&')}$`),
      expect.not.stringMatching(`^${fs.readlinkSync('/proc/self/ns/cgroup').replace(/[[\]]/g, '\\$&')}$`),
    ]);
  });

  test('--remount-ro makes that mount read-only (control: without it the write works)', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const write = 'echo x > /mnt/f && echo written';
      expect((await bwrapSh(['--bind', dir, '/mnt'], write)).stdout).toBe('written\n');
      const r = await bwrapSh(['--bind', dir, '/mnt', '--remount-ro', '/mnt'], `${write} || echo refused`);
      expect(r.stdout).toBe('refused\n');
      expect(r.stderr).toMatch(/Read-only file system/);
    } finally {
      cleanup();
    }
  });

  test('--mqueue mounts the IPC namespace\'s message queues (needs --unshare-ipc: a host\'s queues are refused)', async () => {
    const r = await bwrapSh(['--tmpfs', '/mnt', '--unshare-ipc', '--mqueue', '/mnt/mq'], 'grep -c "^mqueue /mnt/mq mqueue" /proc/self/mounts');
    expect(r.stdout).toBe('1\n');
    const refused = await bwrap(['--bind', '/', '/', '--tmpfs', '/mnt', '--mqueue', '/mnt/mq', 'true']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^bwrap: .*mqueue.* needs ipc: true/);
  });

  test('--dev-bind-try skips a missing source', async () => {
    expect((await bwrapSh(['--dev-bind-try', '/nonexistent-source-of-this-test', '/mnt'], 'echo ran')).stdout).toBe('ran\n');
  });

  test('--as-pid-1 runs the program as PID 1; without it an init is PID 1', async () => {
    expect((await bwrapSh(['--unshare-pid', '--as-pid-1'], 'echo $$')).stdout).toBe('1\n');
    expect((await bwrapSh(['--unshare-pid'], 'echo $$')).stdout).toBe('2\n');
  });
});

describe('--die-with-parent', () => {
  /** Runs nsjail-node-bwrap under a shell, kills the shell with SIGKILL, and says whether the sandbox's first process is gone. */
  async function sandboxOutlivesShell(flags: readonly string[]): Promise<{ gone: boolean; pid: number }> {
    const { dir, cleanup } = makeTempDir();
    try {
      const info = path.join(dir, 'info.json');
      const shell = child_process.spawn('/bin/sh', ['-c', `"${process.execPath}" "${BWRAP_BIN}" --bind / / ${flags.join(' ')} --info-fd 3 sleep 1000 3>"${info}"`], { stdio: 'ignore' });
      let pid = 0;
      for (let i = 0; pid === 0; i++) {
        if (i > 500) throw new Error('no info from the sandbox');
        await new Promise((r) => setTimeout(r, 20));
        const m = /"child-pid": (\d+)/.exec(fs.existsSync(info) ? fs.readFileSync(info, 'utf8') : '');
        if (m) pid = Number(m[1]);
      }
      shell.kill('SIGKILL');
      await new Promise((r) => shell.once('exit', r));
      // Gone within the bound, or still there (the control): observed, not timed.
      for (let i = 0; i < 250 && fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readStatus(pid)); i++) await new Promise((r) => setTimeout(r, 20));
      return { gone: !fs.existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readStatus(pid)), pid };
    } finally {
      cleanup();
    }
  }
  const readStatus = (pid: number): string => {
    try {
      return fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      return 'State:\tZ';
    }
  };

  test('kills the sandbox when the caller of nsjail-node-bwrap dies (control: without it, the sandbox stays)', async () => {
    expect((await sandboxOutlivesShell(['--die-with-parent'])).gone).toBe(true);
    const control = await sandboxOutlivesShell([]);
    try {
      expect(control.gone).toBe(false);
    } finally {
      try {
        process.kill(control.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
});
