/**
 * The sandbox's view of the filesystem: its root, and (with a mount namespace) what is
 * mounted in it. Compiled into child steps; src-native/child_fs.cc executes them.
 */
import type { PlannedStep } from './steps';
import { MS_BIND, MS_PRIVATE, MS_REC, step } from './steps';
import { checkAbsolutePath } from './validate';

/** Filesystem options of spawnIsolated. */
export interface FilesystemOptions {
  /**
   * A host directory to become the sandbox's `/`. With `mount: true` it is switched to with
   * pivot_root and the old root is detached; without a mount namespace by chroot + chdir("/").
   */
  root?: string;
}

/** The option names this file owns. */
export const FILESYSTEM_OPTION_KEYS = ['root'] as const;

/** Filesystem options after validation. */
export interface ValidatedFilesystem {
  root: string | undefined;
  mountNamespace: boolean;
}

/** Validates the filesystem options; `mountNamespace` is options.mount. */
export function validateFilesystem(options: FilesystemOptions, mountNamespace: boolean): ValidatedFilesystem {
  return {
    root: options.root === undefined ? undefined : checkAbsolutePath('root', options.root),
    mountNamespace,
  };
}

/** Before anything is mounted: nothing done in the sandbox may propagate to the host. */
export function makePrivateSteps(fs: ValidatedFilesystem): PlannedStep[] {
  if (!fs.mountNamespace) return [];
  return [step({ op: 'mount', path: '/', flags: MS_REC | MS_PRIVATE }, 'make-private', 'mount', '/')];
}

/** Mounts and the switch to the new root: pivot_root in a mount namespace, else the seed's chroot. */
export function filesystemSteps(fs: ValidatedFilesystem): PlannedStep[] {
  const root = fs.root;
  if (root === undefined) return [];
  if (!fs.mountNamespace) return [step({ op: 'chroot', path: root }, 'chroot', 'chroot', root)];
  return [
    // pivot_root needs the new root to be a mount point.
    step({ op: 'mount', source: root, path: root, flags: MS_BIND | MS_REC }, 'bind-root', 'mount', root),
    step({ op: 'pivotRoot', path: root }, 'pivot-root', 'pivot_root', root),
  ];
}
