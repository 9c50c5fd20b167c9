/**
 * What a sandbox asks of its cgroup and what it measured, the same for cgroup v1 and v2: the
 * request lib/limits.ts builds, the controllers it needs, the control-file writes its limits
 * become (v2 memory.max, cpu.max... or v1 memory.limit_in_bytes, cpu.cfs_*...), and the
 * parsing of the accounting files after exit. Kept apart from the creation code because
 * these are the decisions, plain functions over numbers and text (the accounting reads work
 * on any directory laid out like cgroupfs), so that the v2 logic a machine without v2
 * controllers cannot run is still tested (test/cgroups.logic.test.ts).
 */
import * as path from 'node:path';
import { readTextIfExists } from './files';

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
export function optionalControllers(version: 1 | 2): string[] {
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

export function readNumber(file: string): number | undefined {
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

export function nanosToMicros(ns: number | undefined): number | undefined {
  return ns === undefined ? undefined : Math.round(ns / 1000);
}
