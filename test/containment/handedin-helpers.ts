/**
 * Helpers of the containment tests for what the library hands in (handed-in.test.ts,
 * sockets.test.ts, socket-memory.test.ts): the attack probe (handedin-probe.c, compiled
 * with cc per test file), README's recommended sandbox, and runs of it as uid 65534.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostSystemMounts, runIsolated, seccompPresets, spawnIsolated, type SpawnOptions } from '../../lib';
import { collect, stageLibraryForOtherUsers } from '../helpers';

export const MiB = 1 << 20;
export const NOBODY = 65534;

/** The probe as the sandbox sees it: its temp dir is bound read-only at /probe. */
export const PROBE = '/probe/probe';

/** A temp dir (0755, usable by uid 65534) with the probe compiled in it. */
export function buildProbe(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-handedin-'));
  fs.chmodSync(dir, 0o755);
  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync('cc', ['-O1', '-o', path.join(dir, 'probe'), path.join(__dirname, 'handedin-probe.c')], { stdio: 'pipe' });
  } catch (e) {
    cleanup();
    throw e;
  }
  return { dir, cleanup };
}

export type SandboxOptions = Omit<SpawnOptions, 'command' | 'args' | 'stdio'>;

/**
 * README's "A sandbox for untrusted code", with the probe's dir bound read-only at /probe.
 * Rootless callers get no limits (they are kept by cgroups, and this machine's cgroup v1 is
 * not delegated to them).
 */
export function recommended(probeDir: string, { rootless = false } = {}): SandboxOptions {
  const options: SandboxOptions = {
    pid: true, net: true, mount: true, uts: true, ipc: true, user: true, init: true,
    mounts: [
      ...hostSystemMounts(), { type: 'proc' }, { type: 'dev' }, { type: 'tmpfs', target: '/tmp', size: '64m' },
      { type: 'bind', source: probeDir, target: '/probe', readonly: true },
    ],
    seccomp: seccompPresets.sandboxDefault,
  };
  // Every limit here is kept by a cgroup (the wall time kills the sandbox through it).
  if (!rootless) options.limits = { memory: 256 * MiB, pids: 64, wallTime: 30000, cpuTime: 10 };
  return options;
}

/** What a probe run gave: its output, or the error that kept it from starting. */
export interface Outcome {
  exitCode?: number | null;
  signal?: string | null;
  stdout?: string;
  stderr?: string;
  /** runIsolated's, with limits. */
  memoryPeakBytes?: number;
  error?: { name: string; message: string; code?: string };
}

/** One run: the probe's arguments, and `ignore` for stdio 'ignore' (the probe then reports on stderr). */
export interface Scenario {
  args: string[];
  options: SandboxOptions;
  ignore?: boolean;
}

/** Runs the probe: runIsolated (stdin without input), or spawnIsolated with stdin and stdout 'ignore'. */
export async function runProbe(s: Scenario): Promise<Outcome> {
  try {
    if (!s.ignore) {
      const r = await runIsolated({ command: PROBE, args: s.args, ...s.options });
      return { exitCode: r.exitCode, signal: r.signal, stdout: r.stdout, stderr: r.stderr, memoryPeakBytes: r.memoryPeakBytes ?? undefined };
    }
    const child = spawnIsolated({ command: PROBE, args: s.args, ...s.options, env: { PROBE_STDERR: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const [stderr, status] = await Promise.all([collect(child.stderr), child.exited]);
    return { exitCode: status.exitCode, signal: status.signal, stderr };
  } catch (e) {
    const err = e as Error & { code?: string };
    return { error: { name: err.name, message: err.message, code: err.code } };
  }
}

// The same runProbe, as a script run by uid 65534 against the built library (dist/).
const SCRIPT = String.raw`
const lib = require(process.argv[2]);
const scenarios = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));
const read = (stream) => new Promise((resolve) => { let t = ''; stream.on('data', (d) => (t += d)); stream.on('end', () => resolve(t)); });
async function run(s) {
  try {
    if (!s.ignore) {
      const r = await lib.runIsolated({ command: '${PROBE}', args: s.args, ...s.options });
      return { exitCode: r.exitCode, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
    }
    const child = lib.spawnIsolated({ command: '${PROBE}', args: s.args, ...s.options, env: { PROBE_STDERR: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const [stderr, status] = await Promise.all([read(child.stderr), child.exited]);
    return { exitCode: status.exitCode, signal: status.signal, stderr };
  } catch (e) {
    return { error: { name: e.name, message: e.message, code: e.code } };
  }
}
(async () => {
  const results = {};
  for (const [name, s] of Object.entries(scenarios)) results[name] = await run(s);
  process.stdout.write(JSON.stringify({ uid: process.getuid(), results }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

/**
 * Runs each scenario as uid/gid 65534 without groups (setpriv), against a staged copy of
 * dist/ (the checkout may not be readable by that user). Options must be plain JSON.
 */
export async function runAsNobody(probeDir: string, scenarios: Record<string, Scenario>): Promise<Record<string, Outcome>> {
  if (!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'index.js'))) throw new Error('dist/ is missing: build the library first (npm run build:dev)');
  const staged = stageLibraryForOtherUsers();
  try {
    const script = path.join(probeDir, 'nobody.js');
    const input = path.join(probeDir, 'scenarios.json');
    fs.writeFileSync(script, SCRIPT, { mode: 0o644 });
    fs.writeFileSync(input, JSON.stringify(scenarios), { mode: 0o644 });
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        'setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, script, staged.dist, input],
        { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 90000, maxBuffer: 16 << 20 },
        (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)),
      );
    });
    const report = JSON.parse(stdout) as { uid: number; results: Record<string, Outcome> };
    if (report.uid !== NOBODY) throw new Error(`the script ran as uid ${report.uid}, not ${NOBODY}`);
    return report.results;
  } finally {
    staged.cleanup();
  }
}

/** What a chmod, chown or utimes of a file changes: compared before and after an attack. */
export function inodeState(file: string): { mode: number; uid: number; gid: number; ctimeNs: bigint; mtimeNs: bigint } {
  const st = fs.statSync(file, { bigint: true });
  return { mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), ctimeNs: st.ctimeNs, mtimeNs: st.mtimeNs };
}
