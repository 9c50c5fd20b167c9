/**
 * The sandbox's view of the filesystem: its root, and (with a mount namespace) the mount plan
 * that builds it. Compiled into child steps; src-native/child_fs.cc executes them.
 *
 * A mount plan runs in the child, in its own mount namespace made private first:
 *   1. stage-root: a private tmpfs on STAGING_DIR becomes the root for a moment, with the
 *      host's root at /oldroot (where host sources are found) and an empty /newroot;
 *   2. the new root: `root` bound onto /newroot, or a fresh tmpfs there;
 *   3. each entry of `mounts` in order: its target resolved inside /newroot with
 *      openat2(RESOLVE_IN_ROOT) so that no symlink leads outside, missing directories made;
 *   4. readonlyRoot, then pivot_root into /newroot; the staging tmpfs and the whole host
 *      tree under it are detached.
 * This file has the options and their validation; lib/mount-steps.ts compiles them into steps.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PreparedTrees } from './hostids';
import { checkAbsolutePath, checkArray, checkBoolean, checkCString, checkObject, describe, fail, rejectUnknownKeys } from './validate';

/** Flags of a bind, tmpfs or overlay mount. */
export interface MountFlagOptions {
  /** Read-only; for a recursive bind, every mount under it too. Writes fail with EROFS. */
  readonly?: boolean;
  /** Set-user-ID and set-group-ID bits and file capabilities are ignored. */
  nosuid?: boolean;
  /** Device files on it cannot be opened. */
  nodev?: boolean;
  /** Nothing on it can be executed (execve fails with EACCES). */
  noexec?: boolean;
}

/**
 * A host file or directory bound into the sandbox: by path (`source`) or by an open file
 * descriptor (`sourceFd`), one of the two.
 */
export interface BindMountEntry extends MountFlagOptions {
  type: 'bind';
  /**
   * Absolute host path. It is resolved in the host's root (its symlinks are followed as on
   * the host); a directory is bound onto a directory, anything else onto a file.
   */
  source?: string;
  /**
   * An open file descriptor of this process (`fs.openSync(dir, 'r')`, an O_PATH fd, ...)
   * whose file or directory is bound, as bubblewrap's --bind-fd does. The kernel binds no
   * mount of another mount namespace, so its path (from /proc/self/fd) is bound, and the
   * spawn fails with ESTALE unless that path still leads to the very file the fd is open on
   * (renamed or replaced since: refused, never a different file bound). Instead of `source`;
   * `target` is then required. It is used during the spawn call only and stays the
   * caller's to close. Bound as it is, also for a sandbox on a host id of its own (no
   * idmapping).
   */
  sourceFd?: number;
  /**
   * Absolute path inside the sandbox. Default: the same path as `source`. A missing target
   * (and its missing parents) is created: a directory 0755, or an empty file 0444 (the mode
   * bubblewrap gives a file mount point).
   */
  target?: string;
  /** Also bind what is mounted under `source` (mount --rbind). Default true. */
  recursive?: boolean;
  /** Skip this entry when `source` does not exist, instead of failing (bubblewrap's --bind-try). */
  try?: boolean;
}

/** A fresh tmpfs: memory-backed, empty, gone with the sandbox. */
export interface TmpfsMountEntry extends MountFlagOptions {
  type: 'tmpfs';
  /** Absolute path inside the sandbox. */
  target: string;
  /**
   * Size limit: bytes as a number, or a string the kernel reads (`'64m'`, `'1g'`, `'10%'` of
   * RAM). Writes past it fail with ENOSPC. Default: the kernel's (half of RAM).
   */
  size?: number | string;
  /** Permissions of its root directory. Default 0o755. `nosuid` and `nodev` default to true. */
  mode?: number;
}

/**
 * A fresh procfs for the sandbox's own PID namespace (needs `pid: true`), with /proc/sys,
 * /proc/sysrq-trigger, /proc/irq and /proc/bus read-only, as bubblewrap makes them.
 */
export interface ProcMountEntry {
  type: 'proc';
  /** Default `/proc`. */
  target?: string;
  /**
   * Without `pid: true`, bind this process's /proc (with what is mounted under it) instead,
   * as bubblewrap does: it shows the PID namespace the sandbox shares, e.g. every host
   * process with their command lines and environments (where the program may read them).
   * Its sys, sysrq-trigger, irq and bus are still read-only. Default false (refused).
   */
  sharedPidNamespace?: boolean;
}

/**
 * A minimal /dev: a tmpfs with the host's null, zero, full, random, urandom and tty bound in
 * read-only (reading and writing the devices works; chmod, chown and utimes on them fail
 * with EROFS, so the host's nodes cannot be changed), a private devpts at pts with ptmx -> pts/ptmx, a tmpfs at shm, and the fd, stdin, stdout,
 * stderr and core links into /proc (mount a `proc` entry for those to resolve).
 */
export interface DevMountEntry {
  type: 'dev';
  /** Default `/dev`. */
  target?: string;
}

/** A POSIX message-queue filesystem for the sandbox's own IPC namespace (needs `ipc: true`). */
export interface MqueueMountEntry {
  type: 'mqueue';
  /** Default `/dev/mqueue`. */
  target?: string;
}

/**
 * A directory (and its missing parents); an existing one is left as it is. Missing parents
 * are made 0755, less the group or other bits when `mode` gives that class nothing (0o700
 * makes 0700 parents, 0o750 makes 0750 ones), as bubblewrap makes them; the same holds for
 * the parents of `file`, `data` and `tmpfs` entries.
 */
export interface DirEntry {
  type: 'dir';
  /** Absolute path inside the sandbox. */
  target: string;
  /** Permissions when created (not umasked). Default 0o755. */
  mode?: number;
}

/**
 * A regular file with the given content, created or overwritten. Only a regular file is
 * overwritten: whatever else is at the target is refused with an IsolationError, and a FIFO,
 * socket or device node there is never even opened.
 */
export interface FileEntry {
  type: 'file';
  /** Absolute path inside the sandbox; an existing symlink there is refused (ELOOP), a directory (EISDIR), a FIFO, socket or device node (EINVAL). */
  target: string;
  /** The file's content (a string is written as UTF-8). */
  content: string | Uint8Array;
  /** Permissions. Default 0o644. */
  mode?: number;
}

/**
 * A file with the given content bound over `target` (bubblewrap's --bind-data and
 * --ro-bind-data): the content is written to a private file outside the new root, which is
 * then bind-mounted. Unlike a `file` entry, it works over an existing file of a read-only
 * `root` or bind, and with `readonly` the sandbox cannot change it. The file is the
 * sandbox's own: writes (without `readonly`) are lost with it.
 */
export interface DataMountEntry {
  type: 'data';
  /** Absolute path inside the sandbox; made an empty file first when missing. Must not be a directory. */
  target: string;
  /** The file's content (a string is written as UTF-8). */
  content: string | Uint8Array;
  /** Bind read-only. Default false. */
  readonly?: boolean;
  /** Permissions of the file. Default 0o600, as bubblewrap makes it. */
  mode?: number;
}

/** A symbolic link at `target` pointing to `to` (kept if the same link is already there). */
export interface SymlinkEntry {
  type: 'symlink';
  /** Absolute path inside the sandbox where the link is made. */
  target: string;
  /** What the link points to, e.g. `usr/bin`; resolved inside the sandbox when used. */
  to: string;
}

/** Changes the permissions of an existing path (following a symlink, inside the sandbox only), through a descriptor: a FIFO or device node there is not opened. */
export interface ChmodEntry {
  type: 'chmod';
  /** Absolute path inside the sandbox. */
  target: string;
  /** New permissions, e.g. 0o1777. */
  mode: number;
}

/**
 * An overlayfs: host `lower` directories (first is topmost) under a writable upper layer,
 * either the host directories `upper` and `work` (same filesystem; changes land there) or,
 * when both are left out, a private tmpfs (changes are discarded with the sandbox). With
 * `readonly` and no `upper`, the lower layers alone are merged read-only.
 */
export interface OverlayMountEntry extends MountFlagOptions {
  type: 'overlay';
  /** Absolute path inside the sandbox. */
  target: string;
  /**
   * Absolute host directories, topmost first; at least one, at most 500. Each is resolved
   * once in the host's root (its symlinks followed as on the host) and handed to overlayfs as
   * an open directory, so any name is fine (':' and ',' included).
   */
  lower: readonly string[];
  /** Absolute host directory for changes; needs `work`. */
  upper?: string;
  /** Absolute host directory, empty, on the same filesystem as `upper`. */
  work?: string;
}

/**
 * Makes the mount at `target` (made by an earlier entry, or the root's) read-only, that
 * mount alone: mounts under it keep their flags (bubblewrap's --remount-ro).
 */
export interface RemountReadonlyEntry {
  type: 'remount-ro';
  /** Absolute path inside the sandbox. */
  target: string;
}

/** One entry of the `mounts` option; `type` tells which. */
export type MountEntry =
  | BindMountEntry
  | TmpfsMountEntry
  | ProcMountEntry
  | DevMountEntry
  | MqueueMountEntry
  | DirEntry
  | FileEntry
  | SymlinkEntry
  | ChmodEntry
  | OverlayMountEntry
  | DataMountEntry
  | RemountReadonlyEntry;

/** Filesystem options of spawnIsolated. */
export interface FilesystemOptions {
  /**
   * A host directory to become the sandbox's `/`. With `mount: true` it is switched to with
   * pivot_root and the old root is detached; without a mount namespace by chroot + chdir("/").
   * Entries of `mounts` that create paths (targets, dir, file, symlink, chmod) change this
   * host directory.
   */
  root?: string;
  /**
   * The sandbox's filesystem, built in order inside its own mount namespace (needs
   * `mount: true`). Without `root` the new root is an empty tmpfs populated by these
   * entries (bubblewrap's model); with `root` they are layered on that directory. Targets
   * are created as needed and never resolved through a symlink to a place outside the new
   * root. See {@link hostSystemMounts} for the host's programs and libraries.
   *
   * @example
   * mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'dev' }, { type: 'tmpfs', target: '/tmp', size: '64m' }]
   */
  mounts?: readonly MountEntry[];
  /** Make the new root's own mount read-only once `mounts` are in place (needs `root` or `mounts`). */
  readonlyRoot?: boolean;
}

/** The option names this file owns. */
export const FILESYSTEM_OPTION_KEYS = ['root', 'mounts', 'readonlyRoot'] as const;

/** The namespaces the filesystem options depend on. */
export interface FilesystemNamespaces {
  mount: boolean;
  pid: boolean;
  ipc: boolean;
  user: boolean;
}

/** The four mount flags, each given. */
export type Flags = Required<MountFlagOptions>;

/** A mount entry after validation: absolute, normalised paths and defaults filled in. */
export type ValidatedMount =
  | ({ type: 'bind'; source: string; target: string; recursive: boolean; try: boolean } & Flags)
  // A bind by file descriptor (BindMountEntry.sourceFd): its own kind here, as it has no host path.
  | ({ type: 'bindFd'; sourceFd: number; source: string; target: string; recursive: boolean } & Flags)
  | { type: 'data'; target: string; content: Buffer; mode: number; readonly: boolean }
  | ({ type: 'tmpfs'; target: string; size: string | undefined; mode: number } & Flags)
  | { type: 'proc'; target: string; sharedPidNamespace: boolean }
  | { type: 'dev' | 'mqueue'; target: string }
  | { type: 'dir'; target: string; mode: number }
  | { type: 'file'; target: string; content: Buffer; mode: number }
  | { type: 'symlink'; target: string; to: string }
  | { type: 'chmod'; target: string; mode: number }
  | { type: 'remount-ro'; target: string }
  | ({ type: 'overlay'; target: string; lower: string[]; upper: string | undefined; work: string | undefined } & Flags);

/** Filesystem options after validation. */
export interface ValidatedFilesystem {
  root: string | undefined;
  mountNamespace: boolean;
  userNamespace: boolean;
  /** undefined: no mount plan; [] still builds an (empty) tmpfs root. */
  mounts: ValidatedMount[] | undefined;
  readonlyRoot: boolean;
  /** For a sandbox on a host id: the idmapped trees of its writable binds and root (lib/hostids.ts). */
  prepared?: PreparedTrees;
}

const FLAG_KEYS = ['readonly', 'nosuid', 'nodev', 'noexec'] as const;
const ENTRY_KEYS: Record<MountEntry['type'], readonly string[]> = {
  bind: ['type', 'source', 'sourceFd', 'target', 'recursive', 'try', ...FLAG_KEYS],
  tmpfs: ['type', 'target', 'size', 'mode', ...FLAG_KEYS],
  proc: ['type', 'target', 'sharedPidNamespace'],
  dev: ['type', 'target'],
  mqueue: ['type', 'target'],
  dir: ['type', 'target', 'mode'],
  file: ['type', 'target', 'content', 'mode'],
  symlink: ['type', 'target', 'to'],
  chmod: ['type', 'target', 'mode'],
  'remount-ro': ['type', 'target'],
  overlay: ['type', 'target', 'lower', 'upper', 'work', ...FLAG_KEYS],
  data: ['type', 'target', 'content', 'readonly', 'mode'],
};
const DEFAULT_TARGETS: Partial<Record<MountEntry['type'], string>> = { proc: '/proc', dev: '/dev', mqueue: '/dev/mqueue' };

/** An absolute path, normalised ('/a//b/../c/' -> '/a/c'), short enough for the child's buffers. */
function checkMountPath(option: string, value: unknown): string {
  const normal = path.posix.normalize(checkAbsolutePath(option, value)).replace(/(.)\/$/, '$1');
  if (Buffer.byteLength(normal) >= 4096) fail(option, 'must be shorter than 4096 bytes (PATH_MAX)', 'range');
  if (normal.split('/').some((name) => Buffer.byteLength(name) > 255)) fail(option, 'must not have a name longer than 255 bytes (NAME_MAX)', 'range');
  return normal;
}

function checkMode(option: string, value: unknown, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number') fail(option, `must be a number (permission bits, e.g. 0o755), got ${describe(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > 0o7777) fail(option, `must be an integer from 0 to 0o7777, got ${value}`, 'range');
  return value;
}

function checkSize(option: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) fail(option, `must be a positive integer of bytes, got ${value}`, 'range');
    return String(value);
  }
  if (typeof value !== 'string') fail(option, `must be a number of bytes or a string such as '64m', got ${describe(value)}`);
  if (!/^[1-9]\d*[kmgKMG]?$|^[1-9]\d*%$/.test(value)) fail(option, `must be bytes with an optional k, m or g suffix, or a percentage, got '${value}'`, 'range');
  return value;
}

// overlayfs stacks at most 500 lower layers (OVL_MAX_STACK).
const MAX_LOWER_LAYERS = 500;

function checkFlags(where: string, e: Record<string, unknown>, defaults: Partial<Flags> = {}): Flags {
  return {
    readonly: checkBoolean(`${where}.readonly`, e.readonly, defaults.readonly ?? false),
    nosuid: checkBoolean(`${where}.nosuid`, e.nosuid, defaults.nosuid ?? false),
    nodev: checkBoolean(`${where}.nodev`, e.nodev, defaults.nodev ?? false),
    noexec: checkBoolean(`${where}.noexec`, e.noexec, defaults.noexec ?? false),
  };
}

function checkContent(option: string, content: unknown): Buffer {
  if (typeof content !== 'string' && !(content instanceof Uint8Array)) fail(option, `must be a string or a Buffer, got ${describe(content)}`);
  return typeof content === 'string' ? Buffer.from(content) : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
}

/** A bind entry with `sourceFd`: an open fd of this process, checked now so that a bad one fails before any process starts. */
function validateFdBind(where: string, e: Record<string, unknown>): ValidatedMount {
  if (e.source !== undefined) fail(where, '(bind) takes source or sourceFd, not both', 'range');
  if (e.try !== undefined) fail(`${where}.try`, 'does not apply to sourceFd (an open descriptor always exists)', 'range');
  const fd = e.sourceFd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) fail(`${where}.sourceFd`, `must be a file descriptor (an integer >= 0), got ${describe(fd)}`);
  let source: string;
  try {
    fs.fstatSync(fd);
    source = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return fail(`${where}.sourceFd`, `${fd} is not an open file descriptor of this process`, 'range');
  }
  if (!source.startsWith('/') || source.endsWith(' (deleted)')) fail(`${where}.sourceFd`, `${fd} is open on '${source}', which has no path to bind (a pipe, socket, anonymous or deleted file)`, 'range');
  if (e.target === undefined) fail(`${where}.target`, 'is required with sourceFd (there is no source path to default to)');
  const target = checkMountPath(`${where}.target`, e.target);
  return { type: 'bindFd', sourceFd: fd, source, target, recursive: checkBoolean(`${where}.recursive`, e.recursive, true), ...checkFlags(where, e) };
}

function validateEntry(where: string, value: unknown, ns: FilesystemNamespaces): ValidatedMount {
  const e = checkObject(where, value);
  const type = e.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(ENTRY_KEYS, type)) {
    fail(`${where}.type`, `must be one of ${Object.keys(ENTRY_KEYS).map((k) => `'${k}'`).join(', ')}, got ${describe(type)}`);
  }
  const kind = type as MountEntry['type'];
  rejectUnknownKeys(e, ENTRY_KEYS[kind], `options.${where}.`);
  if (kind === 'bind' && e.sourceFd !== undefined) return validateFdBind(where, e);
  const source = kind === 'bind' ? checkMountPath(`${where}.source`, e.source) : undefined;
  const target = checkMountPath(`${where}.target`, e.target ?? source ?? DEFAULT_TARGETS[kind]);
  const notRoot = (): void => {
    if (target === '/') fail(`${where}.target`, `must not be '/' for a ${kind} entry`, 'range');
  };
  switch (kind) {
    case 'bind':
      return {
        type: kind,
        source: source as string,
        target,
        recursive: checkBoolean(`${where}.recursive`, e.recursive, true),
        try: checkBoolean(`${where}.try`, e.try, false),
        ...checkFlags(where, e),
      };
    case 'tmpfs':
      return { type: kind, target, size: checkSize(`${where}.size`, e.size), mode: checkMode(`${where}.mode`, e.mode, 0o755), ...checkFlags(where, e, { nosuid: true, nodev: true }) };
    case 'proc': {
      const sharedPidNamespace = !ns.pid && checkBoolean(`${where}.sharedPidNamespace`, e.sharedPidNamespace, false);
      if (!ns.pid && !sharedPidNamespace) fail(where, "(proc) needs pid: true (or sharedPidNamespace: true): a procfs shows the PID namespace it is mounted from, so without a new one it would list every host process");
      notRoot();
      return { type: kind, target, sharedPidNamespace };
    }
    case 'mqueue':
      if (!ns.ipc) fail(where, "(mqueue) needs ipc: true: an mqueue filesystem shows the IPC namespace it is mounted from, so without a new one it would expose the host's queues");
      notRoot();
      return { type: kind, target };
    case 'dev':
      notRoot();
      return { type: kind, target };
    case 'dir':
      notRoot();
      return { type: kind, target, mode: checkMode(`${where}.mode`, e.mode, 0o755) };
    case 'file':
      notRoot();
      return { type: kind, target, content: checkContent(`${where}.content`, e.content), mode: checkMode(`${where}.mode`, e.mode, 0o644) };
    case 'data':
      notRoot();
      return {
        type: kind, target, content: checkContent(`${where}.content`, e.content), mode: checkMode(`${where}.mode`, e.mode, 0o600),
        readonly: checkBoolean(`${where}.readonly`, e.readonly, false),
      };
    case 'symlink':
      notRoot();
      return { type: kind, target, to: checkCString(`${where}.to`, e.to) };
    case 'chmod':
      return { type: kind, target, mode: checkMode(`${where}.mode`, e.mode) };
    case 'remount-ro':
      return { type: kind, target };
    case 'overlay': {
      const expected = 'a non-empty array of absolute host paths';
      if (!Array.isArray(e.lower) || e.lower.length === 0) fail(`${where}.lower`, `must be ${expected}, got ${describe(e.lower)}`);
      if (e.lower.length > MAX_LOWER_LAYERS) fail(`${where}.lower`, `may have at most ${MAX_LOWER_LAYERS} layers (overlayfs's limit), got ${e.lower.length}`, 'range');
      const lower = checkArray(`${where}.lower`, e.lower, expected, (l, j) => checkMountPath(`${where}.lower[${j}]`, l));
      const upper = e.upper === undefined ? undefined : checkMountPath(`${where}.upper`, e.upper);
      const work = e.work === undefined ? undefined : checkMountPath(`${where}.work`, e.work);
      if ((upper === undefined) !== (work === undefined)) fail(where, '(overlay) needs both upper and work, or neither (a private tmpfs upper layer)');
      const readonly = checkBoolean(`${where}.readonly`, e.readonly, false);
      if (readonly && upper === undefined && lower.length < 2) fail(`${where}.lower`, 'needs at least two layers for a read-only overlay without upper (the kernel refuses one)', 'range');
      return { type: kind, target, lower, upper, work, ...checkFlags(where, e) };
    }
  }
}

/** Validates the filesystem options against the namespaces they need. */
export function validateFilesystem(options: FilesystemOptions, ns: FilesystemNamespaces): ValidatedFilesystem {
  const root = options.root === undefined ? undefined : checkAbsolutePath('root', options.root);
  let mounts: ValidatedMount[] | undefined;
  if (options.mounts !== undefined) {
    if (!Array.isArray(options.mounts)) fail('mounts', `must be an array of mount entries, got ${describe(options.mounts)}`);
    if (!ns.mount) fail('mounts', "needs mount: true (mounts are made in the sandbox's own mount namespace, never in the host's)");
    mounts = checkArray('mounts', options.mounts, 'an array of mount entries', (entry, i) => validateEntry(`mounts[${i}]`, entry, ns));
  }
  const readonlyRoot = checkBoolean('readonlyRoot', options.readonlyRoot, false);
  if (readonlyRoot && !ns.mount) fail('readonlyRoot', 'needs mount: true');
  if (readonlyRoot && root === undefined && mounts === undefined) fail('readonlyRoot', "needs root or mounts (the host's own root is never remounted)");
  return { root, mountNamespace: ns.mount, userNamespace: ns.user, mounts, readonlyRoot };
}
