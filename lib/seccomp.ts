/**
 * seccomp: a typed system-call policy compiled to a classic BPF program for
 * seccomp(SECCOMP_SET_MODE_FILTER), and a preset of what sandboxes commonly deny.
 *
 * System call numbers come from the addon (src-native/syscall_table.cc), compiled from the
 * target's kernel headers: nothing is looked up at run time. The program first checks the
 * audit architecture (and on x86_64 refuses the x32 ABI, whose numbers would otherwise slip
 * past every rule), then tries the rules in order: the first rule naming the system call
 * whose argument conditions all hold decides; if none does, the default action.
 */
import * as os from 'node:os';
import { binding } from './binding';
import { describe, didYouMean } from './validate';

/**
 * What happens to a system call:
 * - `'allow'`: it runs;
 * - `{ errno: 'EPERM' }` (a name or a number 0..4095): it fails with that errno without running;
 * - `'kill'`: the whole process is killed with SIGSYS (SECCOMP_RET_KILL_PROCESS);
 * - `'trap'`: SIGSYS is sent to the thread (a handler may catch it; by default it kills);
 * - `'log'`: it runs and is logged by the kernel's audit log (Linux 4.14+).
 */
export type SeccompAction = 'allow' | 'kill' | 'trap' | 'log' | { readonly errno: number | string };

/**
 * A condition on argument `index` (0..5) of the system call, compared as an unsigned 64-bit
 * number: `arg <op> value`, or for `maskedEq`: `(arg & mask) == value`. Negative values
 * stand for their 64-bit two's complement. For an `int` argument, compare with
 * `maskedEq` and `mask: 0xffffffff`: the upper half of the register is not defined.
 */
export interface SeccompArgCondition {
  index: 0 | 1 | 2 | 3 | 4 | 5;
  op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'maskedEq';
  value: number | bigint;
  /** For `maskedEq` only. */
  mask?: number | bigint;
}

/** System calls (by name, or by number for calls newer than the table) and what happens to them. */
export interface SeccompRule {
  /**
   * System call names as in the kernel's tables (`'ptrace'`, `'openat'`). A name that exists
   * on another architecture but not on this one (`'open'` on arm64) is skipped; a name no
   * architecture has is an error.
   */
  syscalls: readonly (string | number)[];
  action: SeccompAction;
  /** All must hold for the rule to apply; without them the rule always applies. */
  args?: readonly SeccompArgCondition[];
}

/** A typed seccomp policy: rules tried in order, then the default action. */
export interface SeccompPolicy {
  /** For every system call no rule decides: `'allow'` for a deny list, `'kill'` or an errno for an allow list. */
  defaultAction: SeccompAction;
  rules?: readonly SeccompRule[];
  /**
   * For system calls of another ABI than the one the addon was built for: i386 (`int 0x80`)
   * or x32 calls on x86_64, 32-bit calls on arm64. Their numbers mean other calls, so no rule
   * can apply to them. Default `'kill'`.
   */
  foreignArch?: SeccompAction;
}

/** A precompiled classic BPF program (struct sock_filter[] in host byte order), as bubblewrap's --seccomp takes. */
export interface SeccompProgram {
  bpf: Buffer | Uint8Array;
}

/** The `seccomp` option: a typed policy or a precompiled program. */
export type SeccompOption = SeccompPolicy | SeccompProgram;

/** What a program is compiled for: the addon's architecture, unless a test says otherwise. */
export interface SeccompTarget {
  arch: string;
  auditArch: number;
  /** __X32_SYSCALL_BIT on x86_64, else 0. */
  x32Bit: number;
  /** Name -> number; -1: a name of another architecture. */
  syscalls: Readonly<Record<string, number>>;
}

/** The architecture the addon was built for, with its system call table. */
export function nativeSeccompTarget(): SeccompTarget {
  return binding.syscallTable;
}

// linux/filter.h, linux/seccomp.h: stable ABI.
const BPF_LD_W_ABS = 0x20;
const BPF_ALU_AND_K = 0x54;
const BPF_JEQ_K = 0x15;
const BPF_JGT_K = 0x25;
const BPF_JGE_K = 0x35;
const BPF_RET_K = 0x06;
const BPF_MAXINSNS = 4096;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_TRAP = 0x00030000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_LOG = 0x7ffc0000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const MAX_ERRNO = 4095;
// struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const OFFSET_ARGS = 16;

const CLONE_NEWUSER = 0x10000000;

/** Where a policy error is reported: `${prefix}${path} ${reason}`. */
type Fail = (path: string, reason: string, kind?: 'type' | 'range') => never;

function failWith(prefix: string): Fail {
  return (path, reason, kind = 'type') => {
    const message = `${prefix}${path} ${reason}`;
    throw kind === 'range' ? new RangeError(message) : new TypeError(message);
  };
}

function checkKeys(value: unknown, known: readonly string[], path: string, fail: Fail): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(path, `must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value as object)) {
    if (known.includes(key)) continue;
    const guess = didYouMean(key, known) ?? known.find((k) => k.startsWith(key));
    fail(`${path}.${key}`, `is not a known field${guess ? ` (did you mean ${path}.${guess}?)` : ''}`);
  }
  return value as Record<string, unknown>;
}

/** The entries of a list in a policy; a hole of a sparse array is refused by name (forEach would skip it). */
function entries(list: readonly unknown[], path: string, fail: Fail): unknown[] {
  for (let i = 0; i < list.length; i++) {
    if (list[i] === undefined && !(i in list)) fail(`${path}[${i}]`, 'is missing: holes in sparse arrays are not accepted');
  }
  return list as unknown[];
}

/** An action's SECCOMP_RET_* value. */
function actionValue(action: unknown, path: string, fail: Fail): number {
  switch (action) {
    case 'allow': return SECCOMP_RET_ALLOW;
    case 'kill': return SECCOMP_RET_KILL_PROCESS;
    case 'trap': return SECCOMP_RET_TRAP;
    case 'log': return SECCOMP_RET_LOG;
  }
  if (action !== null && typeof action === 'object' && !Array.isArray(action)) {
    const { errno } = checkKeys(action, ['errno'], path, fail);
    let n: number | undefined;
    if (typeof errno === 'string') {
      n = (os.constants.errno as Record<string, number | undefined>)[errno];
      if (n === undefined) fail(`${path}.errno`, `is not an errno name such as 'EPERM', got '${errno}'`, 'range');
    } else if (typeof errno === 'number' && Number.isInteger(errno)) {
      n = errno;
    } else {
      fail(`${path}.errno`, `must be an errno name or number, got ${describe(errno)}`);
    }
    if (n < 0 || n > MAX_ERRNO) fail(`${path}.errno`, `must be between 0 and ${MAX_ERRNO}, got ${n}`, 'range');
    return SECCOMP_RET_ERRNO | n;
  }
  return fail(path, `must be 'allow', 'kill', 'trap', 'log' or { errno }, got ${describe(action)}`);
}

/** A 64-bit argument value (negative numbers as two's complement). */
function u64(value: unknown, path: string, fail: Fail): bigint {
  let v: bigint;
  if (typeof value === 'bigint') v = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
  else return fail(path, `must be an integer (number or bigint), got ${describe(value)}`);
  if (v < -(1n << 63n) || v >= 1n << 64n) fail(path, 'must fit in 64 bits', 'range');
  return BigInt.asUintN(64, v);
}

interface Insn {
  code: number;
  jt: number | 'fail';
  jf: number | 'fail';
  k: number;
}

const insn = (code: number, k: number, jt: number | 'fail' = 0, jf: number | 'fail' = 0): Insn => ({ code, jt, jf, k });

/** The instructions testing one condition: fall through when it holds, jump to 'fail' when not. */
function conditionCode(cond: Record<string, unknown>, path: string, fail: Fail): Insn[] {
  const index = cond.index;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) fail(`${path}.index`, `must be an argument index 0..5, got ${describe(index)}`, 'range');
  const value = u64(cond.value, `${path}.value`, fail);
  if (cond.mask !== undefined && cond.op !== 'maskedEq') fail(`${path}.mask`, `is only for op 'maskedEq'`);
  // Little-endian targets (x86_64, arm64) keep the low half first.
  const low = OFFSET_ARGS + 8 * index + (os.endianness() === 'LE' ? 0 : 4);
  const high = OFFSET_ARGS + 8 * index + (os.endianness() === 'LE' ? 4 : 0);
  const hi = Number(value >> 32n);
  const lo = Number(value & 0xffffffffn);
  const ldHi = insn(BPF_LD_W_ABS, high);
  const ldLo = insn(BPF_LD_W_ABS, low);
  switch (cond.op) {
    case 'eq': return [ldHi, insn(BPF_JEQ_K, hi, 0, 'fail'), ldLo, insn(BPF_JEQ_K, lo, 0, 'fail')];
    case 'ne': return [ldHi, insn(BPF_JEQ_K, hi, 0, 2), ldLo, insn(BPF_JEQ_K, lo, 'fail', 0)];
    case 'gt': return [ldHi, insn(BPF_JGT_K, hi, 3, 0), insn(BPF_JEQ_K, hi, 0, 'fail'), ldLo, insn(BPF_JGT_K, lo, 0, 'fail')];
    case 'ge': return [ldHi, insn(BPF_JGT_K, hi, 3, 0), insn(BPF_JEQ_K, hi, 0, 'fail'), ldLo, insn(BPF_JGE_K, lo, 0, 'fail')];
    case 'lt': return [ldHi, insn(BPF_JGT_K, hi, 'fail', 0), insn(BPF_JEQ_K, hi, 0, 2), ldLo, insn(BPF_JGE_K, lo, 'fail', 0)];
    case 'le': return [ldHi, insn(BPF_JGT_K, hi, 'fail', 0), insn(BPF_JEQ_K, hi, 0, 2), ldLo, insn(BPF_JGT_K, lo, 'fail', 0)];
    case 'maskedEq': {
      if (cond.mask === undefined) fail(`${path}.mask`, `is required for op 'maskedEq'`);
      const mask = u64(cond.mask, `${path}.mask`, fail);
      const want = value & mask;
      return [
        ldHi, insn(BPF_ALU_AND_K, Number(mask >> 32n)), insn(BPF_JEQ_K, Number(want >> 32n), 0, 'fail'),
        ldLo, insn(BPF_ALU_AND_K, Number(mask & 0xffffffffn)), insn(BPF_JEQ_K, Number(want & 0xffffffffn), 0, 'fail'),
      ];
    }
  }
  return fail(`${path}.op`, `must be 'eq', 'ne', 'lt', 'le', 'gt', 'ge' or 'maskedEq', got ${describe(cond.op)}`, 'range');
}

/** The numbers of a rule's system calls on the target; names of other architectures drop out. */
function syscallNumbers(list: unknown, path: string, target: SeccompTarget, fail: Fail): number[] {
  if (!Array.isArray(list) || list.length === 0) fail(path, `must be a non-empty array of system call names, got ${describe(list)}`);
  const numbers: number[] = [];
  entries(list, path, fail).forEach((entry: unknown, i) => {
    if (typeof entry === 'number') {
      if (!Number.isInteger(entry) || entry < 0 || entry >= 0x40000000) fail(`${path}[${i}]`, `must be a system call number 0..0x3fffffff, got ${entry}`, 'range');
      numbers.push(entry);
      return;
    }
    if (typeof entry !== 'string') fail(`${path}[${i}]`, `must be a system call name, got ${describe(entry)}`);
    const nr = Object.prototype.hasOwnProperty.call(target.syscalls, entry) ? target.syscalls[entry] : undefined;
    if (nr === undefined) {
      const guess = didYouMean(entry, Object.keys(target.syscalls));
      fail(`${path}[${i}]`, `is not a system call: '${entry}'${guess ? ` (did you mean '${guess}'?)` : ''}`, 'range');
    }
    if (nr >= 0) numbers.push(nr);
  });
  return numbers;
}

function encode(program: Insn[]): Buffer {
  const out = Buffer.alloc(program.length * 8);
  const le = os.endianness() === 'LE';
  program.forEach((ins, i) => {
    if (typeof ins.jt !== 'number' || typeof ins.jf !== 'number') throw new Error('seccomp: unresolved jump (a bug in nsjail-node)');
    const at = i * 8;
    if (le) {
      out.writeUInt16LE(ins.code, at);
      out.writeUInt32LE(ins.k >>> 0, at + 4);
    } else {
      out.writeUInt16BE(ins.code, at);
      out.writeUInt32BE(ins.k >>> 0, at + 4);
    }
    out.writeUInt8(ins.jt, at + 2);
    out.writeUInt8(ins.jf, at + 3);
  });
  return out;
}

/** Compiles a policy for `target`; errors are `${prefix}<path> <reason>`. */
export function compileSeccompFor(policy: unknown, target: SeccompTarget, prefix: string): Buffer {
  const fail = failWith(prefix);
  if (target.auditArch === 0) throw new Error(`${prefix} cannot be compiled: the addon was built for an architecture nsjail-node has no seccomp support for (${target.arch})`);
  const p = checkKeys(policy, ['defaultAction', 'rules', 'foreignArch'], '', fail);
  const defaultAction = actionValue(p.defaultAction, '.defaultAction', fail);
  const foreign = p.foreignArch === undefined ? SECCOMP_RET_KILL_PROCESS : actionValue(p.foreignArch, '.foreignArch', fail);
  if (p.rules !== undefined && !Array.isArray(p.rules)) fail('.rules', `must be an array, got ${describe(p.rules)}`);

  const program: Insn[] = [
    insn(BPF_LD_W_ABS, OFFSET_ARCH),
    insn(BPF_JEQ_K, target.auditArch, 1, 0),
    insn(BPF_RET_K, foreign),
    insn(BPF_LD_W_ABS, OFFSET_NR),
  ];
  if (target.x32Bit !== 0) {
    // x32 calls carry the arch of x86_64 with this bit set in the number; -1 is not one.
    program.push(insn(BPF_JGE_K, target.x32Bit, 0, 2), insn(BPF_JEQ_K, 0xffffffff, 1, 0), insn(BPF_RET_K, foreign));
  }
  let accumulatorIsNr = true;
  entries((p.rules ?? []) as unknown[], '.rules', fail).forEach((ruleValue, r) => {
    const path = `.rules[${r}]`;
    const rule = checkKeys(ruleValue, ['syscalls', 'action', 'args'], path, fail);
    const action = actionValue(rule.action, `${path}.action`, fail);
    if (rule.args !== undefined && !Array.isArray(rule.args)) fail(`${path}.args`, `must be an array, got ${describe(rule.args)}`);
    const conditions = entries((rule.args ?? []) as unknown[], `${path}.args`, fail).flatMap((c, i) =>
      conditionCode(checkKeys(c, ['index', 'op', 'value', 'mask'], `${path}.args[${i}]`, fail), `${path}.args[${i}]`, fail));
    for (const nr of syscallNumbers(rule.syscalls, `${path}.syscalls`, target, fail)) {
      const block: Insn[] = accumulatorIsNr ? [] : [insn(BPF_LD_W_ABS, OFFSET_NR)];
      block.push(insn(BPF_JEQ_K, nr, 0, 'fail'), ...conditions, insn(BPF_RET_K, action));
      // 'fail' skips to the end of this block; classic BPF jumps forward at most 255.
      for (let i = 0; i < block.length; i++) {
        for (const field of ['jt', 'jf'] as const) {
          if (block[i][field] !== 'fail') continue;
          const offset = block.length - (i + 1);
          if (offset > 255) fail(`${path}.args`, 'has too many conditions for one rule', 'range');
          block[i] = { ...block[i], [field]: offset };
        }
      }
      program.push(...block);
      accumulatorIsNr = conditions.length === 0;
    }
  });
  program.push(insn(BPF_RET_K, defaultAction));
  if (program.length > BPF_MAXINSNS) fail('', `compiles to ${program.length} BPF instructions, more than the kernel's ${BPF_MAXINSNS}`, 'range');
  return encode(program);
}

/**
 * Compiles a typed policy to the classic BPF program (struct sock_filter[]) the `seccomp`
 * option would install, e.g. to save it or hand it to another tool. Throws TypeError or
 * RangeError naming the bad field (unknown system call names included).
 */
export function compileSeccomp(policy: SeccompPolicy): Buffer {
  return compileSeccompFor(policy, nativeSeccompTarget(), 'compileSeccomp: policy');
}

// The presets are deeply frozen: each is compiled once.
const compiledPresets = new WeakMap<object, Buffer>();

/** Validates the `seccomp` option and returns the BPF program to install. */
export function seccompProgram(option: string, value: unknown): Buffer {
  const prefix = `spawnIsolated: options.${option}`;
  if (value !== null && typeof value === 'object' && 'bpf' in value) {
    const { bpf } = checkKeys(value, ['bpf'], '', failWith(prefix));
    if (!(bpf instanceof Uint8Array)) throw new TypeError(`${prefix}.bpf must be a Buffer, got ${describe(bpf)}`);
    if (bpf.length === 0 || bpf.length % 8 !== 0 || bpf.length > BPF_MAXINSNS * 8) {
      throw new RangeError(`${prefix}.bpf must hold 1..${BPF_MAXINSNS} BPF instructions of 8 bytes, got ${bpf.length} bytes`);
    }
    return Buffer.from(bpf);
  }
  const preset = value === seccompPresets.sandboxDefault;
  const cached = preset ? compiledPresets.get(value) : undefined;
  if (cached) return cached;
  const program = compileSeccompFor(value, nativeSeccompTarget(), prefix);
  if (preset) compiledPresets.set(value, program);
  return program;
}

const EPERM = { errno: 'EPERM' } as const;
const int32 = (index: 0 | 1, value: number): SeccompArgCondition => ({ index, op: 'maskedEq', mask: 0xffffffff, value });
const hasFlag = (index: 0 | 1, flag: number): SeccompArgCondition => ({ index, op: 'maskedEq', mask: flag, value: flag });

/** The system calls {@link seccompPresets}.sandboxDefault refuses outright, with EPERM. */
const DENIED: readonly string[] = [
  // other processes' memory and state
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd',
  // the kernel itself: replacing, rebooting, modules, BPF, perf, the clock, accounting, swap, ports
  'kexec_load', 'kexec_file_load', 'reboot', 'init_module', 'finit_module', 'delete_module',
  'create_module', 'query_module', 'get_kernel_syms', 'bpf', 'perf_event_open', 'settimeofday',
  'clock_settime', 'clock_adjtime', 'acct', 'swapon', 'swapoff', 'iopl', 'ioperm', 'syslog',
  'lookup_dcookie', 'nfsservctl', 'uselib', 'ustat', 'sysfs', '_sysctl', 'quotactl', 'quotactl_fd',
  'vhangup', 'vm86', 'vm86old',
  // mounts, old and new API
  'mount', 'umount', 'umount2', 'pivot_root', 'move_mount', 'open_tree', 'open_tree_attr', 'fsopen',
  'fsconfig', 'fsmount', 'fspick', 'mount_setattr',
  // the kernel keyring
  'keyctl', 'add_key', 'request_key',
  // page-fault handling in user space (a classic exploitation aid), file handles (the
  // "shocker" escape from a bind mount), io_uring (a large, often-exploited surface)
  'userfaultfd', 'open_by_handle_at', 'name_to_handle_at', 'io_uring_setup', 'io_uring_enter',
  'io_uring_register',
];

/** The socket families {@link seccompPresets}.sandboxDefault lets programs create: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK. */
const SANDBOX_FAMILIES: readonly number[] = [1, 2, 10, 16];

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Ready-made policies (deeply frozen). Extend one by spreading it:
 * `{ ...seccompPresets.sandboxDefault, rules: [myRule, ...seccompPresets.sandboxDefault.rules] }`
 * (rules are tried in order: put yours first to take precedence).
 */
export const seccompPresets: { readonly sandboxDefault: SeccompPolicy } = deepFreeze({
  /**
   * Allows everything except what sandboxes commonly deny (after Docker's and nsjail's
   * defaults), with EPERM: ptrace and other processes' memory; kexec, reboot, kernel
   * modules, bpf, perf_event_open, setting the clock, acct, swap, iopl/ioperm, syslog;
   * every mount call (mount, umount2, pivot_root and the new mount API); keyctl, add_key,
   * request_key; userfaultfd; open_by_handle_at; io_uring; personality() other than
   * PER_LINUX, PER_LINUX32 and UNAME26 (no ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC tricks);
   * new user namespaces (clone/unshare with CLONE_NEWUSER, setns into one); clone3 fails
   * with ENOSYS because its flags cannot be inspected (the C library falls back to clone);
   * socket() and socketpair() create only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK sockets
   * (other families fail with EAFNOSUPPORT). Foreign ABIs (i386 or x32 on x86_64) are killed.
   */
  sandboxDefault: {
    defaultAction: 'allow',
    foreignArch: 'kill',
    rules: [
      { syscalls: DENIED, action: EPERM },
      // PER_LINUX, PER_LINUX32, UNAME26 (alone and with PER_LINUX32), and 0xffffffff: query.
      ...[0, 0x8, 0x20000, 0x20008, 0xffffffff].map((persona) => ({ syscalls: ['personality'], action: 'allow' as const, args: [int32(0, persona)] })),
      { syscalls: ['personality'], action: EPERM },
      { syscalls: ['clone', 'unshare'], action: EPERM, args: [hasFlag(0, CLONE_NEWUSER)] },
      { syscalls: ['setns'], action: EPERM, args: [hasFlag(1, CLONE_NEWUSER)] },
      { syscalls: ['setns'], action: EPERM, args: [int32(1, 0)] }, // 0: any type, a user namespace included
      { syscalls: ['clone3'], action: { errno: 'ENOSYS' } },
      // Socket families: AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (the C library's
      // getaddrinfo and ip(8) use it); the others (AF_PACKET, AF_VSOCK, ...) are left out.
      ...SANDBOX_FAMILIES.map((family) => ({ syscalls: ['socket', 'socketpair'], action: 'allow' as const, args: [int32(0, family)] })),
      { syscalls: ['socket', 'socketpair'], action: { errno: 'EAFNOSUPPORT' } },
    ] as readonly SeccompRule[],
  },
});
