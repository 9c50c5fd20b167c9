/**
 * What the sandbox may use: resource limits (cgroups through lib/cgroups.ts, rlimits as child
 * steps executed by src-native/child_limits.cc), time limits, timeout/abort: the options,
 * their validation and their steps. Enforcing them on a running sandbox, and its accounting,
 * is lib/supervision.ts.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { binding } from './binding';
import { DEFAULT_CGROUP_PARENT, type CgroupRequest } from './cgroups';
import type { PlannedStep } from './steps';
import { step, writeFileStep } from './steps';
import { checkCString, checkObject, describe, fail, rejectUnknownKeys } from './validate';

/** A limit: a non-negative integer, or 'unlimited'. */
export type LimitValue = number | 'unlimited';

/** An rlimit with different soft and hard values (the program may raise soft up to hard). */
export interface RlimitRange {
  soft: LimitValue;
  hard: LimitValue;
}

/** The rlimits by their getrlimit(2) names without `RLIMIT_`, lower case. */
export type RlimitName =
  | 'as' | 'core' | 'cpu' | 'data' | 'fsize' | 'locks' | 'memlock' | 'msgqueue' | 'nice' | 'nofile' | 'nproc'
  | 'rss' | 'rtprio' | 'rttime' | 'sigpending' | 'stack';

/** RLIMIT_* numbers: the same on x86_64 and arm64 (asm-generic/resource.h). */
export const RLIMIT_RESOURCES: Readonly<Record<RlimitName, number>> = Object.freeze({
  cpu: 0, fsize: 1, data: 2, stack: 3, core: 4, rss: 5, nproc: 6, nofile: 7, memlock: 8, as: 9, locks: 10,
  sigpending: 11, msgqueue: 12, nice: 13, rtprio: 14, rttime: 15,
});

/** RLIM_INFINITY. */
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** `options.limits`: what the sandbox may use. Every field is optional. */
export interface Limits {
  /**
   * Memory in bytes, through the memory cgroup (v2 memory.max, v1 memory.limit_in_bytes).
   * Past it the kernel reclaims, then OOM-kills: the ExitStatus says `status: 'memory'`.
   * Socket buffers count too: v2 charges them to memory.current; on v1 TCP buffers are held
   * to a separate limit of the same size (memory.kmem.tcp.limit_in_bytes, where the kernel
   * has it), past which writes block and incoming data is dropped (docs/limits.md).
   * 'unlimited': no limit, but a memory cgroup all the same (for `memoryPeakBytes`).
   */
  memory?: LimitValue;
  /**
   * Swap in bytes the sandbox may use beyond `memory` (v2 memory.swap.max, v1
   * memory.memsw.limit_in_bytes = memory + memorySwap). Default 0 where the kernel accounts
   * swap, so that `memory` is the real limit. Needs `memory`.
   */
  memorySwap?: LimitValue;
  /** Processes and threads at once, through the pids cgroup (pids.max): stops fork bombs. */
  pids?: LimitValue;
  /** A share of CPU: 0.5 is half of one CPU, 2 is two CPUs (v2 cpu.max, v1 CFS quota per 100 ms). */
  cpu?: LimitValue;
  /**
   * CPU time in seconds (fractions allowed) of the whole sandbox: the parent polls the
   * cgroup's CPU accounting and kills the sandbox past it; RLIMIT_CPU (soft = ceil, hard =
   * soft + 1) backs it up per process. Ends with `status: 'timeout'`, `killedBy: 'cpuTime'`.
   */
  cpuTime?: number;
  /**
   * Wall-clock time in milliseconds, enforced by the parent: SIGKILL to the whole sandbox.
   * Like `timeout` it bounds the wait for the output too (see `forceKillAfter`).
   */
  wallTime?: number;
  /** setrlimit(2) limits applied by the child before exec; a number sets soft and hard. */
  rlimits?: Partial<Record<RlimitName, LimitValue | RlimitRange>>;
}

/** Limit options of spawnIsolated. */
export interface LimitOptions {
  /** Resource and time limits. */
  limits?: Limits;
  /**
   * Where the sandbox's cgroup is made: a path relative to the root of each cgroup hierarchy
   * (default {@link DEFAULT_CGROUP_PARENT}, created when missing and removed when empty), or
   * an absolute path to a cgroup v2 directory, e.g. one delegated to this user. Giving it
   * asks for a cgroup even without cgroup limits (for accounting and kill-all).
   */
  cgroupParent?: string;
  /**
   * Which cgroup version to use. 'auto' (default): v1 when v1 hierarchies carry every
   * controller the limits need, else v2. Giving it asks for a cgroup even without limits.
   */
  cgroupVersion?: 1 | 2 | 'auto';
  /**
   * Milliseconds after which `killSignal` is sent, as in child_process (0: none). It bounds
   * the whole wait: a timeout after the program's exit destroys the streams an escaped
   * process still holds (the handle then says `outputIncomplete: true`).
   */
  timeout?: number;
  /**
   * The signal for `timeout` and `signal` (abort). Default 'SIGKILL' (child_process uses
   * SIGTERM, which a PID 1 without a handler ignores). SIGKILL ends the whole sandbox; any
   * other signal goes to the program first, and `forceKillAfter` ms later SIGKILL ends the
   * whole sandbox if the program is still running.
   */
  killSignal?: NodeJS.Signals | number;
  /** Aborting it ends the sandbox as `timeout` does, as in child_process (reported as `killedBy: 'abort'`). */
  signal?: AbortSignal;
  /**
   * The grace in milliseconds (like execa's forceKillAfterDelay) after `timeout`, abort,
   * `limits.wallTime` or runIsolated's `maxBuffer` has ended the sandbox: a program still
   * running that long after a `killSignal` other than SIGKILL gets SIGKILL (the whole
   * sandbox); stdout and stderr still open that long after the program's exit (held by a
   * process that escaped the sandbox) are destroyed and the handle says
   * `outputIncomplete: true`. Default 2000; an integer from 0 to 2147483647.
   */
  forceKillAfter?: number;
}

/** The default of {@link LimitOptions.forceKillAfter}, milliseconds. */
export const DEFAULT_FORCE_KILL_AFTER = 2000;

/** The option names this file owns. */
export const LIMIT_OPTION_KEYS = ['limits', 'cgroupParent', 'cgroupVersion', 'timeout', 'killSignal', 'signal', 'forceKillAfter'] as const;

const LIMITS_KEYS = ['memory', 'memorySwap', 'pids', 'cpu', 'cpuTime', 'wallTime', 'rlimits'] as const;

/** One rlimit as the child sets it. */
export interface ValidatedRlimit {
  name: RlimitName;
  soft: bigint;
  hard: bigint;
}

/** Limit options after validation. */
export interface ValidatedLimits {
  /** The cgroup the sandbox needs, or null. */
  cgroup: CgroupRequest | null;
  rlimits: ValidatedRlimit[];
  cpuTimeMs: number | undefined;
  wallTimeMs: number | undefined;
  timeoutMs: number | undefined;
  killSignal: number;
  signal: AbortSignal | undefined;
  forceKillAfterMs: number;
  /** Set at spawn time (armSandbox, lib/supervision.ts): the cgroup.procs files the child joins. */
  cgroupProcs: readonly string[];
}

const SIGNALS = os.constants.signals as Record<string, number | undefined>;
const SIGKILL = os.constants.signals.SIGKILL;

/** An integer limit or 'unlimited' ('max' in cgroup terms). */
function checkInteger(option: string, value: unknown, min: number): number | 'max' {
  if (value === 'unlimited') return 'max';
  if (typeof value !== 'number') return fail(option, `must be a number or 'unlimited', got ${describe(value)}`);
  if (!Number.isSafeInteger(value) || value < min) fail(option, `must be an integer >= ${min} or 'unlimited', got ${value}`, 'range');
  return value;
}

/** A positive finite number (fractions allowed). */
function checkPositive(option: string, value: unknown): number {
  if (typeof value !== 'number') return fail(option, `must be a number, got ${describe(value)}`);
  if (!Number.isFinite(value) || value <= 0) fail(option, `must be a positive finite number, got ${value}`, 'range');
  return value;
}

/** setTimeout's limit: longer delays would fire at once. */
function checkTimer(option: string, ms: number): number {
  if (ms > 0x7fff_ffff) fail(option, `must be at most 2147483647 ms (about 24.8 days), got ${ms}`, 'range');
  return ms;
}

function rlimitValue(option: string, value: unknown): bigint {
  const v = checkInteger(option, value, 0);
  return v === 'max' ? RLIM_INFINITY : BigInt(v);
}

function checkRlimits(value: unknown): ValidatedRlimit[] {
  const o = checkObject('limits.rlimits', value);
  rejectUnknownKeys(o, Object.keys(RLIMIT_RESOURCES), 'options.limits.rlimits.');
  const out: ValidatedRlimit[] = [];
  for (const name of Object.keys(RLIMIT_RESOURCES) as RlimitName[]) {
    const v = o[name];
    if (v === undefined) continue;
    const option = `limits.rlimits.${name}`;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const range = v as Record<string, unknown>;
      rejectUnknownKeys(range, ['soft', 'hard'], `options.${option}.`);
      const soft = rlimitValue(`${option}.soft`, range.soft);
      const hard = rlimitValue(`${option}.hard`, range.hard);
      if (soft > hard) fail(option, `soft (${range.soft}) must not exceed hard (${range.hard})`, 'range');
      out.push({ name, soft, hard });
    } else {
      const both = rlimitValue(option, v);
      out.push({ name, soft: both, hard: both });
    }
  }
  return out;
}

/** A signal name or number -> number. */
function checkSignal(option: string, value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 64) fail(option, `must be a signal number (1..64), got ${value}`, 'range');
    return value;
  }
  const n = typeof value === 'string' ? SIGNALS[value] : undefined;
  if (n === undefined) fail(option, `must be a signal name such as 'SIGTERM' or a number, got ${describe(value)}`);
  return n;
}

function checkAbortSignal(value: unknown): AbortSignal {
  const s = value as AbortSignal | null;
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
    fail('signal', `must be an AbortSignal, got ${describe(value)}`);
  }
  return s;
}

function checkCgroupParent(value: unknown): string {
  const s = checkCString('cgroupParent', value);
  const parts = s.split('/').filter(Boolean);
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..')) {
    fail('cgroupParent', `must name a directory without '.' or '..' parts, got '${s}'`, 'range');
  }
  return path.isAbsolute(s) ? `/${parts.join('/')}` : parts.join('/');
}

/** Validates the limit options. */
export function validateLimits(options: LimitOptions): ValidatedLimits {
  const limits = options.limits === undefined ? {} : checkObject('limits', options.limits);
  rejectUnknownKeys(limits, LIMITS_KEYS, 'options.limits.');

  const memory = limits.memory === undefined ? undefined : checkInteger('limits.memory', limits.memory, 1);
  const memorySwap = limits.memorySwap === undefined ? undefined : checkInteger('limits.memorySwap', limits.memorySwap, 0);
  if (memorySwap !== undefined && typeof memory !== 'number') fail('limits.memorySwap', 'needs limits.memory as a number (swap is limited on top of memory)', 'range');
  const pids = limits.pids === undefined ? undefined : checkInteger('limits.pids', limits.pids, 1);
  let cpu: number | 'max' | undefined;
  if (limits.cpu !== undefined) {
    cpu = limits.cpu === 'unlimited' ? 'max' : checkPositive('limits.cpu', limits.cpu);
    if (cpu !== 'max' && cpu < 0.01) fail('limits.cpu', `must be at least 0.01 (the kernel's smallest CFS quota, 1 ms per 100 ms), got ${cpu}`, 'range');
  }
  const cpuTime = limits.cpuTime === undefined ? undefined : checkPositive('limits.cpuTime', limits.cpuTime);
  const wallTime = limits.wallTime === undefined ? undefined : checkTimer('limits.wallTime', checkPositive('limits.wallTime', limits.wallTime));
  const rlimits = limits.rlimits === undefined ? [] : checkRlimits(limits.rlimits);
  if (cpuTime !== undefined) {
    if (rlimits.some((r) => r.name === 'cpu')) fail('limits.rlimits.cpu', 'conflicts with limits.cpuTime, which sets RLIMIT_CPU itself', 'range');
    const soft = BigInt(Math.ceil(cpuTime));
    rlimits.push({ name: 'cpu', soft, hard: soft + 1n });
  }

  let timeoutMs: number | undefined;
  if (options.timeout !== undefined) {
    if (typeof options.timeout !== 'number') fail('timeout', `must be a number of milliseconds, got ${describe(options.timeout)}`);
    if (!Number.isFinite(options.timeout) || options.timeout < 0) fail('timeout', `must be a finite number >= 0, got ${options.timeout}`, 'range');
    timeoutMs = options.timeout > 0 ? checkTimer('timeout', options.timeout) : undefined;
  }
  const killSignal = options.killSignal === undefined ? SIGKILL : checkSignal('killSignal', options.killSignal);
  const signal = options.signal === undefined ? undefined : checkAbortSignal(options.signal);
  let forceKillAfterMs = DEFAULT_FORCE_KILL_AFTER;
  if (options.forceKillAfter !== undefined) {
    const v: unknown = options.forceKillAfter;
    if (typeof v !== 'number') fail('forceKillAfter', `must be a number of milliseconds, got ${describe(v)}`);
    if (!Number.isSafeInteger(v) || v < 0) fail('forceKillAfter', `must be an integer >= 0 (milliseconds), got ${v}`, 'range');
    forceKillAfterMs = checkTimer('forceKillAfter', v);
  }

  const parent = options.cgroupParent === undefined ? undefined : checkCgroupParent(options.cgroupParent);
  const version = options.cgroupVersion;
  if (version !== undefined && version !== 1 && version !== 2 && version !== 'auto') {
    fail('cgroupVersion', `must be 1, 2 or 'auto', got ${describe(version)}`, typeof version === 'number' ? 'range' : 'type');
  }
  const wantsCgroup = memory !== undefined || pids !== undefined || cpu !== undefined || cpuTime !== undefined ||
    parent !== undefined || version !== undefined;
  const cgroup: CgroupRequest | null = wantsCgroup
    ? {
      version: version ?? 'auto',
      parent: parent ?? DEFAULT_CGROUP_PARENT,
      defaultParent: parent === undefined,
      memory, memorySwap, pids, cpu,
      cpuAccounting: cpuTime !== undefined,
    }
    : null;

  return {
    cgroup,
    rlimits,
    cpuTimeMs: cpuTime === undefined ? undefined : cpuTime * 1000,
    wallTimeMs: wallTime,
    timeoutMs,
    killSignal,
    signal,
    forceKillAfterMs,
    cgroupProcs: [],
  };
}

/**
 * First of all, while the host's /sys/fs/cgroup is still in view and no other namespace has
 * been joined: the child moves itself into its cgroup (one write of "0" per hierarchy). With
 * `cgroup: true` the cgroup namespace is made only now, rooted at the sandbox's cgroup (see
 * {@link deferredCloneFlags}).
 */
export function cgroupJoinSteps(limits: ValidatedLimits, cgroupNamespace: boolean): PlannedStep[] {
  const steps = limits.cgroupProcs.map((file) => writeFileStep(file, '0', 'cgroup-join'));
  if (steps.length > 0 && cgroupNamespace) {
    steps.push(step({ op: 'unshare', flags: binding.constants.CLONE_NEWCGROUP }, 'cgroup-namespace', 'unshare'));
  }
  return steps;
}

/** Clone flags that {@link cgroupJoinSteps} applies later instead (CLONE_NEWCGROUP after the join). */
export function deferredCloneFlags(limits: ValidatedLimits, cgroupNamespace: boolean): number {
  return limits.cgroupProcs.length > 0 && cgroupNamespace ? binding.constants.CLONE_NEWCGROUP : 0;
}

/** Limits the child applies to itself before exec: prlimit(0, resource, {soft, hard}). */
export function limitSteps(limits: ValidatedLimits): PlannedStep[] {
  return limits.rlimits.map((r) =>
    step({ op: 'setrlimit', flags: RLIMIT_RESOURCES[r.name], values: [r.soft, r.hard] }, `rlimit-${r.name}`, 'prlimit'));
}
