/**
 * The private contract between lib/ and the native addon (src-native/). Not public API:
 * lib/plan.ts builds a {@link NativePlan}, src-native/plan.cc reads it.
 */

/** One setup step the child runs between clone and execve (src-native/child.cc). */
export interface NativeStep {
  op:
    | 'writeFile' | 'mount' | 'mkdir' | 'pivotRoot' | 'chroot' | 'chdir'
    | 'stageRoot' | 'bindMount' | 'mountFs' | 'mountSetattr' | 'createDir' | 'createFile' | 'createSymlink' | 'chmod' | 'mountOverlay'
    | 'sethostname' | 'setns' | 'loopbackUp'
    | 'setrlimit'
    | 'setIds' | 'capabilities' | 'noNewPrivs' | 'seccomp' | 'unshare' | 'lockMounts';
  path?: string;
  source?: string;
  fstype?: string;
  data?: string | Buffer;
  flags?: number;
  mode?: number;
  /** Up to two unsigned 64-bit numbers (rlimits, ids, capability sets). */
  values?: bigint[];
}

/** Where the child's fd 0, 1 or 2 comes from: a new pipe, nothing to read or a discarded pipe ('null'), an fd of ours, or nothing. */
export type NativeStdio = 'pipe' | 'null' | 'close' | number;

export interface NativePlan {
  cloneFlags: number;
  engine: 'auto' | 'clone3' | 'clone';
  execCandidates: string[];
  /** The program's argv, packed: each string followed by a NUL (lib/plan.ts: packStrings). */
  argv: Buffer;
  /** Its environment as `key=value` strings, packed the same way. */
  envp: Buffer;
  stdio: [NativeStdio, NativeStdio, NativeStdio];
  steps: NativeStep[];
  dieWithParent: boolean;
  /** What getppid() returns in the child while this process lives (0 when it starts in another PID namespace): the death signal's check. */
  parentPid: number;
  newSession: boolean;
  /**
   * Parent-written id maps (lib/identity.ts): the clone is then without CLONE_VM|CLONE_VFORK
   * and the child waits until the parent has done these, in order: write `data` to
   * /proc/PID/`path`, or run `argv` (newuidmap/newgidmap; '{pid}' becomes the child's pid).
   */
  parentSetup?: NativeParentStep[];
  /** init (lib/init.ts): execveat this fd of nsjail_node_init with `argv` instead of the program. */
  init?: { fd: number; argv: string[] };
  /**
   * A host id (lib/hostids.ts): the clone runs as this uid and gid (src-native/hostids.cc:
   * CloneAsHostId), so the sandbox's user namespace is owned by it.
   */
  hostId?: number;
  /** lib/protocol.ts: namespace ids read right after clone, written to `fd` (>= 0) as bubblewrap's info JSON. */
  info?: { fd: number; namespaces: string[] };
  /** lib/protocol.ts: the child reads a byte from this fd before the seccomp filter and execve. */
  blockFd?: number;
  /** lib/protocol.ts: the parent reads a byte from this fd after the info, before the child goes on. */
  usernsBlockFd?: number;
}

/**
 * What one spawn of a prepared plan adds to it (src-native/plan.h: RunStorage): argv, envp
 * and stdio as in {@link NativePlan}, exec candidates for a PATH of this run's, step paths
 * replaced (its cgroup.procs files, its cwd) and a chdir step inserted before `index`.
 */
export interface NativeRun {
  argv: Buffer;
  envp: Buffer;
  stdio: [NativeStdio, NativeStdio, NativeStdio];
  runCandidates?: string[];
  stepPaths?: { index: number; path: string }[];
  chdirAt?: { index: number; path: string };
}

/** A plan parsed once by the addon (src-native/plan.h: PreparedPlan); opaque to JavaScript. */
export interface NativePreparedPlan {
  readonly __nativePreparedPlan: never;
}

/**
 * One thing the parent does for a waiting child (src-native/parent_setup.cc): write `data` to
 * /proc/PID/`path`, or to `path` itself when absolute (data '{pid}' becomes the pid), or run `argv`.
 */
export type NativeParentStep = { path: string; data: string } | { argv: string[] };

/** The raw exit report of a reaped child (wait4). */
export interface NativeExitStatus {
  exitCode: number | null;
  signal: number | null;
  coreDumped: boolean;
  /** maxRssKiB: null when not above this process's own high-water mark at clone (inherited at exec). */
  rusage: { userMicros: number; systemMicros: number; maxRssKiB: number | null };
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
  where: 'parent' | 'stdio' | 'child' | 'parent-setup';
  syscall: string;
  errno: number;
  /** Index into plan.steps, or a negative fixed step (-1 execve, -2 stdio, ...); for 'stdio', the fd; for 'parent-setup', the index into plan.parentSetup. */
  step: number;
  /** For execve failures: the index into plan.execCandidates; for a failed parent-setup helper, its exit status. */
  candidate: number;
}

export interface NativeSpawned {
  pid: number;
  /** Our end of each piped stream, or -1. */
  stdio: [number, number, number];
  child: NativeChild;
  /** With plan.init: the read end (non-blocking) of the pipe init writes the program's wait status to; else -1. */
  statusFd: number;
  /** With plan.info: the namespaces' ids (inode numbers) by /proc/PID/ns name. */
  namespaceIds?: Record<string, number>;
}

/** A failed network setup call (src-native/netns.cc): which step, which call, the errno, the kernel's words. */
export interface NativeNetError {
  step: string;
  syscall: string;
  errno: number;
  /** The kernel's extended-ack text, or ''. */
  message: string;
  /** Which address or route of the request failed, or -1. */
  index: number;
}

/** An IP address for src-native/netlink.cc: 4 or 16 bytes in network order. */
export interface NativeIpAddress {
  family: 4 | 6;
  address: Buffer;
  prefix: number;
}

export interface NativeBinding {
  spawn(plan: NativePlan, onExit: (status: NativeExitStatus | null) => void): NativeSpawned | { error: NativeFailure };
  /**
   * spawn with clone and the wait for exec on a spawner thread (src-native/spawner.h); onDone
   * gets what spawn returns, or `{ thrown }` with what spawn would have thrown.
   */
  spawnAsync(
    plan: NativePlan,
    onExit: (status: NativeExitStatus | null) => void,
    onDone: (result: NativeSpawned | { error: NativeFailure } | { thrown: unknown }) => void,
  ): void;
  /** Parses the fixed part of a plan once (its argv, envp and stdio are ignored). */
  preparePlan(plan: Omit<NativePlan, 'argv' | 'envp' | 'stdio'>): NativePreparedPlan;
  /** spawn of a prepared plan with one run's part. */
  spawnPrepared(prepared: NativePreparedPlan, run: NativeRun, onExit: (status: NativeExitStatus | null) => void): NativeSpawned | { error: NativeFailure };
  /** spawnAsync of a prepared plan with one run's part. */
  spawnPreparedAsync(
    prepared: NativePreparedPlan,
    run: NativeRun,
    onExit: (status: NativeExitStatus | null) => void,
    onDone: (result: NativeSpawned | { error: NativeFailure } | { thrown: unknown }) => void,
  ): void;
  /** `ip netns add`: a new network namespace bind-mounted on `path` inside `dir`. */
  netnsCreate(dir: string, path: string, loopback: boolean): { error: NativeNetError } | null;
  /** `ip netns delete`: detach and remove `path`. */
  netnsDelete(path: string): { error: NativeNetError } | null;
  /** open(path) + NS_GET_NSTYPE: an fd (>= 3, CLOEXEC) of a namespace file and its CLONE_NEW* type. */
  nsOpen(path: string): { fd: number; nstype: number } | { error: NativeNetError };
  /** A veth pair, its sandbox end in a new network namespace held by the returned fd. */
  vethCreate(config: {
    hostName: string; sandboxName: string; loopback: boolean;
    hostAddresses: NativeIpAddress[]; sandboxAddresses: NativeIpAddress[]; gateways: NativeIpAddress[];
  }): { netnsFd: number } | { error: NativeNetError };
  /** Deletes a link of the calling thread's network namespace. */
  linkDelete(name: string): { error: NativeNetError } | null;
  /** The addresses of the calling thread's network namespace. */
  addressList(): Array<NativeIpAddress & { ifname: string }> | { error: NativeNetError };
  /**
   * openat(dirFd, name, O_CREAT) + flock(LOCK_EX|LOCK_NB): the fd holding the lock, or -errno
   * (-EWOULDBLOCK when it is held elsewhere). src-native/hostids.cc.
   */
  lockHostId(dirFd: number, name: string): number;
  /** The fd of a new user namespace with these uid and gid maps (made through a short-lived helper process). */
  idmapUserns(uidMap: string, gidMap: string): number | { errno: number; syscall: string };
  /**
   * open_tree(OPEN_TREE_CLONE) of `source` with MOUNT_ATTR_* `attrs` and, for a directory or a
   * regular file, MOUNT_ATTR_IDMAP with `usernsFd`: a detached mount's fd (CLOEXEC).
   */
  idmapTree(source: string, recursive: boolean, attrs: number, usernsFd: number): { fd: number; idmapped: boolean } | { errno: number; syscall: string };
  /**
   * Closes an fd the addon handed out (nsOpen, vethCreate, a spawn's statusFd): 0 or an errno
   * (EBADF for an fd it did not hand out). Such fds are closed anyway when the environment goes
   * away (src-native/teardown.h).
   */
  closeFd(fd: number): number;
  /** The addon hands these fds (a spawn's stdio) over to JavaScript for good: no longer closed with the environment. */
  releaseFds(fds: readonly number[]): void;
  /** A process-wide sequence (1, 2, ...), shared by all threads: unique names. */
  nextSequence(): number;
  /**
   * Records a sandbox cgroup (its directories and the parents to remove after it) so that the
   * addon removes it if the environment goes away first, killing what is in it unless `keep`
   * (dieWithParent: false). Returns the record's id for {@link cgroupUntrack}; with `id`, that
   * record is replaced (one call: no moment without a record).
   */
  cgroupTrack(dirs: string[], parents: string[], keep: boolean, id?: number): number;
  /** The cgroup was released by JavaScript. */
  cgroupUntrack(id: number): void;
  /** Removes the cgroups of dieWithParent: false sandboxes of gone environments that are empty by now. */
  cgroupSweepOrphans(): void;
  unshare(flags: number): number;
  setns(target: string | number, nstype: number): number;
  chroot(path: string): number;
  /** prctl(PR_SET_PDEATHSIG, SIGKILL) for this process; ESRCH if getppid() is no longer `expectedParent` (else 0), or prctl's errno. */
  dieWithParent(expectedParent: number): number;
  /** strerror_r(3). */
  strerror(errno: number): string;
  /** strerrorname_np(3) where the C library has it (glibc 2.32+). */
  errnoName(errno: number): string | undefined;
  /** The system call table seccomp policies compile against (src-native/syscall_table.cc). */
  syscallTable: { arch: string; auditArch: number; x32Bit: number; syscalls: Record<string, number> };
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
