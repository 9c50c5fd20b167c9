/**
 * Host ids: with `user: true` and a privileged caller (euid 0), a sandbox's ids are not the
 * caller's (host root) but one unprivileged host id, uid and gid, that no other live sandbox
 * of this host uses, as isolate gives each box its own uid. The id is leased from a range
 * (default {@link DEFAULT_HOST_IDS}) through a lock file per id, held with flock(2) by this
 * process while the sandbox lives, so that two Node processes never hand out the same id and
 * a process that dies releases its ids with its descriptors. See docs/identity.md.
 *
 * The sandbox's user namespace is created as that id (src-native/hostids.cc), so the kernel
 * also charges its per-user counts to it; a writable bind is an idmapped mount (made here,
 * before clone) on which files of the caller appear as the sandbox's own and writes land as
 * the caller's ids.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { binding } from './binding';
import { IsolationError } from './errors';
import type { ValidatedMount } from './filesystem';
import { describe, ownOptions } from './validate';

/** A range of host ids for sandboxes, and where their leases are kept. */
export interface HostIdRange {
  /** The first host id (uid and gid) of the range. */
  base: number;
  /** How many ids: at most this many sandboxes with `user: true` live at once on the host (all Node processes that share `lockDir`). */
  count: number;
  /**
   * Directory of the lock files, one per id, made 0700 if missing. Processes that must not
   * hand out the same id use the same directory. Default `/run/nsjail-node/ids`.
   */
  lockDir?: string;
}

/**
 * The default range: 65536 ids from 1879048192 (0x70000000), the start of the block that
 * systemd leaves unassigned (above its container range 524288-1879048191 and below the ids
 * that are negative as 32-bit signed numbers), so that it collides neither with regular or
 * system users nor with /etc/subuid ranges nor with systemd-nspawn's containers.
 */
export const DEFAULT_HOST_IDS: Readonly<Required<HostIdRange>> = Object.freeze({
  base: 0x70000000,
  count: 65536,
  lockDir: '/run/nsjail-node/ids',
});

const ENV = 'NSJAIL_NODE_HOST_IDS';
const MAX_ID = 0xfffffffe;
// The kernel's overflow ids (what an unmapped id looks like) and (uid_t)-1 as a 16-bit id.
const RESERVED = [65534, 65535];

let config: Required<HostIdRange> | undefined;
let dirFd = -1;
let cursor = -1;
const held = new Set<number>();

function checkRange(where: string, value: Partial<HostIdRange>): Required<HostIdRange> {
  const base = value.base ?? DEFAULT_HOST_IDS.base;
  const count = value.count ?? DEFAULT_HOST_IDS.count;
  const lockDir = value.lockDir ?? DEFAULT_HOST_IDS.lockDir;
  if (typeof base !== 'number' || !Number.isInteger(base)) throw new TypeError(`${where}.base must be an integer id, got ${describe(base)}`);
  if (typeof count !== 'number' || !Number.isInteger(count)) throw new TypeError(`${where}.count must be an integer, got ${describe(count)}`);
  if (typeof lockDir !== 'string' || !path.isAbsolute(lockDir)) throw new TypeError(`${where}.lockDir must be an absolute path, got ${describe(lockDir)}`);
  if (base < 1) throw new RangeError(`${where}.base must be at least 1 (0 is root), got ${base}`);
  if (count < 1) throw new RangeError(`${where}.count must be at least 1, got ${count}`);
  if (base + count - 1 > MAX_ID) throw new RangeError(`${where}: ids ${base}..${base + count - 1} run past the largest id ${MAX_ID}`);
  const reserved = RESERVED.find((id) => id >= base && id < base + count);
  if (reserved !== undefined) throw new RangeError(`${where}: ids ${base}..${base + count - 1} include ${reserved}, the kernel's overflow id (nobody)`);
  return { base, count, lockDir };
}

/** The range from NSJAIL_NODE_HOST_IDS ("BASE:COUNT"), else the default. */
function fromEnvironment(): Required<HostIdRange> {
  const text = process.env[ENV];
  if (text === undefined || text === '') return { ...DEFAULT_HOST_IDS };
  const match = /^(\d+):(\d+)$/.exec(text.trim());
  if (!match) throw new RangeError(`${ENV} must be BASE:COUNT (e.g. 1879048192:65536), got '${text}'`);
  return checkRange(ENV, { base: Number(match[1]), count: Number(match[2]) });
}

/**
 * Sets the range of host ids that sandboxes of a privileged caller get (see
 * {@link HostIdRange}); the environment variable `NSJAIL_NODE_HOST_IDS=BASE:COUNT` does the
 * same without code. Sandboxes already running keep their ids. Throws TypeError/RangeError
 * for a bad range.
 *
 * @example
 * configureHostIds({ base: 60000, count: 1000 }); // isolate's default box uids
 */
export function configureHostIds(range: HostIdRange): void {
  if (range === null || typeof range !== 'object') throw new TypeError(`configureHostIds: range must be an object, got ${describe(range)}`);
  // Its own properties only: a polluted Object.prototype.lockDir must not move the leases.
  const next = checkRange('configureHostIds: range', ownOptions(range));
  if (!rangeIsMapped(next)) throw new RangeError(`configureHostIds: ids ${next.base}..${next.base + next.count - 1} are not mapped in this process's user namespace (/proc/self/uid_map)`);
  if (config === undefined || next.lockDir !== config.lockDir) closeLockDir();
  config = next;
  cursor = -1;
}

/** The range in use: set by {@link configureHostIds}, else from NSJAIL_NODE_HOST_IDS, else {@link DEFAULT_HOST_IDS}. */
export function hostIdRange(): Readonly<Required<HostIdRange>> {
  config ??= fromEnvironment();
  return config;
}

function closeLockDir(): void {
  if (dirFd >= 0) fs.closeSync(dirFd);
  dirFd = -1;
}

/** True when [base, base+count) are ids of this process's user namespace that map to its parent (a container may map only a few). */
function rangeIsMapped(range: Required<HostIdRange>): boolean {
  for (const file of ['/proc/self/uid_map', '/proc/self/gid_map']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return true; // no /proc here: the kernel will tell
    }
    const covered = text.split('\n').some((line) => {
      const [inside, , count] = line.trim().split(/\s+/).map(Number);
      return Number.isInteger(inside) && range.base >= inside && range.base + range.count <= inside + count;
    });
    if (!covered) return false;
  }
  return true;
}

function openLockDir(range: Required<HostIdRange>): number {
  if (dirFd >= 0) return dirFd;
  const failure = (e: NodeJS.ErrnoException, syscall: string, hint?: string): IsolationError =>
    new IsolationError({ errno: os.constants.errno[e.code as keyof typeof os.constants.errno] ?? 5, step: 'host-ids', syscall, path: range.lockDir, hint });
  if (!rangeIsMapped(range)) {
    throw new IsolationError({
      errno: os.constants.errno.EPERM, step: 'host-ids', syscall: 'uid_map', path: '/proc/self/uid_map',
      hint: `host ids ${range.base}..${range.base + range.count - 1} are not mapped in this process's user namespace (a container?): ` +
        `choose mapped ones with configureHostIds() or ${ENV}, or give uidMap/gidMap`,
    });
  }
  try {
    fs.mkdirSync(range.lockDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw failure(e as NodeJS.ErrnoException, 'mkdir');
  }
  const st = fs.lstatSync(range.lockDir);
  // Whoever can write here could take or fake leases.
  if (!st.isDirectory() || st.uid !== process.geteuid?.() || (st.mode & 0o022) !== 0) {
    throw new IsolationError({
      errno: os.constants.errno.EPERM, step: 'host-ids', syscall: 'lstat', path: range.lockDir,
      hint: 'the lock directory of host ids must be a directory owned by this user and writable by no one else',
    });
  }
  try {
    dirFd = fs.openSync(range.lockDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw failure(e as NodeJS.ErrnoException, 'open');
  }
  return dirFd;
}

/** A host id leased to one sandbox; release() gives it back (idempotent). */
export interface HostIdLease {
  readonly id: number;
  release(): void;
}

/**
 * Leases a host id no other live sandbox of this host holds: each id is tried once, in a
 * rotating order (this process starts at its own place in the range, then goes on after the
 * id it handed out last, so that an id just released is the last to be reused), at the cost
 * of an openat and a flock per try. Throws IsolationError when every id is taken.
 */
export function allocateHostId(): HostIdLease {
  const range = hostIdRange();
  const dir = openLockDir(range);
  if (cursor < 0) cursor = (process.pid * 7919) % range.count;
  for (let k = 0; k < range.count; k++) {
    const i = (cursor + k) % range.count;
    const id = range.base + i;
    if (held.has(id)) continue;
    const fd = binding.lockHostId(dir, String(id));
    if (fd === -os.constants.errno.EWOULDBLOCK) continue;
    if (fd < 0) {
      throw new IsolationError({ errno: -fd, step: 'host-ids', syscall: 'flock', path: path.join(range.lockDir, String(id)) });
    }
    cursor = (i + 1) % range.count;
    held.add(id);
    let released = false;
    return {
      id,
      release(): void {
        if (released) return;
        released = true;
        held.delete(id);
        binding.closeFd(fd);
      },
    };
  }
  throw new IsolationError({
    errno: os.constants.errno.EAGAIN, step: 'host-ids', syscall: 'flock', path: range.lockDir,
    hint: `all ${range.count} host ids from ${range.base} are held by live sandboxes: widen the range with configureHostIds() or ${ENV}`,
  });
}

/** The host ids this process holds right now (for tests and diagnostics). */
export function heldHostIds(): number[] {
  return [...held].sort((a, b) => a - b);
}

/** The prepared (detached, idmapped) trees of one spawn: fds by mounts index, and the root's. */
export interface PreparedTrees {
  binds: Map<number, number>;
  root: number | undefined;
}

// MOUNT_ATTR_* (linux/mount.h)
const MOUNT_ATTR_NOSUID = 0x2;
const MOUNT_ATTR_NODEV = 0x4;
const MOUNT_ATTR_NOEXEC = 0x8;

const IDMAP_HINT = 'this file system cannot be idmapped (tmpfs needs Linux 6.3; network and some FUSE file systems never can): ' +
  'bind it readonly, or map the sandbox to your own ids with uidMap/gidMap (docs/identity.md)';

/**
 * For a sandbox running as host id `id`: a detached copy of each writable bind's source (and
 * of `root`) whose owner is not root, made and resolved here as the caller, idmapped so that
 * the owner's files appear as the sandbox's (the owner's uid and gid inside the idmapping are
 * `id` outside) and writes land as the owner's ids. Never root's: through a tree idmapped
 * from root, what the sandbox creates would be host root's on disk, setuid files included,
 * and every device node in it the sandbox's; a root-owned source is bound as it is and is
 * writable to the sandbox only where its modes let others write. Idmapped trees are also
 * nosuid and nodev. Read-only binds are left to the child: the sandbox reads them as an
 * unprivileged user would. The fds are for the child to attach (src-native/child_fs.cc) and
 * are closed by the caller of this once the spawn has returned.
 */
export function prepareIdmappedTrees(mounts: readonly ValidatedMount[] | undefined, root: string | undefined, id: number): PreparedTrees {
  const prepared: PreparedTrees = { binds: new Map(), root: undefined };
  const wanted = (mounts ?? []).map((m, i) => [m, i] as const).filter(([m]) => m.type === 'bind' && !m.readonly);
  if (wanted.length === 0 && root === undefined) return prepared;
  const usernsByOwner = new Map<string, number>();
  try {
    const tree = (source: string, recursive: boolean, attrs: number, step: string, optional: boolean): number | undefined => {
      let owner: fs.Stats;
      try {
        owner = fs.statSync(source);
      } catch {
        return undefined; // the child binds the source itself, and names the error
      }
      if (owner.uid === 0 || owner.gid === 0) return undefined;
      const key = `${owner.uid}:${owner.gid}`;
      let userns = usernsByOwner.get(key);
      if (userns === undefined) {
        const made = binding.idmapUserns(`${owner.uid} ${id} 1\n`, `${owner.gid} ${id} 1\n`);
        if (typeof made !== 'number') {
          throw new IsolationError({ errno: made.errno, step: 'host-ids idmap', syscall: made.syscall, hint: 'a user namespace for idmapped mounts could not be made' });
        }
        usernsByOwner.set(key, made);
        userns = made;
      }
      const r = binding.idmapTree(source, recursive, attrs | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, userns);
      if ('fd' in r) return r.fd;
      if (optional && r.errno === os.constants.errno.ENOENT) return undefined;
      const hint = r.syscall === 'mount_setattr' && r.errno === os.constants.errno.EINVAL ? IDMAP_HINT : undefined;
      throw new IsolationError({ errno: r.errno, step, syscall: r.syscall, path: source, hint });
    };
    if (root !== undefined) prepared.root = tree(root, true, 0, 'bind-root', false);
    for (const [m, i] of wanted) {
      if (m.type !== 'bind') continue;
      const attrs = m.noexec ? MOUNT_ATTR_NOEXEC : 0;
      const fd = tree(m.source, m.recursive, attrs, `mounts[${i}] bind`, m.try);
      if (fd !== undefined) prepared.binds.set(i, fd);
    }
  } catch (e) {
    closePrepared(prepared);
    throw e;
  } finally {
    for (const userns of usernsByOwner.values()) binding.closeFd(userns);
  }
  return prepared;
}

/** Closes the fds of {@link prepareIdmappedTrees} (the mounts themselves live on in the sandbox). */
export function closePrepared(prepared: PreparedTrees | undefined): void {
  if (!prepared) return;
  for (const fd of [...prepared.binds.values(), ...(prepared.root !== undefined ? [prepared.root] : [])]) binding.closeFd(fd);
  prepared.binds.clear();
  prepared.root = undefined;
}
