/**
 * Options -> spawn plan. All policy lives here: which namespaces, which steps in which order,
 * how the program is found. The child (src-native/child.cc) only executes the plan.
 */
import * as path from 'node:path';
import type { NativePlan, NativeStdio, NativeStep } from '../types/native';
import { binding } from './binding';
import { callerIds, DEFAULT_PATH, type StdioOption, type ValidatedOptions } from './options';

const C = binding.constants;

// mount(2) flags (linux/mount.h): stable ABI values.
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;

/** What a step is called in errors, and what it worked on. */
export interface StepLabel {
  step: string;
  syscall: string;
  path?: string;
}

/** A step with its label: the native part goes to the child, the label stays for errors. */
export interface PlannedStep {
  native: NativeStep;
  label: StepLabel;
}

/** A compiled plan: the native part for the addon, the labels to explain a failure. */
export interface SpawnPlan {
  native: NativePlan;
  labels: StepLabel[];
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

function stdioFor(option: StdioOption, fd: number): NativeStdio {
  if (option === 'pipe') return 'pipe';
  if (option === 'ignore') return 'null';
  return option === 'inherit' ? fd : option;
}

/**
 * Where execve is tried, in order. A command with a slash is used as given; a bare name is
 * looked up on the sandbox's PATH, as execvp would, but inside the new root.
 */
export function execCandidates(command: string, env: [string, string][]): string[] {
  if (command.includes('/')) return [command];
  const pathVar = env.find(([key]) => key === 'PATH')?.[1] ?? DEFAULT_PATH;
  return pathVar.split(':').map((dir) => (dir === '' ? command : path.posix.join(dir, command)));
}

function writeFile(file: string, data: string, step: string): PlannedStep {
  return { native: { op: 'writeFile', path: file, data }, label: { step, syscall: 'write', path: file } };
}

/** The user-namespace map the child writes for itself: one line, setgroups denied first. */
function userNamespaceSteps(): PlannedStep[] {
  const { uid, gid } = callerIds();
  return [
    writeFile('/proc/self/setgroups', 'deny', 'setgroups-deny'),
    writeFile('/proc/self/uid_map', `0 ${uid} 1\n`, 'uid-map'),
    writeFile('/proc/self/gid_map', `0 ${gid} 1\n`, 'gid-map'),
  ];
}

/** Switching to `root`: pivot_root in a mount namespace, the seed's chroot without one. */
function rootSteps(root: string, mountNamespace: boolean): PlannedStep[] {
  if (!mountNamespace) {
    return [{ native: { op: 'chroot', path: root }, label: { step: 'chroot', syscall: 'chroot', path: root } }];
  }
  return [
    // pivot_root needs the new root to be a mount point.
    {
      native: { op: 'mount', source: root, path: root, flags: MS_BIND | MS_REC },
      label: { step: 'bind-root', syscall: 'mount', path: root },
    },
    { native: { op: 'pivotRoot', path: root }, label: { step: 'pivot-root', syscall: 'pivot_root', path: root } },
  ];
}

/** Compiles validated options into the plan the child executes. */
export function compilePlan(options: ValidatedOptions): SpawnPlan {
  const ns = options.namespaces;
  const steps: PlannedStep[] = [];

  if (ns.user) steps.push(...userNamespaceSteps());
  if (ns.mount) {
    // Before anything is mounted: nothing done in the sandbox may propagate to the host.
    steps.push({
      native: { op: 'mount', path: '/', flags: MS_REC | MS_PRIVATE },
      label: { step: 'make-private', syscall: 'mount', path: '/' },
    });
  }
  if (options.hostname !== undefined) {
    steps.push({ native: { op: 'sethostname', data: options.hostname }, label: { step: 'sethostname', syscall: 'sethostname' } });
  }
  if (options.root !== undefined) steps.push(...rootSteps(options.root, ns.mount));
  if (options.cwd !== undefined) {
    steps.push({ native: { op: 'chdir', path: options.cwd }, label: { step: 'chdir', syscall: 'chdir', path: options.cwd } });
  }

  const envp = options.env.map(([key, value]) => `${key}=${value}`);
  return {
    native: {
      cloneFlags: cloneFlags(ns),
      engine: cloneEngine(),
      execCandidates: execCandidates(options.command, options.env),
      argv: options.argv,
      envp,
      stdio: [stdioFor(options.stdio[0], 0), stdioFor(options.stdio[1], 1), stdioFor(options.stdio[2], 2)],
      steps: steps.map((s) => s.native),
      dieWithParent: options.dieWithParent,
      newSession: options.newSession,
    },
    labels: steps.map((s) => s.label),
  };
}
