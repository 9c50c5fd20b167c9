/** spawnIsolatedAsync: clone on a spawner thread, the same sandboxes and errors as spawnIsolated. */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { IsolationError, spawnIsolated, spawnIsolatedAsync } from '../lib';
import { childrenOfThisProcess, collect, lingeringZombies, makeTempDir, openFdCount } from './helpers';

describe('spawnIsolatedAsync', () => {
  test('resolves with the handle once exec has happened: pid, streams, exit', async () => {
    const pending = spawnIsolatedAsync({ command: '/bin/sh', args: ['-c', 'echo $$ $(hostname); exit 4'], pid: true, net: true, uts: true, hostname: 'async', stdio: ['ignore', 'pipe', 'inherit'] });
    expect(pending).toBeInstanceOf(Promise);
    const { child } = await pending;
    expect(child.pid).toBeGreaterThan(1);
    const [out, status] = await Promise.all([collect(child.stdout), child.exited]);
    expect(out).toBe('1 async\n');
    expect(status).toMatchObject({ pid: child.pid, exitCode: 4, signal: null });
  });

  test('failures reject (never throw): bad options, and errors from the child', async () => {
    await expect(spawnIsolatedAsync({ command: '/bin/true', pdi: true } as never)).rejects.toThrow(/unknown option options.pdi/);
    const err = await spawnIsolatedAsync({ command: '/no/such/program', pid: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: '/no/such/program' });
    expect(await lingeringZombies()).toEqual([]);
  });

  test('100 concurrent spawns, with limits and parent-written id maps among them, beside child_process', async () => {
    await (await spawnIsolatedAsync({ command: '/bin/true', stdio: 'ignore' })).child;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fdsBefore = openFdCount();
    const spawns = Array.from({ length: 100 }, (_, i) =>
      spawnIsolatedAsync({
        command: '/bin/sh', args: ['-c', `exit ${i % 9}`], pid: true, mount: i % 2 === 0, stdio: 'ignore',
        ...(i % 10 === 0 ? { limits: { pids: 16 } } : {}),
        ...(i % 10 === 5 ? { user: true, uidMap: [{ inside: 0, outside: 0, count: 1 }, { inside: 1, outside: 100000, count: 10 }] } : {}),
      }).then(({ child }) => child.exited),
    );
    const plain = new Promise<number | null>((resolve) => childProcess.spawn('/bin/sh', ['-c', 'exit 6']).on('exit', resolve));
    const statuses = await Promise.all(spawns);
    expect(statuses.map((s) => s.exitCode)).toEqual(statuses.map((_, i) => i % 9));
    expect(await plain).toBe(6);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openFdCount()).toBe(fdsBefore);
    expect(await lingeringZombies()).toEqual([]);
  });

  test('a sandbox that joins another one is set up on the calling thread, and still works', async () => {
    const host = spawnIsolated({ command: '/bin/sh', args: ['-c', 'read x'], uts: true, hostname: 'joined', stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      const { child } = await spawnIsolatedAsync({ command: 'hostname', join: { uts: host.pid }, stdio: ['ignore', 'pipe', 'ignore'] });
      expect(await collect(child.stdout)).toBe('joined\n');
    } finally {
      host.kill();
      await host;
    }
  });

  test("runs on the library's spawner threads: a blocked libuv pool does not hold it up", async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const fifo = path.join(dir, 'fifo');
      childProcess.execFileSync('mkfifo', [fifo]);
      // One pool thread, taken by an open() of a FIFO that has no writer yet.
      const script = `
        const fs = require('fs');
        const { spawnIsolatedAsync } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
        fs.open(${JSON.stringify(fifo)}, 'r', (err, fd) => fs.closeSync(fd));
        setTimeout(async () => {
          const { child } = await spawnIsolatedAsync({ command: '/bin/true', pid: true, net: true, stdio: 'ignore' });
          const status = await child;
          const names = fs.readdirSync('/proc/self/task').map((t) => fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim());
          console.log(JSON.stringify({ exitCode: status.exitCode, spawners: names.filter((n) => n === 'nsjail-spawner').length }));
          fs.closeSync(fs.openSync(${JSON.stringify(fifo)}, 'w'));  // lets the pool go
        }, 100);`;
      // The timeout only guards against a hang (a held-up spawn never opens the FIFO); a Node
      // started under the sanitizer build on a loaded machine takes more than 10 s.
      const out = childProcess.execFileSync(process.execPath, ['-e', script], { env: { ...process.env, UV_THREADPOOL_SIZE: '1' }, timeout: 45000 });
      const result = JSON.parse(out.toString()) as { exitCode: number; spawners: number };
      expect(result.exitCode).toBe(0);
      // Started on demand: one here, at most one per two CPUs.
      expect(result.spawners).toBeGreaterThanOrEqual(1);
      expect(result.spawners).toBeLessThanOrEqual(Math.max(1, Math.min(8, Math.floor(os.cpus().length / 2))));
    } finally {
      cleanup();
    }
  });

  test('the sandbox dies with the Node process that started it', async () => {
    const script = `
      require(${JSON.stringify(path.join(__dirname, '..', 'dist'))}).spawnIsolatedAsync({ command: '/bin/sleep', args: ['1000'], stdio: 'ignore' })
        .then(({ child }) => console.log(child.pid));
      setInterval(() => {}, 1000);`;
    const helper = childProcess.spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve) => helper.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))));
    helper.kill('SIGKILL'); // no exit handlers: only the parent-death signal, which follows the cloning thread
    await new Promise((resolve) => helper.once('exit', resolve));
    const alive = (): boolean => {
      try {
        return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(alive()).toBe(false);
  });

  test.each([
    ['calls process.exit() in the callback of a spawn', '.then(() => process.exit(0))'],
    ['throws in the callback of a spawn', ".then(() => { throw new Error('boom'); })"],
  ])('a worker that %s, with more spawns under way, leaves no process and does not crash', async (_what, then) => {
    const script = `
      const { spawnIsolatedAsync } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      for (let i = 0; i < 4; i++) spawnIsolatedAsync({ command: 'sleep', args: ['1000'], stdio: 'ignore', pid: true })${then};
      process.on('unhandledRejection', (e) => { throw e; });`;
    const before = childrenOfThisProcess().length;
    const worker = new Worker(script, { eval: true });
    const errors: unknown[] = [];
    worker.on('error', (e) => errors.push(e));
    await new Promise((resolve) => worker.once('exit', resolve));
    expect(errors.every((e) => /boom/.test(String(e)))).toBe(true);
    expect(await lingeringZombies()).toEqual([]);
    expect(childrenOfThisProcess().length).toBe(before);
  });

  test('a worker that exits while its spawns are under way leaves no process and does not crash', async () => {
    const script = `
      const { spawnIsolatedAsync } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      for (let i = 0; i < 5; i++) spawnIsolatedAsync({ command: 'sleep', args: ['1000'], stdio: 'ignore', pid: true });
      process.exit(0);`;
    const before = childrenOfThisProcess().length;
    const worker = new Worker(script, { eval: true });
    await new Promise((resolve) => worker.once('exit', resolve));
    // Whatever was cloned was killed and reaped with the worker's environment.
    expect(await lingeringZombies()).toEqual([]);
    expect(childrenOfThisProcess().length).toBe(before);
  });
});

