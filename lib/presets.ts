/**
 * Ready-made mount lists for the `mounts` option: the host's programs and libraries, so
 * that host binaries run in a sandbox without copying a single file.
 */
import * as fs from 'node:fs';
import type { MountEntry } from './filesystem';

/** Top-level directories that hold programs and libraries; on merged-/usr hosts, symlinks into /usr. */
const SYSTEM_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** What the dynamic loader and common programs read from /etc (no users, hosts or secrets). */
const SYSTEM_ETC = ['/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/ld.so.conf.d', '/etc/alternatives', '/etc/localtime'];

/** Options of {@link hostSystemMounts}. */
export interface HostSystemOptions {
  /** More absolute host paths to bind read-only at the same place (skipped when missing). */
  extra?: readonly string[];
}

/**
 * Read-only binds of the host's /usr, /bin, /sbin, /lib, /lib64 (and /lib32, /libx32 where
 * they exist), the dynamic loader's files in /etc (ld.so.cache, ld.so.conf, ld.so.conf.d)
 * and /etc/alternatives and /etc/localtime: enough for the host's dynamically linked
 * programs (/bin/sh, node, python3, ...) to run. All are nosuid and nodev. A top-level
 * directory that is a symlink on the host (/bin -> usr/bin on merged-/usr systems) becomes
 * the same symlink; one that does not exist is left out. The host is looked at when this is
 * called. Add a `proc`, `dev` and a `tmpfs` scratch entry for most programs.
 *
 * @example
 * spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo hi'], mount: true, pid: true,
 *   mounts: [...hostSystemMounts(), { type: 'proc' }, { type: 'dev' }, { type: 'tmpfs', target: '/tmp' }] });
 */
export function hostSystemMounts(options: HostSystemOptions = {}): MountEntry[] {
  const extra: unknown = options?.extra;
  if (extra !== undefined) {
    if (!Array.isArray(extra)) throw new TypeError('hostSystemMounts: options.extra must be an array of absolute host paths');
    for (let i = 0; i < extra.length; i++) {
      const p: unknown = extra[i];
      if (typeof p !== 'string' || !p.startsWith('/')) {
        const got = !(i in extra) ? 'a hole (sparse array)' : typeof p === 'string' ? `'${p}'` : typeof p;
        throw new TypeError(`hostSystemMounts: options.extra[${i}] must be an absolute host path, got ${got}`);
      }
    }
  }
  const bind = (p: string): MountEntry => ({ type: 'bind', source: p, readonly: true, nosuid: true, nodev: true, try: true });
  const mounts: MountEntry[] = [bind('/usr')];
  for (const dir of SYSTEM_DIRS) {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(dir);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) mounts.push({ type: 'symlink', target: dir, to: fs.readlinkSync(dir) });
    else if (stat.isDirectory()) mounts.push(bind(dir));
  }
  for (const p of [...SYSTEM_ETC, ...(options.extra ?? [])]) mounts.push(bind(p));
  return mounts;
}
