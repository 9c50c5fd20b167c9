/**
 * The socket-family filter: a network namespace isolates only the socket families whose
 * state the kernel keeps per namespace. AF_VSOCK is not one of them (its ports and its
 * peers, the hypervisor's services on a VM, are the machine's), and some families (AF_NFC,
 * AF_BLUETOOTH, ...) exist only in the initial namespace. With `net: true`, a small seccomp
 * filter installed before the program's own (both apply) lets socket() and socketpair()
 * create only families a network namespace isolates, and refuses io_uring_setup: io_uring's
 * IORING_OP_SOCKET creates sockets without the socket system call, where no filter sees it.
 */
import * as os from 'node:os';
import { nativeSeccompTarget, type SeccompTarget } from './seccomp';
import { describe, fail } from './validate';

/**
 * Families the filter lets through: each keeps its state (ports, bindings, routes, peers)
 * per network namespace, or, AF_ALG, has none (it is the kernel's crypto API).
 */
export const ISOLATED_SOCKET_FAMILIES: Readonly<Record<string, number>> = Object.freeze({
  AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_KEY: 15, AF_NETLINK: 16, AF_PACKET: 17, AF_PPPOX: 24,
  AF_CAN: 29, AF_TIPC: 30, AF_RXRPC: 33, AF_ALG: 38, AF_KCM: 41, AF_XDP: 44, AF_MCTP: 45,
});

const EAFNOSUPPORT = 97;
const EPERM = 1;

// linux/filter.h, linux/seccomp.h, linux/audit.h: stable ABI.
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const RET_K = 0x06;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const AUDIT_ARCH_I386 = 0x40000003;
const AUDIT_ARCH_ARM = 0x40000028;
const SYS_SOCKET = 1; // socketcall(2) call numbers
const SYS_SOCKETPAIR = 8;

/** The 32-bit ABI a 64-bit kernel also runs, with its numbers (they are fixed per ABI). */
interface CompatAbi {
  auditArch: number;
  socket: number;
  socketpair: number;
  ioUringSetup: number;
  /** socketcall(2): its arguments are in memory, so only the call can be told apart. */
  socketcall?: number;
}

const COMPAT: Readonly<Record<string, CompatAbi>> = {
  x86_64: { auditArch: AUDIT_ARCH_I386, socket: 359, socketpair: 360, ioUringSetup: 425, socketcall: 102 },
  aarch64: { auditArch: AUDIT_ARCH_ARM, socket: 281, socketpair: 288, ioUringSetup: 425 },
};

type Target = number | string;
interface Line { code: number; k: number; jt?: Target; jf?: Target; label?: string }

/** Resolves labels to forward jump offsets and lays the program out (struct sock_filter[]). */
function assemble(lines: Line[], littleEndian: boolean): Buffer {
  const at = new Map<string, number>();
  lines.forEach((l, i) => l.label !== undefined && at.set(l.label, i));
  const out = Buffer.alloc(lines.length * 8);
  lines.forEach((l, i) => {
    const offset = (t: Target | undefined): number => {
      if (t === undefined) return 0;
      const to = typeof t === 'number' ? i + 1 + t : at.get(t);
      if (to === undefined || to <= i || to - i - 1 > 255) throw new Error(`socket-family filter: bad jump to ${t} (a bug in nsjail-node)`);
      return to - i - 1;
    };
    const o = i * 8;
    if (littleEndian) {
      out.writeUInt16LE(l.code, o);
      out.writeUInt32LE(l.k >>> 0, o + 4);
    } else {
      out.writeUInt16BE(l.code, o);
      out.writeUInt32BE(l.k >>> 0, o + 4);
    }
    out.writeUInt8(offset(l.jt), o + 2);
    out.writeUInt8(offset(l.jf), o + 3);
  });
  return out;
}

/** The filter's BPF program for `target` (exported for tests). */
export function compileSocketFamilyFilter(target: SeccompTarget, littleEndian = true): Buffer {
  const nr = (name: string): number => target.syscalls[name] ?? -1;
  const compat = COMPAT[target.arch];
  // The low 32 bits of argument 0 (the domain, an int) of struct seccomp_data.
  const arg0 = { code: LD_W_ABS, k: 16 + (littleEndian ? 0 : 4) };
  const lines: Line[] = [
    { code: LD_W_ABS, k: OFFSET_ARCH },
    { code: JEQ_K, k: target.auditArch, jt: 'native' },
    ...(compat ? [{ code: JEQ_K, k: compat.auditArch, jt: 'compat' }] : []),
    { code: RET_K, k: RET_ALLOW }, // no other ABI reaches this kernel
    { code: LD_W_ABS, k: OFFSET_NR, label: 'native' },
  ];
  // x32 calls (x86_64's audit arch, this bit in the number) take the same arguments.
  for (const bit of target.x32Bit !== 0 ? [0, target.x32Bit] : [0]) {
    for (const name of ['socket', 'socketpair']) if (nr(name) >= 0) lines.push({ code: JEQ_K, k: (nr(name) | bit) >>> 0, jt: 'family' });
    if (nr('io_uring_setup') >= 0) lines.push({ code: JEQ_K, k: (nr('io_uring_setup') | bit) >>> 0, jt: 'io_uring' });
  }
  lines.push({ code: RET_K, k: RET_ALLOW });
  if (compat) {
    lines.push(
      { code: LD_W_ABS, k: OFFSET_NR, label: 'compat' },
      { code: JEQ_K, k: compat.socket, jt: 'family' },
      { code: JEQ_K, k: compat.socketpair, jt: 'family' },
      { code: JEQ_K, k: compat.ioUringSetup, jt: 'io_uring' },
    );
    if (compat.socketcall !== undefined) {
      // socketcall(SYS_SOCKET, args): the family is in memory a filter cannot read.
      lines.push(
        { code: JEQ_K, k: compat.socketcall, jf: 'allow', jt: 0 },
        { ...arg0 },
        { code: JEQ_K, k: SYS_SOCKET, jt: 'refuse' },
        { code: JEQ_K, k: SYS_SOCKETPAIR, jt: 'refuse' },
      );
    }
    lines.push({ code: RET_K, k: RET_ALLOW, label: 'allow' });
  }
  lines.push({ code: RET_K, k: RET_ERRNO | EPERM, label: 'io_uring' }, { ...arg0, label: 'family' });
  for (const family of Object.values(ISOLATED_SOCKET_FAMILIES)) lines.push({ code: JEQ_K, k: family, jt: 'ok' });
  lines.push({ code: RET_K, k: RET_ERRNO | EAFNOSUPPORT, label: 'refuse' }, { code: RET_K, k: RET_ALLOW, label: 'ok' });
  return assemble(lines, littleEndian);
}

let compiled: Buffer | undefined;

/** What {@link socketFamilyFilter} needs of the other validated options. */
export interface SocketFilterContext {
  net: boolean;
  noNewPrivs: boolean;
  keepsSysAdmin: boolean;
}

/**
 * Validates `socketFamilyFilter` (default: `net`) and returns the filter to install before
 * the program's own seccomp filter, or undefined.
 */
export function socketFamilyFilter(value: unknown, context: SocketFilterContext): Buffer | undefined {
  if (value !== undefined && typeof value !== 'boolean') fail('socketFamilyFilter', `must be a boolean, got ${describe(value)}`);
  if (!(value ?? context.net)) return undefined;
  if (!context.noNewPrivs && !context.keepsSysAdmin) {
    const why = value === undefined
      ? 'net: true installs a seccomp filter that refuses the socket families a network namespace does not isolate (AF_VSOCK)'
      : 'socketFamilyFilter: true installs a seccomp filter';
    fail('noNewPrivs', `must not be false here: ${why}, and the kernel installs a filter only under no_new_privs or with CAP_SYS_ADMIN (keep noNewPrivs: true, keep CAP_SYS_ADMIN in options.capabilities, or set socketFamilyFilter: false)`, 'range');
  }
  compiled ??= compileSocketFamilyFilter(nativeSeccompTarget(), os.endianness() === 'LE');
  return compiled;
}

