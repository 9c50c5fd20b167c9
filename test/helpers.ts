/** Shared helpers for tests that run real sandboxes. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { spawnIsolated, type ExitStatus, type SpawnOptions } from '../lib';

/** Reads a stream to its end. */
export function collect(stream: Readable | null): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}

/** Runs a sandbox to its end with stdout and stderr collected. */
export async function run(options: SpawnOptions): Promise<ExitStatus & { stdout: string; stderr: string }> {
  const child = spawnIsolated({ stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const [stdout, stderr, status] = await Promise.all([collect(child.stdout), collect(child.stderr), child.exited]);
  return { ...status, stdout, stderr };
}

/** Runs `sh -c script` in a sandbox. */
export function sh(script: string, options: Omit<SpawnOptions, 'command' | 'args'> = {}): ReturnType<typeof run> {
  return run({ command: '/bin/sh', args: ['-c', script], ...options });
}

/** Children of this process (pid and state letter) from /proc: live ones and zombies. */
export function childrenOfThisProcess(): { pid: number; state: string }[] {
  const children: { pid: number; state: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(ppid) === process.pid) children.push({ pid: Number(entry), state });
  }
  return children;
}

/** Zombie children of this process: what a leak of unreaped sandboxes would leave. */
export function zombieChildren(): number[] {
  return childrenOfThisProcess().filter((c) => c.state === 'Z').map((c) => c.pid);
}

/** The number of children of this process right now: a bad option must start none. */
export function childCount(): number {
  return childrenOfThisProcess().length;
}

/** The host's mount table, less `ip netns` mount points that other test files make beside us. */
export function hostMountinfo(): string {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => !/ \/(var\/)?run\/netns(\/| )/.test(line))
    .join('\n');
}

/**
 * Zombie children of this process that stay zombies: other libraries' children (jest's own)
 * are reaped by libuv within a loop turn or two, an unreaped sandbox never is.
 */
export async function lingeringZombies(): Promise<number[]> {
  let zombies = zombieChildren();
  for (let i = 0; i < 40 && zombies.length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    zombies = zombieChildren().filter((pid) => zombies.includes(pid));
  }
  return zombies;
}

/** The number of open file descriptors of this process. */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/**
 * openFdCount once it has stopped changing: the ignored output pipes of sandboxes that just
 * exited are closed by the discard thread once drained, which may be just after their exits
 * are seen. For a count taken before a check that nothing is left open.
 */
export async function stableFdCount(): Promise<number> {
  let count = openFdCount();
  for (let i = 0; i < 100; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = openFdCount();
    if (now === count) break;
    count = now;
  }
  return count;
}

/** A temp dir removed by the returned cleanup (use in afterEach / finally). */
export function makeTempDir(prefix = 'nsjail-node-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The error a synchronous call throws (fails the test if it does not throw). */
export function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

/**
 * A copy of the built library (dist/, the addon and its init helper, node-gyp-build) in a
 * world-readable temp dir, for tests that run Node as another user: the checkout itself may
 * sit where that user cannot read (e.g. under a root-only home). Returns dist/index.js there.
 */
export function stageLibraryForOtherUsers(): { dist: string; env: NodeJS.ProcessEnv; cleanup: () => void } {
  const project = path.join(__dirname, '..');
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-stage-'));
  const copy = (rel: string): void => fs.cpSync(path.join(project, rel), path.join(stage, rel), { recursive: true });
  for (const rel of ['package.json', 'dist', 'node_modules/node-gyp-build']) copy(rel);
  fs.mkdirSync(path.join(stage, 'build', 'Release'), { recursive: true });
  for (const file of ['nsjail_node.node', 'nsjail_node_init']) copy(path.join('build', 'Release', file));
  const env: NodeJS.ProcessEnv = {};
  // Under scripts/test-sanitize.sh the staged library loads a staged copy of the sanitizer
  // build, with the sanitizer runtime preloaded: pass `env` on to the other user's Node.
  const addon = process.env.NSJAIL_NODE_ADDON;
  if (addon) {
    const staged = path.join(stage, 'build-sanitize', 'nsjail_node.node');
    fs.mkdirSync(path.dirname(staged));
    fs.copyFileSync(addon, staged);
    for (const key of ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[key]) env[key] = process.env[key];
    env.NSJAIL_NODE_ADDON = staged;
  }
  // mkdtemp makes 0700; everything below keeps its (world-readable) modes.
  fs.chmodSync(stage, 0o755);
  return { dist: path.join(stage, 'dist', 'index.js'), env, cleanup: () => fs.rmSync(stage, { recursive: true, force: true }) };
}

/**
 * Registers the checks of a test file whose sandboxes mount: after each test the host's mount
 * table is as before it, and no zombie of this process is left.
 */
export function expectHostMountsUnchanged(): void {
  let mountinfoBefore = '';
  beforeEach(() => {
    mountinfoBefore = hostMountinfo();
  });
  afterEach(async () => {
    expect(hostMountinfo()).toBe(mountinfoBefore);
    expect(await lingeringZombies()).toEqual([]);
  });
}
