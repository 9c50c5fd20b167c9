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
 */
import * as path from 'node:path';
import type { PreparedTrees } from './hostids';
import type { PlannedStep, StepLabel } from './steps';
import { MS_BIND, MS_PRIVATE, MS_REC, step } from './steps';
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

/** A host file or directory bound into the sandbox. */
export interface BindMountEntry extends MountFlagOptions {
  type: 'bind';
  /**
   * Absolute host path. It is resolved in the host's root (its symlinks are followed as on
   * the host); a directory is bound onto a directory, anything else onto a file.
   */
  source: string;
  /** Absolute path inside the sandbox. Default: the same path as `source`. */
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

/** A directory (and its missing parents); an existing one is left as it is. */
export interface DirEntry {
  type: 'dir';
  /** Absolute path inside the sandbox. */
  target: string;
  /** Permissions when created. Default 0o755. */
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
  | OverlayMountEntry;

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

type Flags = Required<MountFlagOptions>;

/** A mount entry after validation: absolute, normalised paths and defaults filled in. */
export type ValidatedMount =
  | ({ type: 'bind'; source: string; target: string; recursive: boolean; try: boolean } & Flags)
  | ({ type: 'tmpfs'; target: string; size: string | undefined; mode: number } & Flags)
  | { type: 'proc' | 'dev' | 'mqueue'; target: string }
  | { type: 'dir'; target: string; mode: number }
  | { type: 'file'; target: string; content: Buffer; mode: number }
  | { type: 'symlink'; target: string; to: string }
  | { type: 'chmod'; target: string; mode: number }
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
  bind: ['type', 'source', 'target', 'recursive', 'try', ...FLAG_KEYS],
  tmpfs: ['type', 'target', 'size', 'mode', ...FLAG_KEYS],
  proc: ['type', 'target'],
  dev: ['type', 'target'],
  mqueue: ['type', 'target'],
  dir: ['type', 'target', 'mode'],
  file: ['type', 'target', 'content', 'mode'],
  symlink: ['type', 'target', 'to'],
  chmod: ['type', 'target', 'mode'],
  overlay: ['type', 'target', 'lower', 'upper', 'work', ...FLAG_KEYS],
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

function validateEntry(where: string, value: unknown, ns: FilesystemNamespaces): ValidatedMount {
  const e = checkObject(where, value);
  const type = e.type;
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(ENTRY_KEYS, type)) {
    fail(`${where}.type`, `must be one of ${Object.keys(ENTRY_KEYS).map((k) => `'${k}'`).join(', ')}, got ${describe(type)}`);
  }
  const kind = type as MountEntry['type'];
  rejectUnknownKeys(e, ENTRY_KEYS[kind], `options.${where}.`);
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
    case 'proc':
      if (!ns.pid) fail(where, "(proc) needs pid: true: a procfs shows the PID namespace it is mounted from, so without a new one it would list every host process");
      notRoot();
      return { type: kind, target };
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
    case 'file': {
      notRoot();
      const content = e.content;
      if (typeof content !== 'string' && !(content instanceof Uint8Array)) fail(`${where}.content`, `must be a string or a Buffer, got ${describe(content)}`);
      const bytes = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
      return { type: kind, target, content: bytes, mode: checkMode(`${where}.mode`, e.mode, 0o644) };
    }
    case 'symlink':
      notRoot();
      return { type: kind, target, to: checkCString(`${where}.to`, e.to) };
    case 'chmod':
      return { type: kind, target, mode: checkMode(`${where}.mode`, e.mode) };
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

/** Before anything is mounted: nothing done in the sandbox may propagate to the host. */
export function makePrivateSteps(fsv: ValidatedFilesystem): PlannedStep[] {
  if (!fsv.mountNamespace) return [];
  return [step({ op: 'mount', path: '/', flags: MS_REC | MS_PRIVATE }, 'make-private', 'mount', '/')];
}

// Where the child mounts its staging tmpfs for a moment. /proc exists on every Linux host
// (this library writes id maps through it), even in minimal containers without /tmp; it is
// covered only until stage-root's own pivot_root, after which the host's whole root,
// /proc and /tmp included, is visible again under /oldroot.
const STAGING_DIR = '/proc';
// The staging layout, as in src-native/child_fs.cc (kNewRoot; the host's root is at kOldRoot).
const NEW_ROOT = '/newroot';

// Step.flags of the mount-plan steps, as in src-native/child_fs.cc. The low byte is the
// kernel's MOUNT_ATTR_RDONLY | NOSUID | NODEV | NOEXEC.
const ATTR_RDONLY = 0x1;
const ATTR_NOSUID = 0x2;
const ATTR_NODEV = 0x4;
const ATTR_NOEXEC = 0x8;
const FS_RECURSIVE = 1 << 8;
const FS_TRY = 1 << 9;
const FS_SOURCE_IN_NEW_ROOT = 1 << 11;
const FS_IN_STAGING = 1 << 12;
const FS_PREPARED = 1 << 13;

const NEW_API_HINT = 'mount plans need Linux 5.12 or newer (openat2, open_tree, move_mount, fsopen, mount_setattr)';
const HINTS = { ENOSYS: NEW_API_HINT };
const OVERLAY_HINT =
  'overlayfs refused these layers (upper and work must be on one filesystem that supports overlay upper layers, work empty and not inside upper)';

const FILE_HINTS = {
  ...HINTS,
  EINVAL: 'the target exists and is not a regular file (a FIFO, socket or device node there is never opened, let alone written)',
  EISDIR: 'the target is a directory',
  ELOOP: 'the target is a symlink, which is never followed',
};

const BIND_HINTS = {
  ...HINTS,
  ENOTDIR: 'the source is a directory and the target (or a directory on its path) exists and is not one: a directory binds only onto a directory',
  EISDIR: 'the source is not a directory and the target is one: a file binds only onto a file',
};

function attrs(f: Flags): number {
  return (f.readonly ? ATTR_RDONLY : 0) | (f.nosuid ? ATTR_NOSUID : 0) | (f.nodev ? ATTR_NODEV : 0) | (f.noexec ? ATTR_NOEXEC : 0);
}

/** A path as the child resolves it: relative to the root it is resolved in, '.' for the root. */
function rel(p: string): string {
  return p === '/' ? '.' : p.slice(1);
}

/** fsconfig key/value pairs as the child reads them: "key\0value\0"; an empty value is a flag. */
function fsParams(pairs: [string, string][]): Buffer | undefined {
  return pairs.length === 0 ? undefined : Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(''));
}

function planned(native: PlannedStep['native'], label: StepLabel): PlannedStep {
  return { native, label: { ...label, hints: label.hints ?? HINTS } };
}

/**
 * One bind step. The child reports a source it cannot open as part 0 of the step, named
 * `<name> source` (openat2) where the source must exist (`checkSource`).
 */
function bindSteps(name: string, source: string, target: string, flags: number, checkSource: boolean): PlannedStep[] {
  const parts = checkSource ? [{ step: `${name} source`, syscall: 'openat2', path: source, hints: HINTS }] : undefined;
  return [
    planned({ op: 'bindMount', source: rel(source), path: rel(target), flags }, { step: name, syscall: 'move_mount', path: target, hints: BIND_HINTS, ...(parts ? { parts } : {}) }),
  ];
}

/** Attaches a tree the parent prepared (an idmapped writable bind or root) at `target`. */
function preparedStep(name: string, fd: number, target: string): PlannedStep {
  return planned({ op: 'bindMount', path: rel(target), flags: FS_PREPARED, values: [BigInt(fd)] }, { step: name, syscall: 'move_mount', path: target });
}

function fsStep(name: string, fstype: string, target: string, attr: number, params: [string, string][] = [], extra = 0): PlannedStep {
  return planned(
    { op: 'mountFs', fstype, source: fstype, path: rel(target), data: fsParams(params), flags: attr | extra },
    { step: name, syscall: 'fsmount', path: target, hints: { ...HINTS, ENOTDIR: `the target or a directory on its path exists and is not a directory (${fstype} mounts only onto a directory)` } },
  );
}

function symlinkStep(name: string, target: string, to: string): PlannedStep {
  return planned({ op: 'createSymlink', path: rel(target), source: to }, { step: name, syscall: 'symlinkat', path: target });
}

function devSteps(name: string, dev: string): PlannedStep[] {
  const at = (p: string): string => path.posix.join(dev, p);
  const steps = [fsStep(name, 'tmpfs', dev, ATTR_NOSUID | ATTR_NODEV, [['mode', '0755']])];
  // Read-only binds: I/O on the devices works, but chmod, chown and utimes on the host's own
  // nodes fail with EROFS (a read-only mount does not refuse opening a device for writing).
  for (const node of ['null', 'zero', 'full', 'random', 'urandom', 'tty']) {
    steps.push(...bindSteps(name, `/dev/${node}`, at(node), ATTR_RDONLY, false));
  }
  steps.push(
    fsStep(name, 'devpts', at('pts'), ATTR_NOSUID | ATTR_NOEXEC, [['newinstance', ''], ['ptmxmode', '0666'], ['mode', '0620']]),
    symlinkStep(name, at('ptmx'), 'pts/ptmx'),
    fsStep(name, 'tmpfs', at('shm'), ATTR_NOSUID | ATTR_NODEV, [['mode', '1777']]),
    symlinkStep(name, at('fd'), '/proc/self/fd'),
    symlinkStep(name, at('stdin'), '/proc/self/fd/0'),
    symlinkStep(name, at('stdout'), '/proc/self/fd/1'),
    symlinkStep(name, at('stderr'), '/proc/self/fd/2'),
    symlinkStep(name, at('core'), '/proc/kcore'),
  );
  return steps;
}

function procSteps(name: string, proc: string): PlannedStep[] {
  const steps = [fsStep(name, 'proc', proc, ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)];
  // Writable by root inside, these reach the whole machine (sysctls, magic SysRq, IRQ
  // affinity, PCI config space): bind them over themselves read-only, as bubblewrap does.
  for (const part of ['sys', 'sysrq-trigger', 'irq', 'bus']) {
    const p = path.posix.join(proc, part);
    steps.push(...bindSteps(name, p, p, ATTR_RDONLY | FS_RECURSIVE | FS_TRY | FS_SOURCE_IN_NEW_ROOT, false));
  }
  return steps;
}

// Where an overlay layer is opened (src-native/child_fs.cc StepMountOverlay): 'h' inside the
// host's root, 's' inside the staging root.
const LAYER_IN_HOST = 'h';
const LAYER_IN_STAGING = 's';
const LAYER_HINTS = {
  ...HINTS,
  ENOTDIR: 'an overlay layer must be a directory',
  EINVAL: OVERLAY_HINT,
  E2BIG: 'too many lower layers for this kernel (before Linux 6.8 they share one 256-byte option string)',
};

function overlaySteps(name: string, m: Extract<ValidatedMount, { type: 'overlay' }>, index: number, userNamespace: boolean): PlannedStep[] {
  const steps: PlannedStep[] = [];
  // Each layer is opened once in the child, inside the root it belongs to (host symlinks are
  // followed as on the host, never out of it), and handed to overlayfs as that fd.
  const layers: { key: string; what: string; where: string; path: string; shown: string }[] = m.lower.map((l, j) => ({
    key: 'lowerdir+', what: `lower[${j}]`, where: LAYER_IN_HOST, path: rel(l), shown: l,
  }));
  if (m.upper !== undefined && m.work !== undefined) {
    layers.push(
      { key: 'upperdir', what: 'upper', where: LAYER_IN_HOST, path: rel(m.upper), shown: m.upper },
      { key: 'workdir', what: 'work', where: LAYER_IN_HOST, path: rel(m.work), shown: m.work },
    );
  } else if (!m.readonly) {
    // A private tmpfs upper layer in the staging root: detached with it, and the overlay
    // keeps its own reference.
    const scratch = `/overlay-${index}`;
    steps.push(
      fsStep(name, 'tmpfs', scratch, 0, [['mode', '0755']], FS_IN_STAGING),
      planned({ op: 'createDir', path: rel(`${scratch}/upper`), mode: 0o755, flags: FS_IN_STAGING }, { step: name, syscall: 'mkdirat', path: m.target }),
      planned({ op: 'createDir', path: rel(`${scratch}/work`), mode: 0o755, flags: FS_IN_STAGING }, { step: name, syscall: 'mkdirat', path: m.target }),
    );
    layers.push(
      { key: 'upperdir', what: 'upper (private tmpfs)', where: LAYER_IN_STAGING, path: rel(`${scratch}/upper`), shown: m.target },
      { key: 'workdir', what: 'work (private tmpfs)', where: LAYER_IN_STAGING, path: rel(`${scratch}/work`), shown: m.target },
    );
  }
  const params: [string, string][] = layers.map((l) => [l.key, l.where + l.path]);
  // In a user namespace trusted.* xattrs are out of reach; overlayfs keeps its own in user.*.
  if (userNamespace && layers.some((l) => l.key === 'upperdir')) params.push(['userxattr', '']);
  // The child reports which layer failed as 2 * layer + (0 opening it, 1 handing it over).
  const parts: StepLabel[] = layers.flatMap((l) => [
    { step: `${name} ${l.what}`, syscall: 'openat2', path: l.shown, hints: LAYER_HINTS },
    { step: `${name} ${l.what}`, syscall: 'fsconfig', path: l.shown, hints: LAYER_HINTS },
  ]);
  steps.push(planned(
    { op: 'mountOverlay', path: rel(m.target), data: fsParams(params), flags: attrs(m) },
    {
      step: name, syscall: 'fsmount', path: m.target, parts,
      hints: { ...HINTS, EINVAL: OVERLAY_HINT, ENOTDIR: 'the target or a directory on its path exists and is not a directory (overlay mounts only onto a directory)' },
    },
  ));
  return steps;
}

function entrySteps(m: ValidatedMount, index: number, fsv: ValidatedFilesystem): PlannedStep[] {
  const name = `mounts[${index}] ${m.type}`;
  const label = (syscall: string): StepLabel => ({ step: name, syscall, path: m.target });
  switch (m.type) {
    case 'bind': {
      // On a host id a writable bind of a source no root owns is an idmapped tree from the
      // parent (lib/hostids.ts); the others are bound here as they are.
      const fd = m.readonly ? undefined : fsv.prepared?.binds.get(index);
      if (fd !== undefined) return [preparedStep(name, fd, m.target)];
      return bindSteps(name, m.source, m.target, attrs(m) | (m.recursive ? FS_RECURSIVE : 0) | (m.try ? FS_TRY : 0), !m.try);
    }
    case 'tmpfs':
      return [fsStep(name, 'tmpfs', m.target, attrs(m), [['mode', m.mode.toString(8).padStart(4, '0')], ...(m.size !== undefined ? [['size', m.size] as [string, string]] : [])])];
    case 'proc':
      return procSteps(name, m.target);
    case 'dev':
      return devSteps(name, m.target);
    case 'mqueue':
      return [fsStep(name, 'mqueue', m.target, ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)];
    case 'dir':
      return [planned({ op: 'createDir', path: rel(m.target), mode: m.mode }, label('mkdirat'))];
    case 'file':
      return [planned({ op: 'createFile', path: rel(m.target), data: m.content, mode: m.mode }, { ...label('openat'), hints: FILE_HINTS })];
    case 'symlink':
      return [symlinkStep(name, m.target, m.to)];
    case 'chmod':
      return [planned({ op: 'chmod', path: rel(m.target), mode: m.mode }, label('fchmodat'))];
    case 'overlay':
      return overlaySteps(name, m, index, fsv.userNamespace);
  }
}

/** Mounts and the switch to the new root: pivot_root in a mount namespace, else the seed's chroot. */
export function filesystemSteps(fsv: ValidatedFilesystem): PlannedStep[] {
  const { root, mounts } = fsv;
  if (root === undefined && mounts === undefined) return [];
  if (!fsv.mountNamespace) return root === undefined ? [] : [step({ op: 'chroot', path: root }, 'chroot', 'chroot', root)];
  const preparedRoot = fsv.prepared?.root;
  if (root !== undefined && mounts === undefined && !fsv.readonlyRoot && preparedRoot === undefined) {
    // A root alone needs no staging: classic mount(2) and pivot_root, which kernels older
    // than the new mount API (5.2/5.6/5.12) have too.
    return [
      // pivot_root needs the new root to be a mount point.
      step({ op: 'mount', source: root, path: root, flags: MS_BIND | MS_REC }, 'bind-root', 'mount', root),
      step({ op: 'pivotRoot', path: root }, 'pivot-root', 'pivot_root', root),
    ];
  }
  const steps: PlannedStep[] = [
    planned(
      { op: 'stageRoot', path: STAGING_DIR },
      {
        step: 'stage-root',
        syscall: 'pivot_root',
        path: STAGING_DIR,
        hints: {
          ...HINTS,
          EINVAL: "pivot_root needs the host's root to be a mount point (this process must not run in a chroot or an initramfs)",
        },
      },
    ),
    root !== undefined && preparedRoot !== undefined
      ? planned({ op: 'bindMount', path: '.', flags: FS_PREPARED, values: [BigInt(preparedRoot)] }, { step: 'bind-root', syscall: 'move_mount', path: root })
      : root !== undefined
      ? planned({ op: 'bindMount', source: rel(path.posix.normalize(root)), path: '.', flags: FS_RECURSIVE }, { step: 'bind-root', syscall: 'move_mount', path: root })
      : fsStep('root-tmpfs', 'tmpfs', '/', ATTR_NOSUID | ATTR_NODEV, [['mode', '0755']]),
  ];
  (mounts ?? []).forEach((m, i) => steps.push(...entrySteps(m, i, fsv)));
  if (fsv.readonlyRoot) steps.push(planned({ op: 'mountSetattr', path: '.', flags: ATTR_RDONLY }, { step: 'readonly-root', syscall: 'mount_setattr', path: '/' }));
  steps.push(planned({ op: 'pivotRoot', path: NEW_ROOT }, { step: 'pivot-root', syscall: 'pivot_root', path: root ?? '/' }));
  return steps;
}
