/**
 * The limit flags of `nsjail-node` end to end: --memory and --pids through the cgroups this
 * machine has (v1 memory and pids), --time through the parent's wall clock.
 */
import { spawnIsolated, type ExitStatus } from '../lib';
import { cli, cliSh } from './cli-helpers';

const MiB = 1024 * 1024;

// The limit file of the program's own memory or pids cgroup, v1 or v2, found from inside.
const cgroupFile = (controller: string, v1File: string, v2File: string): string =>
  `p=$(grep -E '^[0-9]+:([^:]*,)?${controller}(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3); ` +
  `if [ -n "$p" ]; then cat /sys/fs/cgroup/${controller}$p/${v1File}; else cat /sys/fs/cgroup$(grep '^0::' /proc/self/cgroup | cut -d: -f3)/${v2File}; fi`;

describe('limit flags', () => {
  test('--memory SIZE becomes the program\'s memory cgroup limit', async () => {
    for (const [size, bytes] of [['32M', 32 * MiB], ['48m', 48 * MiB], ['65536K', 64 * MiB], ['1G', 1024 * MiB]] as const) {
      const r = await cliSh(['--memory', size], cgroupFile('memory', 'memory.limit_in_bytes', 'memory.max'));
      expect([size, r.code, r.stdout]).toEqual([size, 0, `${bytes}\n`]);
    }
  });

  test('--pids N becomes the pids cgroup limit, and a fork past it fails', async () => {
    const r = await cli(['--json-status-fd', '3', '--pids', '5', '/bin/sh', '-c',
      `${cgroupFile('pids', 'pids.max', 'pids.max')}; for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait`]);
    expect(r.stdout.split('\n')[0]).toBe('5');
    expect(r.stderr).toMatch(/fork/i);
    expect(JSON.parse(r.fd3)).toMatchObject({ pidsLimitHit: true });
  });

  test('past --memory the kernel kills the program: 137, status "memory", and a note on stderr', async () => {
    const r = await cli(['--json-status-fd', '3', '--memory', '16M', 'tail', '/dev/zero']);
    expect(r.code).toBe(137);
    expect(r.stderr).toBe('nsjail-node: the program was killed by the kernel: out of memory under the --memory limit\n');
    const status = JSON.parse(r.fd3) as ExitStatus;
    expect(status).toMatchObject({ exitCode: null, signal: 'SIGKILL', status: 'memory', oomKilled: true, killedBy: null });
    // The same sandbox through the API ends the same way.
    const api = await spawnIsolated({ command: 'tail', args: ['/dev/zero'], limits: { memory: 16 * MiB }, stdio: 'ignore' });
    expect(api).toMatchObject({ exitCode: status.exitCode, signal: status.signal, status: status.status, oomKilled: status.oomKilled, killedBy: status.killedBy });
  });

  test('past --time SECONDS the whole sandbox is killed: 137, status "timeout"', async () => {
    const r = await cli(['--json-status-fd', '3', '--unshare-pid', '--time', '0.3', '/bin/sh', '-c', 'sleep 60 & sleep 60']);
    expect(r.code).toBe(137);
    expect(r.stderr).toBe('nsjail-node: the program was killed: wall-time limit of 0.3 s (--time) reached\n');
    expect(JSON.parse(r.fd3)).toMatchObject({ exitCode: null, signal: 'SIGKILL', status: 'timeout', killedBy: 'wallTime' });
  });

  test('a program that ends in time is not touched by --time', async () => {
    const r = await cli(['--json-status-fd', '3', '--time', '30', '--memory', '64M', '--pids', '16', '/bin/sh', '-c', 'exit 9']);
    expect(r).toMatchObject({ code: 9, stderr: '' });
    expect(JSON.parse(r.fd3)).toMatchObject({ exitCode: 9, status: 'exit', killedBy: null, oomKilled: false, pidsLimitHit: false });
  });

  test.each([
    [['--memory', '12Q'], "nsjail-node: --memory needs a size such as 64M, 512K or 1G, got '12Q'"],
    [['--memory', '0'], "nsjail-node: --memory must be a positive size, got '0'"],
    [['--pids', '0'], 'nsjail-node: --pids must be between 1 and 2147483647, got 0'],
    [['--pids', 'many'], "nsjail-node: --pids needs a whole number, got 'many'"],
    [['--time', '-1'], "nsjail-node: --time needs a positive number of seconds, got '-1'"],
    [['--time', '0'], "nsjail-node: --time needs a positive number of seconds, got '0'"],
  ])('%j is a usage error', async (flags, line) => {
    const r = await cli([...flags, '/bin/true']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(line);
  });

  test('--rlimit NAME=VALUE and --cpu-time show in /proc/self/limits; --cpus sets the CFS quota', async () => {
    const r = await cliSh(['--rlimit', 'nofile=64', '--rlimit', 'core=unlimited', '--cpu-time', '3', '--cpus', '0.5'],
      `grep -E '^Max (open files|core file size|cpu time)' /proc/self/limits | tr -s ' '; ${cgroupFile('cpu', 'cpu.cfs_quota_us', 'cpu.max')}; ${cgroupFile('cpu', 'cpu.cfs_period_us', 'cpu.max')}`);
    expect(r.code).toBe(0);
    const [cpu, core, files, quota, period] = r.stdout.trim().split('\n').map((l) => l.trim());
    expect(cpu).toBe('Max cpu time 3 4 seconds');
    expect(core).toBe('Max core file size unlimited unlimited bytes');
    expect(files).toBe('Max open files 64 64 files');
    expect(Number(quota) / Number(period.split(' ').pop())).toBe(0.5);
  });

  test('bad --rlimit, --cpus and --cpu-time values are usage errors (exit 2)', async () => {
    for (const [flags, message] of [
      [['--rlimit', 'nofiles=3'], /unknown resource 'nofiles' \(did you mean nofile\?\)/],
      [['--rlimit', 'nofile'], /--rlimit needs NAME=VALUE/],
      [['--cpus', 'half'], /--cpus needs a positive number/],
      [['--cpu-time', '1.5'], /--cpu-time needs a whole number/],
    ] as const) {
      const r = await cli([...flags, '/bin/true']);
      expect([flags, r.code]).toEqual([flags, 2]);
      expect(r.stderr).toMatch(message);
    }
  });

  test('--no-loopback leaves lo down in the new network namespace', async () => {
    const up = await cliSh(['--unshare-net'], 'ip -o link show lo');
    const down = await cliSh(['--unshare-net', '--no-loopback'], 'ip -o link show lo');
    expect(up.stdout).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    expect(down.stdout).toMatch(/<LOOPBACK> .* state DOWN/);
  });
});

