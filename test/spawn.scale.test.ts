/** Many spawns: concurrency, nothing leaked, child_process beside, both clone engines, workers. */
import * as childProcess from 'node:child_process';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { spawnIsolated } from '../lib';
import { lingeringZombies, openFdCount, sh } from './helpers';

describe('scale and coexistence', () => {
  test('200 concurrent spawns complete, with child_process.spawn working beside them', async () => {
    const sandboxes = Array.from({ length: 200 }, (_, i) =>
      spawnIsolated({ command: '/bin/sh', args: ['-c', `exit $(( ${i} % 7 ))`], pid: true, net: i % 2 === 0, stdio: 'ignore' }),
    );
    // Node reaps its own children through its SIGCHLD handler: our pidfd watchers must not steal them.
    const plain = Array.from({ length: 20 }, (_, i) =>
      new Promise<number | null>((resolve, reject) => {
        const c = childProcess.spawn('/bin/sh', ['-c', `exit ${i % 5}`], { stdio: 'ignore' });
        c.on('error', reject);
        c.on('exit', (code) => resolve(code));
      }),
    );
    const [statuses, plainCodes] = await Promise.all([Promise.all(sandboxes), Promise.all(plain)]);
    expect(statuses.map((s) => s.exitCode)).toEqual(statuses.map((_, i) => i % 7));
    expect(plainCodes).toEqual(plainCodes.map((_, i) => i % 5));
    expect(childProcess.execFileSync('/bin/echo', ['still works']).toString()).toBe('still works\n');
    expect(await lingeringZombies()).toEqual([]);
  });

  test('after 1000 spawns (successes, failures and piped ones) no fd and no zombie is left', async () => {
    // Warm up: the first spawn maps the child stack and loads what it needs.
    await spawnIsolated({ command: '/bin/true', stdio: 'ignore' });
    // The library's discard thread closes an 'ignore' pipe once its writers are gone, on its
    // own time: let it, as after the loop below.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fdsBefore = openFdCount();
    for (let batch = 0; batch < 10; batch++) {
      const round: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) {
        if (i % 10 === 0) {
          round.push(sh('echo piped', { pid: true }).then((r) => expect(r.stdout).toBe('piped\n')));
        } else if (i % 10 === 1) {
          expect(() => spawnIsolated({ command: '/nonexistent', pid: true, stdio: 'pipe' })).toThrow(/ENOENT/);
        } else {
          round.push(spawnIsolated({ command: '/bin/true', pid: true, mount: true, ipc: true, stdio: 'ignore' }).exited);
        }
      }
      await Promise.all(round);
    }
    // Sockets close on the next turns of the loop after their 'end'.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openFdCount()).toBe(fdsBefore);
    expect(await lingeringZombies()).toEqual([]);
  });

  test('default stdio (three pipes) left unused leaks no descriptor', async () => {
    await spawnIsolated({ command: '/bin/true' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fdsBefore = openFdCount();
    for (let i = 0; i < 100; i++) await spawnIsolated({ command: '/bin/true', pid: true });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openFdCount()).toBe(fdsBefore);
  });

  test.each(['clone', 'clone3'])('the %s engine runs a sandbox with every namespace', async (engine) => {
    process.env.NSJAIL_NODE_CLONE = engine;
    try {
      const r = await sh('echo $$ $(hostname)', { pid: true, net: true, mount: true, uts: true, ipc: true, user: true, cgroup: true, hostname: engine });
      expect(r.stdout).toBe(`1 ${engine}\n`);
      expect(() => spawnIsolated({ command: '/nonexistent' })).toThrow(/execve \/nonexistent: ENOENT/);
    } finally {
      delete process.env.NSJAIL_NODE_CLONE;
    }
  });

  test('a bad NSJAIL_NODE_CLONE is refused before clone', () => {
    process.env.NSJAIL_NODE_CLONE = 'fork';
    try {
      expect(() => spawnIsolated({ command: '/bin/true' })).toThrow(/NSJAIL_NODE_CLONE must be auto, clone3 or clone/);
    } finally {
      delete process.env.NSJAIL_NODE_CLONE;
    }
  });

  test('spawns from worker threads alongside the main thread', async () => {
    const script = `
      const { parentPort } = require('node:worker_threads');
      const { spawnIsolated } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      (async () => {
        const codes = [];
        for (let i = 0; i < 20; i++) codes.push((await spawnIsolated({ command: '/bin/sh', args: ['-c', 'exit 3'], pid: true, stdio: 'ignore' })).exitCode);
        parentPort.postMessage(codes);
      })();`;
    const workers = [0, 1].map(
      () =>
        new Promise<number[]>((resolve, reject) => {
          const w = new Worker(script, { eval: true });
          w.once('message', resolve);
          w.once('error', reject);
        }),
    );
    const main = Array.from({ length: 20 }, () => spawnIsolated({ command: '/bin/true', pid: true, stdio: 'ignore' }).exited);
    const [a, b] = await Promise.all(workers);
    expect([...a, ...b]).toEqual(Array(40).fill(3));
    expect((await Promise.all(main)).every((s) => s.exitCode === 0)).toBe(true);
  });

  test('a sandbox still running when its worker exits is killed and reaped (dies with its thread)', async () => {
    const script = `
      const { parentPort } = require('node:worker_threads');
      const { spawnIsolated } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      const child = spawnIsolated({ command: 'sleep', args: ['1000'], stdio: 'ignore' });
      parentPort.postMessage(child.pid);`;
    const worker = new Worker(script, { eval: true });
    const pid = await new Promise<number>((resolve) => worker.once('message', resolve));
    await worker.terminate();
    // The worker's environment cleanup killed and reaped it: the pid no longer names our child.
    expect(await lingeringZombies()).toEqual([]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    expect(alive).toBe(false);
  });
});
