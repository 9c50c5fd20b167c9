/**
 * Who the program is inside the sandbox and what it may do: the user namespace and its id
 * maps, uid/gid/groups, capabilities, no_new_privs, seccomp, the init process and the time
 * namespace. Compiled into child steps (src-native/child_identity.cc), plus, for id maps the
 * child cannot write itself, work the parent does between clone and the child's first step
 * (src-native/parent_setup.cc).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativePlan } from '../types/native';
import { binding } from './binding';
import { capabilityMask, capabilityNumber, kernelLastCapability, type CapabilityName } from './capabilities';
import { IsolationError } from './errors';
import { initArgv, initFd } from './init';
import { seccompProgram, type SeccompOption } from './seccomp';
import type { PlannedStep, StepLabel } from './steps';
import { step, writeFileStep } from './steps';
import { checkAbsolutePath, checkArray, checkBoolean, checkObject, describe, fail, rejectUnknownKeys } from './validate';

/** One range of an id map: `count` ids from `inside` (in the sandbox) are `outside` (in the caller's namespace). */
export interface IdMapRange {
  inside: number;
  outside: number;
  count: number;
}

/** Identity and privilege options of spawnIsolated (the `user` namespace flag itself is a core option). */
export interface IdentityOptions {
  /**
   * The program's uid. With `user: true` an id inside the namespace (default 0: root inside;
   * outside a host id of its own when the caller is root, see `uidMap`, else the caller);
   * without, a host uid to switch to (setresuid, needs root) and then `gid` is required too.
   */
  uid?: number;
  /** The program's gid: as `uid`. */
  gid?: number;
  /**
   * Supplementary groups (setgroups). Default: none when the ids change. With `user: true`
   * they must be mapped by `gidMap`, and the maps are then written by the parent (see `uidMap`).
   */
  groups?: readonly number[];
  /**
   * The user namespace's uid map (needs `user: true`). Default: one line written by the child
   * itself, `uid` inside being, for a caller that is root, an unprivileged host id leased to
   * this sandbox alone (uid and gid; see {@link configureHostIds}), and for any other caller
   * the caller's own uid. Given (with `gidMap`, or one of them), no host id is leased and the
   * parent writes the maps: directly when this process is root, else through
   * newuidmap/newgidmap (the uidmap package; the ranges must be allowed by /etc/subuid and
   * /etc/subgid). Up to 340 ranges, none overlapping. `[{ inside: 0, outside: 0, count: 1 }]`
   * makes the sandbox's root host root: see docs/identity.md for what that gives it.
   */
  uidMap?: readonly IdMapRange[];
  /** The user namespace's gid map: as `uidMap`. */
  gidMap?: readonly IdMapRange[];
  /**
   * With `user: true` and maps the parent writes (`uidMap`/`gidMap`): write "deny" to the
   * namespace's /proc/PID/setgroups before its gid map, as bubblewrap does, and set no
   * supplementary groups (the program keeps the ones it inherits; unmapped ones show as the
   * overflow gid). Cannot be combined with `groups`. Default false: setgroups stays allowed
   * and the groups are emptied (or `groups`). A map the child writes itself always denies it.
   */
  denySetgroups?: boolean;
  /**
   * With `user: true` (or `join.user`), a mount namespace and CAP_SYS_ADMIN kept: enter one more user and
   * mount namespace right before execve, so that every mount is locked (the program cannot
   * remount a read-only bind writable or uncover what a mount covers). Default true; false
   * does what bubblewrap does, leaving them unlocked (and the program in the namespaces
   * `info` reports).
   */
  lockMounts?: boolean;
  /**
   * Capabilities the program keeps, e.g. `['CAP_NET_BIND_SERVICE']`. Default none: the
   * bounding, effective, permitted, inheritable and ambient sets are all emptied before
   * exec. Kept ones are in every set (ambient too, so that a non-zero uid keeps them).
   * `'unchanged'` gives the program this process's capabilities, as bubblewrap does for a
   * root caller: without a user namespace every set is left as it is; with `user: true` this
   * process's effective set becomes the program's bounding, permitted and effective sets
   * over the new namespace (none inheritable or ambient), instead of all of them.
   */
  capabilities?: readonly CapabilityName[] | 'unchanged';
  /** prctl(PR_SET_NO_NEW_PRIVS): execve can never grant privileges (setuid bits, file capabilities). Default true. */
  noNewPrivs?: boolean;
  /**
   * A seccomp filter for the program: a typed policy (see {@link seccompPresets}) or a
   * precompiled BPF program; or several, installed in this order (as bubblewrap's repeated
   * --add-seccomp-fd), all of which apply: the kernel runs every filter and the most
   * restrictive answer wins (between two errnos, the later filter's). Installed as the very
   * last steps before the program's execve, so only the last may refuse prctl and seccomp.
   */
  seccomp?: SeccompOption | readonly SeccompOption[];
  /**
   * A tiny init as PID 1 (with `pid: true`) that starts the program as its child, forwards
   * signals to it, reaps orphans, and exits with the program's status. Default false (the
   * program is PID 1 itself), true with `time: true`.
   */
  init?: boolean;
  /** A new time namespace (Linux 5.6+): the program sees CLOCK_MONOTONIC and CLOCK_BOOTTIME shifted by `timeOffsets`. Implies `init`. */
  time?: boolean;
  /**
   * Seconds (fractions allowed, negative too) added to the clocks inside the time namespace,
   * e.g. `{ boottime: 1000 - os.uptime() }` for an uptime of about 1000 s. The clocks must
   * not become negative.
   */
  timeOffsets?: { monotonic?: number; boottime?: number };
  /**
   * The program cannot create user namespaces (needs `user: true`), as bubblewrap's
   * --disable-userns: the sandbox's user namespace gets user.max_user_namespaces = 1, and the
   * program runs in one more user namespace nested in it, which uses that one up and cannot
   * raise its parent's limit. Default false. Checked as `assertUserNamespacesDisabled` is.
   */
  disableUserNamespaces?: boolean;
  /**
   * Fail the spawn (IsolationError, step `assert-user-namespaces-disabled`, EEXIST) unless
   * creating a user namespace is refused right before the program starts, as bubblewrap's
   * --assert-userns-disabled. Default false.
   */
  assertUserNamespacesDisabled?: boolean;
  /**
   * Absolute paths inside the sandbox that its init holds a shared lock on (fcntl F_RDLCK on
   * the whole file) for as long as the sandbox runs, as bubblewrap's --lock-file: another
   * process's write lock on one waits (or fails with F_SETLK) until the sandbox has ended.
   * Each is opened read-only once the sandbox is set up; a missing one fails the spawn
   * (IsolationError, step `lock-file`). Implies `init` (also without `pid: true`).
   */
  lockFiles?: readonly string[];
}

/** The option names this file owns. */
export const IDENTITY_OPTION_KEYS = [
  'uid', 'gid', 'groups', 'uidMap', 'gidMap', 'denySetgroups', 'lockMounts', 'capabilities', 'noNewPrivs', 'seccomp', 'init', 'time', 'timeOffsets',
  'disableUserNamespaces', 'assertUserNamespacesDisabled', 'lockFiles',
] as const;

/** Identity options after validation. */
export interface ValidatedIdentity {
  userNamespace: boolean;
  /** The ids to switch to (inside the namespace with one); undefined: unchanged. */
  uid: number | undefined;
  gid: number | undefined;
  /** Supplementary groups to set; undefined: unchanged (or, with a self-written map, not allowed). */
  groups: number[] | undefined;
  /** With a user namespace: its maps. */
  uidMap: IdMapRange[];
  gidMap: IdMapRange[];
  /**
   * How the maps are written: by the child itself (one line, the default), the parent, the
   * parent through newuidmap/newgidmap, or by the caller outside (userNamespaceBlockFd).
   */
  mapWriter: 'child' | 'parent' | 'helpers' | 'caller';
  /** Write "deny" to setgroups before a parent-written gid map, and set no groups. */
  denySetgroups: boolean;
  /** Lock the mounts when CAP_SYS_ADMIN is kept in a user namespace (privilegeSteps). */
  lockMounts: boolean;
  /** The default map of a root caller: the sandbox needs a host id of its own (lib/hostids.ts). */
  wantsHostId: boolean;
  /** The leased host id (uid and gid) once {@link withHostId} has put it in the maps. */
  hostId: number | undefined;
  capabilities: bigint;
  /**
   * capabilities: 'unchanged': without a user namespace no capability step (`capabilities` is
   * then every one, for the checks that ask); with one, this process's effective set, not inherited.
   */
  capabilitiesUnchanged: boolean;
  /** No CAP_SETPCAP to drop from the bounding set with (unprivileged, no user namespace). */
  boundingBestEffort: boolean;
  noNewPrivs: boolean;
  /** seccomp filters in the order they are installed (all apply): see lib/socket-families.ts. */
  seccomp: Buffer[];
  init: boolean;
  /** With `time`: the offsets as [seconds, nanoseconds]. */
  time: { monotonic: [number, number]; boottime: [number, number] } | undefined;
  disableUserNamespaces: boolean;
  assertUserNamespacesDisabled: boolean;
  /** Paths in the sandbox init holds a read lock on. */
  lockFiles: string[];
}

// The kernel's limits: ids are 32-bit with (uid_t)-1 reserved, a map has at most 340 lines
// (Linux 4.15+), a process at most NGROUPS_MAX groups.
const MAX_ID = 0xfffffffe;
const MAX_MAP_LINES = 340;
const NGROUPS_MAX = 65536;
const CAP_SYS_ADMIN = capabilityNumber('CAP_SYS_ADMIN') ?? 21;
// src-native/child_steps.h
const SET_IDS_GROUPS = 1;
const SET_IDS_GID = 2;
const SET_IDS_UID = 4;
const SET_IDS_KEEP_CAPS = 8;
const CAPS_BOUNDING_BEST_EFFORT = 1;
const UNSHARE_MUST_FAIL = 1;
const CAPS_NOT_INHERITED = 2;

/** This process's effective capability set (CapEff of /proc/self/status), as a mask. */
function ownEffectiveCapabilities(): bigint {
  const m = /^CapEff:\s+([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** The caller's effective ids, for the default user-namespace map. */
export function callerIds(): { uid: number; gid: number } {
  if (process.geteuid && process.getegid) return { uid: process.geteuid(), gid: process.getegid() };
  const info = os.userInfo();
  return { uid: info.uid, gid: info.gid };
}

function checkId(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(option, `must be an integer id, got ${describe(value)}`);
  if (value < 0 || value > MAX_ID) fail(option, `must be between 0 and ${MAX_ID}, got ${value}`, 'range');
  return value;
}

function checkMap(option: string, value: unknown): IdMapRange[] {
  const expected = 'a non-empty array of { inside, outside, count }';
  if (!Array.isArray(value) || value.length === 0) fail(option, `must be ${expected}, got ${describe(value)}`);
  if (value.length > MAX_MAP_LINES) fail(option, `may have at most ${MAX_MAP_LINES} ranges, got ${value.length}`, 'range');
  const ranges = checkArray(option, value, expected, (entry, i) => {
    const where = `${option}[${i}]`;
    const r = checkObject(where, entry);
    rejectUnknownKeys(r, ['inside', 'outside', 'count'], `options.${where}.`);
    const inside = checkId(`${where}.inside`, r.inside);
    const outside = checkId(`${where}.outside`, r.outside);
    if (typeof r.count !== 'number' || !Number.isInteger(r.count) || r.count < 1) fail(`${where}.count`, `must be a positive integer, got ${describe(r.count)}`, 'range');
    if (inside + r.count - 1 > MAX_ID || outside + r.count - 1 > MAX_ID) fail(where, `runs past the largest id ${MAX_ID}`, 'range');
    return { inside, outside, count: r.count };
  });
  // The kernel refuses overlaps on either side.
  for (const side of ['inside', 'outside'] as const) {
    const sorted = ranges.map((r, i) => ({ ...r, i })).sort((a, b) => a[side] - b[side]);
    for (let k = 1; k < sorted.length; k++) {
      const [a, b] = [sorted[k - 1], sorted[k]];
      if (a[side] + a.count > b[side]) fail(option, `ranges ${a.i} and ${b.i} overlap on the ${side} side`, 'range');
    }
  }
  return ranges;
}

function mapped(map: IdMapRange[], id: number): boolean {
  return map.some((r) => id >= r.inside && id < r.inside + r.count);
}

function checkOffset(option: string, value: unknown): [number, number] {
  if (value === undefined) return [0, 0];
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(option, `must be a number of seconds, got ${describe(value)}`);
  if (Math.abs(value) > 2 ** 32) fail(option, `must be within ±${2 ** 32} seconds, got ${value}`, 'range');
  let seconds = Math.floor(value);
  let nanos = Math.round((value - seconds) * 1e9);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return [seconds, nanos];
}

let helperCache: { newuidmap: string; newgidmap: string } | null | undefined;

/** newuidmap and newgidmap on this process's PATH (or the usual sbin/bin dirs), if both are there. */
function mapHelpers(): { newuidmap: string; newgidmap: string } | null {
  if (helperCache !== undefined) return helperCache;
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), '/usr/bin', '/usr/sbin', '/bin', '/sbin'];
  const find = (name: string): string | undefined =>
    dirs.map((d) => path.join(d, name)).find((p) => {
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  const newuidmap = find('newuidmap');
  const newgidmap = find('newgidmap');
  helperCache = newuidmap && newgidmap ? { newuidmap, newgidmap } : null;
  return helperCache;
}

/** Validates the identity options; `userNamespace` is options.user. */
export function validateIdentity(options: IdentityOptions, userNamespace: boolean, callerWritesMaps = false): ValidatedIdentity {
  const caller = callerIds();
  let uid = options.uid === undefined ? undefined : checkId('uid', options.uid);
  let gid = options.gid === undefined ? undefined : checkId('gid', options.gid);
  let groups: number[] | undefined;
  if (options.groups !== undefined) {
    if (Array.isArray(options.groups) && options.groups.length > NGROUPS_MAX) fail('groups', `may have at most ${NGROUPS_MAX} entries`, 'range');
    groups = checkArray('groups', options.groups, 'an array of gids', (g, i) => checkId(`groups[${i}]`, g));
  }

  const denySetgroups = checkBoolean('denySetgroups', options.denySetgroups, false);
  if (denySetgroups && !userNamespace) fail('denySetgroups', 'needs user: true (a user namespace)');
  if (denySetgroups && groups !== undefined) fail('groups', 'cannot be given with denySetgroups: true (setgroups is denied)');
  let uidMap: IdMapRange[] = [];
  let gidMap: IdMapRange[] = [];
  let mapWriter: ValidatedIdentity['mapWriter'] = 'child';
  // Root's sandboxes are never root outside unless a map says so (docs/identity.md).
  const wantsHostId = userNamespace && !callerWritesMaps && caller.uid === 0 && options.uidMap === undefined && options.gidMap === undefined;
  if (userNamespace && callerWritesMaps) {
    // The caller writes the maps while the parent waits (lib/protocol.ts): nothing to check them against.
    for (const key of ['uidMap', 'gidMap', 'groups'] as const) {
      if (options[key] !== undefined) fail(key, 'cannot be given with userNamespaceBlockFd (the caller writes the id maps)');
    }
    mapWriter = 'caller';
  } else if (userNamespace) {
    uid ??= 0;
    gid ??= 0;
    const parentWrites = options.uidMap !== undefined || options.gidMap !== undefined || groups !== undefined;
    uidMap = options.uidMap === undefined ? [{ inside: uid, outside: caller.uid, count: 1 }] : checkMap('uidMap', options.uidMap);
    gidMap = options.gidMap === undefined ? [{ inside: gid, outside: caller.gid, count: 1 }] : checkMap('gidMap', options.gidMap);
    if (!mapped(uidMap, uid)) fail('uid', `${uid} is not mapped by options.uidMap`, 'range');
    if (!mapped(gidMap, gid)) fail('gid', `${gid} is not mapped by options.gidMap`, 'range');
    groups?.forEach((g, i) => {
      if (!mapped(gidMap, g)) fail(`groups[${i}]`, `${g} is not mapped by options.gidMap${options.gidMap === undefined ? ' (without gidMap only options.gid is)' : ''}`, 'range');
    });
    if (parentWrites) {
      // setgroups stays allowed only in a namespace whose gid map a privileged process wrote.
      if (!denySetgroups) groups ??= [];
      if (caller.uid === 0) {
        mapWriter = 'parent';
      } else if (mapHelpers()) {
        mapWriter = 'helpers';
      } else {
        const which = options.uidMap !== undefined ? 'uidMap' : options.gidMap !== undefined ? 'gidMap' : 'groups';
        throw new IsolationError({
          errno: os.constants.errno.ENOENT,
          step: 'uid-map',
          syscall: 'newuidmap',
          hint: `options.${which} needs an id map written by a privileged process: run as root, or install newuidmap/newgidmap ` +
            '(the uidmap package) with /etc/subuid and /etc/subgid entries for this user; a single-line map of your own ids needs neither',
        });
      }
    }
  } else {
    if (options.uidMap !== undefined) fail('uidMap', 'needs user: true (a user namespace)');
    if (options.gidMap !== undefined) fail('gidMap', 'needs user: true (a user namespace)');
    // Switching only the uid would leave e.g. root's gid 0 in place.
    if ((uid === undefined) !== (gid === undefined)) fail(uid === undefined ? 'uid' : 'gid', `must be given with options.${uid === undefined ? 'gid' : 'uid'} without a user namespace`);
    if (uid !== undefined) groups ??= [];
  }

  const capabilitiesUnchanged = options.capabilities === 'unchanged';
  const capabilities = options.capabilities === undefined ? 0n
    : capabilitiesUnchanged ? (userNamespace ? ownEffectiveCapabilities() : (1n << BigInt(kernelLastCapability() + 1)) - 1n)
    : capabilityMask('capabilities', options.capabilities);
  const noNewPrivs = checkBoolean('noNewPrivs', options.noNewPrivs, true);
  const seccomp = options.seccomp === undefined
    ? []
    : Array.isArray(options.seccomp)
    ? checkArray('seccomp', options.seccomp, 'an array of seccomp policies or programs', (program, i) => seccompProgram(`seccomp[${i}]`, program))
    : [seccompProgram('seccomp', options.seccomp)];
  // The kernel's limit on all the filters of a process: 32768 instructions, 4 more for each.
  if (seccomp.reduce((n, p) => n + p.length / 8 + 4, 0) > 32768) fail('seccomp', 'has more than 32768 BPF instructions in all (the kernel\'s limit, counting 4 more for each filter)', 'range');
  if (seccomp.length > 0 && !noNewPrivs && !(capabilities & (1n << BigInt(CAP_SYS_ADMIN)))) {
    fail('seccomp', 'needs noNewPrivs: true (or CAP_SYS_ADMIN kept in options.capabilities): the kernel installs a filter only under no_new_privs or with CAP_SYS_ADMIN', 'range');
  }

  const lockFiles = options.lockFiles === undefined ? [] : checkArray('lockFiles', options.lockFiles, 'an array of absolute paths', (p, i) => checkAbsolutePath(`lockFiles[${i}]`, p));
  const timeNamespace = checkBoolean('time', options.time, false);
  const init = checkBoolean('init', options.init, timeNamespace || lockFiles.length > 0);
  if (lockFiles.length > 0 && !init) fail('init', 'must not be false with lockFiles (init holds the locks for as long as the sandbox runs)', 'range');
  if (timeNamespace && !init) fail('init', 'must not be false with time: true (a time namespace applies only to processes started in it: init starts the program there)', 'range');
  let time: ValidatedIdentity['time'];
  if (options.timeOffsets !== undefined) {
    if (!timeNamespace) fail('timeOffsets', 'needs time: true');
    const offsets = checkObject('timeOffsets', options.timeOffsets);
    rejectUnknownKeys(offsets, ['monotonic', 'boottime'], 'options.timeOffsets.');
    time = { monotonic: checkOffset('timeOffsets.monotonic', offsets.monotonic), boottime: checkOffset('timeOffsets.boottime', offsets.boottime) };
  } else if (timeNamespace) {
    time = { monotonic: [0, 0], boottime: [0, 0] };
  }

  const disableUserNamespaces = checkBoolean('disableUserNamespaces', options.disableUserNamespaces, false);
  if (disableUserNamespaces && !userNamespace) fail('disableUserNamespaces', 'needs user: true (the limit is set in the sandbox\'s own user namespace, never the host\'s)');

  return {
    disableUserNamespaces,
    lockFiles,
    assertUserNamespacesDisabled: checkBoolean('assertUserNamespacesDisabled', options.assertUserNamespacesDisabled, false) || disableUserNamespaces,
    userNamespace,
    uid,
    gid,
    groups,
    uidMap,
    gidMap,
    mapWriter,
    denySetgroups,
    lockMounts: checkBoolean('lockMounts', options.lockMounts, true),
    wantsHostId,
    hostId: undefined,
    capabilities,
    capabilitiesUnchanged,
    boundingBestEffort: !userNamespace && caller.uid !== 0,
    noNewPrivs,
    seccomp,
    init,
    time,
  };
}

/** The identity with `uid` and `gid` inside mapped to host id `id` (uid and gid). */
export function withHostId(identity: ValidatedIdentity, id: number): ValidatedIdentity {
  const uid = identity.uid ?? 0;
  const gid = identity.gid ?? 0;
  // The parent writes the maps (a fork-like clone): the child, created with only the
  // effective ids switched (src-native/hostids.cc), has a non-dumpable copy of this process's
  // memory that it could not write its own /proc/self/*_map in, and that must stay so.
  return {
    ...identity, hostId: id, mapWriter: 'parent', groups: identity.denySetgroups ? undefined : identity.groups ?? [],
    uidMap: [{ inside: uid, outside: id, count: 1 }], gidMap: [{ inside: gid, outside: id, count: 1 }],
  };
}

function mapText(map: IdMapRange[]): string {
  return map.map((r) => `${r.inside} ${r.outside} ${r.count}\n`).join('');
}

/**
 * First of all: the user-namespace map the child writes for itself (one line, `uid`/`gid`
 * inside as the caller's ids, setgroups denied first: the kernel's rule for an unprivileged
 * writer), then the time namespace, while /proc is still the host's; with a parent-written
 * map, ids that map for the setup steps.
 */
export function userNamespaceSteps(identity: ValidatedIdentity): PlannedStep[] {
  const steps: PlannedStep[] = [];
  if (identity.userNamespace && identity.mapWriter === 'child') {
    steps.push(
      writeFileStep('/proc/self/setgroups', 'deny', 'setgroups-deny'),
      writeFileStep('/proc/self/uid_map', mapText(identity.uidMap), 'uid-map'),
      writeFileStep('/proc/self/gid_map', mapText(identity.gidMap), 'gid-map'),
    );
  }
  if (identity.time) {
    // unshare(CLONE_NEWTIME) moves only later children (init's program) into the namespace,
    // and its offsets can be set only until the first process is in it.
    const unshare = step({ op: 'unshare', flags: binding.constants.CLONE_NEWTIME }, 'time-namespace', 'unshare');
    unshare.label.hints = { EINVAL: 'time namespaces need Linux 5.6 or later', EPERM: 'a time namespace needs root or user: true' };
    steps.push(unshare);
    const { monotonic, boottime } = identity.time;
    if (monotonic[0] !== 0 || monotonic[1] !== 0 || boottime[0] !== 0 || boottime[1] !== 0) {
      const offsets = writeFileStep('/proc/self/timens_offsets', `monotonic ${monotonic[0]} ${monotonic[1]}\nboottime ${boottime[0]} ${boottime[1]}\n`, 'time-offsets');
      offsets.label.hints = { ERANGE: 'an offset would make a clock negative', EINVAL: 'an offset is out of the kernel\'s range' };
      steps.push(offsets);
    }
  }
  if (identity.userNamespace && (identity.mapWriter === 'parent' || identity.mapWriter === 'helpers') && identity.uid !== undefined && identity.gid !== undefined) {
    // This process's own ids may be unmapped in a parent-written map, and the setup steps
    // that follow cannot create a file as an unmapped id (EOVERFLOW). Become root inside if
    // the map has it (no capability is lost becoming uid 0), else the final ids at once (the
    // old ids were not root inside, so no capability is lost either). After the time
    // namespace: a changed euid makes /proc/self/* unwritable.
    const early = (map: IdMapRange[], id: number): bigint => BigInt(mapped(map, 0) ? 0 : id);
    steps.push(
      step({ op: 'setIds', flags: SET_IDS_GID, values: [0n, early(identity.gidMap, identity.gid)] }, 'setup-ids', 'setresgid'),
      step({ op: 'setIds', flags: SET_IDS_UID, values: [early(identity.uidMap, identity.uid)] }, 'setup-ids', 'setresuid'),
    );
  }
  if (identity.disableUserNamespaces) {
    // While the host's /proc is still there and the sandbox holds every capability in its
    // user namespace: the limit of that namespace (privilegeSteps nests one more in it).
    const limit = writeFileStep('/proc/sys/user/max_user_namespaces', '1', 'disable-user-namespaces');
    limit.label.hints = { EACCES: 'the sandbox\'s user namespace lacks CAP_SYS_RESOURCE to set its limit' };
    steps.push(limit);
  }
  return steps;
}

/**
 * Last of all, right before execve: the ids (setresuid under PR_SET_KEEPCAPS, so that the
 * capability step can still empty the bounding set), the capabilities, no_new_privs, and the
 * seccomp filter as the very last step. With init, the filter is installed by init in the
 * program's process instead (src-native/init.c), so init itself can always fork and reap.
 */
export function privilegeSteps(identity: ValidatedIdentity, mountNamespace: boolean, joinsUserNamespace = false): PlannedStep[] {
  const steps: PlannedStep[] = [];
  // A joined user namespace: become its root, as nsenter does, not stay this process's ids
  // there (host root's uid would keep owning what host root owns, e.g. when the sandbox
  // runs on a host id of its own).
  if (joinsUserNamespace && identity.uid === undefined && identity.gid === undefined) {
    steps.push(
      step({ op: 'setIds', flags: SET_IDS_GID, values: [0n, 0n] }, 'ids-in-joined-user', 'setresgid'),
      step({ op: 'setIds', flags: SET_IDS_UID | SET_IDS_KEEP_CAPS, values: [0n] }, 'ids-in-joined-user', 'setresuid'),
    );
    for (const s of steps) s.label.hints = { EINVAL: 'the joined user namespace maps no uid/gid 0: give options.uid and options.gid (ids of that namespace)' };
  }
  const idHints = identity.userNamespace ? undefined : { EPERM: 'changing ids without a user namespace needs root (CAP_SETUID, CAP_SETGID)' };
  const ownIds = steps.length;
  if (identity.groups !== undefined) {
    const list = Buffer.alloc(identity.groups.length * 4);
    identity.groups.forEach((g, i) => (os.endianness() === 'LE' ? list.writeUInt32LE(g, i * 4) : list.writeUInt32BE(g, i * 4)));
    steps.push(step({ op: 'setIds', flags: SET_IDS_GROUPS, data: list }, 'setgroups', 'setgroups'));
  }
  if (identity.gid !== undefined) {
    steps.push(step({ op: 'setIds', flags: SET_IDS_GID, values: [0n, BigInt(identity.gid)] }, 'setresgid', 'setresgid'));
  }
  if (identity.uid !== undefined) {
    steps.push(step({ op: 'setIds', flags: SET_IDS_UID | SET_IDS_KEEP_CAPS, values: [BigInt(identity.uid)] }, 'setresuid', 'setresuid'));
  }
  if (idHints) for (const s of steps.slice(ownIds)) s.label.hints = idHints;
  // A joined user namespace (join.user) owns the mount namespace made after the join just
  // as a new one would: its root's CAP_SYS_ADMIN reaches the binds made there the same way.
  const inUserNamespace = identity.userNamespace || joinsUserNamespace;
  if (identity.disableUserNamespaces || (inUserNamespace && mountNamespace && identity.lockMounts && (identity.capabilities & (1n << BigInt(CAP_SYS_ADMIN))) !== 0n)) {
    // A kept CAP_SYS_ADMIN could remount the read-only binds made in this sandbox's own
    // namespaces, or uncover what they cover. One more user and mount namespace, entered now,
    // turns every mount into a locked copy (MNT_LOCKED and its read-only, nosuid, nodev,
    // noexec flags locked), as the kernel does for mounts handed to a less privileged namespace.
    const lock = step({ op: 'lockMounts' }, 'lock-mounts', 'unshare');
    lock.label.hints = { EPERM: 'the nested user namespace for locked mounts was refused (user.max_user_namespaces?)' };
    // With disableUserNamespaces this nested namespace is also the one that uses up the limit
    // of 1 set in the sandbox's own, which the program, inside it, cannot raise.
    steps.push(lock);
  }
  if (identity.assertUserNamespacesDisabled) {
    const check = step({ op: 'unshare', flags: binding.constants.CLONE_NEWUSER, mode: UNSHARE_MUST_FAIL }, 'assert-user-namespaces-disabled', 'unshare');
    check.label.hints = { EEXIST: 'a user namespace could still be created: user namespaces are not disabled here' };
    steps.push(check);
  }
  const caps = step(
    {
      op: 'capabilities',
      flags: (identity.boundingBestEffort ? CAPS_BOUNDING_BEST_EFFORT : 0) | (identity.capabilitiesUnchanged ? CAPS_NOT_INHERITED : 0),
      values: [identity.capabilities],
    },
    'capabilities', 'capset');
  caps.label.hints = {
    EPERM: 'a kept capability is not in the permitted set of this process (without root or user: true there are none), ' +
      'or this process lacks CAP_SETPCAP to empty the bounding set with',
  };
  if (!identity.capabilitiesUnchanged || identity.userNamespace) steps.push(caps);
  if (identity.noNewPrivs) steps.push(step({ op: 'noNewPrivs' }, 'no-new-privs', 'prctl'));
  if (!identity.init) {
    for (const program of identity.seccomp) {
      const filter = step({ op: 'seccomp', data: program }, 'seccomp', 'seccomp');
      filter.label.hints = { EINVAL: 'the kernel rejected the BPF program', EACCES: 'a filter needs no_new_privs or CAP_SYS_ADMIN' };
      steps.push(filter);
    }
  }
  return steps;
}

/** What the identity options add to the native plan besides steps. */
export interface IdentityPlan {
  /** Clone flags to leave out: CLONE_VM|CLONE_VFORK when the parent writes the id maps. */
  withheldCloneFlags: number;
  native: Pick<NativePlan, 'parentSetup' | 'init' | 'hostId'>;
  /** Labels of native.parentSetup's entries, for errors. */
  parentLabels: StepLabel[];
}

/**
 * The parent-written maps and the init of a plan; `candidates` and `argv` are the program's,
 * `parent` the pid init's getppid() sees while this process lives, when it is to die with it.
 */
export function identityPlan(identity: ValidatedIdentity, candidates: readonly string[], argv: readonly string[], parent?: number): IdentityPlan {
  const plan: IdentityPlan = { withheldCloneFlags: 0, native: {}, parentLabels: [] };
  if (identity.userNamespace && (identity.mapWriter === 'parent' || identity.mapWriter === 'helpers')) {
    // The parent can act only once clone has returned, which CLONE_VFORK would delay until exec.
    plan.withheldCloneFlags = binding.constants.CLONE_VM | binding.constants.CLONE_VFORK;
    const helpers = identity.mapWriter === 'helpers' ? mapHelpers() : null;
    plan.native.parentSetup = [];
    if (identity.denySetgroups) {
      plan.native.parentSetup.push({ path: 'setgroups', data: 'deny' });
      plan.parentLabels.push({ step: 'setgroups-deny', syscall: 'write', path: '/proc/PID/setgroups' });
    }
    for (const [kind, map] of [['uid', identity.uidMap], ['gid', identity.gidMap]] as const) {
      const label: StepLabel = { step: `${kind}-map`, syscall: 'write', path: `/proc/PID/${kind}_map` };
      if (helpers) {
        const helper = kind === 'uid' ? helpers.newuidmap : helpers.newgidmap;
        plan.native.parentSetup.push({ argv: [helper, '{pid}', ...map.flatMap((r) => [r.inside, r.outside, r.count].map(String))] });
        label.syscall = path.basename(helper);
        label.hints = { EPERM: `${path.basename(helper)} refused the map (its message is on stderr): check /etc/sub${kind}` };
      } else {
        plan.native.parentSetup.push({ path: `${kind}_map`, data: mapText(map) });
      }
      plan.parentLabels.push(label);
    }
  }
  if (identity.init) plan.native.init = { fd: initFd(), argv: initArgv(parent, identity.seccomp, candidates, argv, identity.lockFiles) };
  // The host id owns the sandbox's user namespace (its per-user counts are its own), except
  // with a time namespace: the child writes its clock offsets through /proc/self, which it
  // could not in a copy of memory made non-dumpable by the ownership switch
  // (src-native/hostids.cc); such a namespace is owned by this process, mapped the same.
  if (identity.hostId !== undefined && identity.time === undefined) plan.native.hostId = identity.hostId;
  return plan;
}
