/**
 * Fault tests: resources running out at every step of a spawn, and the addon refusing a
 * plan. Whatever fails, the error is typed (TypeError/RangeError naming the option, or an
 * IsolationError naming step, errno and path) and nothing is left: no cgroup, no veth, no
 * child process, no file descriptor.
 *
 * Out-of-fds and the process limit run in a child Node process against the built library in
 * dist/ (they change that process's limits); buildRootfs's ENOSPC runs in a child process in
 * a private mount namespace (`unshare -m --propagation private`) with a tiny tmpfs, so that
 * nothing is mounted on the host.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IsolationError, spawnIsolatedAsync } from '../lib';
import { binding } from '../lib/binding';
import type { NativeBinding } from '../types/native';
import { lingeringZombies, makeTempDir, openFdCount, stableFdCount, stageLibraryForOtherUsers } from './helpers';

const DIST = path.join(__dirname, '..', 'dist');

function run(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: '/', env: options.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: options.timeout ?? 60000, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => (error ? reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr}`)) : resolve(stdout)));
  });
}

function requireDist(): void {
  if (!fs.existsSync(path.join(DIST, 'index.js'))) throw new Error('dist/ is missing: build the library first (npm run build:dev)');
}

/** The cgroup directories named `name` under any hierarchy root (v1 controllers and v2). */
function cgroupDirsNamed(name: string): string[] {
  const found: string[] = [];
  const roots = ['/sys/fs/cgroup', ...fs.readdirSync('/sys/fs/cgroup').map((c) => path.join('/sys/fs/cgroup', c))];
  for (const root of roots) if (fs.existsSync(path.join(root, name))) found.push(path.join(root, name));
  return found;
}

const TYPED = ['TypeError', 'RangeError', 'IsolationError'];

interface Outcome {
  name: string;
  mode: 'sync' | 'async';
  headroom: number;
  exit?: { exitCode: number | null; signal: number | null };
  error?: { name: string; message: string; code?: string; step?: string; path?: string };
  fds: number;
  children: number[];
  leftovers: string[];
}

// Fills the fd table up to RLIMIT_NOFILE but for `headroom` fds, then spawns each kind of
// sandbox (sync and async), and reports what happened and what was left.
const EMFILE_SCRIPT = String.raw`
const fs = require('fs');
const lib = require(process.argv[2]);
const MAX_HEADROOM = Number(process.argv[3]);
const mark = 'nsjail-faults-emfile-' + process.pid;
const linkPrefix = 'nsj' + process.pid.toString(36);
const subnet = '10.251.' + ((process.pid % 200) + 20);
const variants = {
  plain: { command: '/bin/true' },
  init: { command: '/bin/true', pid: true, init: true },
  limits: { command: '/bin/true', limits: { pids: 16, memory: 64 << 20 }, cgroupParent: mark },
  join: { command: '/bin/true', join: { net: '/proc/self/ns/net', uts: '/proc/self/ns/uts' } },
  veth: { command: '/bin/true', net: true, veth: { hostAddress: subnet + '.1/30', sandboxAddress: subnet + '.2/30' } },
  mounts: { command: '/bin/true', mount: true, pid: true, root: '/', mounts: [{ type: 'tmpfs', target: '/tmp' }, { type: 'proc' }] },
};
const fdCount = () => fs.readdirSync('/proc/self/fd').length;
function children() {
  const out = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync('/proc/' + e + '/stat', 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) out.push(Number(e));
    } catch {}
  }
  return out;
}
function leftovers() {
  const found = [];
  for (const c of fs.readdirSync('/sys/fs/cgroup')) if (fs.existsSync('/sys/fs/cgroup/' + c + '/' + mark)) found.push('/sys/fs/cgroup/' + c + '/' + mark);
  for (const l of fs.readdirSync('/sys/class/net')) if (l.startsWith(linkPrefix)) found.push('link ' + l);
  return found;
}
function exhaust(headroom) {
  const held = [];
  for (;;) {
    try { held.push(fs.openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; break; }
  }
  for (let i = 0; i < headroom && held.length; i++) fs.closeSync(held.pop());
  return held;
}
let baseline = -1; // the fds open between attempts, once the warm-up has opened what is kept
async function attempt(name, mode, headroom) {
  const options = { stdio: 'ignore', ...variants[name] };
  const held = exhaust(headroom);
  let child, error;
  try {
    child = mode === 'sync' ? lib.spawnIsolated(options) : (await lib.spawnIsolatedAsync(options)).child;
  } catch (e) {
    error = e;
  } finally {
    for (const fd of held) fs.closeSync(fd);
  }
  let exit;
  if (child) { const s = await child; exit = { exitCode: s.exitCode, signal: s.signal }; }
  // A veth link goes once the exit is seen, one loop turn later; a killed sandbox's cgroup is
  // removed once it has emptied (lib/ waits up to 2 s for that, longer on a loaded machine).
  // Settled when the fds are back to the baseline and nothing is left, or after 3 s.
  await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 300 && baseline >= 0 && (fdCount() > baseline || leftovers().length > 0); i++) await new Promise((r) => setTimeout(r, 10));
  const e = error && { name: error.name, message: error.message, code: error.code, step: error.step, path: error.path };
  return { name, mode, headroom, exit, error: e, fds: fdCount(), children: children(), leftovers: leftovers() };
}
(async () => {
  const results = [];
  // The init helper's fd is opened once and kept: its own EMFILE shows only before that.
  const first = await attempt('init', 'sync', 0);
  const warmup = [];
  for (const name of Object.keys(variants)) warmup.push(await attempt(name, 'sync', 64));
  baseline = fdCount();
  for (let headroom = 0; headroom <= MAX_HEADROOM; headroom++) {
    for (const name of Object.keys(variants)) {
      for (const mode of ['sync', 'async']) results.push(await attempt(name, mode, headroom));
    }
  }
  // buildRootfs at the same headrooms: a failure leaves its (empty) directory empty.
  const { buildRootfs } = require(require('path').join(require('path').dirname(process.argv[2]), 'rootfs.js'));
  const rootfs = [];
  for (let headroom = 0; headroom <= MAX_HEADROOM; headroom++) {
    const dir = fs.mkdtempSync(require('os').tmpdir() + '/nsjail-faults-rootfs-');
    const held = exhaust(headroom);
    let error;
    try {
      await buildRootfs(dir, ['/bin/sh']);
    } catch (e) {
      error = { name: e.name, message: e.message, code: e.code, step: e.step, path: e.path };
    } finally {
      for (const fd of held) fs.closeSync(fd);
    }
    rootfs.push({ headroom, error, entries: fs.readdirSync(dir), fds: fdCount() });
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ first, warmup, baseline, results, rootfs }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('EMFILE: out of file descriptors at every step', () => {
  const MAX_HEADROOM = 10;
  let report: {
    first: Outcome; warmup: Outcome[]; baseline: number; results: Outcome[];
    rootfs: { headroom: number; error?: Outcome['error']; entries: string[]; fds: number }[];
  };
  let tmp: ReturnType<typeof makeTempDir>;

  beforeAll(async () => {
    requireDist();
    tmp = makeTempDir('nsjail-faults-emfile-');
    const script = path.join(tmp.dir, 'emfile.js');
    fs.writeFileSync(script, EMFILE_SCRIPT);
    // A low RLIMIT_NOFILE, so that filling the table is quick.
    const out = await run('prlimit', ['--nofile=256:256', process.execPath, script, path.join(DIST, 'index.js'), String(MAX_HEADROOM)], { timeout: 90000 });
    report = JSON.parse(out);
  }, 120000);
  afterAll(() => tmp?.cleanup());

  test('control: every kind of sandbox runs with fds to spare, and at the largest headroom', () => {
    for (const w of report.warmup) expect([w.name, w.error?.message, w.exit?.exitCode]).toEqual([w.name, undefined, 0]);
    const last = report.results.filter((r) => r.headroom === MAX_HEADROOM);
    for (const r of last) expect([r.name, r.mode, r.error?.message, r.exit?.exitCode]).toEqual([r.name, r.mode, undefined, 0]);
  });

  test('the init helper that cannot be opened is an IsolationError naming step, errno and path', () => {
    expect(report.first.error).toMatchObject({ name: 'IsolationError', code: 'EMFILE', step: 'init-helper', path: expect.stringMatching(/nsjail_node_init$/) });
    expect(report.first.error?.message).toMatch(/RLIMIT_NOFILE|open/);
  });

  test('cgroup set-up out of fds is an IsolationError naming step, errno and path, not a raw fs error', () => {
    const limits = report.results.find((r) => r.name === 'limits' && r.headroom === 0 && r.mode === 'sync');
    expect(limits?.error).toMatchObject({ name: 'IsolationError', code: 'EMFILE', step: expect.stringMatching(/^cgroup-/), path: expect.stringMatching(/^\//) });
  });

  test('each kind of sandbox meets EMFILE at some headroom (the fault is real)', () => {
    for (const name of ['plain', 'init', 'limits', 'join', 'veth', 'mounts']) {
      const hit = report.results.filter((r) => r.name === name && r.error?.code === 'EMFILE');
      expect([name, hit.length > 0]).toEqual([name, true]);
    }
  });

  test('every failure is typed: an IsolationError with step, errno code and a hint naming the limit', () => {
    for (const r of report.results.filter((x) => x.error !== undefined)) {
      const e = r.error!;
      const where = `${r.name} ${r.mode} headroom ${r.headroom}: ${e.message}`;
      expect([where, TYPED.includes(e.name)]).toEqual([where, true]);
      if (e.name !== 'IsolationError') continue;
      expect([where, typeof e.step, /^E[A-Z0-9]+$/.test(e.code ?? '')]).toEqual([where, 'string', true]);
      if (e.code === 'EMFILE') expect([where, /RLIMIT_NOFILE/.test(e.message)]).toEqual([where, true]);
    }
  });

  test('buildRootfs out of fds: an IsolationError naming step, errno and path, and an untouched directory', () => {
    const failed = report.rootfs.filter((r) => r.error !== undefined);
    expect(failed.length).toBeGreaterThan(0); // the fault is real
    for (const r of failed) {
      expect({ headroom: r.headroom, error: r.error }).toEqual({ headroom: r.headroom, error: expect.objectContaining({ name: 'IsolationError', code: 'EMFILE', step: expect.any(String), path: expect.stringMatching(/^\//) }) });
      expect({ headroom: r.headroom, entries: r.entries }).toEqual({ headroom: r.headroom, entries: [] });
    }
    // Control: with fds to spare the same build succeeds.
    const last = report.rootfs[report.rootfs.length - 1];
    expect(last.error).toBeUndefined();
    expect(last.entries.length).toBeGreaterThan(0);
    for (const r of report.rootfs) expect({ headroom: r.headroom, fds: r.fds }).toEqual({ headroom: r.headroom, fds: report.baseline });
  });

  test('nothing is left after any attempt: no fd, no child, no cgroup, no veth', () => {
    for (const r of report.results) {
      const where = `${r.name} ${r.mode} headroom ${r.headroom}`;
      expect({ where, fds: r.fds, children: r.children, leftovers: r.leftovers }).toEqual({ where, fds: report.baseline, children: [], leftovers: [] });
    }
  });
});

// As uid 65534 (root is exempt from RLIMIT_NPROC): a control spawn, then the soft limit set
// to 1 (this user already runs more tasks than that: this process's threads), then spawns.
const NPROC_SCRIPT = String.raw`
const { execFileSync } = require('child_process');
const lib = require(process.argv[2]);
const results = {};
async function attempt(name, mode, options) {
  try {
    const child = mode === 'sync' ? lib.spawnIsolated({ stdio: 'ignore', ...options }) : (await lib.spawnIsolatedAsync({ stdio: 'ignore', ...options })).child;
    const s = await child;
    results[name] = { exitCode: s.exitCode };
  } catch (e) {
    results[name] = { error: { name: e.name, message: e.message, code: e.code, step: e.step } };
  }
}
(async () => {
  const sandbox = { command: '/bin/true', user: true, pid: true, init: true };
  await attempt('control', 'sync', sandbox);
  execFileSync('prlimit', ['--pid=' + process.pid, '--nproc=1:']);
  await attempt('sync', 'sync', sandbox);
  await attempt('async', 'async', sandbox);
  await attempt('plain', 'sync', { command: '/bin/true' });
  process.stdout.write(JSON.stringify(results));
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('RLIMIT_NPROC reached (uid 65534)', () => {
  const NOBODY = 65534;
  let results: Record<string, { exitCode?: number; error?: { name: string; message: string; code?: string; step?: string } }>;
  let cleanup: (() => void) | undefined;

  beforeAll(async () => {
    requireDist();
    const staged = stageLibraryForOtherUsers(); // the checkout may not be readable by uid 65534
    const tmp = makeTempDir('nsjail-faults-nproc-');
    cleanup = () => {
      staged.cleanup();
      tmp.cleanup();
    };
    fs.chmodSync(tmp.dir, 0o755);
    const script = path.join(tmp.dir, 'nproc.js');
    fs.writeFileSync(script, NPROC_SCRIPT, { mode: 0o644 });
    const out = await run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, script, staged.dist]);
    results = JSON.parse(out);
  }, 90000);
  afterAll(() => cleanup?.());

  test('control: the same sandbox starts before the limit is lowered', () => {
    expect(results.control).toEqual({ exitCode: 0 });
  });

  test('clone fails with EAGAIN as an IsolationError whose hint names RLIMIT_NPROC, sync and async', () => {
    for (const name of ['sync', 'async', 'plain']) {
      expect([name, results[name].error]).toEqual([name, expect.objectContaining({ name: 'IsolationError', code: 'EAGAIN', step: expect.stringMatching(/^clone3?$/) })]);
      expect(results[name].error?.message).toMatch(/RLIMIT_NPROC/);
    }
  });
});

// buildRootfs into a tmpfs of 1 MiB (libc alone is larger), with files already there.
const ENOSPC_SCRIPT = String.raw`
const fs = require('fs');
const path = require('path');
const { buildRootfs } = require(process.argv[2]);
const dir = process.argv[3];
const sh = fs.realpathSync('/bin/sh');
fs.mkdirSync(path.join(dir, path.dirname(sh)), { recursive: true });
fs.writeFileSync(path.join(dir, sh), 'there before');
fs.writeFileSync(path.join(dir, 'keep'), 'mine');
function tree(root) {
  const out = {};
  const walk = (p) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const f = path.join(p, e.name);
      out[path.relative(root, f)] = e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link ' + fs.readlinkSync(f) : 'file ' + fs.readFileSync(f).toString('base64');
      if (e.isDirectory()) walk(f);
    }
  };
  walk(root);
  return out;
}
const before = tree(dir);
buildRootfs(dir, ['/bin/sh']).then(
  (m) => process.stdout.write(JSON.stringify({ built: m.files, before, after: tree(dir) })),
  (e) => process.stdout.write(JSON.stringify({ error: { name: e.name, message: e.message, code: e.code, step: e.step, path: e.path }, before, after: tree(dir) })),
);
`;

describe('ENOSPC in buildRootfs (a tmpfs in a private mount namespace)', () => {
  test('the build fails with an IsolationError naming step, errno and path, and leaves the directory as it was', async () => {
    requireDist();
    const tmp = makeTempDir('nsjail-faults-enospc-');
    try {
      const dir = path.join(tmp.dir, 'root');
      fs.mkdirSync(dir);
      const script = path.join(tmp.dir, 'enospc.js');
      fs.writeFileSync(script, ENOSPC_SCRIPT);
      // The tmpfs exists only in the mount namespace unshare made; it goes with it.
      const out = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
        'mount -t tmpfs -o size=1m tmpfs "$1" && exec "$2" "$3" "$4" "$1"', 'sh', dir, process.execPath, script, path.join(DIST, 'rootfs.js')]);
      const r = JSON.parse(out);
      expect(r.error).toMatchObject({ name: 'IsolationError', code: 'ENOSPC', step: expect.any(String), path: expect.stringContaining(dir) });
      expect(r.error.message).toMatch(/^buildRootfs: /);
      // What was there before is there, unchanged (the file the build replaced is back); nothing else.
      expect(r.after).toEqual(r.before);
      expect(Object.keys(r.before).length).toBeGreaterThan(2);
      // The tmpfs never reached the host's mount table.
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('spawnIsolatedAsync: a plan the addon refuses leaves no cgroup', () => {
  const mark = `nsjail-faults-async-${process.pid}`;
  afterEach(() => {
    // Whatever a failing test left of ours (never anything else).
    for (const dir of cgroupDirsNamed(mark)) {
      for (const leaf of fs.readdirSync(dir).filter((e) => e.startsWith('nsjail-'))) fs.rmdirSync(path.join(dir, leaf));
      fs.rmdirSync(dir);
    }
  });

  test('the addon\'s own rejection (a plan it cannot parse) rejects with its TypeError and removes the cgroup', async () => {
    const native = binding as { spawnAsync: NativeBinding['spawnAsync'] };
    const real = native.spawnAsync;
    // A real refusal by the addon: the plan as compiled, with an engine it does not know.
    native.spawnAsync = (plan, onExit, onDone) => real.call(binding, { ...plan, engine: 'bogus' as 'auto' }, onExit, onDone);
    try {
      for (let i = 0; i < 5; i++) {
        await expect(spawnIsolatedAsync({ command: '/bin/true', limits: { pids: 8 }, cgroupParent: mark })).rejects.toThrow(/malformed native plan/);
      }
    } finally {
      native.spawnAsync = real;
    }
    expect(cgroupDirsNamed(mark)).toEqual([]);
  });

  test('a spawn that fails in the child has closed its fds (pidfd, pipes) when the rejection is seen', async () => {
    // What the first calls set up for good: the async machinery, the init helper's fd.
    await (await spawnIsolatedAsync({ command: '/bin/true', pid: true, init: true, stdio: 'ignore' })).child;
    // The warm-up's ignored output pipes may still be open: counted once settled.
    const before = await stableFdCount();
    for (const options of [{ command: '/nonexistent-nsjail-faults' }, { command: '/bin/true', root: '/nonexistent-nsjail-faults', time: true }]) {
      await expect(spawnIsolatedAsync({ ...options, stdio: 'pipe' })).rejects.toThrow(IsolationError);
      // Checked inside the same microtask checkpoint as the rejection, not a loop turn later.
      expect({ options, fds: openFdCount() }).toEqual({ options, fds: before });
    }
  });

  test('a hole in args is refused by validation before any cgroup is made (it reached the addon)', async () => {
    const fds = openFdCount();
    for (let i = 0; i < 5; i++) {
      // eslint-disable-next-line no-sparse-arrays
      await expect(spawnIsolatedAsync({ command: '/bin/true', args: ['a', , 'b'] as string[], limits: { pids: 8 }, cgroupParent: mark }))
        .rejects.toThrow(new TypeError('spawnIsolated: options.args[1] is missing: holes in sparse arrays are not accepted'));
    }
    expect(cgroupDirsNamed(mark)).toEqual([]);
    expect(openFdCount()).toBe(fds);
    expect(await lingeringZombies()).toEqual([]);
  });
});

describe('mounts onto the wrong kind of file', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => {
    tmp = makeTempDir('nsjail-faults-kind-');
    fs.writeFileSync(path.join(tmp.dir, 'file'), 'x');
    fs.mkdirSync(path.join(tmp.dir, 'dir'));
    for (const d of ['lower1', 'lower2']) fs.mkdirSync(path.join(tmp.dir, d));
  });
  afterEach(() => tmp.cleanup());

  const failure = async (mounts: unknown[], extra: { ipc?: boolean } = {}): Promise<IsolationError> => {
    try {
      const { child } = await spawnIsolatedAsync({ command: '/bin/true', mount: true, pid: true, ...extra, root: tmp.dir, mounts: mounts as never, stdio: 'ignore' });
      await child;
    } catch (e) {
      return e as IsolationError;
    }
    throw new Error('expected the spawn to fail');
  };

  test.each(['tmpfs', 'proc', 'overlay', 'mqueue'])('%s onto a regular file: ENOTDIR saying the target is not a directory (not EINVAL)', async (kind) => {
    const entry = kind === 'overlay'
      ? { type: kind, lower: [path.join(tmp.dir, 'lower1'), path.join(tmp.dir, 'lower2')], target: '/file' }
      : { type: kind, target: '/file' };
    const err = await failure([entry], { ipc: kind === 'mqueue' });
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ code: 'ENOTDIR', path: '/file', step: `mounts[0] ${kind}` });
    expect(err.message).toMatch(/is not a directory/);
    expect(err.message).not.toMatch(/upper|work/);
  });

  test('a directory bound onto a file: ENOTDIR; a file bound onto a directory: EISDIR', async () => {
    const dirOntoFile = await failure([{ type: 'bind', source: path.join(tmp.dir, 'dir'), target: '/file' }]);
    expect(dirOntoFile).toMatchObject({ name: 'IsolationError', code: 'ENOTDIR', path: '/file' });
    expect(dirOntoFile.message).toMatch(/a directory binds only onto a directory/);
    const fileOntoDir = await failure([{ type: 'bind', source: path.join(tmp.dir, 'file'), target: '/dir' }]);
    expect(fileOntoDir).toMatchObject({ name: 'IsolationError', code: 'EISDIR', path: '/dir' });
    expect(fileOntoDir.message).toMatch(/a file binds only onto a file/);
  });

  test('control: the same entries onto a directory mount, and a file binds onto a file', async () => {
    const { child } = await spawnIsolatedAsync({
      command: '/bin/true', mount: true, pid: true, root: tmp.dir, stdio: 'ignore',
      mounts: [
        { type: 'tmpfs', target: '/dir' },
        { type: 'overlay', lower: [path.join(tmp.dir, 'lower1'), path.join(tmp.dir, 'lower2')], target: '/lower1', readonly: true },
        { type: 'bind', source: path.join(tmp.dir, 'file'), target: '/file' },
        { type: 'bind', source: '/usr', target: '/usr' },
        { type: 'bind', source: '/lib', target: '/lib', try: true },
        { type: 'bind', source: '/lib64', target: '/lib64', try: true },
        { type: 'bind', source: '/bin', target: '/bin' },
        { type: 'proc' },
      ],
    });
    expect((await child).exitCode).toBe(0);
  });
});
