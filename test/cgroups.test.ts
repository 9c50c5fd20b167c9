/**
 * Cgroups against the real kernel: this machine has cgroup v1 controllers (memory, pids, cpu,
 * cpuacct, freezer, ...) and an empty cgroup v2 hierarchy at /sys/fs/cgroup/unified, where
 * the v2 mechanics without controllers (create, join, cpu.stat, cgroup.kill, remove) run.
 * The v2 limit files cannot be written here; their logic is tested as pure functions below
 * and in cgroups.logic.test.ts.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IsolationError, runIsolated, spawnIsolated, type SpawnOptions } from '../lib';
import { DEFAULT_CGROUP_PARENT, detectHierarchies } from '../lib/cgroups';
import { makeTempDir, stageLibraryForOtherUsers } from './helpers';
import { buildHog, cgroupOf, killMarked, leftoverCgroups, marker, markedPids, waitFor } from './limits-helpers';

const MiB = 1024 * 1024;
const unified = detectHierarchies().find((h) => h.version === 2)!.mountPoint;

afterEach(() => {
  // No cgroup of this process's sandboxes is left after any test.
  expect(leftoverCgroups()).toEqual([]);
});

describe('memory', () => {
  let dir: string;
  let cleanup: () => void;
  let hog: string;
  beforeAll(() => {
    ({ dir, cleanup } = makeTempDir());
    hog = buildHog(dir);
  });
  afterAll(() => cleanup());

  test('a memory hog under 64 MiB is OOM-killed and reported as such, its peak near the limit', async () => {
    const r = await runIsolated({ command: hog, pid: true, limits: { memory: 64 * MiB } });
    expect(r).toMatchObject({ status: 'memory', oomKilled: true, signal: 'SIGKILL', killedBy: null });
    expect(r.memoryPeakBytes).toBeGreaterThan(48 * MiB);
    expect(r.memoryPeakBytes).toBeLessThanOrEqual(65 * MiB);
  });

  test('a pipeline whose member is OOM-killed is reported as memory, not as its exit code', async () => {
    // tail keeps the whole "line" (no newline in /dev/zero) in memory; sh reports its 137.
    const r = await runIsolated({ command: 'sh', args: ['-c', 'head -c 200000000 /dev/zero | tail -n 1 > /dev/null'], limits: { memory: 32 * MiB } });
    expect(r.exitCode).toBe(137);
    expect(r).toMatchObject({ status: 'memory', oomKilled: true });
  });

  test('a program under its limit is ok and its peak is accounted', async () => {
    const r = await runIsolated({ command: hog, args: ['16'], limits: { memory: 64 * MiB } });
    expect(r).toMatchObject({ status: 'ok', oomKilled: false });
    expect(r.memoryPeakBytes).toBeGreaterThanOrEqual(16 * MiB);
    expect(r.memoryPeakBytes).toBeLessThan(64 * MiB);
  });

  test("'unlimited' still gives a memory cgroup, for the peak", async () => {
    const r = await runIsolated({ command: hog, args: ['8'], limits: { memory: 'unlimited' } });
    expect(r.memoryPeakBytes).toBeGreaterThanOrEqual(8 * MiB);
  });
});

describe('pids', () => {
  test('a fork bomb under pids: 32 is contained, this process stays responsive, the result says why', async () => {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    try {
      // The bomb forks in the background; the program itself becomes a sleep, ended by wallTime.
      const child = spawnIsolated({
        command: '/bin/sh', args: ['-c', 'f() { f | f & }; f; exec sleep 1000'], stdio: 'ignore',
        limits: { pids: 32, wallTime: 1500 },
      });
      const pidsDir = path.join('/sys/fs/cgroup/pids', cgroupOf(child.pid, 'pids')!);
      let most = 0;
      const sampler = setInterval(() => {
        try {
          most = Math.max(most, Number(fs.readFileSync(path.join(pidsDir, 'pids.current'), 'utf8')));
        } catch {
          // removed at the end
        }
      }, 20);
      const r = await child;
      clearInterval(sampler);
      expect(r).toMatchObject({ status: 'timeout', killedBy: 'wallTime', pidsLimitHit: true });
      expect(most).toBeGreaterThan(8);
      expect(most).toBeLessThanOrEqual(32);
      // The event loop kept turning all along (loosely: a 50 ms interval over 1.5 s).
      expect(ticks).toBeGreaterThanOrEqual(5);
    } finally {
      clearInterval(ticker);
    }
  });

  test('a fork bomb in a PID namespace is contained and ends with its PID 1', async () => {
    const r = await spawnIsolated({
      command: '/bin/sh', args: ['-c', 'f() { f | f & }; f; exec sleep 1000'], stdio: 'ignore', pid: true,
      limits: { pids: 16, wallTime: 800 },
    });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'wallTime', pidsLimitHit: true });
  });
});

describe('cpu', () => {
  const twoLoops = { command: '/bin/sh', args: ['-c', '(while :; do :; done) & (while :; do :; done) & wait'], stdio: 'ignore' } as const;

  test('cpuTime kills an infinite loop (RLIMIT_CPU or the cgroup poll) and reports a time limit', async () => {
    const r = await spawnIsolated({ command: '/bin/sh', args: ['-c', 'while :; do :; done'], stdio: 'ignore', limits: { cpuTime: 0.5 } });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'cpuTime' });
    expect(r.cpuTimeMs).toBeGreaterThanOrEqual(490);
    expect(r.cpuTimeMs).toBeLessThan(5000);
  });

  test('cpuTime counts the whole sandbox: two loops each under RLIMIT_CPU are stopped together', async () => {
    const r = await spawnIsolated({ ...twoLoops, limits: { cpuTime: 0.6 } });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'cpuTime', signal: 'SIGKILL' });
    expect(r.cpuTimeMs).toBeGreaterThanOrEqual(600);
    // Each loop ran under its own 1 s RLIMIT_CPU: only the sum can have reached the limit.
    expect(r.cpuTimeMs).toBeLessThan(5000);
  });

  test('cpuTime on cgroup v2 (cpu.stat, no controller needed) works the same', async () => {
    const r = await spawnIsolated({ ...twoLoops, cgroupVersion: 2, limits: { cpuTime: 0.4 } });
    expect(r).toMatchObject({ status: 'timeout', killedBy: 'cpuTime' });
    expect(r.cpuTimeMs).toBeGreaterThanOrEqual(400);
  });

  test('cpu: 0.2 throttles through the CFS quota (the kernel counts throttled periods)', async () => {
    const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'while :; do :; done'], stdio: 'ignore', limits: { cpu: 0.2, wallTime: 600 } });
    const cpuDir = path.join('/sys/fs/cgroup/cpu', cgroupOf(child.pid, 'cpu')!);
    expect(fs.readFileSync(path.join(cpuDir, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('20000');
    expect(fs.readFileSync(path.join(cpuDir, 'cpu.cfs_period_us'), 'utf8').trim()).toBe('100000');
    await new Promise((resolve) => setTimeout(resolve, 400));
    const throttled = Number(/nr_throttled (\d+)/.exec(fs.readFileSync(path.join(cpuDir, 'cpu.stat'), 'utf8'))![1]);
    const r = await child;
    expect(throttled).toBeGreaterThan(0);
    expect(r.killedBy).toBe('wallTime');
    // Loosely: a fifth of one CPU over 0.6 s is far from the 0.6 s an unthrottled loop gets.
    expect(r.cpuTimeMs).toBeLessThan(400);
  });
});

describe('the whole sandbox ends: a detached grandchild (setsid + double fork) does not survive', () => {
  // The program starts a grandchild in a new session, reparented away from it, and waits.
  const script = (mark: string): string => `(setsid sh -c 'sleep 1000 ${mark}' &); exec sleep 1000 ${mark}`;
  const ways: [string, Partial<SpawnOptions>][] = [
    ['a PID namespace', { pid: true }],
    ['a cgroup v1 (freezer), no PID namespace', { limits: { pids: 64 } }],
    ['a cgroup v2 (cgroup.kill), no PID namespace', { cgroupVersion: 2 }],
  ];
  const ends: [string, (child: ReturnType<typeof spawnIsolated>, ac: AbortController) => void, Partial<SpawnOptions>][] = [
    ['kill()', (child) => child.kill(), {}],
    ['abort', (_, ac) => ac.abort(), {}],
    ['timeout', () => undefined, { timeout: 300 }],
  ];
  for (const [end, doEnd, endOptions] of ends) {
    test.each(ways)(`${end}, through %s`, async (_, wayOptions) => {
      const mark = marker();
      const ac = new AbortController();
      try {
        const child = spawnIsolated({ command: '/bin/sh', args: ['-c', script(mark)], stdio: 'ignore', signal: ac.signal, ...wayOptions, ...endOptions });
        await waitFor(() => markedPids(mark).length === 2, 'the program and its grandchild');
        const grandchild = markedPids(mark).find((p) => p !== child.pid)!;
        expect(fs.readFileSync(`/proc/${grandchild}/stat`, 'utf8')).not.toMatch(new RegExp(`^\\d+ \\(sleep\\) S ${child.pid} `));
        doEnd(child, ac);
        const r = await child;
        expect(r.killedBy).toBe(end === 'kill()' ? 'kill' : end);
        // By the time the handle resolves, nothing of the sandbox is alive.
        expect(markedPids(mark)).toEqual([]);
      } finally {
        killMarked(mark);
      }
    });
  }
});

describe('cgroup placement, versions and errors', () => {
  test('each hierarchy holds the sandbox under the default parent, and the child joined before exec', async () => {
    const r = await runIsolated({ command: 'cat', args: ['/proc/self/cgroup'], limits: { memory: 64 * MiB, pids: 10, cpu: 1, cpuTime: 10 } });
    const name = new RegExp(`^/${DEFAULT_CGROUP_PARENT}/nsjail-\\d+-${process.pid}-\\d+$`);
    const byController = new Map(r.stdout.trim().split('\n').map((l) => [l.split(':')[1], l.split(':')[2]]));
    for (const c of ['memory', 'pids', 'cpu', 'cpuacct', 'freezer']) expect(byController.get(c)).toMatch(name);
    // Hierarchies it did not need stay where the caller is.
    expect(byController.get('blkio')).toBe(cgroupOf(process.pid, 'blkio'));
  });

  test('the default parent is removed when no sandbox is left in it', async () => {
    await runIsolated({ command: '/bin/true', limits: { pids: 10 } });
    const parent = path.join('/sys/fs/cgroup/pids', DEFAULT_CGROUP_PARENT);
    // Other processes' sandboxes (another test file) may be running: only theirs may be left.
    const left = fs.existsSync(parent) ? fs.readdirSync(parent).filter((e) => e.startsWith('nsjail-')) : [];
    expect(left.filter((e) => e.includes(`-${process.pid}-`))).toEqual([]);
  });

  test('cgroup: true roots the cgroup namespace at the sandbox cgroup (joined first, then unshared)', async () => {
    const v1 = await runIsolated({ command: 'cat', args: ['/proc/self/cgroup'], cgroup: true, limits: { pids: 10 } });
    expect(v1.stdout).toMatch(/^\d+:pids:\/$/m);
    const v2 = await runIsolated({ command: 'cat', args: ['/proc/self/cgroup'], cgroup: true, cgroupVersion: 2 });
    expect(v2.stdout).toMatch(/^0::\/$/m);
  });

  test('a user namespace child can still join (root-owned cgroup files, mapped root writes them)', async () => {
    const r = await runIsolated({ command: 'cat', args: ['/proc/self/cgroup'], user: true, pid: true, limits: { pids: 10 } });
    expect(r.status).toBe('ok');
    expect(r.stdout).toMatch(new RegExp(`pids:/${DEFAULT_CGROUP_PARENT}/nsjail-`));
  });

  test('a memory limit where no memory controller can be used: a clear error before clone', () => {
    let error: unknown;
    try {
      spawnIsolated({ command: '/bin/true', cgroupVersion: 2, limits: { memory: 64 * MiB } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IsolationError);
    expect(error).toMatchObject({ step: 'cgroup-controller', code: 'ENOENT' });
    expect((error as Error).message).toMatch(/options\.limits\.memory needs the memory controller/);
    expect((error as Error).message).toContain(path.join(unified, 'cgroup.controllers'));
  });

  test('an absolute cgroupParent is a cgroup v2 directory: used as given, kept afterwards', async () => {
    const parent = path.join(unified, `nsjail-test-${process.pid}`);
    fs.mkdirSync(parent);
    try {
      const r = await runIsolated({ command: 'cat', args: ['/proc/self/cgroup'], cgroupParent: parent });
      expect(r.stdout).toMatch(new RegExp(`^0::/nsjail-test-${process.pid}/nsjail-\\d+-${process.pid}-\\d+$`, 'm'));
      expect(fs.existsSync(parent)).toBe(true);
      expect(fs.readdirSync(parent).filter((e) => e.startsWith('nsjail-'))).toEqual([]);
      // A controller the parent does not offer: the error names the option, the controller and the place.
      expect(() => spawnIsolated({ command: '/bin/true', cgroupParent: parent, limits: { pids: 5 } })).toThrow(
        /options\.limits\.pids needs the pids controller/,
      );
    } finally {
      fs.rmdirSync(parent);
    }
  });

  test('an unprivileged user: refused with a delegation hint, and working in a delegated v2 cgroup', async () => {
    const base = path.join(unified, `nsjail-deleg-${process.pid}`);
    const [home, boxes] = [path.join(base, 'home'), path.join(base, 'boxes')];
    for (const d of [base, home, boxes]) fs.mkdirSync(d);
    let cleanupStage = (): void => {};
    try {
      // Delegation as cgroup-v2.rst describes it: the directories and their cgroup.procs,
      // cgroup.threads and cgroup.subtree_control belong to the user.
      for (const d of [base, home, boxes]) {
        for (const f of ['', 'cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control']) fs.chownSync(path.join(d, f), 65534, 65534);
      }
      const staged = stageLibraryForOtherUsers(); // the checkout may not be readable by uid 65534
      cleanupStage = staged.cleanup;
      const script = `
        const lib = require(${JSON.stringify(staged.dist)});
        const out = {};
        try { lib.spawnIsolated({ command: '/bin/true', limits: { pids: 5 } }); } catch (e) { out.refused = { code: e.code, message: e.message }; }
        lib.runIsolated({ command: 'cat', args: ['/proc/self/cgroup'], cgroupParent: ${JSON.stringify(boxes)}, user: true, pid: true, limits: { cpuTime: 5 } })
          .then((r) => { out.run = r; console.log(JSON.stringify(out)); });
      `;
      // The Node process must live inside the delegated subtree (moving a process needs write
      // access to the common ancestor's cgroup.procs): root puts it there, then drops to nobody.
      const shell = `echo $$ > ${home}/cgroup.procs && exec setpriv --reuid 65534 --regid 65534 --clear-groups ${process.execPath} -e "$0"`;
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn('/bin/sh', ['-c', shell, script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        p.stdout!.on('data', (d: Buffer) => (text += d.toString()));
        p.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`unprivileged node exited ${code}`))));
      });
      const { refused, run } = JSON.parse(out) as { refused: { code: string; message: string }; run: { status: string; stdout: string } };
      expect(refused.code).toBe('EACCES');
      expect(refused.message).toMatch(/delegated to this user/);
      expect(run.status).toBe('ok');
      expect(run.stdout).toMatch(new RegExp(`^0::/nsjail-deleg-${process.pid}/boxes/nsjail-\\d+-\\d+-\\d+$`, 'm'));
      expect(fs.readdirSync(boxes).filter((e) => e.startsWith('nsjail-'))).toEqual([]);
    } finally {
      cleanupStage();
      for (const d of [boxes, home, base]) fs.rmdirSync(d);
    }
  });

  test('cgroup v1 cannot take an absolute cgroupParent', () => {
    expect(() => spawnIsolated({ command: '/bin/true', cgroupVersion: 1, cgroupParent: '/sys/fs/cgroup/pids/x' })).toThrow(
      expect.objectContaining({ step: 'cgroup-parent', code: 'EINVAL' }),
    );
  });

  test('a failed spawn removes the cgroup it made', () => {
    expect(() => spawnIsolated({ command: '/nonexistent', limits: { pids: 5, memory: 64 * MiB } })).toThrow(IsolationError);
    // afterEach checks that nothing is left.
  });
});

describe('cgroups of a dead Node process', () => {
  const nodeWith = (code: string): ReturnType<typeof spawn> =>
    spawn(process.execPath, ['-e', `const lib = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});\n${code}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = (p: ReturnType<typeof spawn>): Promise<string> =>
    new Promise((resolve, reject) => {
      p.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
      p.once('exit', (c) => reject(new Error(`node exited early (${c})`)));
    });

  test('a Node process that exits with sandboxes still running leaves no cgroup', async () => {
    const mark = marker();
    const node = nodeWith(`
      lib.spawnIsolated({ command: 'sleep', args: ['1000', '${mark}'], stdio: 'ignore', limits: { pids: 8 } }).unref();
      lib.spawnIsolated({ command: 'sleep', args: ['1000', '${mark}'], stdio: 'ignore', cgroupVersion: 2 }).unref();
      console.log(process.pid);
    `);
    try {
      const pid = await line(node);
      await new Promise((resolve) => node.once('exit', resolve));
      expect(leftoverCgroups(`-${pid}-`)).toEqual([]);
      expect(markedPids(mark)).toEqual([]);
    } finally {
      node.kill('SIGKILL');
      killMarked(mark);
    }
  });

  test('the cgroup of a SIGKILLed Node process is swept, with what is left in it, by the next one', async () => {
    const mark = marker();
    // No PID namespace: PDEATHSIG kills the program, but its background child stays in the cgroup.
    const node = nodeWith(`
      lib.spawnIsolated({ command: 'sh', args: ['-c', 'sleep 1000 ${mark} & exec sleep 1000 ${mark}'], stdio: 'ignore', limits: { pids: 8 } });
      setTimeout(() => console.log(process.pid), 200);
      setInterval(() => {}, 1000);
    `);
    try {
      const pid = await line(node);
      node.kill('SIGKILL');
      await waitFor(() => markedPids(mark).length === 1, 'the program to die with its Node process');
      expect(leftoverCgroups(`-${pid}-`).length).toBeGreaterThan(0);
      await runIsolated({ command: '/bin/true', limits: { pids: 8 } });
      expect(leftoverCgroups(`-${pid}-`)).toEqual([]);
      expect(markedPids(mark)).toEqual([]);
    } finally {
      node.kill('SIGKILL');
      killMarked(mark);
    }
  });
});
