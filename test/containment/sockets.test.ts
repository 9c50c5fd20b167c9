/**
 * Containment: network isolation covers every socket family. AF_VSOCK is not per network
 * namespace (its ports and peers are the machine's; on a VM, the hypervisor's services), so
 * with `net: true` a seccomp filter refuses it and every family a network namespace does
 * not isolate, and io_uring_setup (IORING_OP_SOCKET would bypass the filter).
 * seccompPresets.sandboxDefault allows only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK.
 *
 * vsock is only ever bound on VMADDR_CID_ANY at a port this test picks: nothing connects.
 */
import * as fs from 'node:fs';
import { spawnIsolated } from '../../lib';
import { compileSocketFamilyFilter, ISOLATED_SOCKET_FAMILIES } from '../../lib/socket-families';
import { nativeSeccompTarget } from '../../lib/seccomp';
import { catchError, collect } from '../helpers';
import { buildProbe, PROBE, recommended, runAsNobody, runProbe, type Outcome } from './handedin-helpers';

const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16, AF_PACKET = 17, AF_VSOCK = 40;
const SOCK_STREAM = 1, SOCK_DGRAM = 2;

// The kernel here has vsock (this VM's /proc/net/protocols lists it); a kernel without it
// refuses the family by itself, and the control cannot show anything.
const HAS_VSOCK = /^AF_VSOCK /m.test(fs.readFileSync('/proc/net/protocols', 'utf8'));
const vsockTest = HAS_VSOCK ? test : test.skip;
const IO_URING_ENABLED = (() => {
  try {
    return fs.readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() === '0';
  } catch {
    return true; // before Linux 6.6 there is no such switch
  }
})();
const ioUringTest = IO_URING_ENABLED ? test : test.skip;

let probe: { dir: string; cleanup: () => void };
beforeAll(() => {
  probe = buildProbe();
});
afterAll(() => probe?.cleanup());

const out = (o: Outcome): string => `${o.error ? `${o.error.name}: ${o.error.message}` : ''}${o.stdout ?? ''}${o.stderr ?? ''}`.trim();
const socket = (family: number, type: number): string[] => ['socket', String(family), String(type)];
// A port of its own per run, away from well-known services.
const vsockPort = (): number => 40000 + Math.floor(Math.random() * 20000);

/** Starts a sandbox that binds vsock PORT and holds it; resolves once it said whether it could. */
function holdVsock(port: number, options: object): { said: Promise<string>; stop: () => Promise<unknown> } {
  const child = spawnIsolated({ command: PROBE, args: ['vsockbind', String(port), '60'], ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const said = new Promise<string>((resolve) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d;
      if (text.includes('\n')) resolve(text.trim());
    });
    child.stdout!.on('end', () => resolve(text.trim()));
  });
  return { said, stop: () => (child.kill(), child.exited) };
}

describe('net: true refuses socket families a network namespace does not isolate', () => {
  vsockTest(vsockTest === test ? 'as root, in the recommended sandbox: socket(AF_VSOCK) fails with EAFNOSUPPORT (with and without init, with and without a seccomp policy of its own)' : 'SKIPPED: this kernel has no AF_VSOCK', async () => {
    const options = recommended(probe.dir);
    expect(out(await runProbe({ args: socket(AF_VSOCK, SOCK_STREAM), options }))).toBe('EAFNOSUPPORT');
    expect(out(await runProbe({ args: socket(AF_VSOCK, SOCK_DGRAM), options: { ...options, init: false } }))).toBe('EAFNOSUPPORT');
    // The net filter alone, and under a policy that allows everything: both filters apply.
    const { seccomp, ...noPolicy } = options;
    expect(seccomp).toBeDefined();
    expect(out(await runProbe({ args: ['vsockbind', String(vsockPort()), '0'], options: noPolicy }))).toBe('EAFNOSUPPORT');
    expect(out(await runProbe({ args: socket(AF_VSOCK, SOCK_STREAM), options: { ...noPolicy, seccomp: { defaultAction: 'allow' } } }))).toBe('EAFNOSUPPORT');
    expect(out(await runProbe({ args: socket(AF_VSOCK, SOCK_STREAM), options: { ...noPolicy, init: false, seccomp: { defaultAction: 'allow' } } }))).toBe('EAFNOSUPPORT');
  });

  vsockTest(vsockTest === test ? 'control: with socketFamilyFilter: false a sandbox binds a vsock port, and another sandbox in its own network namespace then gets EADDRINUSE for it: vsock ports are the machine\'s' : 'SKIPPED: this kernel has no AF_VSOCK', async () => {
    const { seccomp: _policy, ...options } = { ...recommended(probe.dir), socketFamilyFilter: false };
    const port = vsockPort();
    const holder = holdVsock(port, options);
    try {
      expect(await holder.said).toBe('ok');
      expect(out(await runProbe({ args: ['vsockbind', String(port), '0'], options }))).toBe('EADDRINUSE');
    } finally {
      await holder.stop();
    }
    // And with the filter on, the same port in the same situation cannot even be tried.
    const again = holdVsock(port, { ...options, socketFamilyFilter: true });
    try {
      expect(await again.said).toBe('EAFNOSUPPORT');
    } finally {
      await again.stop();
    }
  });

  test('the families a network namespace isolates still work: AF_UNIX (socket and socketpair), AF_INET, AF_INET6, AF_NETLINK', async () => {
    const { seccomp: _policy, ...options } = recommended(probe.dir);
    for (const args of [socket(AF_UNIX, SOCK_STREAM), ['socketpair', String(AF_UNIX), String(SOCK_STREAM)], socket(AF_INET, SOCK_STREAM), socket(AF_INET6, SOCK_DGRAM), socket(AF_NETLINK, SOCK_DGRAM)]) {
      expect(`${args.join(' ')}: ${out(await runProbe({ args, options }))}`).toBe(`${args.join(' ')}: ok`);
    }
  });

  ioUringTest(ioUringTest === test ? 'io_uring_setup fails with EPERM under the filter (IORING_OP_SOCKET would create sockets unseen); control: it works with socketFamilyFilter: false' : 'SKIPPED: io_uring is disabled on this host (kernel.io_uring_disabled)', async () => {
    const { seccomp: _policy, ...options } = recommended(probe.dir);
    expect(out(await runProbe({ args: ['io_uring'], options }))).toBe('EPERM');
    expect(out(await runProbe({ args: ['io_uring'], options: { ...options, socketFamilyFilter: false } }))).toBe('ok');
  });

  test('socketFamilyFilter: true adds the filter without a new network namespace; the default without net is none', async () => {
    const base = { mount: true, pid: true, mounts: recommended(probe.dir).mounts };
    expect(out(await runProbe({ args: socket(AF_VSOCK, SOCK_STREAM), options: { ...base, socketFamilyFilter: true } }))).toBe('EAFNOSUPPORT');
    if (HAS_VSOCK) expect(out(await runProbe({ args: socket(AF_VSOCK, SOCK_STREAM), options: base }))).toBe('ok');
  });

  test('bad input: a non-boolean socketFamilyFilter is a TypeError; noNewPrivs: false with the filter is a RangeError naming the way out', () => {
    expect(catchError(() => spawnIsolated({ command: '/bin/true', net: true, socketFamilyFilter: 'no' as unknown as boolean }))).toMatchObject({
      name: 'TypeError', message: "spawnIsolated: options.socketFamilyFilter must be a boolean, got the string 'no'",
    });
    const err = catchError(() => spawnIsolated({ command: '/bin/true', net: true, noNewPrivs: false }));
    expect(err).toBeInstanceOf(RangeError);
    expect(err.message).toMatch(/^spawnIsolated: options\.noNewPrivs must not be false here: net: true installs a seccomp filter .*AF_VSOCK.*socketFamilyFilter: false/);
    expect(catchError(() => spawnIsolated({ command: '/bin/true', socketFamilyFilter: true, noNewPrivs: false })).message).toMatch(/socketFamilyFilter: true installs a seccomp filter/);
  });

  test('noNewPrivs: false works with socketFamilyFilter: false, or with CAP_SYS_ADMIN kept (the filter is then installed under it)', async () => {
    const status = async (options: object): Promise<string> => {
      const child = spawnIsolated({ command: '/bin/sh', args: ['-c', `grep -E '^(NoNewPrivs|Seccomp_filters):' /proc/self/status; ${PROBE} socket ${AF_VSOCK} ${SOCK_STREAM}`], mounts: recommended(probe.dir).mounts, mount: true, pid: true, ...options, stdio: ['ignore', 'pipe', 'pipe'] });
      const [stdout, stderr] = await Promise.all([collect(child.stdout), collect(child.stderr), child.exited]);
      return (stdout + stderr).replace(/\s+/g, ' ').trim();
    };
    expect(await status({ net: true, noNewPrivs: false, socketFamilyFilter: false })).toBe(`NoNewPrivs: 0 Seccomp_filters: 0 ${HAS_VSOCK ? 'ok' : 'EAFNOSUPPORT'}`);
    expect(await status({ net: true, noNewPrivs: false, capabilities: ['CAP_SYS_ADMIN'] })).toBe('NoNewPrivs: 0 Seccomp_filters: 1 EAFNOSUPPORT');
  });
});

describe('seccompPresets.sandboxDefault allows only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK', () => {
  test('AF_PACKET with CAP_NET_RAW is refused with EAFNOSUPPORT under the preset; control: without the preset the same sandbox opens it', async () => {
    const options = { ...recommended(probe.dir), capabilities: ['CAP_NET_RAW'] };
    expect(out(await runProbe({ args: socket(AF_PACKET, SOCK_DGRAM), options }))).toBe('EAFNOSUPPORT');
    expect(out(await runProbe({ args: ['socketpair', String(AF_UNIX), String(SOCK_DGRAM)], options }))).toBe('ok');
    expect(out(await runProbe({ args: socket(AF_NETLINK, SOCK_DGRAM), options }))).toBe('ok');
    const { seccomp: _policy, ...control } = options;
    expect(out(await runProbe({ args: socket(AF_PACKET, SOCK_DGRAM), options: control }))).toBe('ok'); // AF_PACKET is per network namespace
  });
});

describe('rootless (uid 65534 via setpriv), in the recommended sandbox', () => {
  vsockTest(vsockTest === test ? 'socket(AF_VSOCK) fails with EAFNOSUPPORT; control: with socketFamilyFilter: false and no policy it opens' : 'SKIPPED: this kernel has no AF_VSOCK', async () => {
    const options = recommended(probe.dir, { rootless: true });
    const { seccomp: _policy, ...noPolicy } = options;
    const r = await runAsNobody(probe.dir, {
      vsock: { args: socket(AF_VSOCK, SOCK_STREAM), options },
      vsockNoPolicy: { args: socket(AF_VSOCK, SOCK_STREAM), options: noPolicy },
      inet: { args: socket(AF_INET, SOCK_STREAM), options },
      control: { args: socket(AF_VSOCK, SOCK_STREAM), options: { ...noPolicy, socketFamilyFilter: false } },
    });
    expect(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, out(v)]))).toEqual({
      vsock: 'EAFNOSUPPORT', vsockNoPolicy: 'EAFNOSUPPORT', inet: 'ok', control: 'ok',
    });
  }, 120000);
});

describe('the filter program', () => {
  test('lets through exactly the isolated families, for the native ABI and the 32-bit one', () => {
    const families = Object.values(ISOLATED_SOCKET_FAMILIES);
    expect(families).toEqual(expect.arrayContaining([AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET]));
    expect(families).not.toContain(AF_VSOCK);
    for (const arch of ['x64', 'arm64']) {
      const bpf = compileSocketFamilyFilter({ ...nativeSeccompTarget(), arch }, true);
      expect(bpf.length % 8).toBe(0);
      // One comparison per allowed family (JEQ K), after the load of argument 0.
      const ks = Array.from({ length: bpf.length / 8 }, (_, i) => ({ code: bpf.readUInt16LE(i * 8), k: bpf.readUInt32LE(i * 8 + 4) }));
      const loadArg0 = ks.findLastIndex((x) => x.code === 0x20 && x.k === 16); // the last load of argument 0: the family check
      expect(ks.slice(loadArg0 + 1, loadArg0 + 1 + families.length).map((x) => x.k)).toEqual(families);
      expect(ks.slice(loadArg0 + 1 + families.length).map((x) => x.k)).toEqual([0x00050000 | 97, 0x7fff0000]); // EAFNOSUPPORT, else allow
    }
  });
});
