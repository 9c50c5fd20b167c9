/** Limits without cgroups: validation, rlimits, time limits, timeout/abort, runIsolated, accounting. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IsolationError, runIsolated, spawnIsolated, type SpawnOptions } from '../lib';
import { exitReason } from '../lib/supervision';
import { makeTempDir } from './helpers';
import { buildHog, killMarked, leftoverCgroups, marker, markedPids, waitFor } from './limits-helpers';

const loop = { command: '/bin/sh', args: ['-c', 'while :; do :; done'] } as const;

afterEach(() => {
  expect(leftoverCgroups()).toEqual([]);
});

describe('bad limits are refused before anything starts', () => {
  test.each([
    ['memory', -1],
    ['memory', Number.NaN],
    ['memory', 1.5],
    ['memory', 0],
    ['memorySwap', -1],
    ['pids', 2.5],
    ['pids', -3],
    ['cpu', Number.NaN],
    ['cpu', -0.5],
    ['cpu', 0.001],
    ['cpuTime', -1],
    ['cpuTime', Number.POSITIVE_INFINITY],
    ['wallTime', 0],
    ['wallTime', Number.NaN],
  ])('limits.%s = %p: RangeError naming it', (key, value) => {
    const limits = key === 'memorySwap' ? { memory: 1 << 20, memorySwap: value } : { [key]: value };
    expect(() => spawnIsolated({ command: '/bin/true', limits })).toThrow(RangeError);
    expect(() => spawnIsolated({ command: '/bin/true', limits })).toThrow(`options.limits.${key} `);
  });

  test.each([
    ['a negative rlimit', { rlimits: { nofile: -1 } }, RangeError, 'options.limits.rlimits.nofile '],
    ['a fractional rlimit', { rlimits: { nofile: 1.5 } }, RangeError, 'options.limits.rlimits.nofile '],
    ['a NaN rlimit', { rlimits: { stack: Number.NaN } }, RangeError, 'options.limits.rlimits.stack '],
    ['soft above hard', { rlimits: { as: { soft: 10, hard: 5 } } }, RangeError, 'options.limits.rlimits.as soft (10) must not exceed hard (5)'],
    ['an unknown rlimit', { rlimits: { nofiles: 5 } }, TypeError, 'unknown option options.limits.rlimits.nofiles (did you mean options.limits.rlimits.nofile?)'],
    ['rlimits.cpu with cpuTime', { rlimits: { cpu: 1 }, cpuTime: 1 }, RangeError, 'options.limits.rlimits.cpu conflicts with limits.cpuTime'],
    ['a size as a string', { memory: '64M' }, TypeError, "options.limits.memory must be a number or 'unlimited', got the string '64M'"],
    ['memorySwap without memory', { memorySwap: 0 }, RangeError, 'options.limits.memorySwap needs limits.memory'],
    ['a misspelt limit', { memroy: 1 }, TypeError, 'unknown option options.limits.memroy (did you mean options.limits.memory?)'],
  ] as [string, SpawnOptions['limits'], ErrorConstructor, string][])('%s', (_, limits, kind, message) => {
    expect(() => spawnIsolated({ command: '/bin/true', limits })).toThrow(kind);
    expect(() => spawnIsolated({ command: '/bin/true', limits })).toThrow(message);
  });

  test.each([
    [{ timeout: -1 }, RangeError, 'options.timeout'],
    [{ timeout: '1s' }, TypeError, 'options.timeout'],
    [{ timeout: 2 ** 31 }, RangeError, 'options.timeout must be at most 2147483647 ms'],
    [{ limits: { wallTime: 2 ** 40 } }, RangeError, 'options.limits.wallTime must be at most'],
    [{ killSignal: 'SIGNOPE' }, TypeError, 'options.killSignal'],
    [{ signal: {} }, TypeError, 'options.signal must be an AbortSignal'],
    [{ cgroupVersion: 3 }, RangeError, 'options.cgroupVersion'],
    [{ cgroupParent: '../x' }, RangeError, 'options.cgroupParent'],
    [{ limits: 5 }, TypeError, 'options.limits must be an object'],
  ] as [Record<string, unknown>, ErrorConstructor, string][])('%j', (extra, kind, message) => {
    const options = { command: '/bin/true', ...extra } as SpawnOptions;
    expect(() => spawnIsolated(options)).toThrow(kind);
    expect(() => spawnIsolated(options)).toThrow(message);
  });
});

describe('rlimits', () => {
  test('show in /proc/self/limits inside, soft and hard, unlimited as such', async () => {
    const r = await runIsolated({
      command: 'cat', args: ['/proc/self/limits'],
      limits: {
        cpuTime: 1.5,
        rlimits: { nofile: 77, fsize: 1 << 20, core: 0, stack: 'unlimited', as: { soft: 1 << 30, hard: 'unlimited' }, nproc: { soft: 500, hard: 600 } },
      },
    });
    expect(r.status).toBe('ok');
    const line = (name: string): string[] => {
      const l = r.stdout.split('\n').find((x) => x.startsWith(name));
      return l!.slice(name.length).trim().split(/\s+/);
    };
    expect(line('Max open files')).toEqual(['77', '77', 'files']);
    expect(line('Max file size')).toEqual([String(1 << 20), String(1 << 20), 'bytes']);
    expect(line('Max core file size')).toEqual(['0', '0', 'bytes']);
    expect(line('Max stack size')).toEqual(['unlimited', 'unlimited', 'bytes']);
    expect(line('Max address space')).toEqual([String(1 << 30), 'unlimited', 'bytes']);
    expect(line('Max processes')).toEqual(['500', '600', 'processes']);
    // cpuTime 1.5 s: RLIMIT_CPU soft = ceil = 2, hard = 3.
    expect(line('Max cpu time')).toEqual(['2', '3', 'seconds']);
  });

  test('an rlimit is enforced: fsize stops a write past it with SIGXFSZ', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const r = await runIsolated({ command: 'sh', args: ['-c', `head -c 100000 /dev/zero > ${dir}/big; echo $?`], limits: { rlimits: { fsize: 4096 } } });
      // 128 + SIGXFSZ (25)
      expect(r.stdout.trim()).toBe('153');
      expect(fs.statSync(path.join(dir, 'big')).size).toBe(4096);
    } finally {
      cleanup();
    }
  });

  test('an rlimit the kernel refuses fails the spawn, naming the step', () => {
    // A hard limit on open files above fs.nr_open is refused (EPERM) even to root.
    const nrOpen = Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8'));
    let error: unknown;
    try {
      spawnIsolated({ command: '/bin/true', limits: { rlimits: { nofile: nrOpen + 1 } } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IsolationError);
    expect(error).toMatchObject({ step: 'rlimit-nofile', syscall: 'prlimit', code: 'EPERM' });
  });
});

describe('time limits, timeout and abort', () => {
  test('an infinite loop under wallTime is killed and reported as a time limit', async () => {
    const r = await spawnIsolated({ ...loop, stdio: 'ignore', limits: { wallTime: 300 } });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'wallTime', signal: 'SIGKILL', exitCode: null });
    expect(r.wallTimeMs).toBeGreaterThanOrEqual(300);
    expect(r.wallTimeMs).toBeLessThan(300 + 20_000);
    // Without a cgroup the CPU time is wait4's: the loop ran, so it used some.
    expect(r.cpuTimeMs).toBeGreaterThan(0);
    expect(r.memoryPeakBytes).toBeNull();
  });

  test('timeout sends killSignal, as child_process does', async () => {
    const r = await spawnIsolated({
      command: '/bin/sh', args: ['-c', 'trap "exit 9" TERM; while :; do sleep 0.05; done'], stdio: 'ignore',
      timeout: 200, killSignal: 'SIGTERM',
    });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'timeout', exitCode: 9, signal: null });
  });

  test('abort ends the sandbox; an already aborted signal starts nothing', async () => {
    const ac = new AbortController();
    const child = spawnIsolated({ ...loop, stdio: 'ignore', pid: true, signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    expect(await child).toMatchObject({ status: 'signal', killedBy: 'abort', signal: 'SIGKILL' });

    const mark = marker();
    expect(() => spawnIsolated({ command: 'sleep', args: ['1000', mark], signal: ac.signal, limits: { pids: 4 } })).toThrow(
      expect.objectContaining({ name: 'AbortError', code: 'ABORT_ERR' }),
    );
    expect(markedPids(mark)).toEqual([]);
  });

  test('kill() is reported as such', async () => {
    const child = spawnIsolated({ command: 'sleep', args: ['1000'], stdio: 'ignore' });
    child.kill();
    expect(await child).toMatchObject({ status: 'signal', killedBy: 'kill', signal: 'SIGKILL' });
    // A signal the program handles and survives did not end it.
    const trapper = spawnIsolated({ command: '/bin/sh', args: ['-c', 'trap "exit 7" TERM; echo ready; while :; do sleep 0.05; done'], stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise((resolve) => trapper.stdout!.once('data', resolve));
    trapper.kill('SIGTERM');
    expect(await trapper).toMatchObject({ status: 'exit', exitCode: 7, killedBy: null });
  });

  test('without a PID namespace or cgroup, kill() takes the program\'s process group', async () => {
    const mark = marker();
    try {
      const child = spawnIsolated({ command: '/bin/sh', args: ['-c', `sleep 1000 ${mark} & wait`], stdio: 'ignore' });
      await waitFor(() => markedPids(mark).length === 1, 'the background sleep');
      child.kill();
      await child;
      await waitFor(() => markedPids(mark).length === 0, 'the background sleep to die', 5000);
    } finally {
      killMarked(mark);
    }
  });
});

describe('status and accounting', () => {
  test('exit statuses map as isolate does', async () => {
    expect((await runIsolated({ command: '/bin/true' })).status).toBe('ok');
    expect((await runIsolated({ command: '/bin/false' })).status).toBe('exit');
    expect((await runIsolated({ command: 'sh', args: ['-c', 'kill -SEGV $$'] })).status).toBe('signal');
    // The pure mapping, for the cases that need a cgroup or a failure to produce.
    expect(exitReason(null, 9, null, true, true)).toBe('memory');
    expect(exitReason(137, null, null, true, true)).toBe('memory');
    expect(exitReason(0, null, null, true, true)).toBe('ok');
    expect(exitReason(null, 9, 'cpuTime', true, true)).toBe('timeout');
    expect(exitReason(null, null, null, false, false)).toBe('internal');
  });

  test('maxRssKiB is null when it may be this process\'s RSS, and real when the program outgrew it', async () => {
    const small = await runIsolated({ command: '/bin/true' });
    expect(small.maxRssKiB).toBeNull();
    const { dir, cleanup } = makeTempDir();
    try {
      const hog = buildHog(dir);
      const mib = Math.ceil(process.resourceUsage().maxRSS / 1024) + 200;
      const big = await runIsolated({ command: hog, args: [String(mib)] });
      expect(big.status).toBe('ok');
      expect(big.maxRssKiB).toBeGreaterThanOrEqual(mib * 1024);
      expect(big.maxRssKiB).toBeLessThan((mib + 50) * 1024);
    } finally {
      cleanup();
    }
  });
});

describe('runIsolated', () => {
  test('collects output, feeds input, decodes as asked', async () => {
    const r = await runIsolated({ command: 'sh', args: ['-c', 'cat; echo err >&2'], input: 'hello\n' });
    expect(r).toMatchObject({ status: 'ok', stdout: 'hello\n', stderr: 'err\n', killedBy: null });
    const b = await runIsolated({ command: 'printf', args: ['\\377'], encoding: 'buffer' });
    expect(b.stdout).toEqual(Buffer.from([0xff]));
  });

  test('kills the sandbox past maxBuffer and says so', async () => {
    const r = await runIsolated({ command: 'yes', maxBuffer: 10_000, pid: true });
    expect(r.stdout.length).toBe(10_000);
    expect(r).toMatchObject({ status: 'signal', killedBy: 'maxBuffer' });
    // SIGKILL, or (as PID 1, which ignores the SIGPIPE) its own exit on EPIPE when the closed
    // pipe reached it first: either way it ended because of the limit.
    expect([{ signal: 'SIGKILL', exitCode: null }, { signal: null, exitCode: 1 }]).toContainEqual({ signal: r.signal, exitCode: r.exitCode });
  });

  test('refuses stdio and a bad maxBuffer', async () => {
    await expect(runIsolated({ command: '/bin/true', stdio: 'pipe' } as never)).rejects.toThrow(TypeError);
    await expect(runIsolated({ command: '/bin/true', maxBuffer: -5 })).rejects.toThrow(RangeError);
  });
});

describe('when the Node process dies, its sandboxes die', () => {
  test('a pid: true sandbox of a SIGKILLed Node process is killed with it', async () => {
    const mark = marker();
    const script = `
      const { spawnIsolated } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      spawnIsolated({ command: '/bin/sh', args: ['-c', 'sleep 1000 ${mark} & sleep 1000 ${mark}'], pid: true, stdio: 'ignore' });
      console.log('started');
      setInterval(() => {}, 1000);
    `;
    const node = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        node.stdout!.once('data', () => resolve());
        node.once('exit', (code) => reject(new Error(`node exited early (${code})`)));
      });
      await waitFor(() => markedPids(mark).length === 2, 'both sleeps');
      node.kill('SIGKILL');
      await waitFor(() => markedPids(mark).length === 0, 'the sandbox to die with its Node process', 5000);
    } finally {
      node.kill('SIGKILL');
      killMarked(mark);
    }
  });
});

test('wallTime and cpuTime accept fractions; a sandbox ending first clears its timers', async () => {
  const r = await spawnIsolated({ command: '/bin/true', limits: { wallTime: 10_000.5 }, timeout: 10_000 });
  expect(r.status).toBe('ok');
  expect(r.killedBy).toBeNull();
});
