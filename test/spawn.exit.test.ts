/** Exit codes, signals, kill() and the standard streams. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnIsolated } from '../lib';
import { collect, makeTempDir, run, sh } from './helpers';

describe('exit status', () => {
  test('every exit code 0..255 comes back exactly', async () => {
    const codes = Array.from({ length: 256 }, (_, i) => i);
    const statuses = await Promise.all(codes.map((code) => spawnIsolated({ command: '/bin/sh', args: ['-c', `exit ${code}`], stdio: 'ignore' })));
    expect(statuses.map((s) => s.exitCode)).toEqual(codes);
    expect(statuses.every((s) => s.signal === null)).toBe(true);
  });

  test.each(['SIGSEGV', 'SIGTERM', 'SIGUSR1', 'SIGABRT'] as const)('death by %s comes back as that signal', async (signal) => {
    const status = await spawnIsolated({ command: '/bin/sh', args: ['-c', `kill -${signal.slice(3)} $$`], stdio: 'ignore' });
    expect(status).toMatchObject({ exitCode: null, signal });
  });

  test('kill() ends a PID-1 program (default SIGKILL) and reports it', async () => {
    const child = spawnIsolated({ command: 'sleep', args: ['1000'], pid: true, stdio: 'ignore' });
    expect(child.kill()).toBe(true);
    expect(await child).toMatchObject({ pid: child.pid, exitCode: null, signal: 'SIGKILL' });
    expect(child.status).toMatchObject({ pid: child.pid, exitCode: null, signal: 'SIGKILL' });
    // Once reaped, there is nothing left to signal.
    expect(child.kill('SIGTERM')).toBe(false);
  });

  test('kill(signal) delivers that signal to a program that handles it', async () => {
    const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done'], stdio: ['ignore', 'pipe', 'inherit'] });
    const out = collect(child.stdout);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    expect(child.kill('SIGTERM')).toBe(true);
    expect((await child).exitCode).toBe(7);
    expect(await out).toBe('ready\ngot-term\n');
  });

  test('kill() rejects a bad signal name', async () => {
    const child = spawnIsolated({ command: 'sleep', args: ['1000'], stdio: 'ignore' });
    try {
      expect(() => child.kill('SIGNOPE' as NodeJS.Signals)).toThrow(/signal name/);
    } finally {
      child.kill();
      await child;
    }
  });
});

describe('stdio', () => {
  test('pipes carry more than 1 MiB each way, stdout and stderr apart', async () => {
    const input = crypto.randomBytes(3 * 1024 * 1024);
    const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'tee /dev/stderr'], pid: true, net: true });
    const [stdout, stderr] = [child.stdout!, child.stderr!].map((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      return new Promise<Buffer>((resolve) => s.on('end', () => resolve(Buffer.concat(chunks))));
    });
    child.stdin!.end(input);
    expect((await child).exitCode).toBe(0);
    expect((await stdout).equals(input)).toBe(true);
    expect((await stderr).equals(input)).toBe(true);
  });

  test("'ignore' gives an empty pipe (not the host's /dev/null); a file descriptor is written to directly", async () => {
    const { dir, cleanup } = makeTempDir();
    const file = path.join(dir, 'out');
    const fd = fs.openSync(file, 'w');
    try {
      const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'cat; echo to-file; readlink /proc/self/fd/0'], stdio: ['ignore', fd, 'ignore'] });
      expect(child.stdin).toBeNull();
      expect(child.stdout).toBeNull();
      expect(child.stderr).toBeNull();
      expect((await child).exitCode).toBe(0);
      expect(fs.readFileSync(file, 'utf8')).toMatch(/^to-file\npipe:\[\d+\]\n$/);
    } finally {
      fs.closeSync(fd);
      cleanup();
    }
  });

  test('no descriptor of the parent leaks into the program beyond 0, 1, 2', async () => {
    const { dir, cleanup } = makeTempDir();
    // A descriptor opened without O_CLOEXEC (as a careless addon might) must still not leak.
    const fd = fs.openSync(path.join(dir, 'leak'), 'w');
    try {
      const r = await sh('ls /proc/self/fd');
      // ls itself opens one descriptor for the directory it lists.
      expect(r.stdout.trim().split('\n').map(Number).filter((n) => n > 3)).toEqual([]);
    } finally {
      fs.closeSync(fd);
      cleanup();
    }
  });

  test('the program starts in a new session with no signal blocked or ignored', async () => {
    const r = await sh('grep -E "^(SigBlk|SigIgn)" /proc/self/status; ps -o sid= -p $$; echo $$');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^SigBlk:\s+0+$/);
    expect(lines[1]).toMatch(/^SigIgn:\s+0+$/);
    expect(lines[2].trim()).toBe(lines[3].trim()); // session id == its own pid
  });

  test.each(['clone3', 'clone'])('with the %s engine, no disposition of this process reaches the program', async (engine) => {
    // This process ignores SIGPIPE (Node does) and here also catches SIGUSR2 and SIGHUP; the
    // child resets what /proc/self/status says is not SIG_DFL, with or without CLONE_CLEAR_SIGHAND.
    const handler = (): void => {};
    process.on('SIGUSR2', handler);
    process.on('SIGHUP', handler);
    process.env.NSJAIL_NODE_CLONE = engine;
    try {
      const ours = fs.readFileSync('/proc/self/status', 'utf8');
      expect(ours).not.toMatch(/^SigIgn:\s+0+$/m); // the test would prove nothing otherwise
      // (Caught handlers end at execve anyway; what must not run is one in the shared-memory
      // child before it, which the reset by the same mask prevents.)
      const r = await run({ command: 'grep', args: ['-E', '^(SigBlk|SigIgn)', '/proc/self/status'], pid: true });
      expect(r.stdout.trim().split('\n').map((l) => l.replace(/\s+/, ' '))).toEqual(['SigBlk: 0000000000000000', 'SigIgn: 0000000000000000']);
    } finally {
      delete process.env.NSJAIL_NODE_CLONE;
      process.off('SIGUSR2', handler);
      process.off('SIGHUP', handler);
    }
  });

  test('run() collects output of a sandbox', async () => {
    const r = await run({ command: 'echo', args: ['hello', 'world'] });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'hello world\n', stderr: '' });
  });
});
