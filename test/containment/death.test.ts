/**
 * Death with the parent, from the host's side: a Node process that exits or is SIGKILLed
 * leaves none of its sandboxes behind, whatever ids they switched to (a credential change
 * clears the kernel's parent-death signal) and however many spawns were under way (a parent
 * that dies before the child arms the signal sends nothing). Every sandbox runs a `sleep`
 * whose argument is a number unique to the test, so /proc finds exactly its processes.
 */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';

const DIST = path.join(__dirname, '..', '..', 'dist');

let serial = 0;
/** A unique `sleep` duration, e.g. '45.1234500017': the marker of one test's processes. */
function marker(whole: number): string {
  serial += 1;
  return `${whole}.${process.pid}${String(serial).padStart(4, '0')}`;
}

/** Live (not zombie) processes whose argv holds `mark` as a whole argument. */
function processesWith(mark: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv.includes(mark)) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') found.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

function killAll(mark: string): void {
  for (const pid of processesWith(mark)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls (bounded) until `done()` holds; returns whether it did. */
async function until(done: () => boolean, tries = 200, everyMs = 50): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (done()) return true;
    await sleep(everyMs);
  }
  return done();
}

/** Runs a Node helper that loads the built library; its stdin and stdout are pipes. */
function helper(script: string, ...args: string[]): childProcess.ChildProcessByStdio<Writable, Readable, null> {
  const code = `const lib = require(${JSON.stringify(DIST)});\n${script}`;
  return childProcess.spawn(process.execPath, ['-e', code, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
}

const exited = (child: childProcess.ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));

describe('a Node process that calls process.exit() takes its sandboxes with it', () => {
  // `sh -c 'sleep & sleep'`: sh is the sandbox's first process, one sleep its child, one in the background.
  const EXIT_AFTER_SPAWN = `
    const options = JSON.parse(process.argv[1]);
    // spawnIsolatedAsync resolves with { child }; a handle alone would be awaited to its exit.
    const spawn = options.async ? lib.spawnIsolatedAsync : (o) => Promise.resolve({ child: lib.spawnIsolated(o) });
    delete options.async;
    spawn({ command: '/bin/sh', stdio: 'ignore', ...options }).then(() => {
      process.stdout.write('spawned\\n');
      process.stdin.once('data', () => process.exit(0));
    }, (e) => { console.error(e); process.exit(3); });`;

  /** Starts the helper, waits for its three processes, makes it exit; returns the marker. */
  async function spawnThenExit(options: Record<string, unknown>): Promise<string> {
    const mark = marker(45);
    const node = helper(EXIT_AFTER_SPAWN, JSON.stringify({ args: ['-c', `sleep ${mark} & sleep ${mark}`], ...options }));
    try {
      await new Promise<void>((resolve, reject) => {
        node.stdout.once('data', () => resolve());
        node.once('exit', (code) => reject(new Error(`helper exited with ${code} before spawning`)));
      });
      // sh, then both sleeps: the sandbox is fully up before its parent goes.
      expect(await until(() => processesWith(mark).length === 2)).toBe(true);
      node.stdin.write('x');
      await exited(node);
      return mark;
    } catch (e) {
      node.kill('SIGKILL');
      killAll(mark);
      throw e;
    }
  }

  const variants: [string, Record<string, unknown>][] = [
    ['uid and gid changed (setresuid/setresgid as root)', { uid: 65534, gid: 65534, pid: true }],
    ['parent-written id maps in a user namespace', { user: true, pid: true, uid: 1000, gid: 1000, uidMap: [{ inside: 0, outside: 200000, count: 65536 }], gidMap: [{ inside: 0, outside: 200000, count: 65536 }] }],
    ['uid changed, under init', { uid: 65534, gid: 65534, pid: true, init: true }],
    ['uid changed, spawned from a spawner thread', { uid: 65534, gid: 65534, pid: true, async: true }],
  ];

  test.each(variants)('%s: nothing survives', async (_what, options) => {
    const mark = await spawnThenExit(options);
    try {
      expect(await until(() => processesWith(mark).length === 0)).toBe(true);
    } finally {
      killAll(mark);
    }
  });

  test('control: with dieWithParent: false the same sandbox does outlive its parent', async () => {
    const mark = await spawnThenExit({ ...variants[0][1], dieWithParent: false });
    try {
      await sleep(500);
      expect(processesWith(mark)).toHaveLength(2);
    } finally {
      killAll(mark);
    }
  });
});

describe('a Node process SIGKILLed with spawns under way leaves no sandbox', () => {
  // Spawns without pause, async (spawner threads) and sync (the main thread), with each kind
  // of credential change, until killed; says 'go' once the first one is up.
  const SPAWN_FOREVER = `
    const [mark, die] = process.argv.slice(1);
    const kinds = [
      { pid: true },
      { pid: true, uid: 65534, gid: 65534 },
      { pid: true, user: true, uid: 1000, gid: 1000, uidMap: [{ inside: 0, outside: 200000, count: 65536 }], gidMap: [{ inside: 0, outside: 200000, count: 65536 }] },
      { pid: true, uid: 65534, gid: 65534, init: true },
    ];
    const options = (i) => ({ command: 'sleep', args: [mark], stdio: 'ignore', dieWithParent: die === 'true', ...kinds[i % kinds.length] });
    let said = false;
    const go = () => { if (!said) { said = true; process.stdout.write('go\\n'); } };
    for (let i = 0; i < 40; i++) lib.spawnIsolatedAsync(options(i)).then(go, () => {});
    let i = 0;
    const syncSpawns = () => { try { lib.spawnIsolated(options(i++)); go(); } catch {} setImmediate(syncSpawns); };
    syncSpawns();`;

  /** One try: start spawning, SIGKILL the helper `delayMs` after it says go; returns the marker. */
  async function killWhileSpawning(delayMs: number, dieWithParent: boolean): Promise<string> {
    const mark = marker(60);
    const node = helper(SPAWN_FOREVER, mark, String(dieWithParent));
    try {
      await new Promise<void>((resolve, reject) => {
        node.stdout.once('data', () => resolve());
        node.once('exit', (code) => reject(new Error(`helper exited with ${code} before spawning`)));
      });
      if (delayMs > 0) await sleep(delayMs);
      node.kill('SIGKILL');
      await exited(node);
      return mark;
    } catch (e) {
      node.kill('SIGKILL');
      killAll(mark);
      throw e;
    }
  }

  test.each([0, 5, 20, 60, 150])('killed %i ms into the burst: every sandbox dies', async (delayMs) => {
    const mark = await killWhileSpawning(delayMs, true);
    try {
      expect(await until(() => processesWith(mark).length === 0)).toBe(true);
      // Nothing sweeps later: what is gone now stays gone, and nothing new appears.
      await sleep(300);
      expect(processesWith(mark)).toEqual([]);
    } finally {
      killAll(mark);
    }
  });

  test('control: with dieWithParent: false sandboxes of the killed process live on', async () => {
    const mark = await killWhileSpawning(60, false);
    try {
      await sleep(500);
      expect(processesWith(mark).length).toBeGreaterThan(0);
    } finally {
      killAll(mark);
    }
  });
});
