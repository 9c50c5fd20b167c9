/**
 * The command line's flags, one table per family: each flag says what values it takes, what
 * --help says about it, and what it does to the options being built. lib/cli.ts scans argv
 * with these tables; --help is generated from them, so every flag is documented.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CAPABILITY_NAMES, capabilityNumber, kernelLastCapability, type CapabilityName } from './capabilities';
import type { MountEntry } from './filesystem';
import { RLIMIT_RESOURCES, type Limits, type RlimitName } from './limits';
import type { SpawnOptions } from './options';
import { binding } from './binding';
import { didYouMean } from './validate';

/** A mistake on the command line: printed as one line plus the usage, exit status 2. */
export class UsageError extends Error {
  /** --level-prefix was given before the mistake (bubblewrap then prefixes the message with <3>). */
  levelPrefix = false;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** What the flags build up while argv is scanned. */
export interface CliState {
  /** The spawnIsolated options so far (command and args are added after the scan). */
  options: Writable<Omit<SpawnOptions, 'command'>>;
  /** The environment, edited in order by --setenv, --unsetenv and --clearenv. */
  env: Map<string, string>;
  /** The first flag given that needs a mount namespace (mounts are made inside one). */
  needsMount: string | undefined;
  /** The first flag given that needs a PID namespace (--proc). */
  needsPid: string | undefined;
  /** --json-status-fd. */
  jsonStatusFd: number | undefined;
  /** --cap-add and --cap-drop in order; 'ALL' is resolved once the namespaces are known. */
  capabilityEdits: { add: boolean; names: CapabilityName[] | 'ALL' }[];
  /** --as-pid-1: no init in the PID namespace. */
  asPid1: boolean;
  /** Which command is parsing: `nsjail-node` (safe defaults) or `nsjail-node-bwrap` (bubblewrap's). */
  mode: CliMode;
  /** Process-protocol flags (lib/cli-flags-process.ts). */
  protocol: ProtocolState;
  /** Warnings to print before the sandbox starts (bubblewrap's "Only the last --chdir ..."). */
  warnings: string[];
  /** Flags given more than once, counted by flags that warn about it. */
  seen: Set<string>;
}

/** `nsjail-node` (the library's safe defaults) or `nsjail-node-bwrap` (bubblewrap 0.11.1's). */
export type CliMode = 'nsjail-node' | 'bwrap';

/** What the process-protocol flags ask for. */
export interface ProtocolState {
  infoFd: number | undefined;
  blockFd: number | undefined;
  usernsBlockFd: number | undefined;
  syncFd: number | undefined;
  levelPrefix: boolean;
  /** --unshare-user-try, --unshare-cgroup-try. */
  userTry: boolean;
  cgroupTry: boolean;
}

/** Records that `flag` was given; in bwrap mode warns as bubblewrap does when it was given before. */
export function onlyLast(s: CliState, flag: string): void {
  if (s.seen.has(flag)) s.warnings.push(`Only the last ${flag} option will take effect`);
  s.seen.add(flag);
}

/** One flag: `--name VALUE...`. */
export interface CliFlag {
  name: `--${string}`;
  /** Names of its values, e.g. `['SRC', 'DEST']`; empty for a switch. */
  values: readonly string[];
  help: string;
  apply(state: CliState, values: readonly string[]): void;
}

/** A family of flags, a section of --help. */
export interface CliFlagFamily {
  title: string;
  flags: readonly CliFlag[];
}

/** A switch: a flag without values. */
function toggle(name: `--${string}`, help: string, apply: (state: CliState) => void): CliFlag {
  return { name, values: [], help, apply };
}

/** An integer in [min, max], for the flag `flag`. */
export function parseInteger(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} needs a whole number, got '${text}'`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${text}`);
  return n;
}

/** An open file descriptor of this process; anything but digits is bubblewrap's "Invalid fd". */
export function parseFd(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`Invalid fd: ${text}`);
  const fd = parseInteger(flag, text, 0, 0x7fffffff);
  try {
    fs.fstatSync(fd);
  } catch {
    throw new UsageError(`${flag} ${fd}: not an open file descriptor`);
  }
  return fd;
}

/**
 * A compiled seccomp program read from fd `text` to its end, and the fd closed, as bubblewrap
 * does (the same fd given twice cannot be read again). Its size is checked once all flags
 * are read (lib/cli-flags-mounts.ts), so that a wrong combination of flags is reported first.
 */
export function readSeccompFd(flag: string, text: string): Buffer {
  if (!/^\d+$/.test(text)) throw new UsageError(`Invalid fd: ${text}`);
  const fd = parseInteger(flag, text, 0, 0x7fffffff);
  try {
    return fs.readFileSync(fd);
  } catch (err) {
    const errno = -((err as NodeJS.ErrnoException).errno ?? 0);
    throw new UsageError(`Can't read seccomp data: ${errno > 0 ? binding.strerror(errno) : (err as Error).message}`);
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed: reported by the read
    }
  }
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A size such as `64M`, `512k`, `1G` or `1048576` (bytes; K/M/G/T are powers of 1024). */
export function parseSize(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text);
  if (!m) throw new UsageError(`${flag} needs a size such as 64M, 512K or 1G, got '${text}'`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  if (bytes <= 0 || !Number.isSafeInteger(bytes)) throw new UsageError(`${flag} must be a positive size, got '${text}'`);
  return bytes;
}

/** A positive number of seconds, fractions allowed. */
export function parseSeconds(flag: string, text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) throw new UsageError(`${flag} needs a positive number of seconds, got '${text}'`);
  return Number(text);
}

/** A path inside the sandbox: absolute. */
function sandboxPath(flag: string, text: string): string {
  if (!text.startsWith('/')) throw new UsageError(`${flag} needs an absolute path inside the sandbox, got '${text}'`);
  return text;
}

/** A path on the host: made absolute against the current directory, as bwrap does. */
export function hostPath(text: string): string {
  return path.resolve(text);
}

const ALL_NAMESPACES = ['user', 'pid', 'net', 'ipc', 'uts', 'cgroup', 'mount'] as const;

/** Namespaces, bubblewrap's names first, then the seed's. */
export const NAMESPACE_FLAGS: CliFlagFamily = {
  title: 'Namespaces (later flags win: --unshare-all --share-net keeps the host network)',
  flags: [
    toggle('--unshare-user', 'new user namespace: the program is uid 0 inside (with no capabilities unless --cap-add), the caller outside', (s) => (s.options.user = true)),
    toggle('--unshare-pid', 'new PID namespace: the program sees only its own descendants; a tiny init is PID 1 (see --as-pid-1)', (s) => (s.options.pid = true)),
    toggle('--unshare-net', 'new network namespace with only a loopback interface, up (127.0.0.1 and ::1 work)', (s) => (s.options.net = true)),
    toggle('--unshare-ipc', 'new IPC namespace (System V IPC, POSIX message queues)', (s) => (s.options.ipc = true)),
    toggle('--unshare-uts', 'new UTS namespace (host name)', (s) => (s.options.uts = true)),
    toggle('--unshare-cgroup', 'new cgroup namespace: the program\'s cgroup appears as the root', (s) => (s.options.cgroup = true)),
    toggle('--unshare-all', 'all of the above, and a mount namespace', (s) => {
      // bubblewrap: the user and cgroup namespaces only where the kernel allows them (the -try flags).
      const tried = s.mode === 'bwrap' ? new Set(['user', 'cgroup']) : new Set();
      for (const ns of ALL_NAMESPACES) if (!tried.has(ns)) s.options[ns] = true;
      if (s.mode === 'bwrap') s.protocol.userTry = s.protocol.cgroupTry = true;
    }),
    toggle('--share-net', 'keep the host\'s network namespace (undoes --unshare-net / --unshare-all)', (s) => (s.options.net = false)),
    toggle('--no-loopback', 'leave lo down in the new network namespace, as a bare CLONE_NEWNET does', (s) => (s.options.loopback = false)),
    toggle('--pid', 'the same as --unshare-pid', (s) => (s.options.pid = true)),
    toggle('--net', 'the same as --unshare-net', (s) => (s.options.net = true)),
    toggle('--mount', 'new mount namespace, made private so that no mount reaches the host (implied by every filesystem flag below)', (s) => (s.options.mount = true)),
  ],
};

/** A flag that adds one entry to `mounts` (and so needs a mount namespace). */
export function mountFlag(name: `--${string}`, values: readonly string[], help: string, entry: (values: readonly string[]) => MountEntry): CliFlag {
  return {
    name,
    values,
    help,
    apply(s, v) {
      s.options.mounts = [...(s.options.mounts ?? []), entry(v)];
      s.needsMount ??= name;
      if (name === '--proc') s.needsPid ??= name;
    },
  };
}

/** A bind entry as bubblewrap makes it: always nosuid. */
export function bind(flag: string, [src, dest]: readonly string[], flags: { nodev?: boolean; readonly?: boolean; try?: boolean }): MountEntry {
  return { type: 'bind', source: hostPath(src), target: sandboxPath(flag, dest), nosuid: true, ...flags };
}

/** The sandbox's filesystem. */
export const FILESYSTEM_FLAGS: CliFlagFamily = {
  title: 'Filesystem (SRC of a bind is a host path, DEST a path inside the sandbox; entries are made in order; ' +
    'without --root they build on an empty tmpfs root, as bubblewrap does; every flag but --root implies --mount)',
  flags: [
    {
      name: '--root',
      values: ['DIR'],
      help: 'host directory to become the sandbox\'s / (pivot_root with --mount, else chroot)',
      apply(s, [dir]) {
        s.options.root = hostPath(dir);
      },
    },
    mountFlag('--bind', ['SRC', 'DEST'], 'bind-mount host path SRC on DEST, read-write (nosuid, nodev)', (v) => bind('--bind', v, { nodev: true })),
    mountFlag('--bind-try', ['SRC', 'DEST'], 'like --bind, skipped when SRC does not exist', (v) => bind('--bind-try', v, { nodev: true, try: true })),
    mountFlag('--ro-bind', ['SRC', 'DEST'], 'bind-mount host path SRC on DEST, read-only (nosuid, nodev)', (v) => bind('--ro-bind', v, { nodev: true, readonly: true })),
    mountFlag('--ro-bind-try', ['SRC', 'DEST'], 'like --ro-bind, skipped when SRC does not exist', (v) => bind('--ro-bind-try', v, { nodev: true, readonly: true, try: true })),
    mountFlag('--dev-bind', ['SRC', 'DEST'], 'bind-mount host path SRC on DEST, read-write, device nodes usable (nosuid)', (v) => bind('--dev-bind', v, {})),
    mountFlag('--tmpfs', ['DEST'], 'mount an empty tmpfs on DEST (nosuid, nodev)', ([dest]) => ({ type: 'tmpfs', target: sandboxPath('--tmpfs', dest) })),
    mountFlag('--proc', ['DEST'], 'mount a procfs of the sandbox\'s PID namespace on DEST (needs --unshare-pid)', ([dest]) => ({ type: 'proc', target: sandboxPath('--proc', dest) })),
    mountFlag('--dev', ['DEST'], 'mount a minimal /dev on DEST: null, zero, full, random, urandom, tty, a private pts, shm', ([dest]) => ({ type: 'dev', target: sandboxPath('--dev', dest) })),
    mountFlag('--dir', ['DEST'], 'create the directory DEST (and its parents)', ([dest]) => ({ type: 'dir', target: sandboxPath('--dir', dest) })),
    mountFlag('--symlink', ['SRC', 'DEST'], 'create the symbolic link DEST pointing to SRC', ([to, dest]) => ({ type: 'symlink', target: sandboxPath('--symlink', dest), to })),
  ],
};

/** The program's environment, host name and working directory. */
export const ENVIRONMENT_FLAGS: CliFlagFamily = {
  title: 'Environment (the program gets this command\'s environment, edited in order by these flags)',
  flags: [
    {
      name: '--setenv',
      values: ['VAR', 'VALUE'],
      help: 'set VAR to VALUE',
      apply(s, [name, value]) {
        if (name === '' || name.includes('=')) throw new UsageError(`--setenv needs a variable name without '=', got '${name}'`);
        s.env.set(name, value);
      },
    },
    {
      name: '--unsetenv',
      values: ['VAR'],
      help: 'remove VAR',
      apply(s, [name]) {
        s.env.delete(name);
      },
    },
    toggle('--clearenv', 'remove every variable (a bare COMMAND is still found on the default PATH)', (s) => s.env.clear()),
    {
      name: '--chdir',
      values: ['DIR'],
      help: 'working directory inside the sandbox (default: / with --root, else the current one)',
      apply(s, [dir]) {
        onlyLast(s, '--chdir');
        s.options.cwd = s.mode === 'bwrap' ? dir : sandboxPath('--chdir', dir);
      },
    },
    {
      name: '--hostname',
      values: ['NAME'],
      help: 'host name inside the sandbox (needs --unshare-uts)',
      apply(s, [name]) {
        onlyLast(s, '--hostname');
        s.options.hostname = name;
      },
    },
  ],
};

// The largest id: ids are 32-bit with (uid_t)-1 reserved.
const MAX_ID = 0xfffffffe;

/** CAP (`CAP_NET_ADMIN`, `net_admin`) as a capability name of this kernel, or ALL. */
function capabilityList(flag: string, text: string): CapabilityName[] | 'ALL' {
  if (text.toUpperCase() === 'ALL') return 'ALL';
  const name = text.toUpperCase().startsWith('CAP_') ? text.toUpperCase() : `CAP_${text.toUpperCase()}`;
  const n = capabilityNumber(name);
  if (n === undefined) {
    const guess = didYouMean(name, CAPABILITY_NAMES);
    throw new UsageError(`${flag}: '${text}' is not a capability${guess ? ` (did you mean ${guess}?)` : ''}`);
  }
  if (n > kernelLastCapability()) throw new UsageError(`${flag}: ${name} is not known to this kernel`);
  return [CAPABILITY_NAMES[n]];
}

/**
 * The capabilities --cap-add ALL means: in a new user namespace every one the kernel has
 * (the program is root there); else the ones this process holds (CapPrm), as it can grant no
 * others.
 */
export function allCapabilities(userNamespace: boolean): CapabilityName[] {
  const all = CAPABILITY_NAMES.slice(0, kernelLastCapability() + 1);
  if (userNamespace) return all;
  const m = /^CapPrm:\s+([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  const permitted = m ? BigInt(`0x${m[1]}`) : 0n;
  return all.filter((_, n) => (permitted >> BigInt(n)) & 1n);
}

/** The capabilities kept after the --cap-add / --cap-drop edits, in number order. */
export function keptCapabilities(edits: CliState['capabilityEdits'], userNamespace: boolean): CapabilityName[] {
  const kept = new Set<CapabilityName>();
  for (const edit of edits) {
    for (const name of edit.names === 'ALL' ? allCapabilities(userNamespace) : edit.names) {
      if (edit.add) kept.add(name);
      else kept.delete(name);
    }
  }
  return CAPABILITY_NAMES.filter((name) => kept.has(name));
}

/** Who the program is and what it may do. */
export const IDENTITY_FLAGS: CliFlagFamily = {
  title: 'Identity and privileges',
  flags: [
    {
      name: '--uid',
      values: ['UID'],
      help: 'the program\'s uid: inside the user namespace with --unshare-user (default 0 there), else a host uid to switch to (needs --gid too)',
      apply(s, [uid]) {
        onlyLast(s, '--uid');
        s.options.uid = parseInteger('--uid', uid, 0, MAX_ID);
      },
    },
    {
      name: '--gid',
      values: ['GID'],
      help: 'the program\'s gid, as --uid',
      apply(s, [gid]) {
        onlyLast(s, '--gid');
        s.options.gid = parseInteger('--gid', gid, 0, MAX_ID);
      },
    },
    {
      name: '--cap-add',
      values: ['CAP'],
      help: 'keep capability CAP (CAP_NET_ADMIN, net_admin, ...; ALL for every one this process may grant, all of them with --unshare-user); by default none is kept. --cap-add and --cap-drop apply in order',
      apply(s, [cap]) {
        s.capabilityEdits.push({ add: true, names: capabilityList('--cap-add', cap) });
      },
    },
    {
      name: '--cap-drop',
      values: ['CAP'],
      help: 'do not keep capability CAP (ALL: none), undoing an earlier --cap-add',
      apply(s, [cap]) {
        s.capabilityEdits.push({ add: false, names: capabilityList('--cap-drop', cap) });
      },
    },
    {
      name: '--seccomp',
      values: ['FD'],
      help: 'install the compiled seccomp BPF program (struct sock_filter[], host byte order, as bubblewrap takes) read from FD to its end',
      apply(s, [fd]) {
        // Before the fd is read, as bubblewrap refuses the combination while parsing.
        if (Array.isArray(s.options.seccomp)) throw new UsageError('--seccomp cannot be combined with --add-seccomp-fd');
        s.options.seccomp = { bpf: readSeccompFd('--seccomp', fd) };
      },
    },
  ],
};

/** The program's process: session, parent death, PID 1. */
export const PROCESS_FLAGS: CliFlagFamily = {
  title: 'Process (--die-with-parent and --new-session are always on: they are accepted for bubblewrap command lines)',
  flags: [
    toggle('--die-with-parent', 'kill the sandbox with SIGKILL when nsjail-node dies (the default)', (s) => (s.options.dieWithParent = true)),
    toggle('--new-session', 'start the program in a new session, away from the terminal (the default; no TIOCSTI injection)', (s) => (s.options.newSession = true)),
    toggle('--as-pid-1', 'with --unshare-pid, run the program itself as PID 1; by default a tiny init is PID 1, which forwards signals to the program, reaps orphans and ends with the program\'s status', (s) => (s.asPid1 = true)),
  ],
};

/** A limit flag: its one value parsed and set as `options.limits[key]`. */
function limitFlag<K extends keyof Limits>(
  name: `--${string}`,
  value: string,
  help: string,
  key: K,
  parse: (text: string) => Limits[K],
): CliFlag {
  return {
    name,
    values: [value],
    help,
    apply(s, [text]) {
      s.options.limits = { ...s.options.limits, [key]: parse(text) };
    },
  };
}

/** Resource limits. */
export const LIMIT_FLAGS: CliFlagFamily = {
  title: 'Limits',
  flags: [
    limitFlag('--memory', 'SIZE', 'memory limit through the memory cgroup, e.g. 64M or 1G (K, M, G, T: powers of 1024); past it the kernel OOM-kills',
      'memory', (t) => parseSize('--memory', t)),
    limitFlag('--pids', 'N', 'at most N processes and threads at once, through the pids cgroup',
      'pids', (t) => parseInteger('--pids', t, 1, 0x7fffffff)),
    limitFlag('--time', 'SECONDS', 'wall-time limit: past SECONDS (fractions allowed) the whole sandbox is killed with SIGKILL',
      'wallTime', (t) => parseSeconds('--time', t) * 1000),
    limitFlag('--cpu-time', 'SECONDS', 'CPU-time limit (whole seconds): RLIMIT_CPU, plus a kill from cgroup CPU accounting when there is a cgroup',
      'cpuTime', (t) => parseInteger('--cpu-time', t, 1, 0x7fffffff)),
    limitFlag('--cpus', 'FRACTION', 'CPU bandwidth as a share of one CPU, e.g. 0.5 (cpu.max / CFS quota)', 'cpu', (t) => {
      if (!/^\d+(\.\d+)?$/.test(t) || Number(t) <= 0) throw new UsageError(`--cpus needs a positive number such as 0.5, got '${t}'`);
      return Number(t);
    }),
    {
      name: '--rlimit',
      values: ['NAME=VALUE'],
      help: `an rlimit, soft and hard, as a number or 'unlimited', e.g. nofile=64 (names: ${Object.keys(RLIMIT_RESOURCES).join(', ')}); repeatable`,
      apply(s, [setting]) {
        const m = /^([a-z]+)=(\d+|unlimited)$/.exec(setting);
        if (!m) throw new UsageError(`--rlimit needs NAME=VALUE such as nofile=64 or core=unlimited, got '${setting}'`);
        const name = m[1] as RlimitName;
        if (!(name in RLIMIT_RESOURCES)) {
          const guess = didYouMean(m[1], Object.keys(RLIMIT_RESOURCES));
          throw new UsageError(`--rlimit: unknown resource '${m[1]}'${guess ? ` (did you mean ${guess}?)` : ''}`);
        }
        const value = m[2] === 'unlimited' ? 'unlimited' : parseInteger('--rlimit', m[2], 0, Number.MAX_SAFE_INTEGER);
        const limits = s.options.limits ?? {};
        s.options.limits = { ...limits, rlimits: { ...limits.rlimits, [name]: value } };
      },
    },
  ],
};

/** What nsjail-node itself reports. */
export const OUTPUT_FLAGS: CliFlagFamily = {
  title: 'Output',
  flags: [
    {
      name: '--json-status-fd',
      values: ['FD'],
      help: 'when the program ends, write its whole ExitStatus as one JSON line to FD (pid, exitCode, signal, status, killedBy, ' +
        'times, memory peak, ...: what spawnIsolated resolves to); when the sandbox cannot be set up, {"error":{message, code, errno, step, syscall, path}}',
      apply(s, [fd]) {
        s.jsonStatusFd = parseFd('--json-status-fd', fd);
      },
    },
  ],
};

/** Every family, in the order --help lists them. */
export const FLAG_FAMILIES: readonly CliFlagFamily[] = [
  NAMESPACE_FLAGS, FILESYSTEM_FLAGS, ENVIRONMENT_FLAGS, IDENTITY_FLAGS, PROCESS_FLAGS, LIMIT_FLAGS, OUTPUT_FLAGS,
];
