/**
 * The shape of doctor's report (lib/doctor.ts) and the vocabulary its probes and checks share:
 * the namespace types tried, where their limits live, the kernel version.
 */

/** How a check came out: `fail` breaks the core, `warn` limits a feature, `info` is a fact. */
export type DoctorLevel = 'ok' | 'info' | 'warn' | 'fail';

/** One line of the report. */
export interface DoctorCheck {
  /** Stable identifier, e.g. `kernel`, `clone3`, `namespace.net`, `cgroups`. */
  id: string;
  level: DoctorLevel;
  /** What was found, in words. */
  summary: string;
  /** What to change (set for `warn` and `fail`, sometimes for `info`). */
  advice?: string;
}

/** The outcome of one real attempt to start a sandbox. */
export interface DoctorAttempt {
  /** The sandbox started and /bin/true exited 0. */
  works: boolean;
  /** Why not: the IsolationError's message (or what else went wrong). */
  error?: string;
  /** The errno code of the failure, e.g. `EPERM`. */
  code?: string;
}

/** Namespace types spawnIsolated can create, named as its options. */
export type DoctorNamespace = 'pid' | 'net' | 'mount' | 'uts' | 'ipc' | 'user' | 'cgroup';

/** One cgroup v1 hierarchy that carries controllers. */
export interface DoctorCgroupV1Hierarchy {
  /** Controllers on this hierarchy, e.g. `['cpu', 'cpuacct']`. */
  controllers: string[];
  /** Where it is mounted, e.g. `/sys/fs/cgroup/memory`. */
  mountpoint: string;
  /** This process's cgroup directory in it. */
  cgroup: string;
  /** This user may create child cgroups there (write access to the directory). */
  writable: boolean;
}

/** Everything doctor found, as data, plus the checks in words. */
export interface DoctorReport {
  /** The core works: a sandbox starts, its exit is watched, and pid/net/mount namespaces can be made. */
  ok: boolean;
  host: {
    /** `os.release()`, e.g. `6.18.44-fc-v782`. */
    kernel: string;
    /** major, minor, patch parsed from `kernel`. */
    kernelVersion: [number, number, number];
    arch: string;
    node: string;
    /** Effective uid of this process. */
    uid: number;
    root: boolean;
  };
  /** A sandbox with no namespaces (the clone engine and the exit watcher). */
  spawn: DoctorAttempt;
  /** clone3 forced (NSJAIL_NODE_CLONE=clone3) and clone(2) forced (NSJAIL_NODE_CLONE=clone). */
  clone: { clone3: DoctorAttempt; clone: DoctorAttempt };
  pidfd: {
    /** A spawn handed back a pidfd (seen as `anon_inode:[pidfd]` in /proc/self/fd) and its exit arrived through it. */
    works: boolean;
    /** pidfd_open(2) is in this kernel (from /proc/kallsyms; by version when that is unreadable). */
    pidfdOpen: boolean;
    /** How pidfdOpen was found. */
    pidfdOpenSource: 'kallsyms' | 'kernel-version';
  };
  userNamespaces: {
    /** /proc/sys/user/max_user_namespaces (null if absent). */
    maxUserNamespaces: number | null;
    /** /proc/sys/kernel/unprivileged_userns_clone (Debian/Ubuntu kernels; null if absent). */
    unprivilegedUsernsClone: number | null;
    /** /proc/sys/kernel/apparmor_restrict_unprivileged_userns (Ubuntu 23.10+; null if absent). */
    apparmorRestrictUnprivileged: number | null;
    /** Whether an unprivileged user may create user namespaces, by the sysctls above. */
    unprivilegedAllowed: boolean;
    /** The real attempt for this user: spawnIsolated({ user: true }). */
    attempt: DoctorAttempt;
    /**
     * As root: a real attempt for an unprivileged user, `unshare --user true` run as uid and
     * gid 65534 (nobody). Null when not root or unshare(1) is not installed.
     */
    unprivilegedAttempt: DoctorAttempt | null;
  };
  /** The init helper (`init: true`, the CLI's default with --unshare-pid) as PID 1 of a PID namespace. */
  init: DoctorAttempt;
  /** One real attempt per namespace type (alone; for non-root also inside a user namespace). */
  namespaces: Record<DoctorNamespace, DoctorAttempt & { max: number | null; viaUserNamespace?: DoctorAttempt }>;
  cgroups: {
    /** `v2`: unified only; `v1`: legacy only; `hybrid`: v1 controllers beside a cgroup2 mount; `none`. */
    mode: 'v1' | 'v2' | 'hybrid' | 'none';
    v1: DoctorCgroupV1Hierarchy[];
    v2: {
      /** Where cgroup2 is mounted, or null. */
      mountpoint: string | null;
      /** This process's cgroup directory in it, or null. */
      cgroup: string | null;
      /** Controllers available there (its cgroup.controllers). */
      controllers: string[];
      /** Controllers enabled for its children (its cgroup.subtree_control). */
      subtreeControl: string[];
      /** Delegated to this user: the directory and its cgroup.subtree_control are writable. */
      delegated: boolean;
    };
    /** A real attempt: a sandbox with `limits: { memory: 64 MiB, pids: 64 }`. */
    limits: DoctorAttempt;
    /**
     * Whether `limits.memory` counts socket buffers: `v1-tcp` (cgroup v1 with
     * memory.kmem.tcp.limit_in_bytes: TCP buffers are held to a limit of the same size),
     * `v1-none` (cgroup v1 without it: they are not counted), `v2` (memory.current counts
     * them), or null without a memory controller.
     */
    socketMemory: 'v1-tcp' | 'v1-none' | 'v2' | null;
  };
  container: {
    /** `yes` on a strong sign, `possibly` on weak signs only, else `no`. */
    verdict: 'yes' | 'possibly' | 'no';
    /** What was seen, e.g. `/.dockerenv exists`. */
    hints: { hint: string; strong: boolean }[];
  };
  seccomp: {
    /** /proc/self/status `Seccomp`: 0 none, 1 strict, 2 filter (this process is already filtered). */
    mode: number | null;
    /** /proc/self/status `Seccomp_filters`. */
    filters: number | null;
    /** /proc/sys/kernel/seccomp/actions_avail; empty when the kernel has no filter support. */
    actions: string[];
    /** A real attempt: a sandbox with an allow-everything filter installed. */
    attempt: DoctorAttempt;
  };
  /** The report in words, in the order printed. */
  checks: DoctorCheck[];
}

/** What doctor found, before it is put in words. */
export type DoctorFacts = Omit<DoctorReport, 'checks' | 'ok'>;

/** The namespace types doctor tries, in the report's order. */
export const NAMESPACES: readonly DoctorNamespace[] = ['pid', 'net', 'mount', 'uts', 'ipc', 'user', 'cgroup'];
// Where each namespace's limit lives under /proc/sys/user.
export const MAX_FILE: Record<DoctorNamespace, string> = {
  pid: 'max_pid_namespaces', net: 'max_net_namespaces', mount: 'max_mnt_namespaces', uts: 'max_uts_namespaces',
  ipc: 'max_ipc_namespaces', user: 'max_user_namespaces', cgroup: 'max_cgroup_namespaces',
};

/** The uid and gid of nobody, for the unprivileged attempt. */
export const NOBODY = 65534;

/** Parses `6.18.44-fc-v782` into [6, 18, 44]. */
export function parseKernelVersion(release: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

/** Whether a kernel version is at least major.minor. */
export function atLeast(v: [number, number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}
