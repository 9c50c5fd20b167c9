/**
 * Every wait ends: timeout/wallTime/abort escalate to SIGKILL after forceKillAfter (PID 1
 * ignoring SIGTERM included), streams an escaped process holds are destroyed and reported
 * (outputIncomplete), an abort during spawnIsolatedAsync ends the sandbox.
 * Jest's timeout is low: a wait that does not end fails the test.
 */
import { runIsolated, spawnIsolated, spawnIsolatedAsync } from '../lib';
import { killMarked, leftoverCgroups, marker, markedPids } from './limits-helpers';

jest.setTimeout(20_000);

let mark = '';
beforeEach(() => {
  mark = marker();
});
afterEach(() => {
  killMarked(mark); // a test that failed may have left its escaped sleeps
  expect(leftoverCgroups()).toEqual([]);
});

/** A shell that starts a setsid'd sleep holding stdout and stderr, then sleeps itself. */
const escapeAndSleep = (): { command: string; args: string[] } => ({
  command: 'sh', args: ['-c', `setsid sleep 1000 ${mark} & sleep 1000 ${mark}; wait`],
});

describe('a process that escaped the sandbox holds its output', () => {
  test('runIsolated with timeout ends; the result says the output may be incomplete', async () => {
    const r = await runIsolated({ ...escapeAndSleep(), timeout: 300, forceKillAfter: 300 });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'timeout', outputIncomplete: true });
    // The escaped sleep is alive: it is what held the streams (the test's own control).
    expect(markedPids(mark)).toHaveLength(1);
  });

  test('the program exits by itself, the escaped process lives on: timeout still bounds the wait', async () => {
    const child = spawnIsolated({ command: 'sh', args: ['-c', `setsid sleep 1000 ${mark} & echo started`], timeout: 300, forceKillAfter: 300 });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = await child.exited;
    expect(exited).toMatchObject({ status: 'ok', killedBy: null });
    expect(await child).toMatchObject({ status: 'ok', outputIncomplete: true });
    expect(out).toBe('started\n');
    expect(markedPids(mark)).toHaveLength(1);
  });

  test('abort bounds the wait the same way', async () => {
    const ac = new AbortController();
    const pending = runIsolated({ ...escapeAndSleep(), signal: ac.signal, forceKillAfter: 300 });
    setTimeout(() => ac.abort(), 200);
    expect(await pending).toMatchObject({ status: 'signal', killedBy: 'abort', outputIncomplete: true });
  });

  test.each([
    ['a PID namespace', { pid: true }],
    ['a cgroup', { limits: { pids: 64 } }],
  ])('control: with %s nothing escapes, the output is complete', async (_name, options) => {
    const r = await runIsolated({ ...escapeAndSleep(), ...options, timeout: 300, forceKillAfter: 300 });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'timeout', outputIncomplete: false });
    expect(markedPids(mark)).toEqual([]);
  });
});

describe('killSignal other than SIGKILL escalates after forceKillAfter', () => {
  test('PID 1 ignores SIGTERM: SIGKILL follows, the whole namespace dies', async () => {
    const r = await runIsolated({
      command: 'sh', args: ['-c', `sleep 1000 ${mark} & sleep 1000 ${mark}`], pid: true,
      timeout: 300, killSignal: 'SIGTERM', forceKillAfter: 500,
    });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'timeout', signal: 'SIGKILL', exitCode: null, outputIncomplete: false });
    expect(markedPids(mark)).toEqual([]);
  });

  test('control: a program that handles SIGTERM ends by it, no SIGKILL needed', async () => {
    const r = await runIsolated({
      command: 'sh', args: ['-c', 'trap "exit 9" TERM; while :; do sleep 0.05; done'], pid: true,
      timeout: 300, killSignal: 'SIGTERM', forceKillAfter: 10_000,
    });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'timeout', exitCode: 9, signal: null });
  });

  test('abort with SIGTERM escalates the same way', async () => {
    const ac = new AbortController();
    const child = spawnIsolated({ command: 'sleep', args: ['1000', mark], pid: true, stdio: 'ignore', signal: ac.signal, killSignal: 'SIGTERM', forceKillAfter: 300 });
    setTimeout(() => ac.abort(), 100);
    expect(await child).toMatchObject({ status: 'signal', killedBy: 'abort', signal: 'SIGKILL' });
    expect(child.killed).toBe(true);
  });

  test.each([
    [-1, RangeError],
    [1.5, RangeError],
    [2 ** 31, RangeError],
    ['100', TypeError],
  ])('forceKillAfter %p is refused (%p) before anything starts', (forceKillAfter, kind) => {
    expect(() => spawnIsolated({ command: 'sleep', args: ['1000', mark], forceKillAfter: forceKillAfter as number })).toThrow(kind);
    expect(() => spawnIsolated({ command: 'sleep', args: ['1000', mark], forceKillAfter: forceKillAfter as number })).toThrow('options.forceKillAfter');
    expect(markedPids(mark)).toEqual([]);
  });
});

describe('abort at any moment', () => {
  test('aborted while spawnIsolatedAsync is under way: killed as soon as it is spawned, reported as abort', async () => {
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      const pending = spawnIsolatedAsync({ command: 'sleep', args: ['1000', mark], pid: true, stdio: 'ignore', signal: ac.signal });
      ac.abort();
      const { child } = await pending;
      expect(await child).toMatchObject({ status: 'signal', killedBy: 'abort', signal: 'SIGKILL' });
    }
    expect(markedPids(mark)).toEqual([]);
  });

  test('aborted right after runIsolated was called: reported as abort', async () => {
    const ac = new AbortController();
    const pending = runIsolated({ command: 'sleep', args: ['1000', mark], signal: ac.signal });
    ac.abort();
    expect(await pending).toMatchObject({ status: 'signal', killedBy: 'abort' });
  });

  test('aborted before the call: AbortError, nothing starts', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(spawnIsolatedAsync({ command: 'sleep', args: ['1000', mark], signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(markedPids(mark)).toEqual([]);
  });
});
