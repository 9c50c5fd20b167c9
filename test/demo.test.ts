/** `npm start` (the seed walkthrough) runs, shows what the seed shows, and cleans up. */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

test('the demo shows PID 1, parent 0, only lo, and removes its rootfs', () => {
  const out = childProcess.execFileSync(process.execPath, [path.join(__dirname, '..', 'dist', 'demo.js')], { encoding: 'utf8' });
  expect(out).toContain('PID: 1   PPID: 0');
  expect(out).toContain('hostname: sandbox');
  expect(out).toMatch(/network interfaces: lo\n/);
  expect(out).toMatch(/root listing: bin lib lib64 proc usr/);
  expect(out).toContain('"exitCode":0');
  const root = /A rootfs in (\S+):/.exec(out)![1];
  expect(fs.existsSync(root)).toBe(false);
});

test("the README's untrusted-code example runs as written (with a temp dir for the submission)", async () => {
  const { runIsolated, hostSystemMounts, seccompPresets } = await import('../lib');
  const { makeTempDir } = await import('./helpers');
  const submission = makeTempDir('nsjail-node-readme-');
  try {
    // As /srv/submission would be: readable by others. As root the sandbox runs on a host id of
    // its own and reads a read-only bind as an unprivileged user (mkdtemp makes 0700).
    fs.chmodSync(submission.dir, 0o755);
    fs.writeFileSync(path.join(submission.dir, 'main.sh'), 'echo "uid $(id -u) pid $$"; ls /work');
    const result = await runIsolated({
      command: '/bin/sh', args: ['/work/main.sh'],
      pid: true, net: true, mount: true, uts: true, ipc: true, user: true, init: true,
      mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'dev' }, { type: 'tmpfs', target: '/tmp', size: '64m' },
               { type: 'bind', source: submission.dir, target: '/work', readonly: true }],
      limits: { memory: 256 * 2 ** 20, pids: 64, wallTime: 5000, cpuTime: 2 },
      seccomp: seccompPresets.sandboxDefault,
      maxBuffer: 1 << 20,
    });
    expect(result).toMatchObject({ status: 'ok', exitCode: 0, stdout: 'uid 0 pid 2\nmain.sh\n' });
    expect(result.memoryPeakBytes).toBeGreaterThan(0);
  } finally {
    submission.cleanup();
  }
});

test("the README's server-in-its-own-network-namespace example runs as written", async () => {
  const { runIsolated } = await import('../lib');
  const SERVER_AND_CLIENT = `
  const http = require('node:http');
  http.createServer((req, res) => res.end('pong')).listen(8080, '127.0.0.1', () =>
    http.get('http://127.0.0.1:8080/', (res) => { res.pipe(process.stdout); res.on('end', () => process.exit(0)); }));`;
  const { stdout, exitCode } = await runIsolated({ command: process.execPath, args: ['-e', SERVER_AND_CLIENT], net: true, pid: true });
  expect({ stdout, exitCode }).toEqual({ stdout: 'pong', exitCode: 0 });
});
