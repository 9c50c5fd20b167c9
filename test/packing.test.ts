/**
 * argv and environment packing (lib/plan.ts: packStrings, packEnv; src-native/plan.cc:
 * GetPacked): strings are packed in chunks into Buffers reused from spawn to spawn, a
 * synchronous spawn reads them in place, an asynchronous one copies them before its call
 * returns. What the program receives must be exactly what was given, across chunk
 * boundaries, in multi-byte UTF-8, and whatever else was packed meanwhile.
 */
import * as childProcess from 'node:child_process';
import * as path from 'node:path';
import { binding } from '../lib/binding';
import { compilePlan } from '../lib/plan';
import { validateOptions } from '../lib/options';
import { prepareSandbox, spawnIsolated, spawnIsolatedAsync, type SpawnOptions } from '../lib';
import { collect } from './helpers';

jest.setTimeout(60_000);

const SH = '/bin/sh';
/** Prints its arguments, then its environment sorted (without the PWD the shell adds), one per line. */
const ECHO = 'for a in "$@"; do printf "%s\\n" "$a"; done; echo ---; env | grep -v "^PWD=" | LC_ALL=C sort';

/** More strings than one packing chunk (1024), with multi-byte UTF-8 (2, 3 and 4 bytes) among them. */
function strings(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}${['', 'é', '€', '😀'][i % 4]}`);
}

function expected(args: readonly string[], env: Record<string, string>): string {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return [...args, '---', ...vars.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))].join('\n') + '\n';
}

async function output(child: ReturnType<typeof spawnIsolated>): Promise<string> {
  const [stdout, status] = await Promise.all([collect(child.stdout), child.exited]);
  expect(status.exitCode).toBe(0);
  return stdout;
}

describe('argv and env reach the program exactly', () => {
  const args = strings('a', 2500);
  const env: Record<string, string> = { PATH: '/usr/bin:/bin' };
  for (const s of strings('V', 2100)) env[`K_${s.replace(/[^A-Za-z0-9]/g, '_')}`] = `v=${s}`;
  const options: SpawnOptions = { command: SH, args: ['-c', ECHO, 'sh', ...args], env, pid: true, stdio: ['ignore', 'pipe', 'inherit'] };

  test('spawnIsolated and spawnIsolatedAsync, run after run (the packing buffers are reused)', async () => {
    const want = expected(args, env);
    for (let i = 0; i < 2; i++) {
      expect(await output(spawnIsolated(options))).toBe(want);
      expect(await output((await spawnIsolatedAsync(options)).child)).toBe(want);
    }
  });

  test('an asynchronous spawn keeps its own strings while the next spawn packs others into the same buffers', async () => {
    const other = strings('b', 1500);
    // Packed, and copied by the addon, before this returns; its output is read as soon as it is there.
    const first = spawnIsolatedAsync(options).then(({ child }) => output(child));
    const second = spawnIsolated({ ...options, args: ['-c', ECHO, 'sh', ...other], env: { PATH: '/bin', ONLY: 'x' } });
    expect(await output(second)).toBe(expected(other, { PATH: '/bin', ONLY: 'x' }));
    expect(await first).toBe(expected(args, env));
  });

  test('a prepared sandbox: its environment with a run\'s additions and replacements, its argv or a run\'s', async () => {
    const box = prepareSandbox(options);
    try {
      const runArgs = strings('r', 1100);
      const added = { ADDED_1: 'one€', K_V0: 'replaced' };
      expect(await output(box.spawn())).toBe(expected(args, env));
      expect(await output(box.spawn({ args: ['-c', ECHO, 'sh', ...runArgs], env: { ADDED_1: 'one€' } }))).toBe(expected(runArgs, { ...env, ADDED_1: 'one€' }));
      expect(await output(box.spawn({ env: added }))).toBe(expected(args, { ...env, ...added }));
      expect(await output((await box.spawnAsync({ env: { ADDED_1: 'one€' } })).child)).toBe(expected(args, { ...env, ADDED_1: 'one€' }));
      // The prepared environment itself is unchanged by the runs.
      expect(await output(box.spawn())).toBe(expected(args, env));
    } finally {
      box.close();
    }
  });
});

describe('no JavaScript runs inside a spawn call', () => {
  // The addon reads a synchronous spawn's argv and env in place: JavaScript run in the middle
  // of the call (a getter on Object.prototype for a field a plan leaves out, which could
  // spawn and pack other strings into the same Buffers) must not be possible.
  const A = { PATH: '/usr/bin:/bin', A_ONLY: 'a' };
  const optionsA: SpawnOptions = { command: SH, args: ['-c', ECHO, 'sh', 'a1', 'a2'], env: A, pid: true, stdio: ['ignore', 'pipe', 'inherit'] };

  test('getters on Object.prototype for the fields the addon looks for do not run in spawnIsolated or a prepared run; the control: they run for a plain object', async () => {
    const box = prepareSandbox(optionsA);
    const fields = ['chdirAt', 'stepPaths', 'runCandidates', 'init', 'info', 'hostId', 'parentSetup', 'blockFd', 'engine', 'values', 'path', 'data'];
    // Counted only while the addon's spawn call is under way (the library's JavaScript around
    // it may look such names up on its own objects).
    let inCall = false;
    let fired = 0;
    const saved = { spawn: binding.spawn, spawnPrepared: binding.spawnPrepared };
    const during = <A extends unknown[], R>(fn: (...args: A) => R) => (...args: A): R => {
      inCall = true;
      try {
        return fn(...args);
      } finally {
        inCall = false;
      }
    };
    binding.spawn = during(saved.spawn);
    binding.spawnPrepared = during(saved.spawnPrepared);
    for (const field of fields) Object.defineProperty(Object.prototype, field, { configurable: true, get: () => void (inCall && fired++) });
    let outputs: Promise<string>[];
    try {
      // Each output is read from the start: a stream nobody reads is drained at exit.
      outputs = [spawnIsolated(optionsA), box.spawn({ args: ['-c', ECHO, 'sh', 'a1', 'a2'], env: { A_ONLY: 'a' } })].map(output);
      expect(fired).toBe(0);
      // The control: such a getter runs for a lookup made inside the call.
      during(() => ({} as Record<string, unknown>).chdirAt)();
      expect(fired).toBe(1);
    } finally {
      for (const field of fields) delete (Object.prototype as Record<string, unknown>)[field];
      Object.assign(binding, saved);
      box.close();
    }
    for (const out of await Promise.all(outputs)) expect(out).toBe(expected(['a1', 'a2'], A));
  });
});

test('a globalThis.Object replaced after the addon loaded does not run inside a spawn call; the control: it runs for a call of Object() made there', () => {
  // In a Node of its own: the addon's global is the process's, not this test's context.
  const script = `
    const { binding } = require('./dist/binding');
    const { spawnIsolated } = require('./dist');
    const Real = Object;
    let inCall = false, fired = 0;
    const spawn = binding.spawn;
    binding.spawn = (...args) => { inCall = true; try { return spawn(...args); } finally { inCall = false; } };
    globalThis.Object = new Proxy(Real, { apply: (t, self, args) => (inCall && fired++, Reflect.apply(t, self, args)) });
    const child = spawnIsolated({ command: '/bin/true', pid: true, stdio: 'ignore' });
    const during = fired;
    inCall = true; Object(); inCall = false;
    globalThis.Object = Real;
    child.exited.then((s) => console.log(during, fired, s.exitCode));`;
  const r = childProcess.spawnSync(process.execPath, ['-e', script], { cwd: path.join(__dirname, '..'), encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.stdout).toBe('0 1 0\n');
});

describe('the addon reads a plan\'s own fields only', () => {
  test('a polluted Object.prototype does not change the program a spawn runs; the control: the pollution is seen by a plain object', async () => {
    Object.defineProperty(Object.prototype, 'runCandidates', { configurable: true, writable: true, value: ['/bin/false'] });
    try {
      expect(({} as Record<string, unknown>).runCandidates).toEqual(['/bin/false']);
      expect((await spawnIsolated({ command: '/bin/true', pid: true, stdio: 'ignore' }).exited).exitCode).toBe(0);
      const box = prepareSandbox({ command: '/bin/true', stdio: 'ignore' });
      expect((await box.spawn().exited).exitCode).toBe(0);
      box.close();
    } finally {
      delete (Object.prototype as Record<string, unknown>).runCandidates;
    }
  });
});

describe('the addon checks the packed strings it is given', () => {
  const plan = (): ReturnType<typeof compilePlan>['native'] => ({ ...compilePlan(validateOptions({ command: '/bin/true', stdio: 'ignore' })).native });

  test('an environment entry without "=" and a list without its last NUL are refused as malformed plans; the control spawns', () => {
    const good = plan();
    const status = binding.spawn(good, () => {});
    expect('error' in status).toBe(false);
    const bad = plan();
    bad.envp = Buffer.from('PATH\0/bin\0');
    expect(() => binding.spawn(bad, () => {})).toThrow(/malformed native plan: plan\.envp entries must be key=value/);
    const cut = plan();
    cut.argv = Buffer.from('/bin/true');
    expect(() => binding.spawn(cut, () => {})).toThrow(/malformed native plan: plan\.argv must end with a NUL/);
  });
});
