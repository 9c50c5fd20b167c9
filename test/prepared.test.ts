/**
 * prepareSandbox: one validation and one plan, many sandboxes. Each spawn must be what
 * spawnIsolated with the same options (and the run's differences) would start, with
 * resources of its own (cgroup, host id, veth), and a bad run must name its option.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostSystemMounts, IsolationError, prepareSandbox, seccompPresets, spawnIsolated, type SpawnOptions } from '../lib';
import { childCount, collect, makeTempDir, run } from './helpers';
import { hostInterfaces, procNetDevNames, readLine, removeLinks } from './network-helpers';

jest.setTimeout(30_000);

const SH = '/bin/sh';
/** What a sandbox looks like from inside, without what differs between any two sandboxes (pids). */
const REPORT = [
  'echo "argv: $0 $*"', 'echo "cwd: $(pwd)"', 'env | sort', 'hostname',
  'grep -E "^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status',
  'cut -d" " -f5,9 /proc/self/mountinfo', 'ls /', 'echo "ns: $(readlink /proc/self/ns/pid >/dev/null && echo ok)"',
].join('; ');

async function output(child: ReturnType<typeof spawnIsolated>): Promise<{ stdout: string; exitCode: number | null }> {
  const [stdout, status] = await Promise.all([collect(child.stdout), child.exited]);
  return { stdout, exitCode: status.exitCode };
}

describe('a prepared sandbox is the sandbox spawnIsolated makes', () => {
  test('the same options: the same view from inside (ids, capabilities, seccomp, mounts, env, cwd, argv), run after run', async () => {
    const options: SpawnOptions = {
      command: SH, args: ['-c', REPORT, 'zero', 'one'], pid: true, net: true, mount: true, uts: true, ipc: true,
      hostname: 'box', env: { A: '1', PATH: '/usr/bin:/bin' }, cwd: '/usr', noNewPrivs: true, seccomp: seccompPresets.sandboxDefault,
      mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'tmpfs', target: '/tmp' }], stdio: ['ignore', 'pipe', 'inherit'],
    };
    const expected = await output(spawnIsolated(options));
    expect(expected.exitCode).toBe(0);
    expect(expected.stdout).toContain('argv: zero one');
    const box = prepareSandbox(options);
    for (let i = 0; i < 3; i++) expect(await output(box.spawn({ stdio: ['ignore', 'pipe', 'inherit'] }))).toEqual(expected);
    const { child } = await box.spawnAsync({ stdio: ['ignore', 'pipe', 'inherit'] });
    expect(await output(child)).toEqual(expected);
    const r = await box.run();
    expect({ stdout: r.stdout, exitCode: r.exitCode }).toEqual(expected);
  });

  test('a run without stdio gets the prepared stdio, not pipes: no streams where the options said ignore', async () => {
    const box = prepareSandbox({ command: SH, args: ['-c', 'echo out; echo err >&2'], stdio: ['ignore', 'pipe', 'ignore'], pid: true });
    // Each child's output is read before the next spawn: a stream nobody reads is drained at exit.
    // (The handle is awaitable itself: wrapped, so that awaiting gives the handle, not its exit.)
    for (const start of [async () => ({ child: box.spawn() }), () => box.spawnAsync()]) {
      const { child } = await start();
      expect(child.stdin).toBeNull();
      expect(child.stderr).toBeNull();
      expect(await output(child)).toEqual({ stdout: 'out\n', exitCode: 0 });
    }
    // The control: a run's own stdio still replaces it.
    const piped = box.spawn({ stdio: 'pipe' });
    expect(piped.stderr).not.toBeNull();
    const [err] = await Promise.all([collect(piped.stderr), collect(piped.stdout), piped.exited]);
    expect(err).toBe('err\n');
  });

  test('a run\'s differences: args, argv0, env added/replaced/removed, cwd (replaced or added), stdio, timers; the next run is the prepared one again', async () => {
    const box = prepareSandbox({ command: SH, args: ['-c', 'echo "$0|$*|A=${A-unset}|B=${B-unset}|$(pwd)"', 'p0', 'p1'], env: { A: 'a', PATH: '/usr/bin:/bin' }, pid: true, mount: true });
    const prepared = (await box.run()).stdout;
    expect(prepared).toBe(`p0|p1|A=a|B=unset|${process.cwd()}\n`);
    expect((await box.run({ args: ['-c', 'echo "$0|$*|A=$A|B=$B|$(pwd)"', 'r0', 'r1', 'r2'], env: { B: 'b' }, cwd: '/tmp' })).stdout).toBe('r0|r1 r2|A=a|B=b|/tmp\n');
    expect((await box.run({ env: { A: 'replaced' } })).stdout).toBe(`p0|p1|A=replaced|B=unset|${process.cwd()}\n`);
    expect((await box.run({ env: { A: undefined } })).stdout).toBe(`p0|p1|A=unset|B=unset|${process.cwd()}\n`);
    // sh -c without a name argument: $0 is its own argv[0].
    expect((await box.run({ argv0: 'renamed', args: ['-c', 'echo $0'] })).stdout).toBe('renamed\n');
    expect((await box.run()).stdout).toBe(prepared);

    // A prepared cwd replaced by the run's.
    const inUsr = prepareSandbox({ command: SH, args: ['-c', 'pwd'], cwd: '/usr' });
    expect((await inUsr.run({ cwd: '/tmp' })).stdout).toBe('/tmp\n');
    expect((await inUsr.run()).stdout).toBe('/usr\n');

    // stdio: an fd of this process.
    const dir = makeTempDir('nsjail-prepared-');
    try {
      const file = path.join(dir.dir, 'out');
      const fd = fs.openSync(file, 'w');
      try {
        expect((await box.spawn({ stdio: ['ignore', fd, 'inherit'] }).exited).exitCode).toBe(0);
      } finally {
        fs.closeSync(fd);
      }
      expect(fs.readFileSync(file, 'utf8')).toBe(prepared);
    } finally {
      dir.cleanup();
    }

    // Timers per run: this one ends by its timeout, the next without.
    const sleeper = prepareSandbox({ command: SH, args: ['-c', 'sleep 0.3; echo done'], pid: true });
    expect(await sleeper.run({ timeout: 50 })).toMatchObject({ status: 'timeout', killedBy: 'timeout' });
    expect(await sleeper.run({ limits: { wallTime: 50 } })).toMatchObject({ status: 'timeout', killedBy: 'wallTime' });
    expect(await sleeper.run()).toMatchObject({ status: 'ok', stdout: 'done\n' });
    const ac = new AbortController();
    const aborted = sleeper.run({ signal: ac.signal });
    ac.abort();
    expect(await aborted).toMatchObject({ killedBy: 'abort' });
  });

  test('a bare command is looked up on the run\'s PATH when the run gives one', async () => {
    const box = prepareSandbox({ command: 'true', env: { PATH: '/nonexistent' } });
    await expect(box.run()).rejects.toMatchObject({ step: 'execve', code: 'ENOENT' });
    expect(await box.run({ env: { PATH: '/usr/bin:/bin' } })).toMatchObject({ status: 'ok' });
    await expect(box.run()).rejects.toMatchObject({ step: 'execve', code: 'ENOENT' });
  });

  test('a failed run names the same step as spawnIsolated: a missing cwd, a missing bind source', async () => {
    const missing = path.join(os.tmpdir(), `nsjail-prepared-missing-${process.pid}`);
    const base: SpawnOptions = { command: '/bin/true', mount: true, pid: true };
    const message = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(IsolationError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    const cwdBox = prepareSandbox(base);
    expect(message(() => cwdBox.spawn({ cwd: missing }))).toBe(message(() => spawnIsolated({ ...base, cwd: missing })));
    expect(message(() => cwdBox.spawn({ cwd: missing }))).toMatch(/chdir .*ENOENT/);
    await expect(cwdBox.spawnAsync({ cwd: missing })).rejects.toMatchObject({ step: 'chdir', path: missing });
    const bind: SpawnOptions = { ...base, mounts: [...hostSystemMounts(), { type: 'bind', source: missing, target: '/x' }] };
    expect(message(() => prepareSandbox(bind).spawn())).toBe(message(() => spawnIsolated(bind)));
    expect(message(() => spawnIsolated(bind))).toMatch(/mounts\[\d+\] bind source .*ENOENT/);
    // Control: the same box spawns fine with a cwd that exists.
    expect((await cwdBox.spawn({ cwd: '/' }).exited).exitCode).toBe(0);
  });

  test('many runs at once from one box on the spawner threads: each its own argv', async () => {
    const box = prepareSandbox({ command: SH, pid: true, net: true, stdio: ['ignore', 'pipe', 'inherit'] });
    const results = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      const { child } = await box.spawnAsync({ args: ['-c', `echo ${i}`] });
      return (await output(child)).stdout;
    }));
    expect(results).toEqual(Array.from({ length: 16 }, (_, i) => `${i}\n`));
  });
});

describe('a bad run is refused before anything starts, naming its option', () => {
  const box = prepareSandbox({ command: '/bin/true', pid: true });
  const cases: [string, () => unknown, RegExp, ErrorConstructor][] = [
    ['args entry', () => box.spawn({ args: ['ok', 'nul\0'] }), /^PreparedSandbox\.spawn: run\.args\[1\] must not contain NUL bytes$/, RangeError],
    ['args type', () => box.spawn({ args: 'x' as unknown as string[] }), /run\.args must be an array of strings/, TypeError],
    ['env key', () => box.spawn({ env: { 'A=B': 'x' } }), /run\.env key 'A=B' must not contain '='/, RangeError],
    ['env value', () => box.spawn({ env: { A: 1 as unknown as string } }), /run\.env\.A must be a string, got number 1/, TypeError],
    ['cwd', () => box.spawn({ cwd: 'relative' }), /run\.cwd must be an absolute path inside the sandbox/, RangeError],
    ['stdio', () => box.spawn({ stdio: 'pipes' as 'pipe' }), /run\.stdio must be 'pipe', 'inherit', 'ignore' or a file descriptor/, TypeError],
    ['timeout', () => box.spawn({ timeout: -1 }), /run\.timeout must be a finite number >= 0/, RangeError],
    ['a fixed option', () => box.spawn({ pid: false } as never), /unknown option run\.pid: is fixed when the sandbox is prepared/, TypeError],
    ['a fixed limit', () => box.spawn({ limits: { memory: 1 } } as never), /unknown option run\.limits\.memory: is fixed when the sandbox is prepared/, TypeError],
    ['a typo', () => box.spawn({ arg: [] } as never), /unknown option run\.arg \(did you mean run\.args\?\)/, TypeError],
    ['not an object', () => box.spawn(null as never), /run must be an object, got null/, TypeError],
  ];
  test.each(cases)('%s', (_, f, message, kind) => {
    const before = childCount();
    let error: unknown;
    try {
      f();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(kind);
    expect((error as Error).message).toMatch(message);
    expect(childCount()).toBe(before);
  });

  test('the async forms reject with the same errors', async () => {
    await expect(box.spawnAsync({ args: ['\0'] })).rejects.toThrow(/^PreparedSandbox\.spawnAsync: run\.args\[0\] must not contain NUL bytes$/);
    await expect(box.run({ maxBuffer: 0 })).rejects.toThrow(/^PreparedSandbox\.run: options\.maxBuffer must be a positive integer/);
    await expect(box.run({ stdio: 'pipe' } as never)).rejects.toThrow(/^PreparedSandbox\.run: unknown option run\.stdio/);
    await expect(box.run({ args: ['\0'] })).rejects.toThrow(/^PreparedSandbox\.run: run\.args\[0\] must not contain NUL bytes$/);
  });

  test('a closed box refuses to spawn; a sandbox it started runs on; bad options are refused at prepare', async () => {
    const b = prepareSandbox({ command: SH, args: ['-c', 'read x; echo $x'], stdio: ['pipe', 'pipe', 'inherit'] });
    const running = b.spawn();
    b.close();
    expect(() => b.spawn()).toThrow('PreparedSandbox.spawn: this prepared sandbox is closed');
    await expect(b.run()).rejects.toThrow('this prepared sandbox is closed');
    running.stdin!.end('still here\n');
    expect(await output(running)).toEqual({ stdout: 'still here\n', exitCode: 0 });
    expect(() => prepareSandbox({ command: '/bin/true', hostname: 'x' })).toThrow("spawnIsolated: options.hostname needs uts: true");
  });
});

describe('resources stay per spawn', () => {
  const root = process.geteuid?.() === 0;

  (root ? test : test.skip)('a cgroup each (limits.pids): two runs at once in two cgroups, each removed after its exit (needs root)', async () => {
    const box = prepareSandbox({ command: SH, args: ['-c', 'grep pids /proc/self/cgroup || cat /proc/self/cgroup; read x'], pid: true, limits: { pids: 16 }, stdio: ['pipe', 'pipe', 'inherit'] });
    const a = box.spawn();
    const b = box.spawn();
    try {
      const [lineA, lineB] = await Promise.all([readLine(a.stdout), readLine(b.stdout)]);
      expect(lineA).not.toBe(lineB);
      const dirs = [lineA, lineB].map((line) => {
        const rel = line.slice(line.lastIndexOf(':') + 1);
        expect(rel).toMatch(/nsjail/);
        const dir = fs.existsSync('/sys/fs/cgroup/pids') && line.includes('pids') ? path.join('/sys/fs/cgroup/pids', rel) : path.join('/sys/fs/cgroup', rel);
        expect(fs.existsSync(dir)).toBe(true);
        return dir;
      });
      a.stdin!.end('\n');
      b.stdin!.end('\n');
      await Promise.all([a.closed, b.closed]);
      for (const dir of dirs) expect(fs.existsSync(dir)).toBe(false);
      // A third run after both cgroups are gone gets one of its own.
      expect(await box.run({ args: ['-c', 'echo ok'] })).toMatchObject({ status: 'ok', stdout: 'ok\n' });
      // The plan is compiled at the first spawn of a box with a cgroup: of the prepared
      // options, not of that run's differences.
      const cwdBox = prepareSandbox({ command: SH, args: ['-c', 'pwd'], cwd: '/usr', limits: { pids: 16 } });
      expect((await cwdBox.run({ cwd: '/tmp' })).stdout).toBe('/tmp\n');
      expect((await cwdBox.run()).stdout).toBe('/usr\n');
      const noCwdBox = prepareSandbox({ command: SH, args: ['-c', 'pwd'], mount: true, limits: { pids: 16 } });
      expect((await noCwdBox.run({ cwd: '/tmp' })).stdout).toBe('/tmp\n');
      expect((await noCwdBox.run()).stdout).toBe(`${process.cwd()}\n`);
    } finally {
      a.kill();
      b.kill();
    }
  });

  (root ? test : test.skip)('a host id each (root caller, user: true): two runs at once own different ids (needs root)', async () => {
    const box = prepareSandbox({ command: SH, args: ['-c', 'cat /proc/self/uid_map; read x'], user: true, pid: true, stdio: ['pipe', 'pipe', 'inherit'] });
    const a = box.spawn();
    const b = box.spawn();
    try {
      const [mapA, mapB] = await Promise.all([readLine(a.stdout), readLine(b.stdout)]);
      const outside = (map: string): string => map.trim().split(/\s+/)[1];
      expect(outside(mapA)).not.toBe('0');
      expect(outside(mapA)).not.toBe(outside(mapB));
      a.stdin!.end('\n');
      b.stdin!.end('\n');
      expect((await a.exited).exitCode).toBe(0);
      expect((await b.exited).exitCode).toBe(0);
    } finally {
      a.kill();
      b.kill();
    }
  });

  (root ? test : test.skip)('join.userAfterSetup: the namespace is opened on the host for each spawn, not looked up by path inside the set-up sandbox; control: spawnIsolated with the same options (needs root)', async () => {
    const holder = spawnIsolated({ command: SH, args: ['-c', 'echo ready; exec sleep 60'], user: true, pid: true, stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await readLine(holder.stdout);
      const userNs = fs.readlinkSync(`/proc/${holder.pid}/ns/user`);
      // In the sandbox's own /proc (a new PID namespace) the holder's pid names nothing.
      const options: SpawnOptions = {
        command: SH, args: ['-c', 'readlink /proc/self/ns/user'], pid: true, mount: true,
        mounts: [...hostSystemMounts(), { type: 'proc' }], join: { userAfterSetup: `/proc/${holder.pid}/ns/user` },
      };
      const control = await run(options);
      expect(control).toMatchObject({ status: 'ok', stdout: `${userNs}\n` });
      const box = prepareSandbox(options);
      for (let i = 0; i < 2; i++) expect(await box.run()).toMatchObject({ status: 'ok', stdout: `${userNs}\n` });
    } finally {
      holder.kill('SIGKILL');
      await holder.exited;
    }
  });

  const hostName = `nsjp${process.pid.toString(36)}`.slice(0, 15);
  afterEach(() => removeLinks(hostName));

  (root ? test : test.skip)('a veth link each: made for every run and gone after its exit (needs root)', async () => {
    const box = prepareSandbox({ command: SH, args: ['-c', 'cat /proc/net/dev'], net: true, veth: { hostName, hostAddress: '10.200.41.1/24', sandboxAddress: '10.200.41.2/24' }, stdio: ['ignore', 'pipe', 'inherit'] });
    for (let i = 0; i < 2; i++) {
      const child = box.spawn();
      const out = await output(child);
      expect(out.exitCode).toBe(0);
      expect(procNetDevNames(out.stdout)).toEqual(expect.arrayContaining(['lo', 'eth0']));
      await child.closed;
      expect(hostInterfaces()).not.toContain(hostName);
    }
  });
});

describe('the same through runIsolated-like runs', () => {
  test('run(): input and maxBuffer per run', async () => {
    const box = prepareSandbox({ command: 'cat', pid: true });
    expect(await box.run({ input: 'abc' })).toMatchObject({ status: 'ok', stdout: 'abc' });
    expect(await box.run({ input: 'abcdef', maxBuffer: 3 })).toMatchObject({ killedBy: 'maxBuffer', stdout: 'abc' });
    expect((await box.run({ input: 'x', encoding: 'buffer' })).stdout).toEqual(Buffer.from('x'));
    // The same through run(), helpers' run (spawnIsolated) as the control.
    expect((await run({ command: 'cat', pid: true, stdio: ['ignore', 'pipe', 'pipe'] })).stdout).toBe('');
  });
});
