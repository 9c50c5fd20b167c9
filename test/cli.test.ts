/**
 * The `nsjail-node` command end to end (node bin/nsjail-node, as root): exit statuses, the
 * JSON status, usage errors, --help, and the core flag families (namespaces, environment,
 * process, root). Filesystem, identity and limit flags have their own files.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostIdRange, spawnIsolated, type ExitStatus, type SpawnOptions } from '../lib';
import { buildRootfs } from '../lib/rootfs';
import { cli, cliSh } from './cli-helpers';
import { makeTempDir } from './helpers';

const hostNamespaces = (): Record<string, string> =>
  Object.fromEntries(['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts'].map((ns) => [ns, fs.readlinkSync(`/proc/self/ns/${ns}`)]));

// Inside: the namespace links of the program (pid_for_children is not needed: `pid` is its own).
const NS_SCRIPT = 'for ns in cgroup ipc mnt net pid user uts; do echo "$ns $(readlink /proc/self/ns/$ns)"; done';
const parseNamespaces = (stdout: string): Record<string, string> =>
  Object.fromEntries(stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));

/** Which namespaces of the program differ from this (host) process's. */
async function newNamespaces(flags: string[]): Promise<string[]> {
  const r = await cliSh(flags, NS_SCRIPT);
  expect(r).toMatchObject({ code: 0, stderr: '' });
  const host = hostNamespaces();
  const inside = parseNamespaces(r.stdout);
  expect(Object.keys(inside).sort()).toEqual(Object.keys(host).sort());
  return Object.keys(host).filter((ns) => inside[ns] !== host[ns]).sort();
}

/** ExitStatus fields that are measurements (ms, bytes, KiB): they differ between two runs. */
const MEASURED = /(Ms|Bytes|KiB)$/;

async function apiStatus(options: SpawnOptions): Promise<ExitStatus> {
  // The CLI reports the ExitStatus (`exited`); awaiting the handle adds outputIncomplete.
  return spawnIsolated({ stdio: 'ignore', ...options }).exited;
}

describe('exit status', () => {
  test.each([0, 3, 255])('exit %i comes back as nsjail-node\'s own exit code', async (code) => {
    const r = await cliSh(['--unshare-pid'], `exit ${code}`);
    expect(r).toMatchObject({ code, signal: null, stderr: '' });
  });

  test.each([
    ['TERM', 143],
    ['KILL', 137],
    ['SEGV', 139],
  ])('death by SIG%s gives 128+n = %i', async (signal, code) => {
    const r = await cliSh([], `kill -${signal} $$`);
    expect(r).toMatchObject({ code, signal: null });
  });

  test('stdio is inherited: stdin reaches the program, stdout and stderr come back apart', async () => {
    const r = await cliSh(['--unshare-net'], 'tr a-z A-Z; echo to-err >&2', { input: 'hello\n' });
    expect(r).toMatchObject({ code: 0, stdout: 'HELLO\n', stderr: 'to-err\n' });
  });
});

describe('--json-status-fd', () => {
  test.each([
    ['an exit code', 'exit 3'],
    ['a signal', 'kill -TERM $$'],
    ['success', 'true'],
  ])('%s: one JSON line that matches what the API returns for the same sandbox', async (_name, script) => {
    const r = await cli(['--json-status-fd', '3', '--unshare-pid', '--unshare-net', '/bin/sh', '-c', script]);
    expect(r.fd3.endsWith('\n')).toBe(true);
    expect(r.fd3.trim().split('\n')).toHaveLength(1);
    const fromCli = JSON.parse(r.fd3) as ExitStatus;
    // With --unshare-pid the command line puts an init in as PID 1, as bubblewrap does.
    const fromApi = await apiStatus({ command: '/bin/sh', args: ['-c', script], pid: true, init: true, net: true });
    // Every field of the API's ExitStatus is there; what was measured (times, memory) differs
    // from run to run, so of those only the kind is compared; the rest must be equal.
    expect(Object.keys(fromCli).sort()).toEqual(Object.keys(fromApi).sort());
    const fields = fromApi as unknown as Record<string, unknown>;
    const cliFields = fromCli as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (key === 'pid') continue;
      if (MEASURED.test(key)) expect([key, typeof cliFields[key]]).toEqual([key, expect.stringMatching(/^(number|object)$/)]);
      else expect([key, cliFields[key]]).toEqual([key, fields[key]]);
    }
    expect(fromCli).toMatchObject({ exitCode: fromApi.exitCode, signal: fromApi.signal });
    expect(Number.isInteger(fromCli.pid) && fromCli.pid > 1).toBe(true);
    expect(fromCli.pid).not.toBe(fromApi.pid);
    expect(r.code).toBe(fromApi.exitCode ?? 128 + os.constants.signals[fromApi.signal!]);
  });

  test('the pid in the status is the program\'s host pid', async () => {
    const r = await cli(['--json-status-fd=3', '/bin/sh', '-c', 'echo $$']);
    expect(JSON.parse(r.fd3).pid).toBe(Number(r.stdout));
  });

  test('a setup failure writes {"error": ...} and exits 127 for a missing program', async () => {
    const r = await cli(['--json-status-fd', '3', '/no/such/program']);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe('nsjail-node: execve /no/such/program: ENOENT (no such file or directory)\n');
    expect(JSON.parse(r.fd3)).toEqual({
      error: {
        message: 'spawnIsolated: execve /no/such/program: ENOENT (no such file or directory)',
        code: 'ENOENT', errno: -os.constants.errno.ENOENT, step: 'execve', syscall: 'execve', path: '/no/such/program',
      },
    });
  });

  test('a program that cannot be executed exits 126', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = path.join(dir, 'not-executable');
      fs.writeFileSync(file, '#!/bin/sh\necho never\n', { mode: 0o644 });
      const r = await cli([file]);
      expect(r.code).toBe(126);
      expect(r.stderr).toMatch(/^nsjail-node: execve .*not-executable: EACCES/);
    } finally {
      cleanup();
    }
  });

  test('a failing setup step exits 125 and names the step', async () => {
    const r = await cli(['--json-status-fd', '3', '--root', '/no/such/root', '/bin/true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^nsjail-node: chroot \/no\/such\/root: ENOENT/);
    expect(JSON.parse(r.fd3).error).toMatchObject({ step: 'chroot', code: 'ENOENT', path: '/no/such/root' });
  });

  test('an fd that is not open is a usage error', async () => {
    const r = await cli(['--json-status-fd', '77', '/bin/true']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('nsjail-node: --json-status-fd 77: not an open file descriptor');
  });
});

describe('usage errors exit 2 with one line and the usage', () => {
  test.each([
    [['--bogus', '/bin/true'], 'nsjail-node: unknown flag --bogus'],
    [['--unshare-nett', '/bin/true'], 'nsjail-node: unknown flag --unshare-nett (did you mean --unshare-net?)'],
    [['--unshare-pid'], 'nsjail-node: no COMMAND given'],
    [[], 'nsjail-node: no COMMAND given'],
    [['--hostname'], 'nsjail-node: --hostname needs a value: --hostname NAME'],
    [['--setenv', 'A'], 'nsjail-node: --setenv needs 2 values: --setenv VAR VALUE'],
    [['--setenv=A', 'B', '/bin/true'], 'nsjail-node: --setenv takes 2 values: --setenv VAR VALUE'],
    [['--unshare-pid=yes', '/bin/true'], 'nsjail-node: --unshare-pid takes no value'],
    [['--chdir', 'relative', '/bin/true'], "nsjail-node: --chdir needs an absolute path inside the sandbox, got 'relative'"],
    [['--hostname', 'x', '/bin/true'], 'nsjail-node: --hostname needs --unshare-uts (else it would rename the host)'],
    [['--unshare-uts', '--hostname', 'x'.repeat(65), '/bin/true'], 'nsjail-node: options.hostname must be at most 64 bytes (HOST_NAME_MAX)'],
    [['doctor', '--bogus'], 'nsjail-node: doctor: unknown flag --bogus (doctor takes only --json)'],
  ])('%j', async (args, line) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n');
    expect(lines[0]).toBe(line);
    expect(lines[1]).toBe('Usage: nsjail-node [FLAGS] [--] COMMAND [ARGS...]');
    expect(r.stderr).toMatch(/Run 'nsjail-node --help' for every flag\.\n$/);
  });
});

describe('--help and --version', () => {
  // The flags issue 7 asks for, written out here rather than taken from the flag tables.
  const ISSUE_FLAGS = [
    '--unshare-user', '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup', '--unshare-all',
    '--share-net', '--bind SRC DEST', '--ro-bind SRC DEST', '--dev-bind SRC DEST', '--bind-try SRC DEST', '--ro-bind-try SRC DEST',
    '--tmpfs DEST', '--proc DEST', '--dev DEST', '--dir DEST', '--symlink SRC DEST', '--hostname NAME', '--chdir DIR',
    '--setenv VAR VALUE', '--unsetenv VAR', '--clearenv', '--uid UID', '--gid GID', '--die-with-parent', '--new-session',
    '--as-pid-1', '--cap-add CAP', '--cap-drop CAP', '--seccomp FD', '--json-status-fd FD', '--pid', '--net', '--mount',
    '--root DIR', '--memory SIZE', '--pids N', '--time SECONDS',
  ];

  test('--help documents every flag of the issue, with its values and words, on stdout', async () => {
    const r = await cli(['--help']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^Usage: nsjail-node \[FLAGS\] \[--\] COMMAND \[ARGS\.\.\.\]\n {7}nsjail-node doctor \[--json\]\n/);
    const documented = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const m = /^ {2}(--[a-z0-9-]+(?: [A-Z]+)*) {2,}(\S.*)$/.exec(line);
      if (m) documented.set(m[1], m[2]);
    }
    for (const flag of ISSUE_FLAGS) {
      expect([flag, documented.get(flag)?.length ?? 0]).toEqual([flag, expect.any(Number)]);
      expect(documented.get(flag)!.length).toBeGreaterThan(5);
    }
    expect(r.stdout).not.toMatch(/not supported/i);
    expect(r.stdout).toContain('doctor');
    expect(r.stdout).toMatch(/Exit status:[\s\S]*128\+N/);
  });

  test('-h is --help, and help wins wherever it is among the flags', async () => {
    const help = (await cli(['--help'])).stdout;
    expect((await cli(['-h'])).stdout).toBe(help);
    expect((await cli(['--unshare-pid', '--help', '/bin/true'])).stdout).toBe(help);
  });

  test('--version prints the package version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(await cli(['--version'])).toMatchObject({ code: 0, stdout: `nsjail-node ${pkg.version}\n` });
  });
});

describe('namespace flags', () => {
  test.each([
    [[], []],
    [['--unshare-user'], ['user']],
    [['--unshare-pid'], ['pid']],
    [['--unshare-net'], ['net']],
    [['--pid', '--net', '--mount'], ['mnt', 'net', 'pid']],
    [['--unshare-ipc'], ['ipc']],
    [['--unshare-uts'], ['uts']],
    [['--unshare-cgroup'], ['cgroup']],
    [['--unshare-all'], ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts']],
    [['--unshare-all', '--share-net'], ['cgroup', 'ipc', 'mnt', 'pid', 'user', 'uts']],
    [['--share-net', '--unshare-all'], ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts']],
    [['--unshare-net', '--share-net'], []],
  ])('%j makes new namespaces %j', async (flags, expected) => {
    expect(await newNamespaces(flags)).toEqual(expected);
  });

  test('--unshare-pid: an init is PID 1 and the program PID 2 (--as-pid-1: the program is PID 1); --unshare-net: only lo', async () => {
    const script = 'echo $$ $PPID; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "';
    expect(await cliSh(['--unshare-pid', '--unshare-net'], script)).toMatchObject({ code: 0, stdout: '2 1\nlo\n' });
    expect(await cliSh(['--unshare-pid', '--as-pid-1', '--unshare-net'], script)).toMatchObject({ code: 0, stdout: '1 0\nlo\n' });
  });

  test('--unshare-user: root inside, a host id of its own (root caller) or the caller outside', async () => {
    const r = await cliSh(['--unshare-user'], 'id -u; cat /proc/self/uid_map');
    expect(r.code).toBe(0);
    const [uid, map] = r.stdout.split('\n');
    expect(uid).toBe('0');
    const [, outside] = map.trim().split(/\s+/);
    if (process.getuid!() === 0) expect(Number(outside)).toBeGreaterThanOrEqual(hostIdRange().base);
    expect(map.trim().split(/\s+/)).toEqual(['0', process.getuid!() === 0 ? outside : String(process.getuid!()), '1']);
  });

  test('--unshare-uts --hostname NAME (and --hostname=NAME) set the host name inside only', async () => {
    const before = os.hostname();
    expect(await cliSh(['--unshare-uts', '--hostname', 'inside'], 'hostname')).toMatchObject({ code: 0, stdout: 'inside\n' });
    expect(await cliSh(['--unshare-uts', '--hostname=other'], 'hostname')).toMatchObject({ code: 0, stdout: 'other\n' });
    expect(os.hostname()).toBe(before);
  });
});

describe('environment flags', () => {
  const env = { ...process.env, NSJ_A: 'from-caller', NSJ_B: 'b' };
  const show = 'env | grep ^NSJ_ | sort; echo end';

  test('by default the program gets this command\'s environment', async () => {
    expect(await cliSh([], show, { env })).toMatchObject({ code: 0, stdout: 'NSJ_A=from-caller\nNSJ_B=b\nend\n' });
  });

  test('--setenv and --unsetenv edit it', async () => {
    const r = await cliSh(['--setenv', 'NSJ_C', 'two words', '--unsetenv', 'NSJ_A', '--setenv', 'NSJ_B', ''], show, { env });
    expect(r).toMatchObject({ code: 0, stdout: 'NSJ_B=\nNSJ_C=two words\nend\n' });
  });

  test('--clearenv removes everything before it; a bare command is still found on the default PATH', async () => {
    const r = await cli(['--setenv', 'NSJ_GONE', '1', '--clearenv', '--setenv', 'NSJ_KEPT', '1', 'env'], { env });
    expect(r).toMatchObject({ code: 0, stdout: 'NSJ_KEPT=1\n' });
  });

  test('--chdir sets the working directory', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      expect(await cliSh(['--chdir', dir], 'pwd')).toMatchObject({ code: 0, stdout: `${dir}\n` });
    } finally {
      cleanup();
    }
  });

  test('scanning stops at COMMAND (or --): the command\'s own flags are its own', async () => {
    expect(await cli(['/bin/sh', '-c', 'echo "$@"', 'x', '--unshare-net', '--bogus'])).toMatchObject({ code: 0, stdout: '--unshare-net --bogus\n' });
    // After --, even a word that looks like a flag is the command.
    expect(await cli(['--', '--version'])).toMatchObject({ code: 127, stdout: '', stderr: expect.stringMatching(/^nsjail-node: execve .*--version: ENOENT/) });
  });
});

describe('process flags and signals', () => {
  test('the program runs in a new session (--new-session is the default and accepted)', async () => {
    for (const flags of [[], ['--new-session']]) {
      // Field 6 of /proc/self/stat is the session id: a session leader's is its own pid.
      const r = await cliSh(flags, 'read -r line < /proc/self/stat; set -- ${line##*) }; echo $$ $4');
      expect(r.code).toBe(0);
      const [pid, sid] = r.stdout.trim().split(' ');
      expect(sid).toBe(pid);
    }
  });

  test('SIGTERM sent to nsjail-node reaches the program', async () => {
    let started!: () => void;
    const ready = new Promise<void>((resolve) => (started = resolve));
    const r = await cliSh(['--unshare-pid'], 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done', {
      onSpawn(child) {
        child.stdout!.once('data', () => started());
        void ready.then(() => child.kill('SIGTERM'));
      },
    });
    expect(r).toMatchObject({ code: 7, stdout: 'ready\ngot-term\n' });
  });

  test('with --as-pid-1 a program without handlers ignores SIGINT; a second SIGINT kills it', async () => {
    let timer: NodeJS.Timeout | undefined;
    const r = await cli(['--json-status-fd', '3', '--unshare-pid', '--as-pid-1', '/bin/sh', '-c', 'echo ready; exec sleep 1000'], {
      onSpawn(child) {
        // Keep interrupting until it ends: the first is ignored by PID 1, any later one is SIGKILL.
        child.stdout!.once('data', () => (timer = setInterval(() => child.kill('SIGINT'), 100)));
      },
    });
    clearInterval(timer);
    expect(r.code).toBe(137);
    expect(JSON.parse(r.fd3)).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
  });

  test('--die-with-parent: when nsjail-node is killed with SIGKILL the sandbox dies too', async () => {
    let pid = 0;
    const r = await cliSh(['--die-with-parent'], 'echo $$; exec sleep 1000', {
      onSpawn(child) {
        child.stdout!.once('data', (c: Buffer) => {
          pid = Number(c.toString().trim());
          child.kill('SIGKILL');
        });
      },
    });
    expect(r.signal).toBe('SIGKILL');
    expect(pid).toBeGreaterThan(1);
    // PR_SET_PDEATHSIG is delivered as the parent exits: the sleep is gone (or a zombie being reaped).
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
      alive = stat.includes('(sleep)') && !/\) [ZX] /.test(stat);
      if (alive) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(alive).toBe(false);
  });
});

describe('--root', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeAll(async () => {
    tmp = makeTempDir('nsjail-node-cli-root-');
    await buildRootfs(tmp.dir, ['/bin/sh', 'ls', 'cat']);
    fs.writeFileSync(path.join(tmp.dir, 'marker'), 'm');
  });
  afterAll(() => tmp.cleanup());

  test.each([[['--mount']], [[]]])('%j --root DIR makes DIR the program\'s /', async (flags) => {
    const r = await cli([...flags, '--root', tmp.dir, '--unshare-pid', 'ls', '/']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(fs.readdirSync(tmp.dir).sort());
  });

  test('a relative --root is taken from the current directory', async () => {
    const r = await cli(['--root', path.relative(process.cwd(), tmp.dir), '--mount', '/bin/sh', '-c', 'cat /marker']);
    expect(r).toMatchObject({ code: 0, stdout: 'm' });
  });
});
