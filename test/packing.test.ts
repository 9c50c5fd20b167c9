/**
 * argv and environment packing (lib/plan.ts: packStrings, packEnv; src-native/plan.cc:
 * GetPacked): strings are packed in chunks into Buffers reused from spawn to spawn, a
 * synchronous spawn reads them in place, an asynchronous one copies them before its call
 * returns. What the program receives must be exactly what was given, across chunk
 * boundaries, in multi-byte UTF-8, and whatever else was packed meanwhile.
 */
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

describe('JavaScript that runs inside a spawn call cannot change the strings it spawns', () => {
  // The addon reads fields a plan or run leaves out (chdirAt); a getter on Object.prototype
  // then runs inside the spawn call. One that spawns (packing other strings) must not change
  // what the spawn under way gives its program.
  const A = { PATH: '/usr/bin:/bin', A_ONLY: 'a' };
  const B = { PATH: '/bin', B_TOKEN: 'secret-of-b' };
  const optionsA: SpawnOptions = { command: SH, args: ['-c', ECHO, 'sh', 'a1', 'a2'], env: A, pid: true, stdio: ['ignore', 'pipe', 'inherit'] };
  const optionsB: SpawnOptions = { command: SH, args: ['-c', ECHO, 'sh', 'b1'], env: B, stdio: ['ignore', 'pipe', 'inherit'] };

  /** Runs `spawn` with a getter on Object.prototype.chdirAt that starts B once; the handles of both. */
  async function withGetter(spawn: () => ReturnType<typeof spawnIsolated>): Promise<{ a: string; b: string; fired: number }> {
    let fired = 0;
    let inner: ReturnType<typeof spawnIsolated> | undefined;
    let busy = false;
    Object.defineProperty(Object.prototype, 'chdirAt', {
      configurable: true,
      get() {
        fired++;
        if (!busy && inner === undefined) {
          busy = true;
          try {
            inner = spawnIsolated(optionsB);
          } finally {
            busy = false;
          }
        }
        return undefined;
      },
    });
    let outer: ReturnType<typeof spawnIsolated>;
    try {
      outer = spawn();
    } finally {
      delete (Object.prototype as Record<string, unknown>).chdirAt;
    }
    const started = inner;
    if (started === undefined) throw new Error('the getter did not run inside the spawn call');
    const [a, b] = await Promise.all([output(outer), output(started)]);
    return { a, b, fired };
  }

  test('spawnIsolated and a prepared sandbox\'s run; the control: the getter ran inside the call and its spawn ran', async () => {
    const box = prepareSandbox(optionsA);
    try {
      for (const spawn of [() => spawnIsolated(optionsA), () => box.spawn({ args: ['-c', ECHO, 'sh', 'a1', 'a2'], env: { A_ONLY: 'a' } })]) {
        const { a, b, fired } = await withGetter(spawn);
        expect(fired).toBeGreaterThan(0);
        expect(b).toBe(expected(['b1'], B));
        expect(a).toBe(expected(['a1', 'a2'], A));
      }
    } finally {
      box.close();
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
