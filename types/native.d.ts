/**
 * The private contract between lib/ and the native addon (src-native/). Not public API:
 * lib/plan.ts builds a {@link NativePlan}, src-native/plan.cc reads it.
 */

/** One setup step the child runs between clone and execve (src-native/child.cc). */
export interface NativeStep {
  op:
    | 'writeFile' | 'mount' | 'mkdir' | 'pivotRoot' | 'chroot' | 'chdir'
    | 'sethostname' | 'setns' | 'loopbackUp'
    | 'setrlimit'
    | 'setIds' | 'capabilities' | 'noNewPrivs' | 'seccomp' | 'unshare';
  path?: string;
  source?: string;
  fstype?: string;
  data?: string | Buffer;
  flags?: number;
  mode?: number;
  /** Up to two unsigned 64-bit numbers (rlimits, ids, capability sets). */
  values?: bigint[];
}

/** Where the child's fd 0, 1 or 2 comes from: a new pipe, /dev/null, an fd of ours, or nothing. */
export type NativeStdio = 'pipe' | 'null' | 'close' | number;

export interface NativePlan {
  cloneFlags: number;
  engine: 'auto' | 'clone3' | 'clone';
  execCandidates: string[];
  argv: string[];
  envp: string[];
  stdio: [NativeStdio, NativeStdio, NativeStdio];
  steps: NativeStep[];
  dieWithParent: boolean;
  newSession: boolean;
}

/** The raw exit report of a reaped child (wait4). */
export interface NativeExitStatus {
  exitCode: number | null;
  signal: number | null;
  coreDumped: boolean;
  rusage: { userMicros: number; systemMicros: number; maxRssKiB: number };
}

/** A live child watched through its pidfd. */
export interface NativeChild {
  readonly pid: number;
  /** Sends a signal through the pidfd; returns 0 or an errno (ESRCH once reaped). */
  kill(signal: number): number;
  ref(): void;
  unref(): void;
}

/** A failure before exec: in the parent (where: 'parent' | 'stdio') or reported by the child. */
export interface NativeFailure {
  where: 'parent' | 'stdio' | 'child';
  syscall: string;
  errno: number;
  /** Index into plan.steps, or a negative fixed step (-1 execve, -2 stdio, ...); for 'stdio', the fd. */
  step: number;
  /** For execve failures: the index into plan.execCandidates. */
  candidate: number;
}

export interface NativeSpawned {
  pid: number;
  /** Our end of each piped stream, or -1. */
  stdio: [number, number, number];
  child: NativeChild;
}

export interface NativeBinding {
  spawn(plan: NativePlan, onExit: (status: NativeExitStatus | null) => void): NativeSpawned | { error: NativeFailure };
  unshare(flags: number): number;
  setns(target: string | number, nstype: number): number;
  chroot(path: string): number;
  /** strerror_r(3). */
  strerror(errno: number): string;
  constants: {
    CLONE_NEWNS: number;
    CLONE_NEWUTS: number;
    CLONE_NEWIPC: number;
    CLONE_NEWUSER: number;
    CLONE_NEWPID: number;
    CLONE_NEWNET: number;
    CLONE_NEWCGROUP: number;
    CLONE_NEWTIME: number;
    CLONE_VM: number;
    CLONE_VFORK: number;
  };
}
