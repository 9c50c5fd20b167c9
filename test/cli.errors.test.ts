/** The command line's errors speak in flags, not library option names, and every limit that ends a program says so. */
import * as child_process from 'node:child_process';
import { BIN, cli } from './cli-helpers';

/** Runs nsjail-node as uid 65534 (setpriv), as an unprivileged user would. */
function cliAsNobody(args: readonly string[]): { status: number | null; stderr: string } {
  const r = child_process.spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args], { encoding: 'utf8', timeout: 30000 });
  return { status: r.status, stderr: r.stderr };
}

test('unprivileged, a namespace without a user namespace: the advice names --unshare-user, not user: true', () => {
  const r = cliAsNobody(['--unshare-net', '--', '/bin/true']);
  expect(r.status).toBe(125);
  expect(r.stderr).toContain('add --unshare-user');
  expect(r.stderr).not.toContain('user: true');
});

test('unprivileged, a cgroup limit: the advice names delegation and the flags that need no cgroup', () => {
  const r = cliAsNobody(['--unshare-user', '--memory', '64M', '--', '/bin/true']);
  expect(r.status).toBe(125);
  expect(r.stderr).toContain('EACCES');
  expect(r.stderr).toContain('Delegate=yes');
  expect(r.stderr).toContain('without the limits that need a cgroup (--memory, --pids, --cpus; --time, --cpu-time and --rlimit work without one)');
  expect(r.stderr).not.toContain('limits.');
});

test('--cpu-time: a program killed by the CPU-time limit says so on stderr', async () => {
  const r = await cli(['--cpu-time', '1', '--', '/bin/sh', '-c', 'while :; do :; done']);
  expect(r.code).toBe(128 + 24); // SIGXCPU, as a shell reports it
  expect(r.stderr).toContain('the program was killed: CPU-time limit of 1 s (--cpu-time) reached');
});
