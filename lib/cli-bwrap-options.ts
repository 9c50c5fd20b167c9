/**
 * The `nsjail-node-bwrap` command line turned into spawnIsolated options with bubblewrap
 * 0.11.1's defaults and rules (bubblewrap.c main()): a mount namespace always, a user
 * namespace forced for callers that are not root, capabilities kept as root, no new session
 * and no death with the parent unless asked, PWD set, its checks and their words.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CAPABILITY_NAMES, type CapabilityName } from './capabilities';
import { allCapabilities, UsageError, type CliState } from './cli-flags';
import { cgroupNamespacesAvailable, userNamespacesAvailable } from './cli-flags-process';
import type { MountEntry } from './filesystem';
import type { SpawnOptions } from './options';

/** The ids and environment facts a bwrap command line is resolved against. */
export interface BwrapHost {
  uid: number;
  gid: number;
  /** The current directory, where the program starts if the sandbox has it. */
  cwd: string;
}

/** The host facts of this process. */
export function thisHost(): BwrapHost {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, cwd: process.cwd() };
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

const under = (p: string, dir: string): boolean => dir === '/' || p === dir || p.startsWith(`${dir}/`);

/**
 * Whether directory `p` exists in the sandbox the mounts build (bubblewrap's chdir to the old
 * working directory, decided here before the sandbox starts): the last mount on `p` or above
 * it decides; a bind shows the host's directory under its source; any mount shows its own
 * target, and every entry creates the directories above its target.
 */
export function visibleInSandbox(p: string, mounts: readonly MountEntry[], root: string | undefined): boolean {
  if (p === '/') return true;
  let visible = root !== undefined ? isDirectory(path.join(root, p)) : false;
  for (const m of mounts) {
    const target = m.type === 'bind' ? (m.target ?? m.source) : 'target' in m ? m.target : undefined;
    if (target === undefined || m.type === 'chmod' || m.type === 'remount-ro') continue;
    if (under(p, target)) {
      if (m.type === 'bind') visible = isDirectory(path.join(m.source ?? `/proc/self/fd/${m.sourceFd}`, path.relative(target, p)));
      else visible = p === target && m.type !== 'symlink' && m.type !== 'file' && m.type !== 'data';
    } else if (under(target, p)) {
      visible = true; // made as a parent of the target
    }
  }
  return visible;
}

/** The kept capabilities: root's own set edited by --cap-add/--cap-drop, in order (bubblewrap's requested_caps). */
function bwrapCapabilities(state: CliState, root: boolean, user: boolean): readonly CapabilityName[] | 'unchanged' {
  if (state.capabilityEdits.length === 0) return root ? 'unchanged' : [];
  // bubblewrap starts a root caller from its effective set, anyone else from none; ALL sets every bit.
  const kept = new Set<CapabilityName>(root ? allCapabilities(false) : []);
  for (const edit of state.capabilityEdits) {
    const names = edit.names === 'ALL' ? allCapabilities(true) : edit.names;
    if (edit.names === 'ALL' && !edit.add) kept.clear();
    for (const name of names) {
      if (edit.add) kept.add(name);
      else kept.delete(name);
    }
  }
  // Without a user namespace a non-root caller holds none to keep (bubblewrap's ambient raise fails quietly).
  const holdable = new Set(allCapabilities(user));
  return CAPABILITY_NAMES.filter((name) => kept.has(name) && holdable.has(name));
}

/**
 * The options for a bwrap command line's `state`, `command` and `args`.
 * @throws UsageError with bubblewrap's words for a combination it refuses.
 */
export function finishBwrap(state: CliState, command: string, args: readonly string[], host: BwrapHost = thisHost()): SpawnOptions {
  const o = { ...state.options };
  const p = state.protocol;
  let user = o.user === true;
  // --userns (a joined user namespace) stands in for a new one.
  const joinsUser = o.join?.user !== undefined;
  if (p.usernsBlockFd !== undefined && !user) throw new UsageError('--userns-block-fd requires --unshare-user');
  if (p.usernsBlockFd !== undefined && p.infoFd === undefined) throw new UsageError('--userns-block-fd requires --info-fd');
  if (joinsUser && user) throw new UsageError('--userns not compatible --unshare-user');
  if (joinsUser && p.userTry) throw new UsageError('--userns not compatible --unshare-user-try');
  // Without setuid, bubblewrap can do nothing as another user but in a user namespace.
  if (host.uid !== 0 && !joinsUser) user = true;
  if (p.userTry && userNamespacesAvailable()) user = true;
  const uid = o.uid ?? host.uid;
  const gid = o.gid ?? host.gid;
  if (!user && !joinsUser && uid !== host.uid) throw new UsageError('Specifying --uid requires --unshare-user or --userns');
  if (!user && !joinsUser && gid !== host.gid) throw new UsageError('Specifying --gid requires --unshare-user or --userns');
  if (o.hostname !== undefined && !o.uts) throw new UsageError('Specifying --hostname requires --unshare-uts');
  if (state.asPid1 && !o.pid) throw new UsageError('Specifying --as-pid-1 requires --unshare-pid');

  o.user = user;
  if (joinsUser) {
    // In the joined namespace: --uid/--gid as given, else the library's choice, its root
    // (bubblewrap keeps the caller's ids, which is the same where it maps root to root).
  } else {
    delete o.uid;
    delete o.gid;
  }
  if (user && p.usernsBlockFd === undefined) {
    // bubblewrap maps the sandbox's ids to the caller's own: root's are root's, not a host id of the sandbox's.
    o.uid = uid;
    o.gid = gid;
    if (host.uid === 0) {
      o.uidMap = [{ inside: uid, outside: host.uid, count: 1 }];
      o.gidMap = [{ inside: gid, outside: host.gid, count: 1 }];
      o.denySetgroups = true;
    }
  } else if (user) {
    // The caller writes the maps (--userns-block-fd): the ids are what they make them.
    o.userNamespaceBlockFd = p.usernsBlockFd;
  }
  o.mount = true;
  // bubblewrap mounts a procfs of whatever PID namespace the sandbox has, and leaves mounts unlocked.
  if (!o.pid && o.mounts) o.mounts = o.mounts.map((m) => (m.type === 'proc' ? { ...m, sharedPidNamespace: true } : m));
  if (user || joinsUser) o.lockMounts = false;
  if (p.cgroupTry && !o.cgroup) o.cgroup = cgroupNamespacesAvailable();
  if (o.pid) o.init = !state.asPid1;
  o.capabilities = bwrapCapabilities(state, host.uid === 0, user);
  o.newSession ??= false;
  o.dieWithParent ??= false;

  const env = new Map(state.env);
  // The working directory: --chdir (relative to the new root), else the current one if the
  // sandbox has it, else $HOME if it has that, else /; PWD says which.
  const mounts = o.mounts ?? [];
  let cwd: string;
  if (o.cwd !== undefined) cwd = path.posix.resolve('/', o.cwd);
  else if (visibleInSandbox(host.cwd, mounts, o.root)) cwd = host.cwd;
  else {
    const home = env.get('HOME');
    cwd = home !== undefined && home.startsWith('/') && visibleInSandbox(path.posix.resolve(home), mounts, o.root) ? path.posix.resolve(home) : '/';
  }
  o.cwd = cwd;
  env.set('PWD', cwd);
  if (p.infoFd !== undefined) o.info = { fd: p.infoFd };
  else if (state.jsonStatusFd !== undefined) o.info = {};
  if (p.blockFd !== undefined) o.blockFd = p.blockFd;
  return { ...o, command, args: [...args], env: Object.fromEntries(env), stdio: 'inherit' };
}
