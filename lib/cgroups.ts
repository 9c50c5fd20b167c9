/**
 * Cgroups for sandboxes, v1 and v2, detected at run time: one cgroup per sandbox under a
 * configurable parent, its limits written before clone, joined by the child before exec
 * (lib/limits.ts plans the join step), its accounting read after exit, everything left in it
 * killed, and the directory removed.
 *
 * Only this file touches cgroupfs. The parts that decide (which hierarchy, which files get
 * which values, how accounting files parse) are plain functions over text and numbers, so
 * that the cgroup v2 logic this machine cannot run is still tested.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { binding } from './binding';
import { IsolationError } from './errors';
import { readTextIfExists } from './files';

/** A cgroup hierarchy mounted in this mount namespace. */
export interface CgroupHierarchy {
  version: 1 | 2;
  /** Where it is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`. */
  mountPoint: string;
  /** v1: the controllers bound to it (from the mount's options). v2: empty; see cgroup.controllers. */
  controllers: string[];
}

/** The cgroup v1 controllers the kernel knows (anything else in a mount's options is an option). */
const V1_CONTROLLERS = new Set([
  'cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'net_prio', 'blkio', 'perf_event',
  'hugetlb', 'pids', 'rdma', 'misc',
]);

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The cgroup hierarchies in a /proc/self/mountinfo text: every cgroup2 mount, and every v1
 * mount that carries controllers (a hierarchy mounted twice is listed once). Pure.
 */
export function parseMountinfo(text: string): CgroupHierarchy[] {
  const found: CgroupHierarchy[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const before = line.slice(0, dash).split(' ');
    const [fstype, , superOptions = ''] = line.slice(dash + 3).split(' ');
    if (before.length < 5 || (fstype !== 'cgroup' && fstype !== 'cgroup2')) continue;
    const mountPoint = unescapeMountPath(before[4]);
    if (fstype === 'cgroup2') {
      if (seen.has('cgroup2')) continue;
      seen.add('cgroup2');
      found.push({ version: 2, mountPoint, controllers: [] });
      continue;
    }
    const controllers = superOptions.split(',').filter((o) => V1_CONTROLLERS.has(o)).sort();
    const key = controllers.join(',');
    if (controllers.length === 0 || seen.has(key)) continue;
    seen.add(key);
    found.push({ version: 1, mountPoint, controllers });
  }
  // A pure v2 system mounts cgroup2 at /sys/fs/cgroup; prefer that mount if there are several.
  return found;
}

/** The hierarchies of this process's mount namespace; IsolationError when mountinfo cannot be read (e.g. EMFILE). */
export function detectHierarchies(): CgroupHierarchy[] {
  const file = '/proc/self/mountinfo';
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw cgroupError('cgroup-detect', 'open', file, e);
  }
  return parseMountinfo(text);
}

/** Which cgroup version(s) this process can use, for docs and tools. */
export function cgroupMode(hierarchies: readonly CgroupHierarchy[] = detectHierarchies()): 'v1' | 'v2' | 'hybrid' | 'none' {
  const v1 = hierarchies.some((h) => h.version === 1);
  const v2 = hierarchies.some((h) => h.version === 2);
  return v1 && v2 ? 'hybrid' : v1 ? 'v1' : v2 ? 'v2' : 'none';
}

/** What a sandbox asks of its cgroup (lib/limits.ts builds it from validated options). */
export interface CgroupRequest {
  /** 'auto': v1 when the v1 hierarchies offer every controller asked for, else v2 (see docs/limits.md). */
  version: 1 | 2 | 'auto';
  /** A name relative to each hierarchy's root (e.g. `nsjail-node`), or an absolute directory on a cgroup2 mount. */
  parent: string;
  /** The parent is the library's default: removed again when empty. */
  defaultParent: boolean;
  /** Bytes, or 'max' for no limit (but still a memory cgroup, for accounting). */
  memory?: number | 'max';
  /** Swap bytes beyond `memory`; undefined means none when `memory` is a number (enforced where the kernel accounts swap). */
  memorySwap?: number | 'max';
  pids?: number | 'max';
  /** A share of one CPU (0.5 = half a CPU), or 'max'. */
  cpu?: number | 'max';
  /** CPU accounting is needed (cpuTime is polled from it). */
  cpuAccounting: boolean;
}

/** The controllers a request cannot do without, by the option that needs them. */
export function requiredControllers(req: CgroupRequest, version: 1 | 2): Map<string, string> {
  const needs = new Map<string, string>();
  if (req.memory !== undefined) needs.set('memory', 'limits.memory');
  else if (req.memorySwap !== undefined) needs.set('memory', 'limits.memorySwap');
  if (req.pids !== undefined) needs.set('pids', 'limits.pids');
  if (req.cpu !== undefined) needs.set('cpu', 'limits.cpu');
  // cgroup v2 accounts CPU time in every cgroup (cpu.stat); v1 needs the cpuacct controller.
  if (req.cpuAccounting && version === 1) needs.set('cpuacct', 'limits.cpuTime');
  return needs;
}

/** Controllers used when present but not required: kill (v1 freezer) and accounting. */
function optionalControllers(version: 1 | 2): string[] {
  return version === 1 ? ['freezer', 'cpuacct', 'memory'] : ['memory'];
}

/** One write into a sandbox cgroup: which controller's directory, which file, what. */
export interface CgroupWrite {
  controller: string;
  file: string;
  data: string;
}

/** cgroup v1's limit of TCP socket buffers; written, it turns their accounting on. */
export const V1_TCP_LIMIT_FILE = 'memory.kmem.tcp.limit_in_bytes';

/** The CFS period used for `cpu`: 100 ms, the kernel's default. */
export const CPU_PERIOD_MICROS = 100_000;

/** The CFS quota for a share of one CPU, in microseconds per {@link CPU_PERIOD_MICROS}. */
export function cpuQuotaMicros(share: number): number {
  // The kernel refuses quotas under 1 ms.
  return Math.max(1000, Math.round(share * CPU_PERIOD_MICROS));
}

/**
 * The files a request writes into a fresh sandbox cgroup, in order. Pure: the same limits
 * give v2's memory.max/memory.swap.max/pids.max/cpu.max or v1's memory.limit_in_bytes/
 * memory.memsw.limit_in_bytes/pids.max/cpu.cfs_*; `swapFile` tells whether the kernel
 * accounts swap (the swap file exists), without which an implicit "no swap" is skipped.
 * `tcpFile`: v1's memory.kmem.tcp.limit_in_bytes exists; v1 counts socket buffers only once
 * it is written (v2 always counts them in memory.current), against that separate limit.
 */
export function limitWrites(version: 1 | 2, req: CgroupRequest, swapFile: boolean, tcpFile = false): CgroupWrite[] {
  const writes: CgroupWrite[] = [];
  const swap = req.memorySwap ?? (typeof req.memory === 'number' ? 0 : undefined);
  if (version === 2) {
    if (req.memory !== undefined) writes.push({ controller: 'memory', file: 'memory.max', data: String(req.memory) });
    if (swap !== undefined && (swapFile || req.memorySwap !== undefined)) {
      writes.push({ controller: 'memory', file: 'memory.swap.max', data: String(swap) });
    }
    if (req.pids !== undefined) writes.push({ controller: 'pids', file: 'pids.max', data: String(req.pids) });
    if (req.cpu !== undefined) {
      const quota = req.cpu === 'max' ? 'max' : String(cpuQuotaMicros(req.cpu));
      writes.push({ controller: 'cpu', file: 'cpu.max', data: `${quota} ${CPU_PERIOD_MICROS}` });
    }
    return writes;
  }
  // v1: memsw is memory + swap, and may not be set below memory.limit_in_bytes: memory first.
  if (req.memory !== undefined) {
    writes.push({ controller: 'memory', file: 'memory.limit_in_bytes', data: req.memory === 'max' ? '-1' : String(req.memory) });
    // Without this write, TCP buffers are charged to no cgroup: a sandbox could queue far
    // more than its limit in sockets it never reads. Writing it turns the accounting on.
    if (tcpFile) writes.push({ controller: 'memory', file: 'memory.kmem.tcp.limit_in_bytes', data: req.memory === 'max' ? '-1' : String(req.memory) });
  }
  if (swap !== undefined && (swapFile || req.memorySwap !== undefined)) {
    const total = swap === 'max' || req.memory === 'max' || req.memory === undefined ? '-1' : String(req.memory + swap);
    writes.push({ controller: 'memory', file: 'memory.memsw.limit_in_bytes', data: total });
  }
  if (req.pids !== undefined) writes.push({ controller: 'pids', file: 'pids.max', data: String(req.pids) });
  if (req.cpu !== undefined) {
    writes.push({ controller: 'cpu', file: 'cpu.cfs_period_us', data: String(CPU_PERIOD_MICROS) });
    writes.push({ controller: 'cpu', file: 'cpu.cfs_quota_us', data: req.cpu === 'max' ? '-1' : String(cpuQuotaMicros(req.cpu)) });
  }
  return writes;
}

/** What a sandbox's cgroup measured. Absent fields: that controller was not there. */
export interface CgroupAccounting {
  /** CPU time of every process that ran in the cgroup, microseconds. */
  cpuUsageMicros?: number;
  cpuUserMicros?: number;
  cpuSystemMicros?: number;
  /**
   * The memory high-water mark of the whole cgroup (v2 memory.peak, which includes socket
   * buffers; v1 memory.max_usage_in_bytes plus memory.kmem.tcp.max_usage_in_bytes, the two
   * peaks added: they may have come at different times).
   */
  memoryPeakBytes?: number;
  /** Processes the kernel OOM-killed in the cgroup (v2 memory.events, v1 memory.oom_control). */
  oomKills?: number;
  /** v1 memory.failcnt: how often the limit was hit (the OOM-kill signal on kernels before 4.13). */
  memoryFailcnt?: number;
  /** How often a fork failed on pids.max (pids.events `max`). */
  pidsLimitHits?: number;
}

/** `key value` lines (cpu.stat, memory.events, memory.oom_control, pids.events) -> numbers. Pure. */
export function parseKeyedFile(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?\d+$/.test(value)) values.set(key, Number(value));
  }
  return values;
}

function readNumber(file: string): number | undefined {
  const text = readTextIfExists(file)?.trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/**
 * Reads a sandbox cgroup's accounting from the directory of each controller (for v2 the same
 * directory for all). Missing files are skipped. Works on any directory tree laid out like
 * cgroupfs, which is how the v2 parsing is tested on a machine without v2 controllers.
 */
export function readAccounting(version: 1 | 2, dirs: Readonly<Record<string, string | undefined>>): CgroupAccounting {
  const acct: CgroupAccounting = {};
  if (version === 2) {
    const dir = dirs.cgroup;
    if (dir === undefined) return acct;
    const cpu = readTextIfExists(path.join(dir, 'cpu.stat'));
    if (cpu !== undefined) {
      const stat = parseKeyedFile(cpu);
      acct.cpuUsageMicros = stat.get('usage_usec');
      acct.cpuUserMicros = stat.get('user_usec');
      acct.cpuSystemMicros = stat.get('system_usec');
    }
    acct.memoryPeakBytes = readNumber(path.join(dir, 'memory.peak'));
    const events = readTextIfExists(path.join(dir, 'memory.events'));
    if (events !== undefined) acct.oomKills = parseKeyedFile(events).get('oom_kill');
    const pids = readTextIfExists(path.join(dir, 'pids.events'));
    if (pids !== undefined) acct.pidsLimitHits = parseKeyedFile(pids).get('max');
  } else {
    if (dirs.cpuacct !== undefined) {
      acct.cpuUsageMicros = nanosToMicros(readNumber(path.join(dirs.cpuacct, 'cpuacct.usage')));
      acct.cpuUserMicros = nanosToMicros(readNumber(path.join(dirs.cpuacct, 'cpuacct.usage_user')));
      acct.cpuSystemMicros = nanosToMicros(readNumber(path.join(dirs.cpuacct, 'cpuacct.usage_sys')));
    }
    if (dirs.memory !== undefined) {
      const peak = readNumber(path.join(dirs.memory, 'memory.max_usage_in_bytes'));
      const tcpPeak = readNumber(path.join(dirs.memory, 'memory.kmem.tcp.max_usage_in_bytes')) ?? 0;
      acct.memoryPeakBytes = peak === undefined ? undefined : peak + tcpPeak;
      const oom = readTextIfExists(path.join(dirs.memory, 'memory.oom_control'));
      if (oom !== undefined) acct.oomKills = parseKeyedFile(oom).get('oom_kill');
      acct.memoryFailcnt = readNumber(path.join(dirs.memory, 'memory.failcnt'));
    }
    if (dirs.pids !== undefined) {
      const pids = readTextIfExists(path.join(dirs.pids, 'pids.events'));
      if (pids !== undefined) acct.pidsLimitHits = parseKeyedFile(pids).get('max');
    }
  }
  for (const key of Object.keys(acct) as (keyof CgroupAccounting)[]) if (acct[key] === undefined) delete acct[key];
  return acct;
}

function nanosToMicros(ns: number | undefined): number | undefined {
  return ns === undefined ? undefined : Math.round(ns / 1000);
}

// ---------------------------------------------------------------------------------------
// Errors

const ERRNO = os.constants.errno;

function errnoOf(e: unknown): number {
  const code = (e as NodeJS.ErrnoException).code;
  return (code !== undefined ? (ERRNO as Record<string, number | undefined>)[code] : undefined) ?? ERRNO.EIO;
}

const DELEGATION_HINT =
  'creating cgroups needs write access to the parent: run as root, or in a cgroup delegated to this user ' +
  '(cgroup v2: e.g. `systemd-run --user --scope -p Delegate=yes`, then move this process into a child cgroup of the scope\'s, ' +
  'since cgroup v2 enables controllers only below a cgroup without processes of its own, and give the scope\'s cgroup as cgroupParent), ' +
  'or without the limits that need a cgroup (limits.memory, limits.pids, limits.cpu; limits.wallTime, limits.cpuTime and limits.rlimits work without one)';

function cgroupError(step: string, syscall: string, file: string, e: unknown, hint?: string): IsolationError {
  const errno = errnoOf(e);
  const why = hint ?? (errno === ERRNO.EACCES || errno === ERRNO.EPERM || errno === ERRNO.EROFS ? DELEGATION_HINT : undefined);
  return new IsolationError({ errno, step, syscall, path: file, hint: why });
}

function missingController(option: string, controller: string, where: string, offered: string[]): IsolationError {
  return new IsolationError({
    errno: ERRNO.ENOENT,
    step: 'cgroup-controller',
    syscall: 'open',
    path: where,
    hint: `options.${option} needs the ${controller} controller, which ${offered.length ? `is not among those offered here (${offered.join(', ')})` : 'is not available here (no controller is)'}`,
  });
}

// ---------------------------------------------------------------------------------------
// Files

function writeControl(file: string, data: string): void {
  // O_WRONLY without O_CREAT: a control file that does not exist is an error, never created.
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  try {
    fs.writeSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
}

function readProcs(dir: string): number[] {
  const text = readTextIfExists(path.join(dir, 'cgroup.procs'));
  if (text === undefined) return [];
  return text.split('\n').filter(Boolean).map(Number);
}

function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // ESRCH: it has just exited.
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const sleepBuffer = new Int32Array(new SharedArrayBuffer(4));
/** A synchronous sleep, for the process 'exit' hook only. */
function sleepSync(ms: number): void {
  Atomics.wait(sleepBuffer, 0, 0, ms);
}

// ---------------------------------------------------------------------------------------
// Names: nsjail-<pid namespace inode>-<pid>-<sequence>, so that leftovers of a process that
// died (SIGKILL gives no chance to clean up) can be told from live ones and removed later.
// The sequence is the addon's, one per process: worker threads each load their own copy of
// this module, and names must not collide between them. A `-k` suffix marks the cgroup of a
// sandbox with dieWithParent: false, which outlives its owner: never killed by a sweep, only
// removed once empty.

/** The default parent: a directory of this name under each hierarchy's root. */
export const DEFAULT_CGROUP_PARENT = 'nsjail-node';

let pidNamespaceId: string | undefined;
function pidNamespace(): string {
  if (pidNamespaceId === undefined) {
    const link = fs.readlinkSync('/proc/self/ns/pid');
    pidNamespaceId = /\[(\d+)\]/.exec(link)?.[1] ?? '0';
  }
  return pidNamespaceId;
}

const NAME_PATTERN = /^nsjail-(\d+)-(\d+)-\d+(-k)?$/;

/** The process exists and is not a zombie (a dead owner its parent has not reaped yet). */
function alive(pid: number): boolean {
  const stat = readTextIfExists(`/proc/${pid}/stat`);
  if (stat === undefined) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * Before each new sandbox cgroup: removes the cgroups of sandboxes whose Node process died
 * without cleaning up (SIGKILL), killing what is left in them. Only names from this PID
 * namespace are considered, and a live owner's are never touched. A readdir per spawn and
 * hierarchy; the kill and wait only when there is a leftover.
 */
function sweepStale(parentDir: string): void {
  // Those of this process's dead worker threads' dieWithParent: false sandboxes, once empty.
  binding.cgroupSweepOrphans();
  let entries: string[];
  try {
    entries = fs.readdirSync(parentDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const m = NAME_PATTERN.exec(entry);
    if (!m || m[1] !== pidNamespace() || Number(m[2]) === process.pid || alive(Number(m[2]))) continue;
    const dir = path.join(parentDir, entry);
    if (m[3] !== undefined) {
      tryRmdir(dir); // dieWithParent: false: what runs in it is left alone
      continue;
    }
    for (let i = 0; i < 100 && readProcs(dir).length > 0; i++) {
      killPids(readProcs(dir));
      sleepSync(5);
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      // Still busy or already gone: the next process will try again.
    }
  }
}

// ---------------------------------------------------------------------------------------
// The sandbox cgroup

/** The directory of a sandbox cgroup in one hierarchy. */
export interface CgroupDir {
  path: string;
  /** The controllers it carries that this sandbox uses (v1: its hierarchy's; v2: enabled ones). */
  controllers: string[];
}

const live = new Set<SandboxCgroup>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A Node process that exits normally (even with sandboxes still running, e.g. unref'd
  // ones) leaves no cgroup behind. SIGKILL leaves them to sweepStale.
  // Not those of dieWithParent: false sandboxes, which outlive the process.
  process.on('exit', () => {
    for (const cgroup of live) if (!cgroup.keep) cgroup.releaseSync();
    // And those a terminated worker's teardown had to leave (still busy then), if empty by now.
    binding.cgroupSweepOrphans();
  });
}

/** A sandbox's cgroup: created before clone, joined by the child, removed after exit. */
export class SandboxCgroup {
  #released = false;
  // The addon's record of it (src-native/teardown.h): removed by the addon if this thread's
  // environment goes away without releasing it (a terminated worker).
  readonly #tracked: number;

  private constructor(
    /** 1 or 2. */
    readonly version: 1 | 2,
    /** One directory per hierarchy (one for v2). */
    readonly dirs: readonly CgroupDir[],
    private readonly parentsToRemove: readonly string[],
    /** dieWithParent: false: left with its processes when the process or thread goes away. */
    readonly keep: boolean,
    tracked?: number,
  ) {
    // The record made before the mkdirs (trackEarly), now with the parents to remove after it.
    this.#tracked = binding.cgroupTrack(dirs.map((d) => d.path), [...parentsToRemove], keep, tracked);
  }

  /** @internal */
  static make(version: 1 | 2, dirs: CgroupDir[], parentsToRemove: string[], keep = false, tracked?: number): SandboxCgroup {
    const cgroup = new SandboxCgroup(version, dirs, parentsToRemove, keep, tracked);
    live.add(cgroup);
    installExitHook();
    return cgroup;
  }

  /** The `cgroup.procs` files the child writes "0" to, joining every hierarchy. */
  get procsFiles(): string[] {
    return this.dirs.map((d) => path.join(d.path, 'cgroup.procs'));
  }

  /** The directory carrying a controller (v2: the one directory). */
  dirOf(controller: string): string | undefined {
    if (this.version === 2) return this.dirs[0]?.path;
    return this.dirs.find((d) => d.controllers.includes(controller))?.path;
  }

  /** Total CPU time used in the cgroup so far, microseconds, or null without CPU accounting. */
  cpuUsageMicros(): number | null {
    if (this.version === 2) {
      const text = readTextIfExists(path.join(this.dirs[0].path, 'cpu.stat'));
      return text === undefined ? null : (parseKeyedFile(text).get('usage_usec') ?? null);
    }
    const dir = this.dirOf('cpuacct');
    if (dir === undefined) return null;
    return nanosToMicros(readNumber(path.join(dir, 'cpuacct.usage'))) ?? null;
  }

  /** True when no process is left in any of its directories. */
  empty(): boolean {
    return this.dirs.every((d) => readProcs(d.path).length === 0);
  }

  /**
   * One immediate pass at killing everything in the cgroup: v2 cgroup.kill (atomic, Linux
   * 5.14), else SIGKILL to each pid listed. {@link release} finishes the job.
   */
  killSync(): void {
    if (this.#released) return;
    if (this.version === 2) {
      try {
        writeControl(path.join(this.dirs[0].path, 'cgroup.kill'), '1');
        return;
      } catch {
        // Before 5.14: fall through to the pid list.
      }
    }
    for (const d of this.dirs) killPids(readProcs(d.path));
  }

  /**
   * Kills everything left, waiting until the cgroup is empty. v2: cgroup.kill. v1: freeze
   * (so that nothing forks between reading cgroup.procs and the kill), SIGKILL each pid,
   * thaw; repeated until empty. Without a freezer, the pid list is killed until it stays empty.
   */
  async killAll(): Promise<void> {
    const freezer = this.version === 1 ? this.dirOf('freezer') : undefined;
    for (let round = 0; round < 400 && !this.empty(); round++) {
      if (freezer !== undefined) {
        await this.freezeKillThaw(freezer);
      } else {
        this.killSync();
      }
      if (!this.empty()) await sleep(Math.min(1 + round, 20));
    }
  }

  private async freezeKillThaw(dir: string): Promise<void> {
    const state = path.join(dir, 'freezer.state');
    try {
      writeControl(state, 'FROZEN');
      // FREEZING until every task has stopped; a task in uninterruptible sleep may hold it
      // up, in which case killing what is listed now still makes progress.
      for (let i = 0; i < 50 && readTextIfExists(state)?.trim() !== 'FROZEN'; i++) await sleep(2);
      killPids(readProcs(dir));
    } finally {
      try {
        writeControl(state, 'THAWED');
      } catch {
        // Nothing more to do: the next round reads the state again.
      }
    }
  }

  /** Reads the accounting of everything that ran in the cgroup. */
  accounting(): CgroupAccounting {
    if (this.version === 2) return readAccounting(2, { cgroup: this.dirs[0].path });
    return readAccounting(1, { cpuacct: this.dirOf('cpuacct'), memory: this.dirOf('memory'), pids: this.dirOf('pids') });
  }

  /**
   * After the program has been reaped: kills whatever is left, reads the accounting, removes
   * the cgroup (and the default parent when it is empty). Never throws; a cgroup that cannot
   * be removed is left for the next process's sweep.
   */
  async release(): Promise<CgroupAccounting> {
    if (this.#released) return {};
    try {
      await this.killAll();
    } catch {
      // A control file that vanished or refused: kill what is listed, remove what we can.
      this.killSync();
    }
    const acct = this.accounting();
    // Killed processes leave the cgroup once they have exited and been reaped: on a busy
    // machine that can take a while (2 s here, without blocking the loop).
    for (let i = 0; i < 400; i++) {
      if (this.remove()) break;
      await sleep(5);
    }
    return acct;
  }

  /** {@link release} without waiting on the event loop: after a failed spawn and at process exit. */
  releaseSync(): CgroupAccounting {
    if (this.#released) return {};
    for (let i = 0; i < 200 && !this.empty(); i++) {
      this.killSync();
      if (!this.empty()) sleepSync(5);
    }
    const acct = this.accounting();
    for (let i = 0; i < 50 && !this.remove(); i++) sleepSync(5);
    return acct;
  }

  /** rmdir each directory; true once all are gone. */
  private remove(): boolean {
    let done = true;
    for (const d of this.dirs) {
      try {
        fs.rmdirSync(d.path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') done = false;
      }
    }
    if (!done) return false;
    this.#released = true;
    live.delete(this);
    binding.cgroupUntrack(this.#tracked);
    for (const parent of this.parentsToRemove) {
      try {
        fs.rmdirSync(parent);
      } catch {
        // Another sandbox (of this or another process) is still in it, or it is gone.
      }
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Creation

/** Which version a request uses: forced, or 'auto' as documented. Pure. */
export function chooseVersion(
  req: CgroupRequest,
  hierarchies: readonly CgroupHierarchy[],
  v2Offered: readonly string[] | null,
): 1 | 2 {
  if (req.version !== 'auto') return req.version;
  if (path.isAbsolute(req.parent)) return 2;
  const v1 = hierarchies.filter((h) => h.version === 1);
  const v1Has = (c: string): boolean => v1.some((h) => h.controllers.includes(c));
  const v2 = v2Offered !== null;
  if (v1.length === 0) return v2 ? 2 : 1;
  if ([...requiredControllers(req, 1).keys()].every(v1Has)) return 1;
  if (v2 && [...requiredControllers(req, 2).keys()].every((c) => v2Offered.includes(c))) return 2;
  return 1; // report what v1 lacks
}

/**
 * A control file's text, or undefined when it does not exist. Any other failure (out of
 * fds, EACCES) is an IsolationError naming `step` and the file: taking it for "missing"
 * would turn it into a wrong diagnosis (no controller, no cgroup v2 here).
 */
function readControlIfExists(file: string, step: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw cgroupError(step, 'open', file, e);
  }
}

function controllersOffered(dir: string): string[] | null {
  const text = readControlIfExists(path.join(dir, 'cgroup.controllers'), 'cgroup-controller');
  return text === undefined ? null : text.trim().split(/\s+/).filter(Boolean);
}

/** mkdir that reports whether it made the directory. */
function makeDir(dir: string, step: string): boolean {
  try {
    fs.mkdirSync(dir);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw cgroupError(step, 'mkdir', dir, e);
  }
}

/** mkdir -p of a relative parent under a hierarchy root; returns the dirs it made. */
function makeParents(root: string, relative: string, beforeEach?: (dir: string) => void): string[] {
  const made: string[] = [];
  let dir = root;
  for (const part of relative.split('/').filter(Boolean)) {
    beforeEach?.(dir);
    dir = path.join(dir, part);
    if (makeDir(dir, 'cgroup-parent')) made.push(dir);
  }
  return made;
}

/**
 * cgroup v2: `+controller` into each level's cgroup.subtree_control from the hierarchy root
 * down to the parent, for the controllers not yet enabled there. Pure: what to write where.
 */
export function subtreeControlWrites(levels: readonly { dir: string; enabled: readonly string[] }[], controllers: readonly string[]): { file: string; data: string }[] {
  const writes: { file: string; data: string }[] = [];
  for (const level of levels) {
    const missing = controllers.filter((c) => !level.enabled.includes(c));
    if (missing.length) writes.push({ file: path.join(level.dir, 'cgroup.subtree_control'), data: missing.map((c) => `+${c}`).join(' ') });
  }
  return writes;
}

/**
 * The hint of an EBUSY from cgroup.subtree_control: `dir` has processes of its own. When
 * this process is one of them (`ownDir`, its cgroup v2 directory), the way out is to move it
 * into a child cgroup (what doctor advises for a delegated cgroup). Pure.
 */
export function busyParentHint(dir: string, ownDir: string | undefined, pid: number): string {
  const rule = 'cgroup v2 enables controllers only for the children of a cgroup without processes of its own';
  if (ownDir !== undefined && path.resolve(ownDir) === path.resolve(dir)) {
    return `${rule}, and this process is in ${dir} itself: move it into a child cgroup first ` +
      `(mkdir ${path.join(dir, 'supervisor')}, then write ${pid} into ${path.join(dir, 'supervisor', 'cgroup.procs')}) and keep ${dir} as cgroupParent`;
  }
  return `${rule}: give cgroupParent a cgroup whose processes are elsewhere (or move them into a child cgroup of it through its cgroup.procs)`;
}

/** This process's cgroup v2 directory (from /proc/self/cgroup under the cgroup2 mount), if any. */
function ownV2Dir(): string | undefined {
  const rel = /^0::(\/.*)$/m.exec(readTextIfExists('/proc/self/cgroup') ?? '')?.[1];
  const mount = detectHierarchies().find((h) => h.version === 2);
  return rel === undefined || mount === undefined ? undefined : path.join(mount.mountPoint, rel);
}

function enableControllers(dir: string, controllers: readonly string[]): void {
  const enabled = readControlIfExists(path.join(dir, 'cgroup.subtree_control'), 'cgroup-enable')?.trim().split(/\s+/).filter(Boolean) ?? [];
  for (const w of subtreeControlWrites([{ dir, enabled }], controllers)) {
    try {
      writeControl(w.file, w.data);
    } catch (e) {
      const busy = (e as NodeJS.ErrnoException).code === 'EBUSY';
      throw cgroupError('cgroup-enable', 'write', w.file, e, busy ? busyParentHint(dir, ownV2Dir(), process.pid) : undefined);
    }
  }
}

/** A leaf name not in use: nsjail-<pidns>-<pid>-<n>, with `-k` for a sandbox that outlives its owner. */
function leafName(keep: boolean): string {
  return `nsjail-${pidNamespace()}-${process.pid}-${binding.nextSequence()}${keep ? '-k' : ''}`;
}

/**
 * Creates the cgroup of one sandbox and writes its limits; throws IsolationError (nothing
 * left behind) when a needed controller is missing or the parent is not writable.
 */
export function createSandboxCgroup(req: CgroupRequest, hierarchies: readonly CgroupHierarchy[] = detectHierarchies(), keep = false): SandboxCgroup {
  const v2Mount = hierarchies.find((h) => h.version === 2 && h.mountPoint === '/sys/fs/cgroup') ?? hierarchies.find((h) => h.version === 2);
  const absolute = path.isAbsolute(req.parent);
  const v2Base = absolute ? req.parent : v2Mount?.mountPoint;
  const v2Offered = v2Base === undefined ? null : controllersOffered(v2Base);
  const version = chooseVersion(req, hierarchies, v2Offered);
  if (version === 1 && absolute) {
    throw new IsolationError({
      errno: ERRNO.EINVAL, step: 'cgroup-parent', syscall: 'open', path: req.parent,
      hint: 'an absolute cgroupParent names a cgroup v2 directory; for cgroup v1 give a name relative to each controller\'s mount',
    });
  }
  return version === 2 ? createV2(req, v2Base, v2Offered, keep) : createV1(req, hierarchies, keep);
}

function createV1(req: CgroupRequest, hierarchies: readonly CgroupHierarchy[], keep: boolean): SandboxCgroup {
  const v1 = hierarchies.filter((h) => h.version === 1);
  const offered = [...new Set(v1.flatMap((h) => h.controllers))].sort();
  const needed = requiredControllers(req, 1);
  for (const [controller, option] of needed) {
    if (!offered.includes(controller)) throw missingController(option, controller, '/proc/self/mountinfo', offered);
  }
  const wanted = new Set([...needed.keys(), ...optionalControllers(1).filter((c) => offered.includes(c))]);
  const used = v1.filter((h) => h.controllers.some((c) => wanted.has(c)));
  const memoryHierarchy = used.find((h) => h.controllers.includes('memory'));
  const swapFile = memoryHierarchy !== undefined && fs.existsSync(path.join(memoryHierarchy.mountPoint, 'memory.memsw.limit_in_bytes'));
  if (req.memorySwap !== undefined && !swapFile) {
    throw missingController('limits.memorySwap', 'memory (with swap accounting: memory.memsw.*)', memoryHierarchy?.mountPoint ?? '/proc/self/mountinfo', offered);
  }
  const tcpFile = memoryHierarchy !== undefined && fs.existsSync(path.join(memoryHierarchy.mountPoint, V1_TCP_LIMIT_FILE));
  const writes = limitWrites(1, req, swapFile, tcpFile);
  const name = leafName(keep);
  const dirs: CgroupDir[] = [];
  const parents = new Set<string>();
  const tracked = trackEarly(used.map((h) => path.join(h.mountPoint, req.parent, name)), keep);
  try {
    for (const h of used) {
      const parentDir = path.join(h.mountPoint, req.parent);
      const leaf = path.join(parentDir, name);
      for (let attempt = 0; ; attempt++) {
        const made = makeParents(h.mountPoint, req.parent);
        for (const p of req.defaultParent ? [parentDir] : made.reverse()) parents.add(p);
        sweepStale(parentDir);
        try {
          fs.mkdirSync(leaf);
          break;
        } catch (e) {
          // ENOENT: another process removed the (empty) default parent just now.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw cgroupError('cgroup-mkdir', 'mkdir', leaf, e);
        }
      }
      dirs.push({ path: leaf, controllers: h.controllers.filter((c) => wanted.has(c)) });
    }
    for (const w of writes) {
      const file = path.join(dirs.find((d) => d.controllers.includes(w.controller))!.path, w.file);
      try {
        writeControl(file, w.data);
      } catch (e) {
        throw cgroupError('cgroup-limit', 'write', file, e);
      }
    }
  } catch (e) {
    // Nothing has joined yet: the new directories are empty and rmdir cannot fail on them.
    for (const d of dirs) tryRmdir(d.path);
    for (const p of parents) tryRmdir(p);
    binding.cgroupUntrack(tracked);
    throw e;
  }
  return SandboxCgroup.make(1, dirs, [...parents], keep, tracked);
}

/**
 * Tells the addon about a sandbox cgroup before its directories exist: a worker terminated
 * between the mkdir and the end of this function runs no catch block, and the addon removes
 * the directories then (those not made yet count as removed).
 */
function trackEarly(leaves: string[], keep: boolean): number {
  return binding.cgroupTrack(leaves, [], keep);
}

function tryRmdir(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not ours to insist on
  }
}

function createV2(req: CgroupRequest, base: string | undefined, offered: string[] | null, keep: boolean): SandboxCgroup {
  if (base === undefined || offered === null) {
    throw new IsolationError({
      errno: ERRNO.ENOENT, step: 'cgroup-controller', syscall: 'open', path: base ?? '/proc/self/mountinfo',
      hint: base === undefined ? 'no cgroup v2 hierarchy is mounted' : `${base} is not a cgroup v2 directory (no cgroup.controllers)`,
    });
  }
  const needed = requiredControllers(req, 2);
  for (const [controller, option] of needed) {
    if (!offered.includes(controller)) throw missingController(option, controller, path.join(base, 'cgroup.controllers'), offered);
  }
  const controllers = [...new Set([...needed.keys(), ...optionalControllers(2).filter((c) => offered.includes(c))])];
  const absolute = path.isAbsolute(req.parent);
  const parentDir = absolute ? req.parent : path.join(base, req.parent);
  const leaf = path.join(parentDir, leafName(keep));
  const parents: string[] = [];
  let made = false;
  const tracked = trackEarly([leaf], keep);
  try {
    for (let attempt = 0; ; attempt++) {
      if (absolute) {
        enableControllers(parentDir, controllers);
      } else {
        const created = makeParents(base, req.parent, (dir) => enableControllers(dir, controllers));
        enableControllers(parentDir, controllers);
        if (req.defaultParent) parents.splice(0, parents.length, parentDir);
        else if (created.length) parents.push(...created.reverse());
      }
      sweepStale(parentDir);
      try {
        fs.mkdirSync(leaf);
        made = true;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || absolute || attempt >= 5) throw cgroupError('cgroup-mkdir', 'mkdir', leaf, e);
      }
    }
    const swapFile = fs.existsSync(path.join(leaf, 'memory.swap.max'));
    if (req.memorySwap !== undefined && !swapFile) {
      throw missingController('limits.memorySwap', 'memory (with swap accounting: memory.swap.max)', leaf, offered);
    }
    for (const w of limitWrites(2, req, swapFile)) {
      const file = path.join(leaf, w.file);
      try {
        writeControl(file, w.data);
      } catch (e) {
        throw cgroupError('cgroup-limit', 'write', file, e);
      }
    }
  } catch (e) {
    if (made) tryRmdir(leaf);
    for (const p of new Set(parents)) tryRmdir(p);
    binding.cgroupUntrack(tracked);
    throw e;
  }
  return SandboxCgroup.make(2, [{ path: leaf, controllers }], [...new Set(parents)], keep, tracked);
}
