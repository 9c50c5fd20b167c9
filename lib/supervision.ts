/**
 * A running sandbox's supervision and accounting: its limits' timers and the abort signal,
 * killing the whole sandbox (escalating to SIGKILL after forceKillAfter), how it ended, and
 * what it used (the ExitStatus accounting). The options themselves are lib/limits.ts.
 */
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { NativeChild, NativeExitStatus } from '../types/native';
import { createSandboxCgroup, type CgroupAccounting, type SandboxCgroup } from './cgroups';
import { validateLimits, type ValidatedLimits } from './limits';

const SIGKILL = os.constants.signals.SIGKILL;

/** Why the library ended a sandbox: kill(), the AbortSignal, `timeout`, a time limit, runIsolated's maxBuffer. */
export type KillReason = 'kill' | 'abort' | 'timeout' | 'wallTime' | 'cpuTime' | 'maxBuffer';

/**
 * How a sandbox ended, isolate-style:
 * - `ok`: exit code 0 (isolate OK);
 * - `exit`: a non-zero exit code (isolate RE);
 * - `signal`: killed by a signal (isolate SG), including kill() and abort; and always after
 *   runIsolated's maxBuffer (the output was cut, even when the program exited first);
 * - `timeout`: `timeout`, `limits.wallTime` or `limits.cpuTime` (isolate TO);
 * - `memory`: the kernel OOM-killed a process of the sandbox's memory cgroup and the program
 *   did not exit 0 (isolate reports SG with cg-oom-killed);
 * - `internal`: the exit could not be collected (isolate XX).
 */
export type ExitReason = 'ok' | 'exit' | 'signal' | 'timeout' | 'memory' | 'internal';

/** The accounting part of an ExitStatus. */
export interface ExitAccounting {
  /** How it ended; see {@link ExitReason}. */
  status: ExitReason;
  /** Why the library ended it, or null when it ended by itself. */
  killedBy: KillReason | null;
  /** From spawn to reap, milliseconds. */
  wallTimeMs: number;
  /** User + system CPU time: of the whole cgroup when there is one, else wait4's (the program and the children it reaped). */
  cpuTimeMs: number;
  /** User CPU time, milliseconds (cgroup, else wait4). */
  userCpuMs: number;
  /** System CPU time, milliseconds (cgroup, else wait4). */
  systemCpuMs: number;
  /**
   * The memory cgroup's high-water mark in bytes (v2 memory.peak; v1 memory.max_usage_in_bytes
   * plus the TCP buffers' memory.kmem.tcp.max_usage_in_bytes); null without one.
   */
  memoryPeakBytes: number | null;
  /**
   * wait4's ru_maxrss in KiB, or null when it cannot be told apart from this Node process's
   * own RSS: a child cloned with CLONE_VM inherits the parent's RSS high-water mark at exec.
   * Prefer `memoryPeakBytes`.
   */
  maxRssKiB: number | null;
  /** The kernel OOM-killed a process of the sandbox (memory cgroup). */
  oomKilled: boolean;
  /** A fork failed on the pids limit. */
  pidsLimitHit: boolean;
}

const TIME_LIMITS: readonly (KillReason | null)[] = ['timeout', 'wallTime', 'cpuTime'];

/** The isolate-style status from an exit and what the sandbox's supervision saw. Pure. */
export function exitReason(exitCode: number | null, signal: number | null, killedBy: KillReason | null, oomKilled: boolean, collected: boolean): ExitReason {
  if (!collected) return 'internal';
  if (TIME_LIMITS.includes(killedBy)) return 'timeout';
  // Also when the program exited before the kill reached it: the output was cut all the same.
  if (killedBy === 'maxBuffer') return 'signal';
  if (oomKilled && exitCode !== 0) return 'memory';
  if (signal !== null) return 'signal';
  return exitCode === 0 ? 'ok' : 'exit';
}

const SIGXCPU = os.constants.signals.SIGXCPU;

/**
 * Called when the library ends a sandbox (timeout, wallTime, abort, maxBuffer): `afterExit`
 * when the program had already exited (then only streams held by escaped processes are left).
 */
export type EndListener = (reason: KillReason, afterExit: boolean) => void;

/**
 * The parent's side of one sandbox beyond its pidfd: its cgroup, timers, abort listener,
 * how to kill all of it, and the accounting at the end. Created by {@link armSandbox}.
 *
 * Lifetime: {@link attach} at spawn; {@link finish} when the program has been reaped (stops
 * the CPU poll and the SIGKILL escalation, ends the cgroup); {@link close} when the handle
 * has closed (stops `timeout`, `wallTime` and the abort listener, which bound the wait for
 * the output too).
 */
export class SandboxControl {
  #native: NativeChild | null = null;
  #pid = 0;
  #started = 0;
  #killedBy: KillReason | null = null;
  #killedWith = 0;
  #timers: NodeJS.Timeout[] = [];
  #poll: NodeJS.Timeout | null = null;
  #escalation: NodeJS.Timeout | null = null;
  #onAbort: (() => void) | null = null;
  #finished = false;
  #releases: (() => void)[] = [];
  #closed = false;
  /** Set by the handle before {@link attach}. */
  onEnd: EndListener | null = null;

  /** @internal */
  constructor(
    private readonly limits: ValidatedLimits,
    /** The sandbox's cgroup, if it has one. */
    readonly cgroup: SandboxCgroup | null,
    private readonly pidNamespace: boolean,
    private readonly ownProcessGroup: boolean,
  ) {}

  /** A control without limits or cgroup, for a handle made without {@link armSandbox}. */
  static none(): SandboxControl {
    return new SandboxControl(validateLimits({}), null, false, false);
  }

  /** The grace before SIGKILL and before open streams are destroyed (forceKillAfter), ms. */
  get graceMs(): number {
    return this.limits.forceKillAfterMs;
  }

  /** Right after a successful spawn: starts the clocks. An abort meanwhile ends the sandbox now. */
  attach(native: NativeChild): void {
    this.#native = native;
    this.#pid = native.pid;
    this.#started = performance.now();
    const { wallTimeMs, timeoutMs, cpuTimeMs, signal, killSignal } = this.limits;
    if (wallTimeMs !== undefined) this.#timers.push(setTimeout(() => this.terminate('wallTime', SIGKILL), wallTimeMs));
    if (timeoutMs !== undefined) this.#timers.push(setTimeout(() => this.terminate('timeout', killSignal), timeoutMs));
    // Timers never keep the event loop alive: the sandbox's pidfd and streams do, while ref'd.
    for (const t of this.#timers) t.unref();
    if (cpuTimeMs !== undefined && this.cgroup !== null) {
      const limitMicros = cpuTimeMs * 1000;
      const poll = (): void => {
        if (this.#killedBy !== null) return;
        const used = this.cgroup?.cpuUsageMicros();
        if (used != null && used >= limitMicros) this.kill(SIGKILL, 'cpuTime');
      };
      // Often enough to stop close to the limit, rarely enough to cost nothing.
      this.#poll = setInterval(poll, Math.min(100, Math.max(10, cpuTimeMs / 20)));
      this.#poll.unref();
    }
    if (signal !== undefined) {
      this.#onAbort = () => this.terminate('abort', killSignal);
      // Aborted while spawnIsolatedAsync was under way: 'abort' has fired already.
      if (signal.aborted) this.#onAbort();
      else signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  /**
   * Ends the sandbox for a bounded wait: `sig` now, SIGKILL to the whole sandbox
   * forceKillAfter ms later if the program still runs; tells {@link onEnd}.
   */
  terminate(reason: KillReason, sig: number): void {
    if (this.#closed) return;
    if (this.#finished) {
      this.onEnd?.(reason, true);
      return;
    }
    const err = this.kill(sig, reason);
    if (err === 0 && sig !== SIGKILL && this.#escalation === null) {
      this.#escalation = setTimeout(() => this.kill(SIGKILL, reason), this.limits.forceKillAfterMs);
      this.#escalation.unref();
    }
    this.onEnd?.(reason, false);
  }

  /** Why the library ended the sandbox so far, or null. */
  get killedBy(): KillReason | null {
    return this.#killedBy;
  }

  /**
   * Sends `sig` to the program; SIGKILL ends the whole sandbox: its PID namespace (killing
   * PID 1 kills it), its cgroup, and without either its process group. Returns 0 or an errno
   * (ESRCH once reaped).
   */
  kill(sig: number, reason: KillReason): number {
    if (this.#native === null || this.#finished) return os.constants.errno.ESRCH;
    const err = this.#native.kill(sig);
    if (err !== 0 || sig === 0) return err;
    if (this.#killedBy === null) {
      this.#killedBy = reason;
      this.#killedWith = sig;
    }
    if (sig === SIGKILL) {
      this.cgroup?.killSync();
      if (!this.pidNamespace && this.ownProcessGroup) this.#killGroup();
    }
    return 0;
  }

  /** Runs `release` once the sandbox has been reaped, or its spawn abandoned (e.g. its host id: lib/hostids.ts). */
  onRelease(release: () => void): void {
    this.#releases.push(release);
  }

  #runReleases(): void {
    for (const release of this.#releases.splice(0)) release();
  }

  /**
   * SIGKILL to the program's process group. While the program is unreaped, or any member of
   * the group lives, its pid is still the group's id (setsid made it a session leader, which
   * cannot change group) and cannot be reused: its pipeline and helpers go too.
   */
  #killGroup(): void {
    try {
      process.kill(-this.#pid, 'SIGKILL');
    } catch {
      // ESRCH: nothing else in the group.
    }
  }

  /** After the handle has closed (or could not be made): stops every timer and the abort listener. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    if (this.#onAbort !== null) this.limits.signal?.removeEventListener('abort', this.#onAbort);
    this.#onAbort = null;
  }

  /** A spawn that failed before exec: nothing ran; remove the cgroup. */
  abandon(): void {
    this.#finished = true;
    this.close();
    this.cgroup?.releaseSync();
    this.#runReleases();
  }

  /** After the program has been reaped: stops supervision, ends the cgroup, computes the accounting. */
  async finish(raw: NativeExitStatus | null): Promise<ExitAccounting> {
    const wallTimeMs = performance.now() - this.#started;
    // A program ended by a killSignal other than SIGKILL may leave its process group behind
    // (no PID namespace, no cgroup): the group goes now, as SIGKILL would have taken it.
    if (this.#killedBy !== null && this.#killedBy !== 'kill' && this.#killedWith !== SIGKILL && !this.pidNamespace && this.ownProcessGroup && this.cgroup === null) {
      this.#killGroup();
    }
    this.#finished = true;
    if (this.#poll !== null) clearInterval(this.#poll);
    if (this.#escalation !== null) clearTimeout(this.#escalation);
    let acct: CgroupAccounting;
    try {
      acct = this.cgroup === null ? {} : await this.cgroup.release();
    } finally {
      // After the cgroup (and every process left in it) is gone: a host id is reused only then.
      this.#runReleases();
    }

    const ru = raw?.rusage;
    const userMicros = acct.cpuUserMicros ?? ru?.userMicros ?? 0;
    const systemMicros = acct.cpuSystemMicros ?? ru?.systemMicros ?? 0;
    const cpuMicros = acct.cpuUsageMicros ?? userMicros + systemMicros;
    const signal = raw?.signal ?? null;
    const exitCode = raw?.exitCode ?? null;
    // kill(sig) with a signal the program handled and survived did not end it.
    if (this.#killedBy === 'kill' && this.#killedWith !== SIGKILL && signal !== this.#killedWith) this.#killedBy = null;
    const cpuTimeMs = this.limits.cpuTimeMs;
    // RLIMIT_CPU ends a program with SIGXCPU (soft) or SIGKILL (hard) before our poll may see it.
    if (this.#killedBy === null && cpuTimeMs !== undefined && signal !== null &&
        (signal === SIGXCPU || (signal === SIGKILL && cpuMicros >= cpuTimeMs * 1000 * 0.99))) {
      this.#killedBy = 'cpuTime';
    }
    const oomKilled = acct.oomKills !== undefined
      ? acct.oomKills > 0
      : (acct.memoryFailcnt ?? 0) > 0 && signal === SIGKILL && this.#killedBy === null;
    return {
      status: exitReason(exitCode, signal, this.#killedBy, oomKilled, raw !== null),
      killedBy: this.#killedBy,
      wallTimeMs,
      cpuTimeMs: cpuMicros / 1000,
      userCpuMs: userMicros / 1000,
      systemCpuMs: systemMicros / 1000,
      memoryPeakBytes: acct.memoryPeakBytes ?? null,
      // The addon leaves out a value not above this process's own at clone (inherited at exec).
      maxRssKiB: ru?.maxRssKiB ?? null,
      oomKilled,
      pidsLimitHit: (acct.pidsLimitHits ?? 0) > 0,
    };
  }
}

/** An AbortError, as child_process throws for an already aborted signal. */
function abortError(signal: AbortSignal): Error {
  const e = new Error('spawnIsolated: the operation was aborted (options.signal)', { cause: signal.reason }) as Error & { code: string };
  e.name = 'AbortError';
  e.code = 'ABORT_ERR';
  return e;
}

/**
 * Before clone (every spawn calls it after validation, a prepared sandbox's too): refuses an aborted signal, creates
 * the cgroup and writes its limits (IsolationError when a controller is missing), and returns
 * the options with the cgroup's join files, plus the control for the handle. On a failed
 * spawn call `control.abandon()`.
 */
export function armSandbox<T extends { limits: ValidatedLimits; namespaces: { pid: boolean }; newSession: boolean; dieWithParent?: boolean }>(
  options: T,
): { options: T; control: SandboxControl } {
  const limits = options.limits;
  if (limits.signal?.aborted) throw abortError(limits.signal);
  // A sandbox that outlives its spawner keeps its cgroup (and what runs in it) at exit.
  const cgroup = limits.cgroup === null ? null : createSandboxCgroup(limits.cgroup, undefined, options.dieWithParent === false);
  const control = new SandboxControl(limits, cgroup, options.namespaces.pid, options.newSession);
  if (cgroup === null) return { options, control };
  return { options: { ...options, limits: { ...limits, cgroupProcs: cgroup.procsFiles } }, control };
}
