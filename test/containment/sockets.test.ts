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
import { spawnIsolated, type CapabilityName } from '../../lib';
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
    const options = { ...recommended(probe.dir), capabilities: ['CAP_NET_RAW'] as CapabilityName[] };
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

/** Runs a classic BPF program on one seccomp_data as the kernel would (the codes the filter uses); SECCOMP_RET_*. */
function runBpf(program: Buffer, call: { nr: number; arch: number; args?: number[] }): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(call.nr | 0, 0);
  data.writeUInt32LE(call.arch, 4);
  (call.args ?? []).forEach((a, i) => data.writeBigUInt64LE(BigInt(a), 16 + 8 * i));
  let acc = 0;
  for (let pc = 0; pc * 8 < program.length;) {
    const [code, jt, jf, k] = [program.readUInt16LE(pc * 8), program[pc * 8 + 2], program[pc * 8 + 3], program.readUInt32LE(pc * 8 + 4)];
    if (code === 0x20) acc = data.readUInt32LE(k), pc++; // ld [k]
    else if (code === 0x15) pc += 1 + (acc === k ? jt : jf); // jeq #k
    else if (code === 0x06) return k; // ret #k
    else throw new Error(`unexpected BPF code 0x${code.toString(16)} at ${pc}`);
  }
  throw new Error('fell off the program');
}

describe('the filter program, run through a BPF interpreter', () => {
  const ALLOW = 0x7fff0000;
  const REFUSED = 0x00050000 | 97; // EAFNOSUPPORT
  const EPERM = 0x00050000 | 1;
  const native = nativeSeccompTarget();
  const families = new Set(Object.values(ISOLATED_SOCKET_FAMILIES));

  test('the list: per-netns families and AF_ALG, not AF_VSOCK, AF_BLUETOOTH, AF_NFC, AF_QIPCRTR', () => {
    expect([...families]).toEqual(expect.arrayContaining([AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, 38]));
    for (const f of [AF_VSOCK, 31, 39, 42]) expect(families.has(f)).toBe(false);
  });

  test(`native ABI (${native.arch}): socket and socketpair pass exactly the listed families (0..63); io_uring_setup gets EPERM; other calls pass`, () => {
    const bpf = compileSocketFamilyFilter(native, true);
    const sys = (name: string): number => native.syscalls[name];
    for (let family = 0; family < 64; family++) {
      for (const call of ['socket', 'socketpair']) {
        expect([call, family, runBpf(bpf, { nr: sys(call), arch: native.auditArch, args: [family, 1, 0] })]).toEqual([call, family, families.has(family) ? ALLOW : REFUSED]);
      }
    }
    // Only the low 32 bits are the int: garbage above them does not change the family.
    expect(runBpf(bpf, { nr: sys('socket'), arch: native.auditArch, args: [2 ** 32 + AF_VSOCK] })).toBe(REFUSED);
    expect(runBpf(bpf, { nr: sys('io_uring_setup'), arch: native.auditArch })).toBe(EPERM);
    for (const call of ['getpid', 'bind', 'connect', 'openat']) expect(runBpf(bpf, { nr: sys(call), arch: native.auditArch, args: [AF_VSOCK] })).toBe(ALLOW);
    if (native.x32Bit !== 0) {
      expect(runBpf(bpf, { nr: sys('socket') | native.x32Bit, arch: native.auditArch, args: [AF_VSOCK] })).toBe(REFUSED);
      expect(runBpf(bpf, { nr: sys('socket') | native.x32Bit, arch: native.auditArch, args: [AF_INET] })).toBe(ALLOW);
      expect(runBpf(bpf, { nr: sys('io_uring_setup') | native.x32Bit, arch: native.auditArch })).toBe(EPERM);
    }
  });

  test('the 32-bit ABI of x86_64 (i386) and arm64 (arm): socket, socketpair and io_uring_setup by their numbers there; i386 socketcall(SYS_SOCKET) is refused whole', () => {
    const i386 = compileSocketFamilyFilter({ ...native, arch: 'x86_64' }, true); // the addon's own target on this machine
    const I386 = 0x40000003;
    expect(runBpf(i386, { nr: 359, arch: I386, args: [AF_VSOCK] })).toBe(REFUSED);
    expect(runBpf(i386, { nr: 359, arch: I386, args: [AF_INET] })).toBe(ALLOW);
    expect(runBpf(i386, { nr: 360, arch: I386, args: [AF_VSOCK] })).toBe(REFUSED);
    expect(runBpf(i386, { nr: 425, arch: I386 })).toBe(EPERM);
    expect(runBpf(i386, { nr: 102, arch: I386, args: [1] })).toBe(REFUSED); // socketcall(SYS_SOCKET, ...): the family is in memory
    expect(runBpf(i386, { nr: 102, arch: I386, args: [8] })).toBe(REFUSED); // SYS_SOCKETPAIR
    expect(runBpf(i386, { nr: 102, arch: I386, args: [2] })).toBe(ALLOW); // SYS_BIND
    expect(runBpf(i386, { nr: 20, arch: I386 })).toBe(ALLOW); // getpid
    const arm = compileSocketFamilyFilter({ ...native, arch: 'aarch64', auditArch: 0xc00000b7, x32Bit: 0 }, true);
    const ARM = 0x40000028;
    expect(runBpf(arm, { nr: 281, arch: ARM, args: [AF_VSOCK] })).toBe(REFUSED);
    expect(runBpf(arm, { nr: 281, arch: ARM, args: [AF_INET6] })).toBe(ALLOW);
    expect(runBpf(arm, { nr: 288, arch: ARM, args: [AF_VSOCK] })).toBe(REFUSED);
    expect(runBpf(arm, { nr: 425, arch: ARM })).toBe(EPERM);
    expect(runBpf(arm, { nr: 102, arch: ARM, args: [1] })).toBe(ALLOW); // no socketcall on arm EABI
    // The program the library installs here is the one for its own target.
    if (native.arch === 'x86_64') expect(compileSocketFamilyFilter(native, true).equals(i386)).toBe(true);
  });
});
