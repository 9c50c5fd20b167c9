/** The command line -> spawnIsolated options, without starting anything: the mapping each flag family makes. */
import { parseCommandLine, type CommandLine } from '../lib/cli';
import { UsageError } from '../lib/cli-flags';

const run = (argv: string[], env: NodeJS.ProcessEnv = { HOME: '/root', PATH: '/usr/bin' }): Extract<CommandLine, { kind: 'run' }> => {
  const line = parseCommandLine(argv, env);
  if (line.kind !== 'run') throw new Error(`expected a run, got ${line.kind}`);
  return line;
};

describe('parseCommandLine', () => {
  test('a bubblewrap command line maps to the options it means', () => {
    const line = run([
      '--unshare-all', '--share-net', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin', '--bind-try', '/srv/data', '/data',
      '--dev-bind', '/dev/fuse', '/dev/fuse', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--dir', '/work',
      '--chdir', '/work', '--hostname', 'box', '--clearenv', '--setenv', 'PATH', '/usr/bin', '--uid', '1000', '--gid', '1000',
      '--cap-add', 'CAP_NET_BIND_SERVICE', '--die-with-parent', '--new-session', '--memory', '64M', '--pids', '32', '--time', '2.5',
      '--json-status-fd', '2', 'python3', '-c', 'print(1)',
    ]);
    expect(line.jsonStatusFd).toBe(2);
    expect(line.options).toEqual({
      command: 'python3', args: ['-c', 'print(1)'],
      user: true, pid: true, net: false, ipc: true, uts: true, cgroup: true, mount: true, init: true,
      mounts: [
        { type: 'bind', source: '/usr', target: '/usr', nosuid: true, nodev: true, readonly: true },
        { type: 'symlink', target: '/bin', to: 'usr/bin' },
        { type: 'bind', source: '/srv/data', target: '/data', nosuid: true, nodev: true, try: true },
        { type: 'bind', source: '/dev/fuse', target: '/dev/fuse', nosuid: true },
        { type: 'proc', target: '/proc' },
        { type: 'dev', target: '/dev' },
        { type: 'tmpfs', target: '/tmp' },
        { type: 'dir', target: '/work' },
      ],
      cwd: '/work', hostname: 'box', env: { PATH: '/usr/bin' }, uid: 1000, gid: 1000, capabilities: ['CAP_NET_BIND_SERVICE'],
      dieWithParent: true, newSession: true, limits: { memory: 64 * 1024 * 1024, pids: 32, wallTime: 2500 }, stdio: 'inherit',
    });
  });

  test('the environment is the caller\'s, edited in order', () => {
    expect(run(['true']).options.env).toEqual({ HOME: '/root', PATH: '/usr/bin' });
    expect(run(['--unsetenv', 'HOME', '--setenv', 'A', '1', 'true']).options.env).toEqual({ PATH: '/usr/bin', A: '1' });
    expect(run(['--setenv', 'A', '1', '--clearenv', 'true']).options.env).toEqual({});
  });

  test('no flags: no namespace, no init, nothing but the command', () => {
    expect(run(['ls', '-l']).options).toEqual({ command: 'ls', args: ['-l'], env: { HOME: '/root', PATH: '/usr/bin' }, stdio: 'inherit' });
  });

  test('--as-pid-1 turns the init off; sizes and ids are parsed', () => {
    expect(run(['--pid', '--as-pid-1', 'true']).options).toMatchObject({ pid: true, init: false });
    expect(run(['--memory', '512k', 'true']).options.limits).toEqual({ memory: 512 * 1024 });
    expect(run(['--memory', '1048576', 'true']).options.limits).toEqual({ memory: 1048576 });
    expect(run(['--memory', '1.5G', 'true']).options.limits).toEqual({ memory: 1.5 * 1024 ** 3 });
  });

  test('help, version and doctor', () => {
    expect(parseCommandLine(['--help'])).toEqual({ kind: 'help' });
    expect(parseCommandLine(['--version'])).toEqual({ kind: 'version' });
    expect(parseCommandLine(['doctor'])).toEqual({ kind: 'doctor', json: false });
    expect(parseCommandLine(['doctor', '--json'])).toEqual({ kind: 'doctor', json: true });
    // A program called doctor: after -- (or by path).
    expect(run(['--', 'doctor']).options.command).toBe('doctor');
  });

  test('mistakes are UsageErrors', () => {
    expect(() => parseCommandLine(['--nope', 'true'])).toThrow(UsageError);
    expect(() => parseCommandLine(['--memory', '64X', 'true'])).toThrow("--memory needs a size such as 64M, 512K or 1G, got '64X'");
  });
});
