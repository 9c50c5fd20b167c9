/**
 * Shared pieces of the containment suite: the README's recommended sandbox for untrusted code
 * as a function, a compiled attack program (attack.c) to run inside it, weaker CONTROL
 * configurations, host-side sentinels identified by unique markers, and a runner that does the
 * same as uid 65534 (rootless).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostSystemMounts, runIsolated, seccompPresets, type RunOptions, type RunResult } from '../../lib';
import { stageLibraryForOtherUsers } from '../helpers';

export const NOBODY = 65534;

/** Where the attack program's directory is bound (read-only) inside the sandbox. */
export const WORK = '/work';
/** The attack program inside the sandbox. */
export const ATTACK = `${WORK}/attack`;

/**
 * The README's "sandbox for untrusted code": user, pid, net, mount, uts, ipc and init, the
 * host's system directories, proc, dev, a tmpfs /tmp, a read-only bind of `work` at /work,
 * limits and the sandboxDefault seccomp policy.
 */
export function recommended(work: string, command = ATTACK, args: readonly string[] = []): RunOptions {
  return {
    command,
    args,
    pid: true, net: true, mount: true, uts: true, ipc: true, user: true, init: true,
    mounts: [
      ...hostSystemMounts(), { type: 'proc' }, { type: 'dev' }, { type: 'tmpfs', target: '/tmp', size: '64m' },
      { type: 'bind', source: work, target: WORK, readonly: true },
    ],
    limits: { memory: 256 * 2 ** 20, pids: 64, wallTime: 20000, cpuTime: 10 },
    seccomp: seccompPresets.sandboxDefault,
    maxBuffer: 1 << 20,
  };
}

/** `options` less the named keys: a CONTROL is the recommended config with a protection taken away. */
export function without(options: RunOptions, ...keys: (keyof RunOptions)[]): RunOptions {
  const copy: Partial<RunOptions> = { ...options };
  for (const key of keys) if (key !== 'command') delete copy[key];
  return { ...copy, command: options.command };
}

/** Each line of the attack program's output as { attack: result }. */
export function results(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.trim().split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) out[line.slice(0, space)] = line.slice(space + 1);
  }
  return out;
}

/** A temp dir readable by everyone (mkdtemp makes 0700; uid 65534 and mapped ids must read it). */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * attack.c compiled (static, so that it runs in a bare root too) into a fresh world-readable
 * dir to bind at /work: `program` is its host path, `setuid` a setuid-root copy of it
 * (/work/attack-suid inside), `hostSetup` the host-side helper (host-setup.c), kept outside
 * `work` so that no sandbox sees it.
 */
export function buildAttack(): { work: string; program: string; setuid: string; hostSetup: string; cleanup: () => void } {
  const { dir, cleanup } = tempDir('nsjail-node-attack-');
  try {
    const work = path.join(dir, 'work');
    fs.mkdirSync(work, { mode: 0o755 });
    const program = path.join(work, 'attack');
    execFileSync('cc', ['-O2', '-Wall', '-static', '-o', program, path.join(__dirname, 'attack.c')], { stdio: 'pipe' });
    const setuid = path.join(work, 'attack-suid');
    fs.copyFileSync(program, setuid);
    fs.chmodSync(setuid, 0o4755); // owned by root, as the test runs
    const hostSetup = path.join(dir, 'host-setup');
    execFileSync('cc', ['-O2', '-Wall', '-o', hostSetup, path.join(__dirname, 'host-setup.c')], { stdio: 'pipe' });
    return { work, program, setuid, hostSetup, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** Runs the attack program with these arguments in the given configuration. */
export async function runAttack(options: RunOptions): Promise<RunResult & { results: Record<string, string> }> {
  const r = await runIsolated(options);
  return { ...r, results: results(r.stdout) };
}

/** A unique marker: `<prefix>-<hex>`. */
export function marker(prefix = 'nsjail-test'): string {
  return `${prefix}-${crypto.randomBytes(6).toString('hex')}`;
}

/**
 * Host IPC objects the test makes (SysV shared memory and a message queue, mode 0644, and a
 * POSIX message queue holding "host message"), given to `use` as the attack's arguments, and
 * removed afterwards also when it fails.
 */
export async function withHostIpc(hostSetup: string, use: (args: string[]) => Promise<void>): Promise<void> {
  const idOf = (out: string): string => /id: (\d+)/.exec(out)?.[1] ?? '';
  const made: { shm?: string; msg?: string; mq?: string } = {};
  try {
    made.shm = idOf(execFileSync('ipcmk', ['-M', '4096', '-p', '0644'], { encoding: 'utf8' }));
    made.msg = idOf(execFileSync('ipcmk', ['-Q', '-p', '0644'], { encoding: 'utf8' }));
    const mq = `/${marker('nsjail-test')}`;
    execFileSync(hostSetup, ['mq-create', mq, 'host message']);
    made.mq = mq;
    if (!/^\d+$/.test(made.shm) || !/^\d+$/.test(made.msg)) throw new Error(`ipcmk gave no ids: ${JSON.stringify(made)}`);
    await use(['shm', made.shm, 'msg', made.msg, 'mq', mq]);
  } finally {
    if (made.shm) execFileSync('ipcrm', ['-m', made.shm]);
    if (made.msg) execFileSync('ipcrm', ['-q', made.msg]);
    if (made.mq) execFileSync(hostSetup, ['mq-unlink', made.mq]);
  }
}

/**
 * A marked sleep: /bin/sleep with a unique fractional number of seconds (e.g. 600.123456),
 * which its command line shows, so that it can be found, and killed, by that number alone.
 */
export function markedSleepSeconds(): string {
  return `600.${crypto.randomInt(100000, 999999)}${crypto.randomInt(100000, 999999)}`;
}

/** Host pids whose command line contains `mark`. */
export function pidsWithMarker(mark: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(mark)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** SIGKILLs every host process whose command line contains `mark` (cleanup, also after a failure). */
export function killByMarker(mark: string): void {
  for (const pid of pidsWithMarker(mark)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A host process the test starts as a target: a sleep with a unique marker, optionally as uid 65534. */
export function startHostSleep(asNobody = false): { child: ChildProcess; pid: number; mark: string; alive: () => boolean; stop: () => void } {
  const mark = markedSleepSeconds();
  const child = asNobody
    ? spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/bin/sleep', mark], { stdio: 'ignore' })
    : spawn('/bin/sleep', [mark], { stdio: 'ignore' });
  if (child.pid === undefined) throw new Error('the host sleep did not start');
  const pid = child.pid;
  return {
    child,
    pid,
    mark,
    alive: () => {
      // Alive and not a zombie (a killed child stays a zombie until libuv reaps it).
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
      } catch {
        return false;
      }
    },
    stop: () => killByMarker(mark),
  };
}

/** Waits until a host process started by the test has exited (it was killed) or `ms` passed. */
export function exitOf(child: ChildProcess, ms = 5000): Promise<NodeJS.Signals | number | null | 'running'> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('running'), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? code);
    });
  });
}

/** Options as JSON for the rootless script: the seccomp preset travels by name. */
function serialize(options: RunOptions): unknown {
  return { ...options, seccomp: options.seccomp === seccompPresets.sandboxDefault ? 'sandboxDefault' : options.seccomp };
}

// Runs each case with the library, and "plain" cases with child_process, as the user it runs
// as; holds 20 more descriptors open meanwhile; writes the results as JSON to argv[4].
const CASES_SCRIPT = String.raw`
const fs = require('fs');
const lib = require(process.argv[2]);
const cases = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const held = Array.from({ length: 20 }, () => fs.openSync(process.argv[3], 'r'));
const read = (stream) => new Promise((resolve) => { let text = ''; stream.on('data', (d) => (text += d)); stream.on('close', () => resolve(text)); });
(async () => {
  const results = {};
  for (const [name, options] of Object.entries(cases)) {
    if (options.seccomp === 'sandboxDefault') options.seccomp = lib.seccompPresets.sandboxDefault;
    try {
      if (options.plain) {
        const r = require('child_process').spawnSync(options.command, options.args, { stdio: ['inherit', 'pipe', 'pipe'], encoding: 'utf8' });
        results[name] = { exitCode: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
      } else if (options.stdinInherit) {
        const { stdinInherit, maxBuffer, ...rest } = options;
        const child = lib.spawnIsolated({ ...rest, stdio: ['inherit', 'pipe', 'pipe'] });
        const [stdout, stderr, status] = await Promise.all([read(child.stdout), read(child.stderr), child.exited]);
        results[name] = { exitCode: status.exitCode, signal: status.signal, status: status.status, stdout, stderr };
      } else {
        const r = await lib.runIsolated(options);
        results[name] = { exitCode: r.exitCode, signal: r.signal, status: r.status, stdout: r.stdout, stderr: r.stderr };
      }
    } catch (e) {
      results[name] = { error: { name: e.name, message: e.message, code: e.code, step: e.step } };
    }
  }
  held.forEach((fd) => fs.closeSync(fd));
  fs.writeFileSync(process.argv[4], JSON.stringify({ uid: process.getuid(), gid: process.getgid(), results }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** One rootless case's outcome: the run's result, or the error it threw. */
export interface RootlessOutcome {
  exitCode?: number | null;
  signal?: string | null;
  status?: string;
  stdout?: string;
  stderr?: string;
  error?: { name: string; message: string; code?: string; step?: string };
}

/** A case for {@link runCases}: a sandbox (optionally with the script's stdin), or a plain child_process. */
export type Case = (RunOptions & { stdinInherit?: true }) | { plain: true; command: string; args: string[] };

/**
 * Runs each named case in a separate Node process against the built library (dist/): as
 * uid/gid 65534 with no groups (setpriv) with `asNobody`, else as root; `wrap` is a command
 * put in front (e.g. a shell that opens a descriptor, or `script` for a terminal), which ends
 * with the Node command line as separate arguments, or as one string with `wrapAsString`.
 * Returns the script's results, the uid it ran as, and what the wrapper printed.
 */
export async function runCases(
  cases: Record<string, Case>,
  { asNobody = false, wrap = [], wrapAsString = false }: { asNobody?: boolean; wrap?: string[]; wrapAsString?: boolean } = {},
): Promise<{ uid: number; results: Record<string, RootlessOutcome>; output: string }> {
  if (!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'index.js'))) throw new Error('dist/ is missing: build the library first (npm run build:dev)');
  const staged = stageLibraryForOtherUsers();
  const scratch = tempDir('nsjail-node-cases-');
  fs.chmodSync(scratch.dir, 0o777); // the script writes its results here, maybe as uid 65534
  try {
    const script = path.join(scratch.dir, 'cases.js');
    const input = path.join(scratch.dir, 'cases.json');
    const output = path.join(scratch.dir, 'results.json');
    fs.writeFileSync(script, CASES_SCRIPT, { mode: 0o644 });
    const serialized = Object.fromEntries(Object.entries(cases).map(([k, v]) => [k, 'plain' in v ? v : serialize(v)]));
    fs.writeFileSync(input, JSON.stringify(serialized), { mode: 0o644 });
    let node = [process.execPath, script, staged.dist, input, output];
    if (asNobody) node = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...node];
    const argv = wrapAsString ? [...wrap, node.join(' ')] : [...wrap, ...node];
    const printed = await new Promise<string>((resolve, reject) => {
      const child = execFile(
        argv[0], argv.slice(1),
        { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 120000, maxBuffer: 16 << 20 },
        (error, out, err) => (error ? reject(new Error(`${error.message}\n${out}\n${err}`)) : resolve(out)),
      );
      child.stdin?.end();
    });
    return { ...JSON.parse(fs.readFileSync(output, 'utf8')), output: printed };
  } finally {
    scratch.cleanup();
    staged.cleanup();
  }
}
