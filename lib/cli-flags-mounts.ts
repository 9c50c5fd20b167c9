/**
 * bubblewrap's fd-based, overlay and modifier flags (--perms, --size, --chmod, --file,
 * --bind-data, --bind-fd, the overlay family, --add-seccomp-fd, --userns, --pidns,
 * --disable-userns, ...): each builds library options, as the flags of lib/cli-flags.ts do.
 *
 * --perms, --size and --overlay-src apply to the flag that follows them; lib/cli.ts calls
 * {@link afterFlag} after every flag, which hands them on or refuses them with bubblewrap's
 * words.
 */
import * as fs from 'node:fs';
import { hostPath, parseFd, readSeccompFd, UsageError, type CliFlag, type CliFlagFamily, type CliState } from './cli-flags';
import type { MountEntry } from './filesystem';
import type { SeccompProgram } from './seccomp';

/** What a modifier flag left for the next flag. */
interface Pending {
  perms: number | undefined;
  size: string | undefined;
  /** --overlay-src in the order given (bottom layer first). */
  overlaySources: string[];
}

// Kept beside the state so that lib/cli-flags.ts needs no field for them.
const PENDING = new WeakMap<CliState, Pending>();

function pending(state: CliState): Pending {
  let p = PENDING.get(state);
  if (!p) {
    p = { perms: undefined, size: undefined, overlaySources: [] };
    PENDING.set(state, p);
  }
  return p;
}

/** The flags --perms applies to (bubblewrap's: the ones that create a file or directory). */
const TAKES_PERMS = new Set(['--tmpfs', '--dir', '--file', '--bind-data', '--ro-bind-data']);
const MODIFIERS = new Set(['--perms', '--size']);

/**
 * The programs of --seccomp and --add-seccomp-fd, checked once the flags are read (as
 * bubblewrap reads them after parsing: a wrong combination is reported first).
 */
function checkSeccompPrograms(seccomp: CliState['options']['seccomp']): void {
  if (seccomp === undefined) return;
  const flag = Array.isArray(seccomp) ? '--add-seccomp-fd' : '--seccomp';
  const sizes = (Array.isArray(seccomp) ? seccomp : [seccomp]).map((program) => ('bpf' in program ? program.bpf.length : 0));
  // bubblewrap's own check first, over all of them; then the kernel's limits.
  if (sizes.some((bytes) => bytes % 8 !== 0)) throw new UsageError('Invalid seccomp data, must be multiple of 8');
  const bad = sizes.find((bytes) => bytes === 0 || bytes > 4096 * 8);
  if (bad !== undefined) throw new UsageError(`${flag}: a BPF program is 1 to 4096 instructions of 8 bytes, read ${bad} bytes`);
}

/**
 * Called after each flag `name` has been applied (and with undefined at the end of the
 * flags): hands a pending --perms or --size to the entry that flag added, and refuses one
 * that the flag does not take, as bubblewrap does.
 */
export function afterFlag(state: CliState, name: string | undefined): void {
  if (name === undefined) checkSeccompPrograms(state.options.seccomp);
  if (name === undefined && state.options.disableUserNamespaces && !state.options.user) throw new UsageError('--disable-userns requires --unshare-user');
  if (name === undefined && state.asPid1 && (state.options.lockFiles ?? []).length > 0) throw new UsageError('Specifying --lock-file is not compatible with --as-pid-1');
  const p = PENDING.get(state);
  if (!p) return;
  if (name !== undefined && MODIFIERS.has(name)) return;
  const mounts = state.options.mounts ?? [];
  const last = mounts[mounts.length - 1];
  if (p.perms !== undefined) {
    if (name === undefined || !TAKES_PERMS.has(name) || last === undefined) throw new UsageError('--perms must be followed by an option that creates a file');
    state.options.mounts = [...mounts.slice(0, -1), { ...last, mode: p.perms } as MountEntry];
    p.perms = undefined;
  }
  if (p.size !== undefined) {
    if (name !== '--tmpfs') throw new UsageError('--size must be followed by --tmpfs');
    const current = state.options.mounts ?? [];
    state.options.mounts = [...current.slice(0, -1), { ...current[current.length - 1], size: p.size } as MountEntry];
    p.size = undefined;
  }
  if (p.overlaySources.length > 0 && name !== '--overlay-src') {
    throw new UsageError('--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay');
  }
}

/** OCTAL as bubblewrap reads it (strtoul base 8): digits 0-7 only, at most 07777. */
function parseOctal(flag: string, text: string): number {
  if (!/^[0-7]+$/.test(text) || Number.parseInt(text, 8) > 0o7777) throw new UsageError(`${flag} takes an octal argument <= 07777`);
  return Number.parseInt(text, 8);
}

// bubblewrap's MAX_TMPFS_BYTES: SIZE_MAX / 2 on 64-bit.
const MAX_TMPFS_BYTES = 2n ** 63n - 1n;

/** BYTES as bubblewrap reads it (strtoull base 0: decimal, 0x hex or 0 octal), not zero. */
function parseBytes(text: string): string {
  let n: bigint | undefined;
  if (/^[1-9][0-9]*$/.test(text)) n = BigInt(text);
  else if (/^0[xX][0-9a-fA-F]+$/.test(text)) n = BigInt(text);
  else if (/^0[0-7]*$/.test(text)) n = BigInt(`0o${text.slice(1) || '0'}`);
  if (n === undefined || n === 0n) throw new UsageError('--size takes a non-zero number of bytes');
  if (n > MAX_TMPFS_BYTES) throw new UsageError(`--size (for tmpfs) is limited to ${MAX_TMPFS_BYTES}`);
  return n.toString();
}

/** Everything FD holds, read now (before any process starts). */
function readFd(flag: string, text: string): Buffer {
  const fd = parseFd(flag, text);
  try {
    return fs.readFileSync(fd);
  } catch (err) {
    throw new UsageError(`${flag} ${fd}: cannot read it: ${(err as Error).message}`);
  }
}

/** A path inside the sandbox: absolute. */
function sandboxPath(flag: string, text: string): string {
  if (!text.startsWith('/')) throw new UsageError(`${flag} needs an absolute path inside the sandbox, got '${text}'`);
  return text;
}

function addMount(state: CliState, flag: string, entry: MountEntry): void {
  state.options.mounts = [...(state.options.mounts ?? []), entry];
  state.needsMount ??= flag;
}

function fdFlag(name: `--${string}`, help: string, entry: (fd: number, dest: string) => MountEntry): CliFlag {
  return {
    name,
    values: ['FD', 'DEST'],
    help,
    apply(s, [fd, dest]) {
      addMount(s, name, entry(parseFd(name, fd), sandboxPath(name, dest)));
    },
  };
}

function dataFlag(name: `--${string}`, help: string, readonly: boolean | undefined): CliFlag {
  return {
    name,
    values: ['FD', 'DEST'],
    help,
    apply(s, [fd, dest]) {
      const content = readFd(name, fd);
      const target = sandboxPath(name, dest);
      // --file makes a file (0666 by default, as bubblewrap); the others bind one (0600).
      addMount(s, name, readonly === undefined ? { type: 'file', target, content, mode: 0o666 } : { type: 'data', target, content, readonly });
    },
  };
}

/** An overlay flag: the pending --overlay-src layers, topmost first for the library. */
function overlayFlag(name: `--${string}`, values: readonly string[], help: string, min: number, entry: (lower: string[], values: readonly string[]) => MountEntry): CliFlag {
  return {
    name,
    values,
    help,
    apply(s, v) {
      const p = pending(s);
      if (p.overlaySources.length < min) throw new UsageError(`${name} requires at least ${min === 1 ? 'one' : 'two'} --overlay-src`);
      const lower = [...p.overlaySources].reverse();
      p.overlaySources = [];
      addMount(s, name, entry(lower, v));
    },
  };
}

/** bubblewrap's modifiers, file-content and fd flags, and overlays. */
export const BWRAP_FILESYSTEM_FLAGS: CliFlagFamily = {
  title: 'More filesystem flags (bubblewrap\'s: FD is an open file descriptor of nsjail-node; --perms and --size apply to the flag right after them)',
  flags: [
    {
      name: '--perms',
      values: ['OCTAL'],
      help: 'permissions of what the next --tmpfs, --dir, --file, --bind-data or --ro-bind-data makes (its missing parents lose the group/other bits it lacks)',
      apply(s, [text]) {
        const p = pending(s);
        if (p.perms !== undefined) throw new UsageError('--perms given twice for the same action');
        p.perms = parseOctal('--perms', text);
      },
    },
    {
      name: '--size',
      values: ['BYTES'],
      help: 'size limit of the next --tmpfs, in bytes',
      apply(s, [text]) {
        const p = pending(s);
        if (p.size !== undefined) throw new UsageError('--size given twice for the same action');
        p.size = parseBytes(text);
      },
    },
    {
      name: '--chmod',
      values: ['OCTAL', 'PATH'],
      help: 'change the permissions of PATH, which must exist (follows a symlink, inside the sandbox only)',
      apply(s, [text, dest]) {
        addMount(s, '--chmod', { type: 'chmod', target: sandboxPath('--chmod', dest), mode: parseOctal('--chmod', text) });
      },
    },
    dataFlag('--file', 'create the file DEST (0666 unless --perms) with what FD holds, read to its end', undefined),
    dataFlag('--bind-data', 'bind a private file (0600 unless --perms) with what FD holds over DEST, read-write; works over an existing file of a read-only root', false),
    dataFlag('--ro-bind-data', 'as --bind-data, read-only', true),
    fdFlag('--bind-fd', 'bind the directory or file FD is open on at DEST (its path is bound and must still be that very file), read-write (nosuid, nodev)',
      (fd, target) => ({ type: 'bind', sourceFd: fd, target, nosuid: true, nodev: true })),
    fdFlag('--ro-bind-fd', 'as --bind-fd, read-only', (fd, target) => ({ type: 'bind', sourceFd: fd, target, nosuid: true, nodev: true, readonly: true })),
    {
      name: '--overlay-src',
      values: ['SRC'],
      help: 'a lower layer (host directory) for the next --overlay, --tmp-overlay or --ro-overlay; repeatable, each later one above the earlier ones',
      apply(s, [src]) {
        pending(s).overlaySources.push(hostPath(src));
      },
    },
    overlayFlag('--overlay', ['RWSRC', 'WORKDIR', 'DEST'],
      'an overlayfs on DEST of the --overlay-src layers under the host directory RWSRC, where changes land (WORKDIR: an empty directory on its filesystem)', 1,
      (lower, [upper, work, dest]) => ({ type: 'overlay', target: sandboxPath('--overlay', dest), lower, upper: hostPath(upper), work: hostPath(work) })),
    overlayFlag('--tmp-overlay', ['DEST'], 'an overlayfs on DEST of the --overlay-src layers under a private tmpfs: changes are lost with the sandbox', 1,
      (lower, [dest]) => ({ type: 'overlay', target: sandboxPath('--tmp-overlay', dest), lower })),
    overlayFlag('--ro-overlay', ['DEST'], 'a read-only overlayfs on DEST of at least two --overlay-src layers', 2,
      (lower, [dest]) => ({ type: 'overlay', target: sandboxPath('--ro-overlay', dest), lower, readonly: true })),
  ],
};

/** A joined namespace's file, as the library opens it: the fd, seen in this process. */
function namespaceFd(flag: string, text: string): string {
  return `/proc/self/fd/${parseFd(flag, text)}`;
}

/** bubblewrap's flags for existing namespaces, nested user namespaces and extra seccomp filters. */
export const BWRAP_NAMESPACE_FLAGS: CliFlagFamily = {
  title: 'Existing namespaces and stacked filters (bubblewrap\'s)',
  flags: [
    {
      name: '--userns',
      values: ['FD'],
      help: 'join the user namespace FD is open on (e.g. /proc/PID/ns/user) instead of making one; new namespaces asked for (mount, net, uts, ipc) then belong to it',
      apply(s, [fd]) {
        s.options.join = { ...s.options.join, user: namespaceFd('--userns', fd) };
      },
    },
    {
      name: '--userns2',
      values: ['FD'],
      help: 'once the sandbox is set up, enter the user namespace FD is open on (e.g. one nested in the sandbox\'s own) and start the program there',
      apply(s, [fd]) {
        s.options.join = { ...s.options.join, userAfterSetup: namespaceFd('--userns2', fd) };
      },
    },
    {
      name: '--pidns',
      values: ['FD'],
      help: 'start the program in the PID namespace FD is open on (it must be below this one)',
      apply(s, [fd]) {
        s.options.join = { ...s.options.join, pid: namespaceFd('--pidns', fd) };
      },
    },
    {
      name: '--lock-file',
      values: ['DEST'],
      help: 'hold a shared lock (fcntl F_RDLCK) on the file DEST of the sandbox while it runs (taken by its init, also without --unshare-pid); repeatable; not with --as-pid-1',
      apply(s, [dest]) {
        s.options.lockFiles = [...(s.options.lockFiles ?? []), sandboxPath('--lock-file', dest)];
      },
    },
    {
      name: '--disable-userns',
      values: [],
      help: 'the program cannot create user namespaces (needs --unshare-user): user.max_user_namespaces = 1 in the sandbox\'s, used up by one more nested in it, where the program runs',
      apply(s) {
        s.options.disableUserNamespaces = true;
      },
    },
    {
      name: '--assert-userns-disabled',
      values: [],
      help: 'fail unless creating a user namespace is refused right before the program starts',
      apply(s) {
        s.options.assertUserNamespacesDisabled = true;
      },
    },
    {
      name: '--add-seccomp-fd',
      values: ['FD'],
      help: 'install this compiled seccomp BPF program (as --seccomp takes) too; repeatable, installed in order, all apply; not with --seccomp',
      apply(s, [fd]) {
        const current = s.options.seccomp;
        if (current !== undefined && !Array.isArray(current)) throw new UsageError('--add-seccomp-fd cannot be combined with --seccomp');
        const bpf = readSeccompFd('--add-seccomp-fd', fd);
        const programs = (current ?? []) as readonly SeccompProgram[];
        s.options.seccomp = [...programs, { bpf }];
      },
    },
  ],
};
