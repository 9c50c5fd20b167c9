/**
 * IsolatedProcess as a ChildProcess: events and their order, exitCode/signalCode/killed,
 * awaiting the handle waits for the output (close), pid with init is the program's.
 */
import * as fs from 'node:fs';
import { spawnIsolated, spawnIsolatedAsync, type IsolatedProcess } from '../lib';
import { killMarked, marker, waitFor } from './limits-helpers';

jest.setTimeout(30_000);

/** /proc/PID/cmdline's words, once exec has set them up (the spawn returns a moment before). */
async function cmdline(pid: number): Promise<string[]> {
  const read = (): string => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  await waitFor(() => read() !== '', `the cmdline of ${pid}`);
  return read().split('\0');
}

/** Records the child_process events of a handle, with their arguments, in order. */
function record(child: IsolatedProcess): unknown[][] {
  const events: unknown[][] = [];
  child.on('spawn', () => events.push(['spawn']));
  child.on('exit', (code, signal) => events.push(['exit', code, signal]));
  child.on('close', (code, signal) => events.push(['close', code, signal]));
  return events;
}

let mark = '';
beforeEach(() => {
  mark = marker();
});
afterEach(() => killMarked(mark));

describe('awaiting the handle waits for the output, not only the exit', () => {
  test('200 runs of a program that writes and exits: all of its output is there after `await child`', async () => {
    const size = 60_000; // fits the pipe: the program can exit before a byte is read
    let short = 0;
    for (let i = 0; i < 200; i++) {
      const child = spawnIsolated({ command: 'head', args: ['-c', String(size), '/dev/zero'], stdio: ['ignore', 'pipe', 'ignore'] });
      let got = 0;
      child.stdout!.on('data', (d: Buffer) => (got += d.length));
      // Busy for a moment, as an application would be: the loop then sees the exit and the
      // output at once (before awaiting the handle waited for the exit only, this lost data).
      const until = Date.now() + 5;
      while (Date.now() < until);
      await child;
      if (got !== size) short++;
    }
    expect(short).toBe(0);
  });

  test('exited resolves at the exit, the handle at close; close follows exit', async () => {
    const child = spawnIsolated({ command: 'sh', args: ['-c', 'echo out; echo err >&2; exit 3'] });
    const events = record(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const closed = await child;
    expect(out).toBe('out\n');
    expect(closed).toMatchObject({ exitCode: 3, signal: null, status: 'exit', outputIncomplete: false });
    expect(await child.exited).toMatchObject({ exitCode: 3, signal: null, status: 'exit' });
    expect(events).toEqual([['spawn'], ['exit', 3, null], ['close', 3, null]]);
  });

  test('streams the caller never reads are drained at exit, so `await child` ends', async () => {
    const child = spawnIsolated({ command: 'sh', args: ['-c', 'echo unread; echo unread >&2'] });
    expect(await child).toMatchObject({ exitCode: 0, outputIncomplete: false });
    expect(child.stdout!.readableEnded).toBe(true);
  });

  test('a stream read once and paused is resumed at exit, as child_process does', async () => {
    const child = spawnIsolated({ command: 'sh', args: ['-c', 'echo first; read x; echo second'], stdio: ['pipe', 'pipe', 'ignore'] });
    const first = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString())));
    child.stdout!.pause();
    expect(first).toBe('first\n');
    child.stdin!.end('\n');
    expect(await child).toMatchObject({ exitCode: 0, outputIncomplete: false });
  });
});

describe('ChildProcess fields', () => {
  test("before exit, after a normal exit: exitCode, signalCode, killed; 'exit' listeners do not throw", async () => {
    const child = spawnIsolated({ command: 'sh', args: ['-c', 'exit 5'], stdio: 'ignore' });
    expect(() => child.on('exit', () => undefined)).not.toThrow();
    expect(child).toMatchObject({ exitCode: null, signalCode: null, killed: false });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
    expect(await exited).toEqual([5, null]);
    expect(child).toMatchObject({ exitCode: 5, signalCode: null, killed: false });
  });

  test('kill(): killed is true, signalCode says the signal, events in order', async () => {
    const child = spawnIsolated({ command: 'sleep', args: ['1000', mark], stdio: 'ignore' });
    const events = record(child);
    await new Promise<void>((resolve) => child.once('spawn', () => resolve()));
    expect(child.kill()).toBe(true);
    expect(child.killed).toBe(true);
    await child;
    expect(child).toMatchObject({ exitCode: null, signalCode: 'SIGKILL' });
    expect(events).toEqual([['spawn'], ['exit', null, 'SIGKILL'], ['close', null, 'SIGKILL']]);
    // Once reaped: false, no error, killed stays what it was.
    expect(child.kill()).toBe(false);
  });

  test("'spawn' comes before 'exit', also from spawnIsolatedAsync", async () => {
    const { child } = await spawnIsolatedAsync({ command: 'sh', args: ['-c', 'exit 0'], stdio: 'ignore' });
    const events = record(child);
    await child;
    expect(events.map((e) => e[0])).toEqual(['spawn', 'exit', 'close']);
  });
});

describe('pid with init: true', () => {
  test.each([
    ['in a PID namespace', true],
    ['without one', false],
  ])('%s: pid is the program on the host, initPid is init', async (_name, pid) => {
    const child = spawnIsolated({ command: 'sleep', args: ['1000', mark], init: true, pid, stdio: 'ignore' });
    try {
      expect(child.initPid).not.toBeNull();
      expect(child.pid).not.toBe(child.initPid);
      expect(await cmdline(child.pid)).toEqual(['sleep', '1000', mark, '']);
      expect((await cmdline(child.initPid!))[0]).toBe('nsjail-node-init');
      // The program is init's child.
      const stat = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])).toBe(child.initPid);
    } finally {
      child.kill();
    }
    expect(await child).toMatchObject({ pid: child.pid, killedBy: 'kill' });
  });

  test('a program that exits at once still has its own pid (init keeps it until the pid is read)', async () => {
    for (let i = 0; i < 20; i++) {
      const child = spawnIsolated({ command: 'sh', args: ['-c', 'exit 4'], init: true, pid: true, stdio: 'ignore' });
      expect(child.pid).not.toBe(child.initPid);
      expect(await child).toMatchObject({ exitCode: 4, pid: child.pid });
    }
  });

  // Init keeps the program's zombie only when the program exec'd: after a failed exec nobody
  // reads its pid, and holding it (up to 10 s each) would make this test exceed its timeout.
  test('an exec failure under init is reported without waiting for a pid read', () => {
    for (let i = 0; i < 3; i++) {
      expect(() => spawnIsolated({ command: `/nonexistent-${mark}`, init: true, pid: true })).toThrow(/execve .*ENOENT/);
    }
  }, 15_000);

  test('control: without init, initPid is null and pid is the program', async () => {
    const child = spawnIsolated({ command: 'sleep', args: ['1000', mark], pid: true, stdio: 'ignore' });
    expect(child.initPid).toBeNull();
    expect((await cmdline(child.pid))[0]).toBe('sleep');
    child.kill();
    await child;
  });
});
