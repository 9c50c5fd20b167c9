/** The identity flags of `nsjail-node` end to end: --uid/--gid, --cap-add/--cap-drop, --seccomp FD, --as-pid-1 and the default init. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CAPABILITY_NAMES } from '../lib/capabilities';
import { compileSeccomp } from '../lib/seccomp';
import { hostIdRange } from '../lib/hostids';
import { cli, cliSh } from './cli-helpers';
import { makeTempDir } from './helpers';

const CAPS = 'grep -E "^Cap(Eff|Bnd|Amb):" /proc/self/status | cut -f2';

/** The bits of a capability set (hex, as /proc/PID/status shows it) by name. */
function capNames(hex: string): string[] {
  const mask = BigInt(`0x${hex}`);
  return CAPABILITY_NAMES.filter((_, n) => (mask >> BigInt(n)) & 1n);
}

const lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));

describe('--uid and --gid', () => {
  test('without a user namespace: the host ids, with every capability gone', async () => {
    const r = await cliSh(['--uid', '1000', '--gid', '1001'], `id -u; id -g; id -G; ${CAPS}`);
    expect(r).toMatchObject({ code: 0, stdout: '1000\n1001\n1001\n0000000000000000\n0000000000000000\n0000000000000000\n' });
  });

  test('with --unshare-user: ids inside, mapped to a host id of its own (root) or the caller', async () => {
    const r = await cliSh(['--unshare-user', '--uid', '5', '--gid', '6'], 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map');
    expect(r.code).toBe(0);
    const [uid, gid, uidMap, gidMap] = r.stdout.trim().split('\n');
    expect([uid, gid]).toEqual(['5', '6']);
    const outside = process.getuid!() === 0 ? uidMap.trim().split(/\s+/)[1] : String(process.getuid!());
    if (process.getuid!() === 0) expect(Number(outside)).toBeGreaterThanOrEqual(hostIdRange().base);
    expect(uidMap.trim().split(/\s+/)).toEqual(['5', outside, '1']);
    expect(gidMap.trim().split(/\s+/)).toEqual(['6', process.getuid!() === 0 ? outside : String(process.getgid!()), '1']);
  });

  test.each([
    [['--uid', '1000', '/bin/true'], "nsjail-node: --uid needs --gid too without --unshare-user (switching one id alone would keep the other, e.g. root's group)"],
    [['--gid', '1000', '/bin/true'], "nsjail-node: --gid needs --uid too without --unshare-user (switching one id alone would keep the other, e.g. root's group)"],
    [['--uid', '-1', '/bin/true'], "nsjail-node: --uid needs a whole number, got '-1'"],
    [['--uid', '4294967295', '--gid', '0', '/bin/true'], 'nsjail-node: --uid must be between 0 and 4294967294, got 4294967295'],
  ])('%j is a usage error', async (args, line) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(line);
  });
});

describe('--cap-add and --cap-drop', () => {
  test('by default even root keeps no capability', async () => {
    const r = await cliSh([], CAPS);
    expect(r).toMatchObject({ code: 0, stdout: '0000000000000000\n0000000000000000\n0000000000000000\n' });
  });

  test('they apply in order, with or without CAP_ and in any case', async () => {
    const r = await cliSh(['--uid', '1000', '--gid', '1000', '--cap-add', 'net_admin', '--cap-add', 'CAP_NET_RAW', '--cap-add', 'Cap_Chown', '--cap-drop', 'cap_net_raw'], CAPS);
    expect(r.code).toBe(0);
    // Kept in every set, ambient too: a non-root uid keeps them across execve.
    expect(r.stdout.trim().split('\n').map(capNames)).toEqual(Array(3).fill(['CAP_CHOWN', 'CAP_NET_ADMIN']));
  });

  test('ALL: without a user namespace what this process holds, with one every capability of the kernel', async () => {
    const held = /^CapPrm:\s+([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
    const host = await cliSh(['--cap-add', 'ALL', '--cap-drop', 'SYS_ADMIN'], CAPS);
    expect(host.code).toBe(0);
    expect(capNames(host.stdout.split('\n')[0])).toEqual(capNames(held).filter((c) => c !== 'CAP_SYS_ADMIN'));
    const inside = await cliSh(['--unshare-user', '--cap-add', 'ALL'], CAPS);
    expect(inside.code).toBe(0);
    expect(capNames(inside.stdout.split('\n')[0])).toEqual(CAPABILITY_NAMES.slice(0, lastCap + 1));
    expect(await cliSh(['--cap-add', 'ALL', '--cap-drop', 'ALL'], CAPS)).toMatchObject({ code: 0, stdout: '0000000000000000\n0000000000000000\n0000000000000000\n' });
  });

  test('a name that is no capability is a usage error with the nearest name', async () => {
    const r = await cli(['--cap-add', 'NET_ADMN', '/bin/true']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe("nsjail-node: --cap-add: 'NET_ADMN' is not a capability (did you mean CAP_NET_ADMIN?)");
  });
});

describe('--seccomp FD', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => {
    tmp = makeTempDir('nsjail-node-cli-seccomp-');
  });
  afterEach(() => tmp.cleanup());

  /** Writes `bytes` to a file and opens it: the fd is handed to nsjail-node as its fd 4. */
  function programFd(bytes: Buffer): number {
    const file = path.join(tmp.dir, 'filter.bpf');
    fs.writeFileSync(file, bytes);
    return fs.openSync(file, 'r');
  }

  test('the BPF program read from FD filters the program', async () => {
    const bpf = compileSeccomp({ defaultAction: 'allow', rules: [{ syscalls: ['mkdir', 'mkdirat'], action: { errno: 'EPERM' } }] });
    const fd = programFd(bpf);
    try {
      const r = await cli(['--seccomp', '4', '/bin/sh', '-c', `mkdir ${tmp.dir}/made; echo $?; grep ^Seccomp: /proc/self/status`], { fds: [fd] });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^1\nSeccomp:\s+2\n$/);
      expect(r.stderr).toMatch(/Operation not permitted/);
      expect(fs.existsSync(path.join(tmp.dir, 'made'))).toBe(false);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('a program whose size is not whole instructions is a usage error', async () => {
    const fd = programFd(Buffer.alloc(12));
    try {
      const r = await cli(['--seccomp', '4', '/bin/true'], { fds: [fd] });
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe('nsjail-node: Invalid seccomp data, must be multiple of 8');
    } finally {
      fs.closeSync(fd);
    }
  });

  test('an fd that is not open is a usage error', async () => {
    const r = await cli(['--seccomp', '99', '/bin/true']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe("nsjail-node: Can't read seccomp data: Bad file descriptor");
  });
});

describe('init and --as-pid-1', () => {
  test('with --unshare-pid an init is PID 1: it reaps orphans and passes the program\'s end through', async () => {
    // The orphan (a background sleep whose parent exits) is reaped by init, not left a zombie.
    const r = await cli(['--unshare-pid', '--proc', '/proc', '--dev', '/dev', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib',
      '--symlink', 'usr/lib64', '/lib64', '/bin/sh', '-c', '(sleep 0.1 &); sleep 0.3; cat /proc/1/comm; grep -l "^State:.*Z" /proc/[0-9]*/status | wc -l; kill -TERM $$']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(143);
    expect(r.stdout).toBe('nsjail_node_ini\n0\n');
  });

  test('--as-pid-1 needs --unshare-pid', async () => {
    const r = await cli(['--as-pid-1', '/bin/true']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('nsjail-node: --as-pid-1 needs --unshare-pid');
  });
});
