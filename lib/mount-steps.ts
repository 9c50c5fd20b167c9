/**
 * The mount plan compiled into child steps (see lib/filesystem.ts for the plan's stages and
 * the options): staging, the new root, each entry of `mounts`, the root switch. The step
 * flags and the staging layout are shared with src-native/child_paths.h; src-native/child_fs.cc
 * executes the steps.
 */
import * as path from 'node:path';
import type { Flags, ValidatedFilesystem, ValidatedMount } from './filesystem';
import type { PlannedStep, StepLabel } from './steps';
import { MS_BIND, MS_PRIVATE, MS_REC, step } from './steps';

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
// The staging layout, as in src-native/child_paths.h (kNewRoot; the host's root is at kOldRoot).
const NEW_ROOT = '/newroot';

// Step.flags of the mount-plan steps, as in src-native/child_paths.h. The low byte is the
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
const FS_PARENT_MODE = 1 << 14;
const FS_SOURCE_IN_STAGING = 1 << 15;
const FS_SOURCE_FD = 1 << 16;

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

/**
 * The mode of the missing parents of an entry whose own mode is `mode`: 0755, less the group
 * or other bits when `mode` gives that class nothing (bubblewrap's rule: a private entry does
 * not sit in world-listable directories made for it).
 */
export function parentModeFor(mode: number): number {
  let parent = 0o755;
  if ((mode & 0o070) === 0) parent &= ~0o050;
  if ((mode & 0o007) === 0) parent &= ~0o005;
  return parent;
}

/** Step flags and values that carry the parents' mode, when it is not the default 0755. */
function withParentMode(native: PlannedStep['native'], mode: number): PlannedStep['native'] {
  const parent = parentModeFor(mode);
  if (parent === 0o755) return native;
  return { ...native, flags: (native.flags ?? 0) | FS_PARENT_MODE, values: [native.values?.[0] ?? 0n, BigInt(parent)] };
}

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

function procSteps(name: string, proc: string, shared: boolean): PlannedStep[] {
  // Sharing the PID namespace, the host's own procfs is bound (as bubblewrap does): a new
  // one would need CAP_SYS_ADMIN over the host's PID namespace, which a user namespace lacks.
  const steps = shared
    ? bindSteps(name, '/proc', proc, FS_RECURSIVE, false)
    : [fsStep(name, 'proc', proc, ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)];
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
  const name = `mounts[${index}] ${m.type === 'bindFd' ? 'bind' : m.type}`;
  const label = (syscall: string): StepLabel => ({ step: name, syscall, path: m.target });
  switch (m.type) {
    case 'bind': {
      // On a host id a writable bind of a source no root owns is an idmapped tree from the
      // parent (lib/hostids.ts); the others are bound here as they are.
      const fd = m.readonly ? undefined : fsv.prepared?.binds.get(index);
      if (fd !== undefined) return [preparedStep(name, fd, m.target)];
      return bindSteps(name, m.source, m.target, attrs(m) | (m.recursive ? FS_RECURSIVE : 0) | (m.try ? FS_TRY : 0), !m.try);
    }
    case 'tmpfs': {
      const tmpfs = fsStep(name, 'tmpfs', m.target, attrs(m), [['mode', m.mode.toString(8).padStart(4, '0')], ...(m.size !== undefined ? [['size', m.size] as [string, string]] : [])]);
      return [{ ...tmpfs, native: withParentMode(tmpfs.native, m.mode) }];
    }
    case 'bindFd':
      return [planned(
        { op: 'bindMount', source: rel(m.source), path: rel(m.target), flags: attrs(m) | (m.recursive ? FS_RECURSIVE : 0) | FS_SOURCE_FD, values: [BigInt(m.sourceFd)] },
        {
          step: name, syscall: 'open_tree', path: m.target,
          hints: { ...BIND_HINTS, ESTALE: `what sourceFd ${m.sourceFd} is open on is no longer at ${m.source} (renamed or replaced since it was opened)` },
        },
      )];
    case 'data': {
      // The content goes to a file of its own in the staging root (outside the new root,
      // detached with it), which is then bound over the target.
      const scratch = `/data-${index}`;
      return [
        planned({ op: 'createFile', path: rel(scratch), data: m.content, mode: m.mode, flags: FS_IN_STAGING }, { step: name, syscall: 'openat', path: m.target, hints: FILE_HINTS }),
        planned(
          withParentMode({ op: 'bindMount', source: rel(scratch), path: rel(m.target), flags: (m.readonly ? ATTR_RDONLY : 0) | ATTR_NOSUID | ATTR_NODEV | FS_SOURCE_IN_STAGING }, m.mode),
          { step: name, syscall: 'move_mount', path: m.target, hints: { ...BIND_HINTS, EISDIR: 'the target is a directory: data binds only onto a file' } },
        ),
      ];
    }
    case 'proc':
      return procSteps(name, m.target, m.sharedPidNamespace);
    case 'dev':
      return devSteps(name, m.target);
    case 'mqueue':
      return [fsStep(name, 'mqueue', m.target, ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)];
    case 'dir':
      return [planned(withParentMode({ op: 'createDir', path: rel(m.target), mode: m.mode }, m.mode), label('mkdirat'))];
    case 'file':
      return [planned(withParentMode({ op: 'createFile', path: rel(m.target), data: m.content, mode: m.mode }, m.mode), { ...label('openat'), hints: FILE_HINTS })];
    case 'symlink':
      return [symlinkStep(name, m.target, m.to)];
    case 'chmod':
      return [planned({ op: 'chmod', path: rel(m.target), mode: m.mode }, label('fchmodat'))];
    case 'remount-ro':
      return [planned({ op: 'mountSetattr', path: rel(m.target), flags: ATTR_RDONLY }, label('mount_setattr'))];
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
