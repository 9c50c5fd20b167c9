/**
 * Part of the suite as an unprivileged user: a script run as uid/gid 65534 with no
 * supplementary groups (setpriv --reuid=65534 --regid=65534 --clear-groups) against the built
 * library in dist/, as a user of the npm package would run it. It reports JSON; this test
 * asserts on it.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stageLibraryForOtherUsers } from './helpers';
import { buildProbe, errnoOf, probeResults, statusFields } from './identity-helpers';

const NOBODY = 65534;

const SCRIPT = String.raw`
const lib = require(process.argv[2]);
const probe = process.argv[3];
const results = {};
async function run(name, options) {
  try {
    const child = lib.spawnIsolated({ stdio: ['ignore', 'pipe', 'pipe'], ...options });
    const read = (stream) => new Promise((resolve) => { let text = ''; stream.on('data', (d) => (text += d)); stream.on('end', () => resolve(text)); });
    // The exit can be reported before the last output is read: wait for both.
    const [stdout, stderr, status] = await Promise.all([read(child.stdout), read(child.stderr), child]);
    results[name] = { exitCode: status.exitCode, signal: status.signal, stdout, stderr };
  } catch (e) {
    results[name] = { error: { name: e.name, message: e.message, code: e.code, step: e.step } };
  }
}
const sh = (script) => ({ command: '/bin/sh', args: ['-c', script] });
const STATUS = 'grep -E "^(Cap[A-Za-z]+|NoNewPrivs|Uid):" /proc/self/status';
(async () => {
  const all = { pid: true, net: true, mount: true, uts: true, ipc: true };
  await run('root', { ...sh('id -u; ' + STATUS), user: true, ...all });
  await run('mapped', { ...sh('id -u; id -g'), user: true, uid: 1000, gid: 1000, ...all });
  await run('noUser', { ...sh('id -u'), ...all });
  await run('everything', { ...sh('hostname; id -u; test -e /proc/1/status && echo proc'), user: true, ...all, cgroup: true, hostname: 'rootless', mounts: [...lib.hostSystemMounts(), { type: 'proc' }] });
  await run('keptCap', { ...sh(STATUS), user: true, capabilities: ['CAP_NET_BIND_SERVICE'] });
  await run('seccomp', { command: probe, args: ['mount', 'getpid'], user: true, ...all, capabilities: ['CAP_SYS_ADMIN'], seccomp: lib.seccompPresets.sandboxDefault });
  await run('mountControl', { command: probe, args: ['mount'], user: true, ...all, capabilities: ['CAP_SYS_ADMIN'] });
  await run('init', { ...sh('echo $$; exit 5'), user: true, pid: true, init: true });
  await run('time', { ...sh('cat /proc/uptime'), user: true, pid: true, time: true, timeOffsets: { boottime: 1000000 } });
  await run('groups', { ...sh('id'), user: true, groups: [0] });
  await run('hostIds', { ...sh('id'), uid: 0, gid: 0 });
  await run('plain', { ...sh(STATUS) });
  process.stdout.write(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(), results }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

interface Outcome {
  exitCode?: number | null;
  signal?: string | null;
  stdout?: string;
  stderr?: string;
  error?: { name: string; message: string; code?: string; step?: string };
}

let report: { uid: number; gid: number; groups: number[]; results: Record<string, Outcome> };
let cleanup: (() => void) | undefined;

beforeAll(async () => {
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'index.js'))) throw new Error('dist/ is missing: build the library first (npm run build:dev)');
  const built = buildProbe();
  const staged = stageLibraryForOtherUsers(); // the checkout may not be readable by uid 65534
  const DIST = staged.dist;
  cleanup = () => {
    built.cleanup();
    staged.cleanup();
  };
  const script = path.join(built.dir, 'rootless.js');
  fs.writeFileSync(script, SCRIPT, { mode: 0o644 });
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      'setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, script, DIST, built.probe],
      { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...staged.env }, timeout: 60000, maxBuffer: 16 << 20 },
      (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)),
    );
  });
  report = JSON.parse(stdout);
}, 90000);

afterAll(() => cleanup?.());

describe('as an unprivileged user (uid 65534, no groups)', () => {
  test('the script really ran unprivileged', () => {
    expect(report).toMatchObject({ uid: NOBODY, gid: NOBODY });
    expect(report.groups.filter((g) => g !== NOBODY)).toEqual([]); // Node lists the egid among the groups
  });

  test('a user+pid+net+mount+uts+ipc sandbox starts; id -u shows the mapped uid; nothing is privileged inside', () => {
    const root = report.results.root;
    expect(root).toMatchObject({ exitCode: 0, stderr: '' });
    expect(root.stdout!.split('\n')[0]).toBe('0');
    expect(statusFields(root.stdout!)).toMatchObject({
      CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000', CapBnd: '0000000000000000',
      CapAmb: '0000000000000000', NoNewPrivs: '1',
    });
    expect(report.results.mapped).toMatchObject({ exitCode: 0, stdout: '1000\n1000\n' });
    expect(report.results.everything).toMatchObject({ exitCode: 0, stdout: 'rootless\n0\nproc\n' });
  });

  test('without user: true the same request fails, saying a user namespace is needed', () => {
    const { error } = report.results.noUser;
    expect(error).toMatchObject({ name: 'IsolationError', code: 'EPERM' });
    expect(error!.message).toMatch(/user namespace.*user: true/);
  });

  // Each outcome is matched whole, so that a failure shows what the sandbox printed or threw.
  test('capabilities, seccomp, init and the time namespace work rootless', () => {
    const { keptCap, mountControl, seccomp, init, time } = report.results;
    expect(keptCap).toMatchObject({ exitCode: 0 });
    expect(statusFields(keptCap.stdout!)).toMatchObject({ CapEff: '0000000000000400', CapBnd: '0000000000000400' });
    expect(mountControl).toMatchObject({ exitCode: 0, stdout: 'mount ok\n' });
    expect(probeResults(mountControl.stdout!)).toEqual({ mount: 'ok' });
    expect(seccomp).toMatchObject({ exitCode: 0, stdout: `mount ${errnoOf('EPERM')}\ngetpid ok\n` });
    expect(init).toMatchObject({ exitCode: 5, stdout: '2\n' });
    expect(time).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/^\d+\.\d+ /) });
    expect(Number(time.stdout!.split(' ')[0])).toBeGreaterThanOrEqual(1000000);
  });

  test('what needs privilege fails with a clear error', () => {
    // Supplementary groups need a gid map written by a privileged helper.
    const groups = report.results.groups;
    if (groups.error) {
      expect(groups.error.message).toMatch(/newuidmap|newgidmap/);
    } else {
      expect(groups).toMatchObject({ exitCode: 0 }); // newuidmap/newgidmap installed and /etc/subgid allows it
    }
    expect(report.results.hostIds.error).toMatchObject({ name: 'IsolationError', code: 'EPERM', step: 'setgroups' });
    expect(report.results.hostIds.error!.message).toMatch(/needs root/);
    // No user namespace, no CAP_SETPCAP: the bounding set stays, every other set is empty.
    expect(statusFields(report.results.plain.stdout!)).toMatchObject({ CapEff: '0000000000000000', CapPrm: '0000000000000000', CapAmb: '0000000000000000', NoNewPrivs: '1' });
  });
});
