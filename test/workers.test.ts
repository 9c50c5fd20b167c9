/**
 * Worker threads: spawns while a worker is terminated or exits, names shared between threads,
 * what a dead worker leaves, fd ownership under Node's worker fd tracking, and the spawner
 * threads' namespaces. Scenarios that could crash the process run in a Node process of their
 * own, so that a crash fails the test instead of killing jest.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { spawnIsolated } from '../lib';
import { hostMountinfo, lingeringZombies } from './helpers';
import {
  CHURN, DIST, cgroupsUnder, entries, envMarker, eventually, killByEnv, markedByEnv, processState, removeCgroupParent, runNode,
} from './workers-helpers';

// Scenarios start Node processes and many workers: slow on a loaded machine.
jest.setTimeout(180_000);

const churn = (config: Record<string, unknown>): ReturnType<typeof runNode> => runNode([CHURN, JSON.stringify({ dist: DIST, ...config })]);

describe('a worker that goes away in the middle of spawns', () => {
  test.each([
    ['terminate()', 'terminate', ['sync', 'async', 'cgroup']],
    ['process.exit()', 'exit', ['sync', 'async', 'init', 'keep']],
    ['an uncaught exception', 'throw', ['async', 'sync', 'init', 'cgroup']],
  ])('%s at a random moment of sync and async spawns does not crash the process and leaves no sandbox or cgroup', async (_what, end, modes) => {
    const marker = envMarker('end');
    const cgroupParent = `nsjail-wtest-${process.pid}-${end}`;
    try {
      const r = await churn({ cycles: 30, spawns: 12, modes, marker, end, cgroupParent });
      // On a crash, what it printed (its native stack) is in the diff.
      const crashed = r.code !== 0 || /FATAL ERROR|Segmentation/.test(r.stderr);
      expect({ code: r.code, signal: r.signal, stderr: crashed ? r.stderr.slice(0, 3000) : '' }).toEqual({ code: 0, signal: null, stderr: '' });
      const report = JSON.parse(r.stdout) as { survived: boolean; errors: string[] };
      expect(report.errors).toEqual([]);
      expect(await eventually(() => markedByEnv(marker), (p) => p.length === 0)).toEqual([]);
      expect(cgroupsUnder(cgroupParent)).toEqual([]);
    } finally {
      killByEnv(marker);
      removeCgroupParent(cgroupParent);
    }
  }, 240_000);
});

describe('names shared by threads', () => {
  const parent = `nsjail-wtest-${process.pid}-names`;
  afterAll(() => removeCgroupParent(parent));

  test('two workers spawning with cgroup limits at the same time never collide on a cgroup name', async () => {
    const script = `
      const { parentPort } = require('node:worker_threads');
      const { spawnIsolated } = require(${JSON.stringify(DIST)});
      (async () => {
        const errors = [];
        const live = [];
        for (let i = 0; i < 25; i++) {
          try {
            // Several alive at once per worker: their cgroups exist side by side.
            live.push(spawnIsolated({ command: '/bin/sleep', args: ['0.05'], stdio: 'ignore', limits: { pids: 8 }, cgroupParent: ${JSON.stringify(parent)} }).exited);
            if (live.length >= 4) await live.shift();
          } catch (e) { errors.push(e.message); }
        }
        await Promise.all(live);
        parentPort.postMessage(errors);
      })();`;
    const results = await Promise.all([0, 1, 2].map(() => new Promise<string[]>((resolve, reject) => {
      const w = new Worker(script, { eval: true });
      w.once('message', resolve);
      w.once('error', reject);
    })));
    expect(results).toEqual([[], [], []]);
    expect(cgroupsUnder(parent)).toEqual([]);
  });
});

describe('what a terminated worker leaves', () => {
  const parent = `nsjail-wtest-${process.pid}-dead`;
  afterAll(() => removeCgroupParent(parent));

  test("its sandboxes and everything in their cgroups are killed and the cgroups removed; a dieWithParent: false one keeps running, and is reaped and its cgroup removed when it exits", async () => {
    const marker = envMarker('dead');
    const script = `
      const fs = require('node:fs');
      const { parentPort } = require('node:worker_threads');
      const { spawnIsolated } = require(${JSON.stringify(DIST)});
      const base = { stdio: 'ignore', env: { NSJ_MARKER: ${JSON.stringify(marker)} }, limits: { pids: 16 }, cgroupParent: ${JSON.stringify(parent)} };
      const cgroupOf = (pid) => fs.readFileSync('/proc/' + pid + '/cgroup', 'utf8').split('\\n').find((l) => l.split(':')[1] === 'pids').split(':')[2];
      // Without a PID namespace: the background sleep is left in the cgroup when sh dies.
      const dies = spawnIsolated({ ...base, command: '/bin/sh', args: ['-c', 'sleep 1000 & exec sleep 1000'] });
      const keeps = spawnIsolated({ ...base, command: '/bin/sleep', args: ['1000'], dieWithParent: false });
      setTimeout(() => parentPort.postMessage({ dies: dies.pid, keeps: keeps.pid, diesCgroup: cgroupOf(dies.pid), keepsCgroup: cgroupOf(keeps.pid) }), 200);`;
    const worker = new Worker(script, { eval: true });
    try {
      const info = await new Promise<{ dies: number; keeps: number; diesCgroup: string; keepsCgroup: string }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const diesDir = path.join('/sys/fs/cgroup/pids', info.diesCgroup);
      const keepsDir = path.join('/sys/fs/cgroup/pids', info.keepsCgroup);
      // Control: all there while the worker lives (sh, its background sleep, the kept sleep).
      expect(markedByEnv(marker).length).toBe(3);
      expect([fs.existsSync(diesDir), fs.existsSync(keepsDir)]).toEqual([true, true]);
      expect(path.basename(keepsDir)).toMatch(/-k$/);

      await worker.terminate();
      expect(processState(info.dies)).toBeNull(); // killed and reaped with the environment
      expect(fs.existsSync(diesDir)).toBe(false); // the background sleep killed, the cgroup removed
      expect(markedByEnv(marker)).toEqual([info.keeps]);
      expect(fs.existsSync(keepsDir)).toBe(true);

      process.kill(info.keeps, 'SIGKILL');
      // Reaped by the addon's orphan reaper (no zombie left), then its cgroup removed.
      expect(await eventually(() => processState(info.keeps), (s) => s === null)).toBeNull();
      expect(await eventually(() => fs.existsSync(keepsDir), (e) => !e)).toBe(false);
    } finally {
      await worker.terminate();
      killByEnv(marker);
    }
  });

  test("init's status pipe of a sandbox in a terminated worker is closed", async () => {
    const marker = envMarker('init');
    const script = `
      const { parentPort } = require('node:worker_threads');
      const { spawnIsolated } = require(${JSON.stringify(DIST)});
      const c = spawnIsolated({ command: '/bin/sleep', args: ['1000'], stdio: 'ignore', pid: true, init: true, env: { NSJ_MARKER: ${JSON.stringify(marker)} } });
      parentPort.postMessage(c.initPid);`;
    const worker = new Worker(script, { eval: true });
    try {
      const pid = await new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      // init (the sandbox's pid) writes the program's status to its fd 4; our end is the same pipe.
      const pipe = fs.readlinkSync(`/proc/${pid}/fd/4`);
      expect(pipe).toMatch(/^pipe:/);
      const ours = (): string[] => entries('/proc/self/fd').filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) === pipe;
        } catch {
          return false;
        }
      });
      expect(ours().length).toBe(1); // control: held while the worker lives
      await worker.terminate();
      expect(ours()).toEqual([]);
      expect(processState(pid)).toBeNull();
    } finally {
      await worker.terminate();
      killByEnv(marker);
    }
  });
});

describe("fds under Node's worker fd tracking", () => {
  const WARNING = /closed but not opened in unmanaged mode/;

  test('join, veth and init in a worker print no fd warning; control: closing an addon fd with fs.closeSync does', async () => {
    const octet = 100 + (process.pid % 100);
    const script = (control: boolean): string => `
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const fs = require('node:fs');
        const { spawnIsolated } = require(${JSON.stringify(DIST)});
        const { binding } = require(${JSON.stringify(path.join(DIST, 'binding.js'))});
        (async () => {
          if (${control}) fs.closeSync(binding.nsOpen('/proc/self/ns/net').fd);
          await spawnIsolated({ command: '/bin/true', stdio: 'ignore', join: { uts: '/proc/self/ns/uts' } });
          await spawnIsolated({ command: '/bin/true', stdio: 'ignore', pid: true, init: true });
          await spawnIsolated({ command: '/bin/true', stdio: 'ignore', net: true, veth: { hostAddress: '10.251.${octet}.1/30', sandboxAddress: '10.251.${octet}.2/30' } });
          console.log('done');
        })();\`, { eval: true });
      w.on('error', (e) => { console.error(e); process.exitCode = 1; });`;
    const control = await runNode(['-e', script(true)]);
    expect(control.stdout.trim()).toBe('done');
    expect(control.stderr).toMatch(WARNING);
    const r = await runNode(['-e', script(false)]);
    expect({ code: r.code, stdout: r.stdout.trim() }).toEqual({ code: 0, stdout: 'done' });
    expect(r.stderr).not.toMatch(WARNING);
  });
});

describe('spawner threads', () => {
  test("clone in the process's original network namespace after a worker moved its own thread; control: the worker's own spawn is in its new one", async () => {
    // In a fresh process: the spawner threads are process-wide and must not exist yet, so
    // that the worker's spawnIsolatedAsync is the first one.
    const script = `
      const fs = require('node:fs');
      const { Worker } = require('node:worker_threads');
      const { spawnIsolatedAsync } = require(${JSON.stringify(DIST)});
      // The output to its end (the exit may be seen before the last of stdout is read).
      const readAll = (child) => new Promise((resolve) => { let out = ''; child.stdout.on('data', (d) => (out += d)); child.stdout.on('end', () => resolve(out.trim())); });
      const readNs = async (spawn) => {
        const { child } = await spawn({ command: '/bin/readlink', args: ['/proc/self/ns/net'], stdio: ['ignore', 'pipe', 'ignore'] });
        return readAll(child);
      };
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads');
        const { spawnIsolated, spawnIsolatedAsync } = require(${JSON.stringify(DIST)});
        const { unshare } = require(${JSON.stringify(path.join(DIST, 'syscalls.js'))});
        unshare(['net']);
        const read = (child) => new Promise((resolve) => { let out = ''; child.stdout.on('data', (d) => (out += d)); child.stdout.on('end', () => resolve(out.trim())); });
        (async () => {
          const opts = { command: '/bin/readlink', args: ['/proc/self/ns/net'], stdio: ['ignore', 'pipe', 'ignore'] };
          const own = await read(spawnIsolated(opts));
          const async = await read((await spawnIsolatedAsync(opts)).child);
          parentPort.postMessage({ own, async });
        })();\`, { eval: true });
      w.once('message', async (m) => {
        const main = await readNs(spawnIsolatedAsync);
        console.log(JSON.stringify({ host: fs.readlinkSync('/proc/self/ns/net'), main, ...m }));
        await w.terminate();
      });`;
    const r = await runNode(['-e', script]);
    const seen = JSON.parse(r.stdout) as { host: string; main: string; own: string; async: string };
    expect(seen.own).not.toBe(seen.host); // control: the worker's thread did move
    expect(seen.own).toMatch(/^net:\[\d+\]$/);
    expect({ main: seen.main, async: seen.async }).toEqual({ main: seen.host, async: seen.host });
  });
});

describe('a Node process killed with SIGKILL', () => {
  const parent = `nsjail-wtest-${process.pid}-sigkill`;
  afterAll(() => removeCgroupParent(parent));

  test('with 50 spawns in flight leaves no sandbox process, cgroup (once the next process sweeps), mount or veth behind', async () => {
    const marker = envMarker('sigkill');
    const octet = 100 + (process.pid % 100);
    const script = `
      const { spawnIsolated, spawnIsolatedAsync, hostSystemMounts } = require(${JSON.stringify(DIST)});
      const env = { NSJ_MARKER: ${JSON.stringify(marker)} };
      let started = 0;
      const note = () => { if (++started === 50) console.log('started'); };
      for (let i = 0; i < 50; i++) {
        const kind = i % 5;
        const options = { command: '/bin/sh', args: ['-c', 'sleep 1000 & exec sleep 1000'], stdio: 'ignore', env };
        if (kind === 0) { spawnIsolated({ ...options, pid: true, net: true, veth: { hostAddress: '10.252.' + (${octet} + i) % 250 + '.1/30', sandboxAddress: '10.252.' + (${octet} + i) % 250 + '.2/30' } }); note(); }
        else if (kind === 1) spawnIsolatedAsync({ ...options, limits: { pids: 16 }, cgroupParent: ${JSON.stringify(parent)} }).then(note);
        else if (kind === 2) spawnIsolatedAsync({ ...options, mount: true, pid: true, mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'tmpfs', target: '/tmp' }] }).then(note);
        else spawnIsolatedAsync({ ...options, pid: true, net: true, init: kind === 3 }).then(note);
      }
      setInterval(() => {}, 1000);`;
    const child = (await import('node:child_process')).spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const linkPrefix = `nsj${child.pid!.toString(36)}`;
    const mountsBefore = hostMountinfo();
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('started') && resolve());
        child.once('exit', () => reject(new Error('the spawning process exited early')));
      });
      // Control: everything is there.
      expect(markedByEnv(marker).length).toBeGreaterThanOrEqual(50);
      expect(fs.readdirSync('/sys/class/net').filter((n) => n.startsWith(linkPrefix)).length).toBe(10);
      expect(cgroupsUnder(parent).length).toBeGreaterThanOrEqual(10);

      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('close', resolve));
      // The veths go with their namespaces (their sandboxes die by their death signal).
      expect(await eventually(() => fs.readdirSync('/sys/class/net').filter((n) => n.startsWith(linkPrefix)), (l) => l.length === 0, 20_000)).toEqual([]);
      // Without a PID namespace the background sleeps outlive their sandboxes in their
      // cgroups; the next process that makes a cgroup under the same parent kills them and
      // removes the dead owner's cgroups.
      const sweeper = spawnIsolated({ command: '/bin/true', stdio: 'ignore', limits: { pids: 4 }, cgroupParent: parent });
      await sweeper;
      expect(await eventually(() => markedByEnv(marker), (p) => p.length === 0)).toEqual([]);
      expect(cgroupsUnder(parent)).toEqual([]);
      expect(hostMountinfo()).toBe(mountsBefore);
      expect(await lingeringZombies()).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      killByEnv(marker);
    }
  });
});
