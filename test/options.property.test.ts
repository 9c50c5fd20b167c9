/**
 * Property-based tests of the options (fast-check, fixed seeds): arbitrary option objects,
 * valid-ish and invalid values for each option, holes, array-likes, wrong types and unknown
 * keys. Whatever the object, spawnIsolated (and spawnIsolatedAsync) either starts the program
 * and it exits, or throws a TypeError/RangeError naming an option that was given, or an
 * IsolationError naming the step and errno; and nothing is left: no cgroup made by this
 * process, no child process, no file descriptor.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { hostSystemMounts, IsolationError, seccompPresets, spawnIsolated, spawnIsolatedAsync, type IsolatedProcess, type SpawnOptions } from '../lib';
import { parseCommandLine } from '../lib/cli';
import { validateOptions } from '../lib/options';
import { catchError, childrenOfThisProcess, makeTempDir, openFdCount, stableFdCount } from './helpers';

const MARK = `nsjail-prop-${process.pid}`;
const KNOWN_KEYS = [
  'command', 'args', 'argv0', 'env', 'cwd', 'hostname', 'pid', 'net', 'mount', 'uts', 'ipc', 'user', 'cgroup', 'stdio',
  'dieWithParent', 'newSession', 'root', 'mounts', 'readonlyRoot', 'uid', 'gid', 'groups', 'uidMap', 'gidMap',
  'capabilities', 'noNewPrivs', 'seccomp', 'init', 'time', 'timeOffsets', 'limits', 'cgroupParent', 'cgroupVersion',
  'timeout', 'killSignal', 'signal', 'loopback', 'join', 'veth', 'denySetgroups', 'lockMounts', 'info', 'blockFd', 'userNamespaceBlockFd',
];

/** Cgroup directories this process made: its leaves under any parent, and MARK itself. */
function ownCgroups(): string[] {
  const found: string[] = [];
  const leaf = new RegExp(`^nsjail-\\d+-${process.pid}-\\d+$`);
  const roots = ['/sys/fs/cgroup', ...fs.readdirSync('/sys/fs/cgroup').map((c) => path.join('/sys/fs/cgroup', c))];
  for (const root of roots) {
    if (fs.existsSync(path.join(root, MARK))) found.push(path.join(root, MARK));
    for (const parent of [MARK, 'nsjail-node']) {
      let entries: string[] = [];
      try {
        entries = fs.readdirSync(path.join(root, parent));
      } catch {
        continue;
      }
      for (const e of entries) if (leaf.test(e)) found.push(path.join(root, parent, e));
    }
  }
  return found;
}

/** A sparse array: `values` with a hole at `at`. */
function withHole<T>(values: T[], at: number): T[] {
  const out = [...values];
  out.splice(at, 0, undefined as T);
  delete out[at];
  return out;
}

// Junk any option may get instead of its own kind of value.
const junk = fc.oneof(
  fc.constant(null), fc.constant(undefined), fc.boolean(), fc.integer({ min: -5, max: 70000 }), fc.double(),
  fc.constantFrom('', 'x', '\0', 'relative/path', '/nonexistent-nsjail-prop', 'unlimited'),
  fc.constant([]), fc.constant({}), fc.constant({ length: 1, 0: 'a' }), fc.constant(withHole(['a', 'b'], 1)),
  fc.constant(new Uint8Array(2)), fc.constant(Symbol('s')), fc.constant(() => 1), fc.constant(10n),
);

/** An arbitrary value for one option: mostly its own kind, sometimes junk. */
const orJunk = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: junk });

const idRange = fc.record({ inside: fc.integer({ min: 0, max: 5 }), outside: fc.constantFrom(0, 65534, 100000), count: fc.integer({ min: 0, max: 3 }) });
const mountEntry = fc.oneof(
  fc.constant({ type: 'tmpfs', target: '/tmp' }),
  fc.record({ type: fc.constant('tmpfs'), target: fc.constantFrom('/tmp', '/etc/hostname', 'tmp', '/'), size: orJunk(fc.constantFrom(1 << 20, '1m', '10%')) }, { requiredKeys: ['type', 'target'] }),
  fc.constant({ type: 'proc' }),
  fc.constant({ type: 'dev' }),
  fc.record({ type: fc.constant('dir'), target: fc.constantFrom('/made', '/etc/hostname'), mode: orJunk(fc.constantFrom(0o755, 0o700)) }, { requiredKeys: ['type', 'target'] }),
  fc.record({ type: fc.constant('file'), target: fc.constantFrom('/made-file', '/tmp'), content: orJunk(fc.constantFrom('x', Buffer.from('y'))) }),
  fc.record({ type: fc.constant('bind'), source: fc.constantFrom('/usr', '/etc/hostname', '/nonexistent-nsjail-prop'), readonly: fc.boolean(), try: fc.boolean() }, { requiredKeys: ['type', 'source'] }),
  fc.record({ type: fc.constant('overlay'), lower: orJunk(fc.constantFrom(['/usr'], ['/usr', '/etc'], withHole(['/usr', '/etc'], 1))), target: fc.constantFrom('/mnt', '/etc/hostname') }),
  fc.record({ type: fc.constantFrom('symlink', 'chmod', 'nosuch'), target: fc.constantFrom('/l', '/tmp'), to: fc.constant('/x'), mode: fc.constant(0o755) }),
  junk,
);
const seccompRule = fc.record({
  syscalls: orJunk(fc.constantFrom(['getpid'], ['nosuchcall'], withHole(['getpid', 'getppid'], 1), [39])),
  action: orJunk(fc.constantFrom('allow', 'kill', { errno: 'EPERM' }, 'bogus')),
  args: orJunk(fc.constantFrom([{ index: 0, op: 'eq', value: 1 }], withHole([{ index: 0, op: 'eq', value: 1 }], 0), [{ index: 9, op: 'eq', value: 1 }])),
}, { requiredKeys: ['syscalls', 'action'] });

/** Arbitrary values by option. Commands are cheap (/bin/true and failures), nothing touches host state. */
const VALUES: Record<string, fc.Arbitrary<unknown>> = {
  command: orJunk(fc.constantFrom('/bin/true', 'true', '/bin/false', '/nonexistent-nsjail-prop', 'bin/true')),
  args: orJunk(fc.oneof(fc.array(fc.constantFrom('a', '', '--x', 'a\0b'), { maxLength: 3 }), fc.constant(withHole(['a', 'b'], 1)))),
  argv0: orJunk(fc.constantFrom('true', '')),
  env: orJunk(fc.constantFrom({ PATH: '/bin:/usr/bin' }, { A: 'b', 'B=C': 'd' }, { A: undefined }, { A: 1 }, { '': 'x' })),
  cwd: orJunk(fc.constantFrom('/', '/tmp', 'relative', '/nonexistent-nsjail-prop')),
  hostname: orJunk(fc.constantFrom('box', 'x'.repeat(65), '')),
  pid: orJunk(fc.boolean()),
  net: orJunk(fc.boolean()),
  mount: orJunk(fc.boolean()),
  uts: orJunk(fc.boolean()),
  ipc: orJunk(fc.boolean()),
  user: orJunk(fc.boolean()),
  cgroup: orJunk(fc.boolean()),
  stdio: orJunk(fc.oneof(fc.constantFrom('ignore', 'inherit', 'pipe', 99999, -1), fc.constant(['ignore', 'ignore', 'ignore']), fc.constant(withHole(['ignore', 'ignore'], 1)), fc.constant(['ignore']))),
  dieWithParent: orJunk(fc.boolean()),
  newSession: orJunk(fc.boolean()),
  root: orJunk(fc.constantFrom('/', '/nonexistent-nsjail-prop')),
  mounts: orJunk(fc.oneof(fc.array(mountEntry, { maxLength: 3 }), fc.array(mountEntry, { minLength: 1, maxLength: 2 }).map((a) => withHole(a, 0)))),
  readonlyRoot: orJunk(fc.boolean()),
  uid: orJunk(fc.constantFrom(0, 65534, 5, -1, 2 ** 32)),
  gid: orJunk(fc.constantFrom(0, 65534, 5, 1.5)),
  groups: orJunk(fc.oneof(fc.array(fc.constantFrom(0, 65534, 5, -1), { maxLength: 3 }), fc.constant(withHole([1, 2], 1)))),
  uidMap: orJunk(fc.oneof(fc.array(idRange, { maxLength: 3 }), fc.array(idRange, { minLength: 1, maxLength: 2 }).map((a) => withHole(a, 1)))),
  gidMap: orJunk(fc.oneof(fc.array(idRange, { maxLength: 3 }), fc.array(idRange, { minLength: 1, maxLength: 2 }).map((a) => withHole(a, 0)))),
  capabilities: orJunk(fc.oneof(fc.constantFrom(['CAP_CHOWN'], ['CAP_NOPE'], ['chown'], [42]), fc.constant(withHole(['CAP_CHOWN', 'CAP_KILL'], 1)))),
  noNewPrivs: orJunk(fc.boolean()),
  seccomp: orJunk(fc.oneof(
    fc.constant(seccompPresets.sandboxDefault),
    fc.record({ defaultAction: orJunk(fc.constantFrom('allow', 'log')), rules: orJunk(fc.oneof(fc.array(seccompRule, { maxLength: 2 }), fc.array(seccompRule, { minLength: 1, maxLength: 2 }).map((a) => withHole(a, 0)))) }, { requiredKeys: ['defaultAction'] }),
    fc.constantFrom({ bpf: Buffer.alloc(3) }, { bpf: 'x' }),
  )),
  init: orJunk(fc.boolean()),
  time: orJunk(fc.boolean()),
  timeOffsets: orJunk(fc.constantFrom({ boottime: 100 }, { monotonic: -1e12 }, { nope: 1 })),
  limits: orJunk(fc.record({
    pids: orJunk(fc.constantFrom(1, 16, 'unlimited', 0)),
    memory: orJunk(fc.constantFrom(64 << 20, 'unlimited', 0)),
    cpu: orJunk(fc.constantFrom(0.5, 0.001, 'unlimited')),
    wallTime: orJunk(fc.constantFrom(5000, 0, 2 ** 31)),
    rlimits: orJunk(fc.constantFrom({ nofile: 64 }, { nofile: { soft: 64, hard: 32 } }, { nosuch: 1 }, { core: 'unlimited' })),
  }, { requiredKeys: [] })),
  cgroupParent: orJunk(fc.constantFrom(MARK, '../x', `${MARK}/.`)),
  cgroupVersion: orJunk(fc.constantFrom(1, 2, 'auto', 3)),
  timeout: orJunk(fc.constantFrom(0, 5000, -1, Infinity)),
  killSignal: orJunk(fc.constantFrom('SIGTERM', 'SIGNOPE', 9, 65)),
  signal: orJunk(fc.constantFrom(new AbortController().signal, AbortSignal.abort())),
  loopback: orJunk(fc.boolean()),
  join: orJunk(fc.constantFrom({ uts: '/proc/self/ns/uts' }, { net: 'nonexistent-nsjail-prop' }, { ipc: -1 }, { user: '/proc/self/ns/user' }, { nosuch: 1 })),
  // Only shapes that fail before a link is made: no host interface is ever created here.
  veth: orJunk(fc.constantFrom({ hostAddress: '10.0.0.1/24' }, { hostAddress: 'x', sandboxAddress: 'y' }, { nope: 1 })),
};

const optionObject: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.subarray(Object.keys(VALUES).filter((k) => k !== 'command'), { maxLength: 4 }).chain((keys) =>
      fc.record(Object.fromEntries(keys.map((k) => [k, VALUES[k]])) as Record<string, fc.Arbitrary<unknown>>)),
    VALUES.command,
    // Now and then an unknown key (a typo must not drop an option silently).
    fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('comand', 'pids', 'extra') }),
  )
  .map(([rest, command, unknown]) => ({ command, stdio: 'ignore', ...rest, ...(unknown !== undefined ? { [unknown]: 1 } : {}) }));

/** The option names an error message mentions (`options.limits.pids` -> `limits`). */
function namedOptions(message: string): string[] {
  return [...message.matchAll(/options\.([A-Za-z0-9]+)/g)].map((m) => m[1]);
}

/** Why an outcome breaks the contract, or undefined. */
function contractBreach(options: Record<string, unknown>, error: unknown): string | undefined {
  if (error instanceof IsolationError) {
    return typeof error.step === 'string' && error.step !== '' && /^E[A-Z0-9]+$/.test(error.code) ? undefined : `IsolationError without step/code: ${error.message}`;
  }
  if (error instanceof Error && error.name === 'AbortError') {
    return (options.signal as AbortSignal | undefined)?.aborted ? undefined : `AbortError without an aborted signal: ${error.message}`;
  }
  if (error instanceof TypeError || error instanceof RangeError) {
    if (/^spawnIsolated: options must be an object/.test(error.message)) return undefined;
    const named = namedOptions(error.message);
    const given = Object.keys(options);
    return named.some((n) => given.includes(n)) ? undefined : `${error.name} naming none of the given options (${given.join(', ')}): ${error.message}`;
  }
  return `untyped error: ${String((error as Error)?.stack ?? error)}`;
}

async function settle(child: IsolatedProcess): Promise<void> {
  await child;
  for (const s of [child.stdin, child.stdout, child.stderr]) s?.destroy();
  await new Promise((resolve) => setImmediate(resolve));
}

describe('options, property-based', () => {
  let fdsBefore: number;
  const started: string[] = [];

  beforeAll(async () => {
    // Opened once and kept, so opened before counting: the init helper's fd, the host ids'
    // lock directory and the /proc that lock-mounts writes maps through (user: true as root,
    // with CAP_SYS_ADMIN kept), and what the first spawnIsolatedAsync sets up (libuv's async
    // wakeup, the spawner threads).
    await settle(spawnIsolated({ command: '/bin/true', pid: true, init: true, stdio: 'ignore' }));
    await settle(spawnIsolated({ command: '/bin/true', user: true, mount: true, capabilities: ['CAP_SYS_ADMIN'], stdio: 'ignore' }));
    await settle((await spawnIsolatedAsync({ command: '/bin/true', stdio: 'ignore' })).child);
    // The warm-ups' ignored output pipes may still be open: counted once settled.
    fdsBefore = await stableFdCount();
  });

  afterAll(() => {
    // What a failing run may have left of this process's own (never anyone else's).
    for (const dir of ownCgroups().reverse()) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // busy or gone
      }
    }
  });

  const check = (mode: 'sync' | 'async') => async (options: Record<string, unknown>): Promise<void> => {
    const childrenBefore = childrenOfThisProcess().map((c) => c.pid);
    let error: unknown;
    try {
      const child = mode === 'sync'
        ? spawnIsolated(options as unknown as SpawnOptions)
        : (await spawnIsolatedAsync(options as unknown as SpawnOptions)).child;
      started.push(String(options.command));
      await settle(child);
    } catch (e) {
      error = e;
    }
    if (error !== undefined) {
      const breach = contractBreach(options, error);
      if (breach) throw new Error(breach);
    }
    // Nothing left: no new child (live or zombie), no cgroup of this process.
    const left = childrenOfThisProcess().filter((c) => !childrenBefore.includes(c.pid));
    if (left.length > 0) throw new Error(`children left: ${JSON.stringify(left)}`);
    const cgroups = ownCgroups();
    if (cgroups.length > 0) throw new Error(`cgroups left: ${cgroups.join(', ')}`);
  };

  test('spawnIsolated: starts and exits, or a typed error naming a given option; nothing left', async () => {
    await fc.assert(fc.asyncProperty(optionObject, check('sync')), { numRuns: 200, seed: 0x5eed1 });
    expect(openFdCount()).toBe(fdsBefore);
    // The property covered both outcomes (it can fail either way).
    expect(started.length).toBeGreaterThan(5);
  });

  test('spawnIsolatedAsync: the same contract', async () => {
    const before = started.length;
    await fc.assert(fc.asyncProperty(optionObject, check('async')), { numRuns: 120, seed: 0x5eed2 });
    expect(openFdCount()).toBe(fdsBefore);
    expect(started.length - before).toBeGreaterThan(5);
  });

  test('any value of the wrong kind for any single option: TypeError/RangeError naming that option', () => {
    const cases = fc.tuple(fc.constantFrom(...KNOWN_KEYS.filter((k) => k !== 'command')), junk).filter(([, v]) => v !== undefined);
    fc.assert(fc.property(cases, ([key, value]) => {
      let error: unknown;
      try {
        validateOptions({ command: '/bin/true', [key]: value } as unknown as SpawnOptions);
      } catch (e) {
        error = e;
      }
      // Some junk is valid for some options (false for a flag, 1 for a uid, 'x' for a hostname...).
      if (error === undefined) return;
      if (!(error instanceof TypeError || error instanceof RangeError)) throw new Error(`untyped: ${String(error)}`);
      // A constraint between options may name the other one (hostname needs uts): either is fine.
      if (!namedOptions(error.message).includes(key) && !/needs /.test(error.message)) throw new Error(`does not name ${key}: ${error.message}`);
    }), { numRuns: 400, seed: 0x5eed3 });
  });
});

describe('holes and array-likes in every array option', () => {
  const hole = <T>(a: T[], at: number): T[] => withHole(a, at);
  const range = { inside: 0, outside: 0, count: 1 };
  const cases: [string, Record<string, unknown>, string][] = [
    ['args', { args: hole(['a', 'b'], 1) }, 'args[1]'],
    ['stdio', { stdio: hole(['ignore', 'ignore'], 1) }, 'stdio[1]'],
    ['groups', { user: true, groups: hole([0, 0], 1) }, 'groups[1]'],
    ['groups without a user namespace', { uid: 0, gid: 0, groups: hole([0], 0) }, 'groups[0]'],
    ['uidMap', { user: true, uidMap: hole([range], 0) }, 'uidMap[0]'],
    ['gidMap', { user: true, gidMap: hole([range], 1) }, 'gidMap[1]'],
    ['mounts', { mount: true, mounts: hole([{ type: 'tmpfs', target: '/tmp' }], 0) }, 'mounts[0]'],
    ['overlay lower', { mount: true, mounts: [{ type: 'overlay', target: '/mnt', lower: hole(['/usr', '/etc'], 1) }] }, 'mounts[0].lower[1]'],
    ['capabilities', { capabilities: hole(['CAP_CHOWN'], 0) }, 'capabilities[0]'],
    ['seccomp rules', { seccomp: { defaultAction: 'allow', rules: hole([{ syscalls: ['getpid'], action: 'allow' }], 0) } }, 'seccomp.rules[0]'],
    ['seccomp syscalls', { seccomp: { defaultAction: 'allow', rules: [{ syscalls: hole(['getpid', 'getppid'], 1), action: 'allow' }] } }, 'seccomp.rules[0].syscalls[1]'],
    ['seccomp args', { seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: 'allow', args: hole([{ index: 0, op: 'eq', value: 1 }], 0) }] } }, 'seccomp.rules[0].args[0]'],
  ];

  test.each(cases)('a hole in %s is a TypeError naming the entry, before any process starts', (_name, extra, entry) => {
    const children = childrenOfThisProcess().length;
    const e = catchError(() => spawnIsolated({ command: '/bin/true', stdio: 'ignore', ...extra } as unknown as SpawnOptions));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toContain(`options.${entry} is missing: holes in sparse arrays are not accepted`);
    expect(childrenOfThisProcess().length).toBe(children);
  });

  test.each([
    ['args', {}],
    ['groups', { user: true }],
    ['uidMap', { user: true }],
    ['gidMap', { user: true }],
    ['mounts', { mount: true }],
    ['capabilities', {}],
  ])('an array-like object as %s is a TypeError naming it', (key, extra) => {
    const e = catchError(() => validateOptions({ command: '/bin/true', ...extra, [key]: { length: 1, 0: 'a' } } as unknown as SpawnOptions));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toContain(`options.${key} must be`);
  });

  test('a hole or a non-string in the command line\'s argv is a TypeError naming the entry', () => {
    expect(() => parseCommandLine(hole(['--unshare-pid', '/bin/true'], 1), {})).toThrow(new TypeError('parseCommandLine: argv[1] must be a string, got a hole (sparse array)'));
    expect(() => parseCommandLine(['/bin/true', 7 as unknown as string], {})).toThrow(new TypeError('parseCommandLine: argv[1] must be a string, got number 7'));
    expect(parseCommandLine(['--unshare-pid', '/bin/true', 'x'], {})).toMatchObject({ kind: 'run', options: { command: '/bin/true', args: ['x'] } });
  });

  test('a hole in hostSystemMounts({ extra }) is a TypeError naming the entry', () => {
    expect(() => hostSystemMounts({ extra: hole(['/etc/hostname', '/etc/os-release'], 1) })).toThrow(new TypeError('hostSystemMounts: options.extra[1] must be an absolute host path, got a hole (sparse array)'));
    expect(() => hostSystemMounts({ extra: { length: 1, 0: '/x' } as unknown as string[] })).toThrow(TypeError);
    expect(hostSystemMounts({ extra: ['/etc/hostname'] }).at(-1)).toMatchObject({ type: 'bind', source: '/etc/hostname' });
  });

  test('control: the same arrays without holes are accepted', () => {
    expect(() => validateOptions({ command: '/bin/true', args: ['a', 'b'], user: true, groups: [0], uidMap: [range], gidMap: [range], capabilities: ['CAP_CHOWN'] } as SpawnOptions)).not.toThrow();
  });
});

describe('cwd', () => {
  test('a relative cwd is a RangeError naming options.cwd', () => {
    const e = catchError(() => spawnIsolated({ command: '/bin/true', cwd: 'tmp' }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toMatch(/options\.cwd must be an absolute path/);
  });

  test('a missing cwd is an IsolationError naming chdir, ENOENT and the path', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const missing = path.join(dir, 'gone');
      const e = catchError(() => spawnIsolated({ command: '/bin/true', cwd: missing, stdio: 'ignore' }));
      expect(e).toBeInstanceOf(IsolationError);
      expect(e).toMatchObject({ step: 'chdir', code: 'ENOENT', path: missing });
    } finally {
      cleanup();
    }
  });
});
