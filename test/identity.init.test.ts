/**
 * `init: true` (src-native/init.c) and the time namespace: orphans reaped, signals forwarded,
 * the program's exit status preserved exactly, the seccomp filter on the program and not on
 * init, and clocks offset inside while the host's stay as they are.
 */
import * as fs from 'node:fs';
import { hostSystemMounts, IsolationError, spawnIsolated } from '../lib';
import { collect, lingeringZombies, run, sh } from './helpers';
import { buildProbe, probeResults, statusFields } from './identity-helpers';

let probe: string;
let cleanup: () => void;

beforeAll(() => {
  ({ probe, cleanup } = buildProbe());
});

afterAll(() => cleanup?.());

/** Waits until `text` has appeared on a stream. */
function waitFor(stream: NodeJS.ReadableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        stream.off('data', onData);
        resolve();
      }
    };
    stream.on('data', onData);
  });
}

describe('init', () => {
  test('orphaned grandchildren are reaped by init, and stay zombies with the program as PID 1', async () => {
    const withInit = await run({ command: probe, args: ['orphan:5000'], init: true, pid: true });
    expect(probeResults(withInit.stdout)).toEqual({ orphan: 'reaped' });
    // The control: the probe itself as PID 1 never reaps what it inherits.
    const withoutInit = await run({ command: probe, args: ['orphan:300'], pid: true });
    expect(probeResults(withoutInit.stdout)).toEqual({ orphan: 'zombie' });
    // Without a PID namespace init is a subreaper: orphans still come to it.
    const subreaper = await run({ command: probe, args: ['orphan:5000'], init: true });
    expect(probeResults(subreaper.stdout)).toEqual({ orphan: 'reaped' });
  });

  test('the program is not PID 1, init is', async () => {
    const r = await sh('echo $$ $PPID', { init: true, pid: true });
    expect(r.stdout).toBe('2 1\n');
  });

  test('SIGTERM to the handle reaches the program', async () => {
    const child = spawnIsolated({
      command: '/bin/sh', args: ['-c', 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done'],
      init: true, pid: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout = collect(child.stdout);
    await waitFor(child.stdout!, 'ready');
    expect(child.kill('SIGTERM')).toBe(true);
    expect(await child).toMatchObject({ exitCode: 7, signal: null });
    expect(await stdout).toBe('ready\ngot TERM\n');
  });

  test('a program killed by a signal is reported with that signal, as PID 1 of a namespace or not', async () => {
    for (const pid of [true, false]) {
      const child = spawnIsolated({ command: '/bin/sleep', args: ['1000'], init: true, pid, stdio: 'ignore' });
      // init ignores nothing: SIGTERM goes on to sleep, which dies of it.
      child.kill('SIGTERM');
      expect([pid, await child]).toMatchObject([pid, { exitCode: null, signal: 'SIGTERM' }]);
      expect([pid, await sh('kill -USR1 $$', { init: true, pid })]).toMatchObject([pid, { exitCode: null, signal: 'SIGUSR1' }]);
    }
    // SIGKILL to the handle kills init, and with it the whole namespace.
    const killed = spawnIsolated({ command: '/bin/sleep', args: ['1000'], init: true, pid: true, stdio: 'ignore' });
    killed.kill();
    expect(await killed).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
    expect(await lingeringZombies()).toEqual([]);
  });

  test('the exit status is preserved', async () => {
    expect(await sh('exit 42', { init: true, pid: true })).toMatchObject({ exitCode: 42, signal: null });
    expect(await sh('exit 0', { init: true })).toMatchObject({ exitCode: 0, signal: null });
    expect(await sh('echo out; echo err >&2; exit 3', { init: true, pid: true })).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  test('a program that cannot be executed is the same IsolationError as without init', () => {
    let error: unknown;
    try {
      spawnIsolated({ command: '/nonexistent/program', init: true, pid: true });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IsolationError);
    expect(error).toMatchObject({ step: 'execve', code: 'ENOENT', path: '/nonexistent/program' });
  });

  test('init runs in a new root that does not contain it (executed by fd), inside a user namespace', async () => {
    const r = await sh('echo $$; id -u; tr "\\0" " " < /proc/1/cmdline; echo; test -e /work || echo no-host-tree', {
      init: true, pid: true, user: true, mount: true, mounts: [...hostSystemMounts(), { type: 'proc' }], uid: 1000, gid: 1000,
    });
    expect(r).toMatchObject({ exitCode: 0, stderr: '' });
    const [pid, uid, initCmdline, hostTree] = r.stdout.split('\n');
    expect({ pid, uid, hostTree }).toEqual({ pid: '2', uid: '1000', hostTree: 'no-host-tree' });
    // No seccomp filter, no lock file, one exec candidate.
    expect(initCmdline).toMatch(/^nsjail-node-init 0 - 0 1 \/bin\/sh \/bin\/sh -c /);
  });

  test('the seccomp filter is on the program, not on init; ids, capabilities and no_new_privs on both', async () => {
    const r = await sh('grep -E "^(Seccomp|NoNewPrivs|CapEff|CapBnd|Uid):" /proc/self/status; echo --; grep -E "^(Seccomp|NoNewPrivs|CapEff|CapBnd|Uid):" /proc/$PPID/status', {
      init: true, uid: 65534, gid: 65534, seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['ptrace'], action: { errno: 'EPERM' } }] },
    });
    const [program, init] = r.stdout.split('--\n').map(statusFields);
    const common = { NoNewPrivs: '1', CapEff: '0000000000000000', CapBnd: '0000000000000000', Uid: '65534\t65534\t65534\t65534' };
    expect(program).toMatchObject({ ...common, Seccomp: '2' });
    expect(init).toMatchObject({ ...common, Seccomp: '0' });
    // And it is in force: a killing rule kills the program, init reports it.
    const killed = await run({ command: probe, args: ['getpid'], init: true, pid: true, seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: 'kill' }] } });
    expect(killed).toMatchObject({ exitCode: null, signal: 'SIGSYS', stdout: '' });
  });
});

describe('time namespace', () => {
  const hostUptime = (): number => Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);

  test('/proc/uptime and CLOCK_BOOTTIME/CLOCK_MONOTONIC inside carry the offsets; the host clocks are untouched', async () => {
    const boottime = 1_000_000;
    const monotonic = 2_000_000;
    const monoBefore = Number(process.hrtime.bigint() / 1_000_000_000n); // CLOCK_MONOTONIC
    const bootBefore = hostUptime();
    const r = await sh(`cat /proc/uptime; ${probe} clocks`, { time: true, timeOffsets: { boottime, monotonic }, pid: true });
    const monoAfter = Number(process.hrtime.bigint() / 1_000_000_000n);
    const bootAfter = hostUptime();
    expect(r.exitCode).toBe(0);
    const [uptimeLine, clocksLine] = r.stdout.trim().split('\n');
    const uptime = Number(uptimeLine.split(' ')[0]);
    const [, mono, boot] = clocksLine.split(' ').map(Number);
    expect(uptime).toBeGreaterThanOrEqual(bootBefore + boottime);
    expect(uptime).toBeLessThanOrEqual(bootAfter + boottime + 1);
    expect(boot).toBeGreaterThanOrEqual(Math.floor(bootBefore) + boottime);
    expect(boot).toBeLessThanOrEqual(bootAfter + boottime + 1);
    expect(mono).toBeGreaterThanOrEqual(monoBefore + monotonic);
    expect(mono).toBeLessThanOrEqual(monoAfter + monotonic + 1);
    // The host's own clocks did not move.
    expect(hostUptime()).toBeLessThan(boottime);
    expect(Number(process.hrtime.bigint() / 1_000_000_000n)).toBeLessThan(monotonic);
  });

  test('a time namespace without offsets, and with a negative one, inside a user namespace', async () => {
    const plain = await sh('cat /proc/uptime', { time: true, user: true });
    expect(Number(plain.stdout.split(' ')[0])).toBeGreaterThan(0);
    // Give the program an uptime of 5 s, whatever the host's.
    const before = hostUptime();
    const r = await sh('cat /proc/uptime', { time: true, user: true, timeOffsets: { boottime: 5 - before } });
    const elapsed = hostUptime() - before;
    const uptime = Number(r.stdout.split(' ')[0]);
    expect(uptime).toBeGreaterThanOrEqual(4.99);
    expect(uptime).toBeLessThanOrEqual(5 + elapsed + 0.01);
  });
});
