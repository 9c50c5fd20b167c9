/**
 * The seccomp compiler (lib/seccomp.ts) without the kernel: compiled programs are run through
 * a classic BPF interpreter written here (the subset seccomp allows and the compiler uses),
 * so the 64-bit argument comparisons, the rule order and the architecture checks are
 * checked exhaustively. test/seccomp.test.ts runs the same programs in the real kernel.
 */
import * as os from 'node:os';
import { spawnIsolated } from '../lib';
import { compileSeccomp, compileSeccompFor, nativeSeccompTarget, seccompPresets, type SeccompArgCondition, type SeccompPolicy } from '../lib/seccomp';

const ALLOW = 0x7fff0000;
const KILL = 0x80000000;
const TRAP = 0x00030000;
const LOG = 0x7ffc0000;
const ERRNO = (n: number): number => 0x00050000 | n;
const target = nativeSeccompTarget();
const nr = (name: string): number => target.syscalls[name];

interface Call {
  nr: number;
  arch?: number;
  args?: bigint[];
}

/** Runs a compiled program on one seccomp_data, as the kernel would; returns SECCOMP_RET_*. */
function runBpf(program: Buffer, call: Call): number {
  const le = os.endianness() === 'LE';
  const data = Buffer.alloc(64);
  data.writeInt32LE(call.nr | 0, 0);
  data.writeUInt32LE(call.arch ?? target.auditArch, 4);
  (call.args ?? []).forEach((a, i) => data.writeBigUInt64LE(BigInt.asUintN(64, a), 16 + 8 * i));
  let acc = 0;
  let pc = 0;
  for (let steps = 0; steps < 100000; steps++) {
    if (pc * 8 >= program.length) throw new Error(`fell off the program at ${pc}`);
    const code = le ? program.readUInt16LE(pc * 8) : program.readUInt16BE(pc * 8);
    const jt = program[pc * 8 + 2];
    const jf = program[pc * 8 + 3];
    const k = le ? program.readUInt32LE(pc * 8 + 4) : program.readUInt32BE(pc * 8 + 4);
    switch (code) {
      case 0x20: acc = data.readUInt32LE(k); pc++; break; // ld [k]
      case 0x54: acc = (acc & k) >>> 0; pc++; break; // and #k
      case 0x15: pc += 1 + (acc === k ? jt : jf); break; // jeq #k
      case 0x25: pc += 1 + (acc > k ? jt : jf); break; // jgt #k
      case 0x35: pc += 1 + (acc >= k ? jt : jf); break; // jge #k
      case 0x06: return k; // ret #k
      default: throw new Error(`unexpected BPF code 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('no return');
}

const VALUES = [
  0n, 1n, 2n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn, 0x100000000n, 0x100000001n, 0x1ffffffffn,
  (5n << 32n) | 7n, (7n << 32n) | 5n, 0x7fffffffffffffffn, 0x8000000000000000n, 0xfffffffffffffffen, 0xffffffffffffffffn,
];

function holds(op: SeccompArgCondition['op'], a: bigint, v: bigint, mask = 0n): boolean {
  switch (op) {
    case 'eq': return a === v;
    case 'ne': return a !== v;
    case 'lt': return a < v;
    case 'le': return a <= v;
    case 'gt': return a > v;
    case 'ge': return a >= v;
    case 'maskedEq': return (a & mask) === (v & mask);
  }
}

describe('seccomp compiler', () => {
  test('64-bit argument comparisons agree with BigInt arithmetic for every operator', () => {
    for (const op of ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'maskedEq'] as const) {
      for (const v of VALUES) {
        const mask = 0xffff0000ffff00ffn;
        const cond: SeccompArgCondition = op === 'maskedEq' ? { index: 2, op, value: v, mask } : { index: 2, op, value: v };
        const program = compileSeccomp({ defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: { errno: 1 }, args: [cond] }] });
        for (const a of VALUES) {
          const got = runBpf(program, { nr: nr('getpid'), args: [0n, 0n, a] });
          expect({ op, v, a, denied: got === ERRNO(1) }).toEqual({ op, v, a, denied: holds(op, a, v, mask) });
        }
      }
    }
  });

  test('all conditions of a rule must hold, on the right argument', () => {
    const program = compileSeccomp({
      defaultAction: 'allow',
      rules: [{ syscalls: ['socket'], action: { errno: 'EACCES' }, args: [{ index: 0, op: 'eq', value: 2 }, { index: 1, op: 'eq', value: 1 }] }],
    });
    const socket = (domain: bigint, type: bigint): number => runBpf(program, { nr: nr('socket'), args: [domain, type] });
    expect(socket(2n, 1n)).toBe(ERRNO(os.constants.errno.EACCES));
    expect(socket(2n, 2n)).toBe(ALLOW);
    expect(socket(1n, 1n)).toBe(ALLOW);
    expect(socket(1n << 32n | 2n, 1n)).toBe(ALLOW); // the upper half counts
  });

  test('the first matching rule decides, else the default action', () => {
    const program = compileSeccomp({
      defaultAction: { errno: 38 },
      rules: [
        { syscalls: ['read'], action: 'allow', args: [{ index: 0, op: 'eq', value: 0 }] },
        { syscalls: ['read', 'write'], action: 'trap' },
        { syscalls: ['write'], action: 'kill' },
        { syscalls: ['getpid'], action: 'log' },
      ],
    });
    expect(runBpf(program, { nr: nr('read'), args: [0n] })).toBe(ALLOW);
    expect(runBpf(program, { nr: nr('read'), args: [3n] })).toBe(TRAP);
    expect(runBpf(program, { nr: nr('write') })).toBe(TRAP);
    expect(runBpf(program, { nr: nr('getpid') })).toBe(LOG);
    expect(runBpf(program, { nr: nr('close') })).toBe(ERRNO(38));
  });

  test('other architectures and (on x86_64) x32 calls get the foreign action, -1 does not', () => {
    const program = compileSeccomp({ defaultAction: 'allow', rules: [{ syscalls: ['ptrace'], action: { errno: 1 } }] });
    expect(runBpf(program, { nr: nr('ptrace'), arch: 0x40000003 /* AUDIT_ARCH_I386 */ })).toBe(KILL);
    expect(runBpf(program, { nr: nr('getpid') })).toBe(ALLOW);
    expect(runBpf(program, { nr: -1 })).toBe(ALLOW);
    if (target.x32Bit !== 0) {
      expect(runBpf(program, { nr: target.x32Bit | nr('getpid') })).toBe(KILL);
      expect(runBpf(program, { nr: target.x32Bit | nr('ptrace') })).toBe(KILL);
    }
    const lenient = compileSeccomp({ defaultAction: 'allow', foreignArch: { errno: 'ENOSYS' } });
    expect(runBpf(lenient, { nr: 20, arch: 0x40000003 })).toBe(ERRNO(os.constants.errno.ENOSYS));
    // Compiled for another architecture, this one is the foreign one.
    const forArm = compileSeccompFor({ defaultAction: 'allow' }, { ...target, auditArch: 0xc00000b7, x32Bit: 0 }, 'test');
    expect(runBpf(forArm, { nr: nr('getpid') })).toBe(KILL);
  });

  test('names of other architectures are skipped, numbers are taken as they are', () => {
    const base = compileSeccomp({ defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: 'kill' }] });
    const foreignName = target.arch === 'x86_64' ? 'vm86old' : 'open';
    expect(target.syscalls[foreignName]).toBe(-1);
    expect(compileSeccomp({ defaultAction: 'allow', rules: [{ syscalls: ['getpid', foreignName], action: 'kill' }] })).toEqual(base);
    const byNumber = compileSeccomp({ defaultAction: 'allow', rules: [{ syscalls: [nr('getpid')], action: 'kill' }] });
    expect(byNumber).toEqual(base);
  });

  test('the preset compiles and denies what it documents', () => {
    const program = compileSeccomp(seccompPresets.sandboxDefault);
    const eperm = ERRNO(os.constants.errno.EPERM);
    for (const name of ['ptrace', 'mount', 'umount2', 'bpf', 'kexec_load', 'keyctl', 'perf_event_open', 'userfaultfd', 'init_module', 'open_by_handle_at']) {
      expect([name, runBpf(program, { nr: nr(name) })]).toEqual([name, eperm]);
    }
    for (const name of ['read', 'openat', 'execve', 'clone', 'getpid', 'mmap']) expect([name, runBpf(program, { nr: nr(name) })]).toEqual([name, ALLOW]);
    const personality = (p: bigint): number => runBpf(program, { nr: nr('personality'), args: [p] });
    expect(personality(0n)).toBe(ALLOW);
    expect(personality(0xffffffffn)).toBe(ALLOW);
    expect(personality(0x0040000n)).toBe(eperm); // ADDR_NO_RANDOMIZE
    expect(personality(0x0400000n)).toBe(eperm); // READ_IMPLIES_EXEC
    const CLONE_NEWUSER = 0x10000000n;
    expect(runBpf(program, { nr: nr('unshare'), args: [CLONE_NEWUSER] })).toBe(eperm);
    expect(runBpf(program, { nr: nr('unshare'), args: [0x20000n /* CLONE_NEWNS */] })).toBe(ALLOW);
    expect(runBpf(program, { nr: nr('clone'), args: [CLONE_NEWUSER | 0x11n] })).toBe(eperm);
    expect(runBpf(program, { nr: nr('setns'), args: [3n, 0n] })).toBe(eperm);
    expect(runBpf(program, { nr: nr('setns'), args: [3n, 0x40000000n /* CLONE_NEWNET */] })).toBe(ALLOW);
    expect(runBpf(program, { nr: nr('clone3') })).toBe(ERRNO(os.constants.errno.ENOSYS));
    expect(Object.isFrozen(seccompPresets.sandboxDefault)).toBe(true);
    expect(Object.isFrozen(seccompPresets.sandboxDefault.rules![1].args![0])).toBe(true);
  });

  test('bad policies are rejected with the field and a suggestion', () => {
    const bad = (policy: unknown): (() => Buffer) => () => compileSeccomp(policy as SeccompPolicy);
    expect(bad({ defaultAction: 'allow', rules: [{ syscalls: ['ptrac'], action: 'kill' }] })).toThrow(
      /compileSeccomp: policy\.rules\[0\]\.syscalls\[0\] is not a system call: 'ptrac' \(did you mean 'ptrace'\?\)/);
    expect(bad({ defaultAction: 'deny' })).toThrow(/policy\.defaultAction must be 'allow', 'kill', 'trap', 'log' or \{ errno \}/);
    expect(bad({ defaultAction: { errno: 'ENOTANERRNO' } })).toThrow(RangeError);
    expect(bad({ defaultAction: { errno: 4096 } })).toThrow(/between 0 and 4095/);
    expect(bad({ default: 'allow' })).toThrow(/policy\.default is not a known field \(did you mean \.defaultAction\?\)/);
    expect(bad({ defaultAction: 'allow', rules: [{ syscalls: [], action: 'kill' }] })).toThrow(/rules\[0\]\.syscalls must be a non-empty array/);
    expect(bad({ defaultAction: 'allow', rules: [{ syscalls: ['read'], action: 'kill', args: [{ index: 6, op: 'eq', value: 0 }] }] })).toThrow(/args\[0\]\.index must be an argument index 0\.\.5/);
    expect(bad({ defaultAction: 'allow', rules: [{ syscalls: ['read'], action: 'kill', args: [{ index: 0, op: 'maskedEq', value: 0 }] }] })).toThrow(/mask is required/);
    expect(bad({ defaultAction: 'allow', rules: [{ syscalls: ['read'], action: 'kill', args: [{ index: 0, op: 'eq', value: 2 ** 64 }] }] })).toThrow(/must be an integer/);
    expect(bad({ defaultAction: 'allow', rules: [{ syscalls: ['read'], action: 'kill', args: [{ index: 0, op: 'like', value: 1 }] }] })).toThrow(/op must be 'eq'/);
    const many = Array.from({ length: 5000 }, (_, i) => i);
    expect(bad({ defaultAction: 'allow', rules: [{ syscalls: many, action: 'kill' }] })).toThrow(/more than the kernel's 4096/);
  });

  test('spawnIsolated rejects a bad seccomp option before any process starts', () => {
    expect(() => spawnIsolated({ command: '/bin/true', seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['mountt'], action: 'kill' }] } }))
      .toThrow(/spawnIsolated: options\.seccomp\.rules\[0\]\.syscalls\[0\] is not a system call: 'mountt' \(did you mean 'mount'\?\)/);
    expect(() => spawnIsolated({ command: '/bin/true', seccomp: { bpf: Buffer.alloc(12) } })).toThrow(/options\.seccomp\.bpf must hold 1\.\.4096 BPF instructions of 8 bytes, got 12/);
    expect(() => spawnIsolated({ command: '/bin/true', seccomp: { bpf: 'x' as unknown as Buffer } })).toThrow(/options\.seccomp\.bpf must be a Buffer/);
    expect(() => spawnIsolated({ command: '/bin/true', noNewPrivs: false, seccomp: { defaultAction: 'allow' } })).toThrow(/options\.seccomp needs noNewPrivs: true/);
  });
});
