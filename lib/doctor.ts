/**
 * `nsjail-node doctor`: what this host allows, found by reading the kernel's own files and by
 * real attempts (a sandbox of /bin/true per namespace type), and what to change when it
 * refuses. Never changes anything on the host.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { V1_TCP_LIMIT_FILE } from './cgroups';
import { IsolationError } from './errors';
import { readTextIfExists } from './files';
import type { SpawnOptions } from './options';
import { compileSeccomp } from './seccomp';
import { spawnIsolated } from './spawn';

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

const NAMESPACES: readonly DoctorNamespace[] = ['pid', 'net', 'mount', 'uts', 'ipc', 'user', 'cgroup'];
// Where each namespace's limit lives under /proc/sys/user.
const MAX_FILE: Record<DoctorNamespace, string> = {
  pid: 'max_pid_namespaces', net: 'max_net_namespaces', mount: 'max_mnt_namespaces', uts: 'max_uts_namespaces',
  ipc: 'max_ipc_namespaces', user: 'max_user_namespaces', cgroup: 'max_cgroup_namespaces',
};
/** The core needs these (the seed's three); the rest only narrow what a sandbox can hide. */
const CORE_NAMESPACES: readonly DoctorNamespace[] = ['pid', 'net', 'mount'];
/** CLONE_PIDFD (5.2) and pollable pidfds (5.3): every spawn uses both. */
const MIN_KERNEL: [number, number] = [5, 3];
const ATTEMPT_TIMEOUT_MS = 10_000;

function readText(file: string): string | null {
  return readTextIfExists(file) ?? null;
}

function readNumber(file: string): number | null {
  const text = readText(file);
  if (text === null) return null;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : null;
}

function writable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function words(text: string | null): string[] {
  return text === null ? [] : text.split(/\s+/).filter((w) => w !== '');
}

/** Parses `6.18.44-fc-v782` into [6, 18, 44]. */
export function parseKernelVersion(release: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

function atLeast(v: [number, number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

/** A binary that exits 0, for the attempts: /bin/true, else Node itself. */
function trueCommand(): Pick<SpawnOptions, 'command' | 'args'> {
  for (const candidate of ['/bin/true', '/usr/bin/true']) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return { command: candidate, args: [] };
    } catch {
      // try the next
    }
  }
  return { command: process.execPath, args: ['-e', ''] };
}

/** The uid and gid of nobody, for the unprivileged attempt. */
const NOBODY = 65534;

/** A program on this process's PATH (or the usual bin dirs), if it is there. */
function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // try the next
    }
  }
  return undefined;
}

function failure(err: unknown): DoctorAttempt {
  if (err instanceof IsolationError) return { works: false, error: err.message, code: err.code };
  return { works: false, error: err instanceof Error ? err.message : String(err) };
}

/** Starts the true binary with `extra` options and waits for its exit (bounded). */
async function attempt(extra: Partial<SpawnOptions>, cloneEngine?: 'clone3' | 'clone'): Promise<DoctorAttempt> {
  const saved = process.env.NSJAIL_NODE_CLONE;
  let child: ReturnType<typeof spawnIsolated>;
  try {
    // The engine is read while the plan is compiled, i.e. inside this synchronous call.
    if (cloneEngine !== undefined) process.env.NSJAIL_NODE_CLONE = cloneEngine;
    child = spawnIsolated({ ...trueCommand(), stdio: 'ignore', ...extra });
  } catch (err) {
    return failure(err);
  } finally {
    if (saved === undefined) delete process.env.NSJAIL_NODE_CLONE;
    else process.env.NSJAIL_NODE_CLONE = saved;
  }
  return awaitExit(child);
}

async function awaitExit(child: ReturnType<typeof spawnIsolated>): Promise<DoctorAttempt> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ATTEMPT_TIMEOUT_MS)));
  const result = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (result === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
    return { works: false, error: `no exit reported within ${ATTEMPT_TIMEOUT_MS / 1000} s (the pidfd watcher did not fire)` };
  }
  if (result.exitCode === 0) return { works: true };
  return { works: false, error: `the program ended with ${result.signal ?? `exit code ${result.exitCode}`}` };
}

function pidfdCount(): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[pidfd]') n++;
    } catch {
      // closed while we looked (the readdir's own fd)
    }
  }
  return n;
}

async function checkPidfd(version: [number, number, number]): Promise<DoctorReport['pidfd']> {
  let works = false;
  try {
    const before = pidfdCount();
    const child = spawnIsolated({ ...trueCommand(), stdio: 'ignore' });
    // Synchronously after the spawn, before the loop can reap it: its pidfd is open.
    const held = pidfdCount() > before;
    works = held && (await awaitExit(child)).works;
  } catch {
    works = false;
  }
  const kallsyms = readText('/proc/kallsyms');
  if (kallsyms !== null && kallsyms.includes('sys_clone')) {
    return { works, pidfdOpen: /sys_pidfd_open\b/.test(kallsyms), pidfdOpenSource: 'kallsyms' };
  }
  return { works, pidfdOpen: atLeast(version, 5, 3), pidfdOpenSource: 'kernel-version' };
}

interface MountEntry {
  root: string;
  mountpoint: string;
  fstype: string;
  source: string;
  superOptions: string[];
}

function mountinfo(): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of (readText('/proc/self/mountinfo') ?? '').split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const left = line.slice(0, dash).split(' ');
    const right = line.slice(dash + 3).split(' ');
    // Paths are octal-escaped (\040 for a space).
    const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    entries.push({ root: unescape(left[3]), mountpoint: unescape(left[4]), fstype: right[0], source: right[1], superOptions: (right[2] ?? '').split(',') });
  }
  return entries;
}

/** This process's cgroups from /proc/self/cgroup: controller list ('' for v2) -> path. */
function ownCgroups(): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of (readText('/proc/self/cgroup') ?? '').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) map.set(m[1], m[2]);
  }
  return map;
}

function cgroupDir(mount: MountEntry, cgroupPath: string): string {
  // With a cgroup namespace or a bind-mounted subtree the mount's root is not '/'.
  const rel = mount.root !== '/' && cgroupPath.startsWith(mount.root) ? cgroupPath.slice(mount.root.length) : cgroupPath;
  const dir = path.posix.join(mount.mountpoint, rel);
  return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
}

function checkCgroups(mounts: MountEntry[]): Omit<DoctorReport['cgroups'], 'limits'> {
  const known = new Set(
    (readText('/proc/cgroups') ?? '').split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split('\t')[0]),
  );
  const own = ownCgroups();
  const v1: DoctorCgroupV1Hierarchy[] = [];
  for (const m of mounts.filter((e) => e.fstype === 'cgroup')) {
    const controllers = m.superOptions.filter((o) => known.has(o));
    if (controllers.length === 0) continue; // a named hierarchy such as name=systemd
    const ownPath = [...own.entries()].find(([list]) => list.split(',').some((c) => controllers.includes(c)))?.[1] ?? '/';
    const cgroup = cgroupDir(m, ownPath);
    v1.push({ controllers, mountpoint: m.mountpoint, cgroup, writable: writable(cgroup) });
  }
  const v2mount = mounts.find((e) => e.fstype === 'cgroup2');
  let v2: DoctorReport['cgroups']['v2'] = { mountpoint: null, cgroup: null, controllers: [], subtreeControl: [], delegated: false };
  if (v2mount) {
    const cgroup = cgroupDir(v2mount, own.get('') ?? '/');
    v2 = {
      mountpoint: v2mount.mountpoint,
      cgroup,
      controllers: words(readText(path.join(cgroup, 'cgroup.controllers'))),
      subtreeControl: words(readText(path.join(cgroup, 'cgroup.subtree_control'))),
      delegated: writable(cgroup) && writable(path.join(cgroup, 'cgroup.subtree_control')),
    };
  }
  const mode = v1.length > 0 ? (v2mount ? 'hybrid' : 'v1') : v2mount ? 'v2' : 'none';
  const v1Memory = v1.find((h) => h.controllers.includes('memory'));
  const socketMemory = v1Memory
    ? (fs.existsSync(path.join(v1Memory.mountpoint, V1_TCP_LIMIT_FILE)) ? 'v1-tcp' : 'v1-none')
    : v2.controllers.includes('memory') ? 'v2' : null;
  return { mode, v1, v2, socketMemory };
}

const CONTAINER_CGROUP = /docker|kubepods|containerd|libpod|lxc|crio|garden|buildkit|actions_job/;

function checkContainer(mounts: MountEntry[]): DoctorReport['container'] {
  const hints: DoctorReport['container']['hints'] = [];
  if (fs.existsSync('/.dockerenv')) hints.push({ hint: '/.dockerenv exists', strong: false });
  if (fs.existsSync('/run/.containerenv')) hints.push({ hint: '/run/.containerenv exists (Podman)', strong: true });
  const env = process.env.container;
  if (env) hints.push({ hint: `the environment variable container=${env} is set`, strong: true });
  const pid1 = readText('/proc/1/cgroup');
  const match = pid1 && CONTAINER_CGROUP.exec(pid1);
  if (match) hints.push({ hint: `PID 1's cgroup names '${match[0]}' (/proc/1/cgroup)`, strong: true });
  const root = mounts.filter((m) => m.mountpoint === '/').pop();
  if (root && /overlay|aufs/.test(root.fstype)) hints.push({ hint: `the root filesystem is ${root.fstype} (/proc/self/mountinfo)`, strong: true });
  // Docker and Podman bind-mount these three files over the image's.
  const bound = ['/etc/hostname', '/etc/hosts', '/etc/resolv.conf'].filter((f) => mounts.some((m) => m.mountpoint === f));
  if (bound.length === 3) hints.push({ hint: '/etc/hostname, /etc/hosts and /etc/resolv.conf are bind mounts', strong: true });
  const verdict = hints.some((h) => h.strong) ? 'yes' : hints.length > 0 ? 'possibly' : 'no';
  return { verdict, hints };
}

function checkSeccomp(): Omit<DoctorReport['seccomp'], 'attempt'> {
  const status = readText('/proc/self/status') ?? '';
  const field = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status);
    return m ? Number(m[1]) : null;
  };
  return { mode: field('Seccomp'), filters: field('Seccomp_filters'), actions: words(readText('/proc/sys/kernel/seccomp/actions_avail')) };
}

function plainAttempt(a: DoctorAttempt): DoctorAttempt {
  return { works: a.works, ...(a.error !== undefined ? { error: a.error } : {}), ...(a.code !== undefined ? { code: a.code } : {}) };
}

function describeAttempt(a: DoctorAttempt): string {
  return a.works ? 'works' : `fails: ${a.error ?? 'unknown error'}`;
}

/** What doctor found, before it is put in words. */
export type DoctorFacts = Omit<DoctorReport, 'checks' | 'ok'>;

/** Whether the core works on a host with these facts: new enough kernel, a spawn, pidfds, and pid/net/mount namespaces. */
export function doctorCoreWorks(r: DoctorFacts): boolean {
  const coreNamespaces = CORE_NAMESPACES.every((ns) => r.namespaces[ns].works || (r.namespaces[ns].viaUserNamespace?.works ?? false));
  return atLeast(r.host.kernelVersion, MIN_KERNEL[0], MIN_KERNEL[1]) && r.spawn.works && r.pidfd.works && coreNamespaces;
}

/**
 * The facts in words: one check per finding, with advice where something should change.
 * Pure: {@link doctor} calls it with what it found; it can be called with any facts.
 */
export function doctorChecks(r: DoctorFacts): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const add = (id: string, level: DoctorLevel, summary: string, advice?: string): void => {
    checks.push(advice === undefined ? { id, level, summary } : { id, level, summary, advice });
  };
  const v = r.host.kernelVersion;
  const kernelOk = atLeast(v, MIN_KERNEL[0], MIN_KERNEL[1]);
  add('kernel', kernelOk ? 'ok' : 'fail', `Linux ${r.host.kernel} on ${r.host.arch}: ${kernelOk ? 'new enough' : 'too old'} (${MIN_KERNEL.join('.')} or newer needed)`,
    kernelOk ? undefined : `nsjail-node needs Linux ${MIN_KERNEL.join('.')} or newer (clone with CLONE_PIDFD, pollable pidfds); upgrade the kernel`);
  add('privileges', 'info', r.host.root
    ? 'running as root: every namespace type is allowed without a user namespace'
    : `running as uid ${r.host.uid}: namespaces other than user need a user namespace (user: true / --unshare-user)`);

  add('spawn', r.spawn.works ? 'ok' : 'fail', `a plain sandbox (no namespaces) ${describeAttempt(r.spawn)}`,
    r.spawn.works ? undefined : 'nothing can start here; if the error is EPERM or ENOSYS from clone/clone3, a seccomp filter (container runtime) is likely blocking it');
  if (r.clone.clone3.works) {
    add('clone3', 'ok', 'clone3 works (NSJAIL_NODE_CLONE=clone3)');
  } else {
    add('clone3', 'warn', `clone3 ${describeAttempt(r.clone.clone3)}; clone(2) ${describeAttempt(r.clone.clone)}`,
      r.clone.clone.works
        ? 'spawnIsolated falls back to clone(2) by itself; clone3 is missing before Linux 5.3 and some container seccomp profiles answer ENOSYS for it (update the runtime\'s profile to allow clone3)'
        : 'neither clone3 nor clone works: see the spawn line');
  }
  const pidfdText = `pidfd_open ${r.pidfd.pidfdOpen ? 'present' : 'absent'} (by ${r.pidfd.pidfdOpenSource})`;
  add('pidfd', r.pidfd.works ? 'ok' : 'fail',
    r.pidfd.works ? `spawns get a pidfd and their exit arrives through it; ${pidfdText}` : `no pidfd from a spawn, or its exit never arrived; ${pidfdText}`,
    r.pidfd.works ? undefined : 'pidfds (CLONE_PIDFD, Linux 5.2; poll, Linux 5.3) are how nsjail-node waits for a sandbox: upgrade the kernel, or allow them in the seccomp profile');

  const u = r.userNamespaces;
  const sysctls = [
    `user.max_user_namespaces=${u.maxUserNamespaces ?? 'absent'}`,
    ...(u.unprivilegedUsernsClone !== null ? [`kernel.unprivileged_userns_clone=${u.unprivilegedUsernsClone}`] : []),
    ...(u.apparmorRestrictUnprivileged !== null ? [`kernel.apparmor_restrict_unprivileged_userns=${u.apparmorRestrictUnprivileged}`] : []),
  ].join(', ');
  const unprivAdvice: string[] = [];
  if (u.maxUserNamespaces === 0) unprivAdvice.push('sysctl -w user.max_user_namespaces=15000');
  if (u.unprivilegedUsernsClone === 0) unprivAdvice.push('sysctl -w kernel.unprivileged_userns_clone=1');
  if (u.apparmorRestrictUnprivileged === 1) {
    unprivAdvice.push('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give the node binary an AppArmor profile with the `userns,` rule (see Ubuntu\'s "unprivileged user namespace restrictions")');
  }
  // As root, the real attempt as nobody is the truth for other users; the sysctls explain it.
  const unpriv = u.unprivilegedAttempt;
  const unprivOk = unpriv !== null ? unpriv.works : u.unprivilegedAllowed;
  const unprivText = unpriv !== null
    ? `for unprivileged users: unshare --user as uid ${NOBODY} ${describeAttempt(unpriv)}`
    : u.unprivilegedAllowed ? 'by the sysctls unprivileged users may create them' : 'by the sysctls unprivileged users may NOT create them';
  if (u.attempt.works) {
    add('userns', r.host.root && !unprivOk ? 'warn' : 'ok', `user namespaces work for this user; ${unprivText} (${sysctls})`,
      r.host.root && !unprivOk
        ? `fine as root; for other users: ${unprivAdvice.length > 0 ? unprivAdvice.join('; ') : 'no sysctl explains it: look for an LSM (AppArmor, SELinux) or seccomp policy that refuses CLONE_NEWUSER'}`
        : undefined);
  } else {
    add('userns', r.host.root ? 'warn' : 'fail', `user namespaces ${describeAttempt(u.attempt)} (${sysctls})`,
      unprivAdvice.length > 0 ? unprivAdvice.join('; ') : 'the kernel may lack CONFIG_USER_NS, or a seccomp filter (container runtime) refuses clone with CLONE_NEWUSER; run on the host or with a profile that allows it');
  }

  for (const ns of NAMESPACES) {
    const a = r.namespaces[ns];
    const via = a.viaUserNamespace;
    const works = a.works || (via?.works ?? false);
    const core = CORE_NAMESPACES.includes(ns);
    // Works only inside a user namespace: say so plainly, not "OK ... fails: <error>".
    const onlyViaUser = !a.works && via?.works === true;
    let summary = onlyViaUser ? `${ns} namespace works together with a user namespace (alone the kernel refuses it: ${a.code ?? 'error'})` : `${ns} namespace ${describeAttempt(a)}`;
    if (via && !onlyViaUser) summary += `; inside a user namespace it ${describeAttempt(via)}`;
    let advice: string | undefined;
    if (!works) {
      if (a.max === 0) advice = `user.max_${MAX_FILE[ns].slice(4)} is 0: sysctl -w user.${MAX_FILE[ns]}=15000`;
      else if (!r.host.root) advice = 'unprivileged: enable user namespaces (see the userns line) and pass user: true / --unshare-user';
      else advice = 'refused even to root: a container runtime\'s seccomp profile or missing privileges (run with --privileged or on the host), or the kernel lacks this namespace type';
    } else if (!a.works && via?.works) {
      advice = 'pass user: true (--unshare-user) together with this namespace';
    }
    add(`namespace.${ns}`, onlyViaUser ? 'info' : works ? 'ok' : core ? 'fail' : 'warn', summary, advice);
  }

  if (r.init.works) {
    add('init', 'ok', 'the init helper runs as PID 1 of a PID namespace (init: true; the command line\'s default with --unshare-pid)');
  } else {
    add('init', 'warn', `the init helper ${describeAttempt(r.init)}`,
      'init: true (and the command line\'s --unshare-pid without --as-pid-1) needs nsjail_node_init, built with the addon: reinstall or rebuild nsjail-node (npm rebuild nsjail-node)');
  }

  const c = r.cgroups;
  const v1ctl = c.v1.flatMap((h) => h.controllers.map((ctl) => `${ctl}${h.writable ? '' : ' (read-only for this user)'}`));
  const v1Usable = new Set(c.v1.filter((h) => h.writable).flatMap((h) => h.controllers));
  const v2Usable = new Set(c.v2.delegated ? c.v2.controllers : []);
  const usable = (ctl: string): boolean => v1Usable.has(ctl) || v2Usable.has(ctl);
  const limitsOk = usable('memory') && usable('pids');
  let cgSummary = `cgroup mode ${c.mode}`;
  if (c.v1.length > 0) cgSummary += `; v1 controllers: ${v1ctl.join(', ')}`;
  if (c.v2.mountpoint !== null) {
    cgSummary += `; v2 at ${c.v2.mountpoint}, own cgroup ${c.v2.cgroup} has ${c.v2.controllers.length > 0 ? `controllers ${c.v2.controllers.join(' ')}` : 'no controllers'}` +
      `, ${c.v2.delegated ? 'delegated (writable) to this user' : 'not delegated to this user'}`;
  }
  cgSummary += c.limits.works ? '; a sandbox with memory and pids limits works' : `; a sandbox with memory and pids limits ${describeAttempt(c.limits)}`;
  const socketText: Record<NonNullable<typeof c.socketMemory>, string> = {
    'v1-tcp': 'socket buffers: TCP buffers are held to a limit of the same size as limits.memory (memory.kmem.tcp)',
    'v1-none': 'socket buffers are NOT counted by limits.memory (cgroup v1 without memory.kmem.tcp.limit_in_bytes): a sandbox can queue more than its limit in sockets it does not read',
    v2: 'socket buffers are counted in limits.memory (cgroup v2 memory.current)',
  };
  if (c.socketMemory !== null) cgSummary += `; ${socketText[c.socketMemory]}`;
  let cgAdvice: string | undefined;
  if (!c.limits.works || !limitsOk) {
    cgAdvice = c.mode === 'none'
      ? 'no cgroup filesystem is mounted: mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)'
      : c.v2.mountpoint !== null && !(v1Usable.has('memory') && v1Usable.has('pids'))
        ? (c.v2.delegated && c.v2.cgroup !== null
          // Delegated, yet the default parent is out of reach and this process's own cgroup
          // cannot be the parent while the process is in it (no internal processes in v2).
          ? `this process's cgroup ${c.v2.cgroup} is delegated to this user, but cgroup v2 enables controllers only below a cgroup ` +
            `without processes of its own: move this process into a child of it (mkdir ${path.join(c.v2.cgroup, 'supervisor')}, then write its pid into ` +
            `${path.join(c.v2.cgroup, 'supervisor', 'cgroup.procs')}) and pass ${c.v2.cgroup} as cgroupParent`
          : 'memory/pids limits need the memory and pids controllers delegated to this user: run under a delegated systemd unit ' +
            '(systemd-run --user --scope -p Delegate=yes ...), move this process from the unit\'s cgroup into a child of it ' +
            '(mkdir <unit cgroup>/supervisor, then write its pid into supervisor/cgroup.procs) and pass the unit\'s cgroup as cgroupParent, or run as root')
        : 'memory/pids limits need the memory and pids controllers writable for this user (v1 hierarchies you may write to, or a delegated cgroup v2 subtree)';
  }
  if (c.socketMemory === 'v1-none') {
    const socketAdvice = 'to count socket buffers, use cgroup v2 or a kernel whose cgroup v1 memory controller has memory.kmem.tcp.*, or give untrusted sandboxes no network at all (net: true with loopback: false)';
    cgAdvice = cgAdvice ? `${cgAdvice}; ${socketAdvice}` : socketAdvice;
  }
  // Limits are a feature, not the core: rlimits and time limits work without cgroups.
  add('cgroups', c.limits.works ? 'ok' : 'warn', cgSummary, cgAdvice);

  const k = r.container;
  if (k.verdict === 'no') add('container', 'ok', 'not inside a container (no /.dockerenv, /run/.containerenv, container cgroup names or overlay root)');
  else if (k.verdict === 'possibly') {
    add('container', 'info', `possibly inside a container: ${k.hints.map((h) => h.hint).join('; ')}; no strong sign (overlay root, container cgroups, /run/.containerenv)`,
      'a host or VM built from a container image keeps /.dockerenv; if this is a container, the namespace lines above show what its runtime allows');
  } else {
    add('container', 'warn', `inside a container: ${k.hints.map((h) => h.hint).join('; ')}`,
      'container runtimes block namespaces and mounts by default (Docker: --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cap-add SYS_ADMIN, or --privileged; Podman rootless works with user namespaces); the namespace lines above show what this one allows');
  }

  const s = r.seccomp;
  const filterSupport = s.actions.length > 0;
  const modeText = s.mode === 0 ? 'this process runs unfiltered' : s.mode === 2 ? `this process already runs under ${s.filters ?? 'some'} seccomp filter(s) (a container runtime or service manager put them there)` : s.mode === 1 ? 'this process is in strict seccomp mode' : 'Seccomp field unreadable';
  const attemptText = s.attempt.works ? 'a sandbox with a filter works' : `a sandbox with a filter ${describeAttempt(s.attempt)}`;
  add('seccomp', !s.attempt.works ? 'warn' : s.mode === 2 ? 'info' : 'ok',
    `${filterSupport ? `seccomp filters supported (actions: ${s.actions.join(' ')})` : 'no seccomp filter support (no /proc/sys/kernel/seccomp/actions_avail)'}; ${attemptText}; ${modeText}`,
    !s.attempt.works
      ? 'sandboxes cannot be given a seccomp filter: use a kernel built with CONFIG_SECCOMP_FILTER, or allow seccomp(2) in the outer policy'
      : s.mode === 2 ? 'an outer filter may refuse syscalls a sandbox needs (clone3, mount, unshare); the namespace lines show whether it does' : undefined);
  return checks;
}

/**
 * Checks what this host allows for sandboxes: kernel, clone3 and pidfds, user namespaces
 * (and what blocks them), each namespace type by a real attempt, cgroups, containers and
 * seccomp. Reads only; starts a few sandboxes of `/bin/true`, nothing else.
 *
 * @example
 * const report = await doctor();
 * for (const c of report.checks) console.log(c.level, c.summary, c.advice ?? '');
 */
export async function doctor(): Promise<DoctorReport> {
  const release = os.release();
  const kernelVersion = parseKernelVersion(release);
  const uid = process.geteuid?.() ?? os.userInfo().uid;
  const root = uid === 0;
  const host = { kernel: release, kernelVersion, arch: os.arch(), node: process.version, uid, root };

  const spawn = await attempt({});
  const clone = { clone3: await attempt({}, 'clone3'), clone: await attempt({}, 'clone') };
  const pidfd = await checkPidfd(kernelVersion);

  const namespaces = {} as DoctorReport['namespaces'];
  for (const ns of NAMESPACES) {
    const alone = await attempt({ [ns]: true });
    const max = readNumber(`/proc/sys/user/${MAX_FILE[ns]}`);
    namespaces[ns] = { ...alone, max };
    if (!root && ns !== 'user') namespaces[ns].viaUserNamespace = await attempt({ [ns]: true, user: true });
  }

  const maxUserNamespaces = readNumber('/proc/sys/user/max_user_namespaces');
  const unprivilegedUsernsClone = readNumber('/proc/sys/kernel/unprivileged_userns_clone');
  const apparmorRestrictUnprivileged = readNumber('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  const unshareBin = root ? findProgram('unshare') : undefined;
  const userNamespaces = {
    maxUserNamespaces,
    unprivilegedUsernsClone,
    apparmorRestrictUnprivileged,
    unprivilegedAllowed: maxUserNamespaces !== 0 && unprivilegedUsernsClone !== 0 && apparmorRestrictUnprivileged !== 1,
    attempt: plainAttempt(namespaces.user),
    unprivilegedAttempt: unshareBin === undefined ? null : await attempt({ command: unshareBin, args: ['--user', 'true'], uid: NOBODY, gid: NOBODY }),
  };
  // Unprivileged, a PID namespace needs a user namespace around it.
  const init = await attempt({ pid: true, init: true, user: !root });
  const limits = await attempt({ limits: { memory: 64 * 1024 * 1024, pids: 64 } });
  const seccompAttempt = await attempt({ seccomp: { bpf: compileSeccomp({ defaultAction: 'allow' }) } });

  const mounts = mountinfo();
  const facts: DoctorFacts = {
    host, spawn, clone, pidfd, userNamespaces, init, namespaces,
    cgroups: { ...checkCgroups(mounts), limits }, container: checkContainer(mounts), seccomp: { ...checkSeccomp(), attempt: seccompAttempt },
  };
  return { ok: doctorCoreWorks(facts), ...facts, checks: doctorChecks(facts) };
}

const LABEL: Record<DoctorLevel, string> = { ok: 'OK  ', info: 'INFO', warn: 'WARN', fail: 'FAIL' };

/** The report as text: a header, one line per check with its advice indented below, a verdict. */
export function formatDoctorReport(report: DoctorReport): string {
  const h = report.host;
  const lines = [`nsjail-node doctor: Linux ${h.kernel} (${h.arch}), Node ${h.node}, uid ${h.uid}${h.root ? ' (root)' : ''}`, ''];
  const width = Math.max(...report.checks.map((c) => c.id.length));
  for (const c of report.checks) {
    lines.push(`${LABEL[c.level]}  ${c.id.padEnd(width)}  ${c.summary}`);
    if (c.advice) lines.push(`${' '.repeat(width + 8)}-> ${c.advice}`);
  }
  lines.push('');
  const failed = report.checks.filter((c) => c.level === 'fail').map((c) => c.id);
  const warned = report.checks.filter((c) => c.level === 'warn').map((c) => c.id);
  lines.push(report.ok
    ? `Result: the core works${warned.length > 0 ? ` (warnings: ${warned.join(', ')})` : ''}.`
    : `Result: the core does NOT work here (failed: ${failed.join(', ')}); see the advice above.`);
  return lines.join('\n') + '\n';
}
