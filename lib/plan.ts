/**
 * Options -> spawn plan. All policy lives here and in the feature files it calls: which
 * namespaces, which steps in which order, how the program is found. The child
 * (src-native/child.cc) only executes the plan.
 */
import * as path from 'node:path';
import type { NativePlan, NativeStdio } from '../types/native';
import { binding } from './binding';
import { filesystemSteps, makePrivateSteps } from './mount-steps';
import type { SandboxView } from './exec-diagnosis';
import { identityPlan, privilegeSteps, userNamespaceSteps } from './identity';
import { cgroupJoinSteps, deferredCloneFlags, limitSteps } from './limits';
import { joinSteps, networkSteps, userAfterSetupSteps, withheldCloneFlags } from './network';
import { DEFAULT_PATH, type EnvList, type StdioOption, type ValidatedOptions } from './options';
import { protocolPlan } from './protocol';
import { step, type PlannedStep, type StepLabel } from './steps';

const C = binding.constants;

/** A compiled plan: the native part for the addon, the labels to explain a failure. */
export interface SpawnPlan {
  native: NativePlan;
  labels: StepLabel[];
  /** Labels of native.parentSetup (parent-written id maps), for errors. */
  parentLabels: StepLabel[];
  /** For execve errors (lib/exec-diagnosis.ts): the command as given, the PATH searched, the sandbox's view. */
  exec: { command: string; pathVar: string; view: SandboxView };
  /**
   * Where the working directory's chdir step is in `native.steps` (`present`), or where it
   * would go: a prepared sandbox (lib/prepared.ts) changes or inserts it for a run's cwd.
   */
  cwdStep: { index: number; present: boolean };
  /** The cgroup-join steps the child runs (writes of its cgroup.procs files): the first `cgroupJoins` steps. */
  cgroupJoins: number;
}

/**
 * Where a spawn's strings are packed ({@link packStrings}, {@link packEnv}): one Buffer per
 * kind, kept and reused from spawn to spawn. A fresh Buffer of a large argv or environment costs far more in
 * page faults than the copy itself (a 200 kB one: about 1 ms in a VM), and so does a joined
 * string above V8's large-object size (~128 kB), so strings are joined in chunks below it.
 */
export type PackSlot = 'argv' | 'envp';
/** The two slots of a spawn, and `own`: where a Buffer of its own is packed before its copy. */
const scratch: Record<PackSlot | 'own', Buffer> = { argv: Buffer.allocUnsafeSlow(0), envp: Buffer.allocUnsafeSlow(0), own: Buffer.allocUnsafeSlow(0) };
/** Strings joined at a time: the joined chunk stays a young-generation string. */
const CHUNK = 1024;
/** A scratch Buffer above this is not kept: the next spawn allocates again. */
const SCRATCH_KEEP = 16 * 1024 * 1024;

/** `slot`'s scratch with room for `need` bytes after the first `used` (kept). */
function room(slot: PackSlot | 'own', used: number, need: number): Buffer {
  const current = scratch[slot];
  if (used + need <= current.length) return current;
  const grown = Buffer.allocUnsafeSlow(Math.max(used + need, current.length * 2, 4096));
  current.copy(grown, 0, 0, used);
  scratch[slot] = grown;
  return grown;
}

/**
 * Strings packed for the addon: each followed by a NUL, in one Buffer (one pass to find them
 * there, however many there are), after the bytes of `prefix` (strings packed already).
 * `entry(i)` gives the i-th of `count` strings; validation has made sure none holds a NUL.
 * With `slot` the result is a view of that slot's scratch, valid until the next packing into
 * it: it must go to the addon at once (a synchronous spawn reads it in place, an asynchronous
 * one copies it before the call returns). Without, a Buffer of its own (kept by a prepared
 * sandbox).
 */
function pack(count: number, entry: (i: number) => string, slot?: PackSlot, prefix?: Buffer): Buffer {
  const target = slot ?? 'own';
  let used = 0;
  if (prefix !== undefined && prefix.length > 0) {
    prefix.copy(room(target, 0, prefix.length), 0);
    used = prefix.length;
  }
  if (used === 0 && count === 0) return Buffer.alloc(0);
  const chunk: string[] = [];
  for (let start = 0; start < count; start += CHUNK) {
    const end = Math.min(count, start + CHUNK);
    chunk.length = end - start;
    for (let i = start; i < end; i++) chunk[i - start] = entry(i);
    const joined = chunk.join('\0');
    // UTF-8 takes at most 3 bytes per UTF-16 code unit (counted exactly for a large chunk, not
    // to keep a scratch three times its size); the NUL after the chunk's last string.
    const buffer = room(target, used, (joined.length > 65536 ? Buffer.byteLength(joined) : joined.length * 3) + 1);
    used += buffer.write(joined, used);
    buffer[used++] = 0;
  }
  const packed = scratch[target].subarray(0, used);
  if (scratch[target].length > SCRATCH_KEEP) scratch[target] = Buffer.allocUnsafeSlow(0);
  return slot === undefined ? Buffer.from(packed) : packed;
}

/** argv (or any list of strings) packed for the addon; see {@link pack}. */
export function packStrings(list: readonly string[], slot?: PackSlot): Buffer {
  return pack(list.length, (i) => list[i], slot);
}

/**
 * The environment packed as `key=value` strings, the layout execve takes, after `prefix` (an
 * environment packed already); see {@link pack}.
 */
export function packEnv(env: EnvList, slot?: PackSlot, prefix?: Buffer): Buffer {
  return pack(env.length / 2, (i) => `${env[2 * i]}=${env[2 * i + 1]}`, slot, prefix);
}

/** The clone engine: clone3 where the kernel has it, or forced (NSJAIL_NODE_CLONE=clone|clone3). */
function cloneEngine(): NativePlan['engine'] {
  const forced = process.env.NSJAIL_NODE_CLONE;
  if (forced === undefined || forced === '' || forced === 'auto') return 'auto';
  if (forced === 'clone' || forced === 'clone3') return forced;
  throw new RangeError(`spawnIsolated: NSJAIL_NODE_CLONE must be auto, clone3 or clone, got '${forced}'`);
}

function cloneFlags(ns: ValidatedOptions['namespaces']): number {
  // CLONE_VM|CLONE_VFORK: the child borrows our memory until exec instead of copying page
  // tables, so a spawn costs the same in a 50 MB and a 5 GB Node process.
  let flags = C.CLONE_VM | C.CLONE_VFORK;
  if (ns.pid) flags |= C.CLONE_NEWPID;
  if (ns.net) flags |= C.CLONE_NEWNET;
  if (ns.mount) flags |= C.CLONE_NEWNS;
  if (ns.uts) flags |= C.CLONE_NEWUTS;
  if (ns.ipc) flags |= C.CLONE_NEWIPC;
  if (ns.user) flags |= C.CLONE_NEWUSER;
  if (ns.cgroup) flags |= C.CLONE_NEWCGROUP;
  return flags;
}

export function stdioFor(option: StdioOption, fd: number): NativeStdio {
  if (option === 'pipe') return 'pipe';
  if (option === 'ignore') return 'null';
  return option === 'inherit' ? fd : option;
}

/** The PATH a bare command name is looked up on: the sandbox's own, else the default. */
export function pathVariable(env: EnvList): string {
  for (let i = 0; i < env.length; i += 2) if (env[i] === 'PATH') return env[i + 1];
  return DEFAULT_PATH;
}

/**
 * Where execve is tried, in order. A command with a slash is used as given; a bare name is
 * looked up on the sandbox's PATH, as execvp would, but inside the new root.
 */
export function execCandidates(command: string, env: EnvList): string[] {
  if (command.includes('/')) return [command];
  return pathVariable(env).split(':').map((dir) => (dir === '' ? command : path.posix.join(dir, command)));
}

/**
 * The order of the child's steps. The cgroup join comes first (it writes a host path), then
 * joins of existing namespaces (the user namespace before the others, as nsenter does), the
 * id map (writable only through the host's /proc), what needs the host's view (mount
 * propagation, network, mounts from host paths), the switch to the new root, the working
 * directory, limits, and privileges last, right before execve.
 */
function orderedSteps(o: ValidatedOptions): { steps: PlannedStep[]; cwdIndex: number; cgroupJoins: number } {
  const allJoins = cgroupJoinSteps(o.limits, o.namespaces.cgroup);
  // On a host id the parent joins the child instead (parentCgroupJoins).
  const joins = parentCgroupJoins(o).length > 0 ? allJoins.filter((s) => s.native.op !== 'writeFile') : allJoins;
  const before = [
    ...joins,
    ...joinSteps(o.network),
    ...userNamespaceSteps(o.identity),
    ...makePrivateSteps(o.filesystem),
    ...(o.hostname !== undefined ? [step({ op: 'sethostname', data: o.hostname }, 'sethostname', 'sethostname')] : []),
    ...networkSteps(o.network),
    ...filesystemSteps(o.filesystem),
  ];
  return {
    steps: [
      ...before,
      ...(o.cwd !== undefined ? [step({ op: 'chdir', path: o.cwd }, 'chdir', 'chdir', o.cwd)] : []),
      ...limitSteps(o.limits),
      ...userAfterSetupSteps(o.network),
      ...privilegeSteps(o.identity, o.namespaces.mount, o.network.join.some((t) => t.kind === 'user')),
    ],
    cwdIndex: before.length,
    cgroupJoins: joins.filter((s) => s.native.op === 'writeFile').length,
  };
}

/**
 * The cgroup.procs files the parent writes the child's pid to, after clone and before the
 * child's first step: a sandbox on a host id (lib/hostids.ts) runs as that id from clone on,
 * and may not move itself into a cgroup of root's (on cgroup v2 the kernel also wants write
 * access to the common ancestor of both cgroups). The clone is then without CLONE_VM.
 */
function parentCgroupJoins(o: ValidatedOptions): string[] {
  return o.identity.hostId !== undefined ? [...o.limits.cgroupProcs] : [];
}

/** Compiles validated options into the plan the child executes. */
export function compilePlan(options: ValidatedOptions): SpawnPlan {
  const { steps, cwdIndex, cgroupJoins } = orderedSteps(options);
  const candidates = execCandidates(options.command, options.env);
  // What getppid() returns in the child while this process lives: 0 when the child starts in
  // another PID namespace (a new one, or one joined for it), where its parent is outside.
  const otherPidNamespace = options.namespaces.pid || options.network.join.some((target) => target.kind === 'pid');
  const parentPid = otherPidNamespace ? 0 : process.pid;
  const identity = identityPlan(options.identity, candidates, options.argv, options.dieWithParent ? parentPid : undefined);
  // Flags a feature takes out: a cgroup namespace unshared after the cgroup join, a network
  // namespace prepared before clone and joined, and CLONE_VM (with CLONE_VFORK) where the
  // parent must act before exec or the kernel refuses a shared mm (time namespace join).
  const joins = parentCgroupJoins(options);
  if (joins.length > 0) {
    identity.native.parentSetup = [...joins.map((file) => ({ path: file, data: '{pid}' })), ...(identity.native.parentSetup ?? [])];
    identity.parentLabels = [...joins.map((file) => ({ step: 'cgroup-join', syscall: 'write', path: file })), ...identity.parentLabels];
    identity.withheldCloneFlags |= C.CLONE_VM | C.CLONE_VFORK;
  }
  const protocol = protocolPlan(options.protocol, cloneFlags(options.namespaces));
  const heldBack =
    deferredCloneFlags(options.limits, options.namespaces.cgroup) | withheldCloneFlags(options.network) | identity.withheldCloneFlags |
    protocol.withheldCloneFlags;
  return {
    native: {
      cloneFlags: cloneFlags(options.namespaces) & ~heldBack,
      engine: cloneEngine(),
      execCandidates: candidates,
      // Packed into the reused scratch: the plan goes to the addon right away (spawn.ts).
      argv: packStrings(options.argv, 'argv'),
      envp: packEnv(options.env, 'envp'),
      stdio: [stdioFor(options.stdio[0], 0), stdioFor(options.stdio[1], 1), stdioFor(options.stdio[2], 2)],
      steps: steps.map((s) => s.native),
      dieWithParent: options.dieWithParent,
      parentPid,
      newSession: options.newSession,
      ...identity.native,
      ...protocol.native,
    },
    labels: steps.map((s) => s.label),
    parentLabels: identity.parentLabels,
    exec: { command: options.command, pathVar: pathVariable(options.env), view: options.filesystem },
    cwdStep: { index: cwdIndex, present: options.cwd !== undefined },
    cgroupJoins,
  };
}
