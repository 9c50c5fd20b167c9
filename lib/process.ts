/** The handle of a running sandbox: child_process's events and fields, its streams, its exit. */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as os from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { NativeChild, NativeExitStatus } from '../types/native';
import { IsolationError } from './errors';
import { SandboxControl, type ExitAccounting, type KillReason } from './supervision';

/** How a sandboxed program ended, and what it used (accounting: lib/supervision.ts). */
export interface ExitStatus extends ExitAccounting {
  /** The program's PID on the host (it may be 1 inside its PID namespace); see {@link IsolatedProcess.pid}. */
  pid: number;
  /** Its exit code (0..255), or null when a signal ended it. */
  exitCode: number | null;
  /** The signal that ended it, or null when it exited. */
  signal: NodeJS.Signals | null;
}

/** What awaiting an {@link IsolatedProcess} gives: the ExitStatus once the output is delivered too. */
export interface CloseStatus extends ExitStatus {
  /**
   * true when stdout or stderr was destroyed by the library before its end: a process that
   * escaped the sandbox (e.g. setsid'd, without PID namespace and cgroup) still held it
   * `forceKillAfter` ms after the sandbox had been ended by `timeout`, `limits.wallTime`,
   * abort or maxBuffer, or when such a limit fired after the program's exit. What that
   * process would have written later is missing. false otherwise.
   */
  outputIncomplete: boolean;
}

/**
 * The events of an {@link IsolatedProcess}, with their arguments, as child_process's:
 * - `spawn`: the program runs (emitted on a setImmediate after the handle is made, so that
 *   a handle from spawnIsolatedAsync gets it too; always before `exit`);
 * - `exit` (code, signal): the program has been reaped (its streams may still hold data);
 * - `close` (code, signal): after `exit` and the end of stdout and stderr;
 * - `error`: kill() failed with an errno other than ESRCH.
 */
export interface IsolatedProcessEvents {
  spawn: [];
  exit: [code: number | null, signal: NodeJS.Signals | null];
  close: [code: number | null, signal: NodeJS.Signals | null];
  error: [err: Error];
}

// Number -> name; the first name wins, so 6 is SIGABRT (not its alias SIGIOT), as in child_process.
const SIGNAL_NAMES = new Map<number, NodeJS.Signals>();
for (const [name, n] of Object.entries(os.constants.signals)) {
  if (!SIGNAL_NAMES.has(n)) SIGNAL_NAMES.set(n, name as NodeJS.Signals);
}

/** Signal name or number -> number; throws TypeError for what is neither. */
export function signalNumber(signal: NodeJS.Signals | number, option = 'signal'): number {
  if (typeof signal === 'number') {
    if (!Number.isInteger(signal) || signal < 0 || signal > 64) throw new RangeError(`${option} must be a signal number (0..64), got ${signal}`);
    return signal;
  }
  const n = (os.constants.signals as Record<string, number | undefined>)[signal];
  if (n === undefined) throw new TypeError(`${option} must be a signal name such as 'SIGTERM', got '${String(signal)}'`);
  return n;
}

// Live sandboxes by host pid (the program's, and init's too): what waitpid() may wait for.
const live = new Map<number, IsolatedProcess>();

/** The handle of a sandbox started by {@link spawnIsolated}, if it has not been reaped yet. */
export function liveProcess(pid: number): IsolatedProcess | undefined {
  return live.get(pid);
}

/**
 * child_process resumes every stdout/stderr without a 'readable' listener at exit (paused
 * ones too), so that 'close' can follow; data no 'data' listener takes is dropped.
 */
function drainAtExit(stream: Readable): boolean {
  return stream.listenerCount('readable') === 0;
}

/**
 * A running sandboxed program, shaped like child_process's ChildProcess: the events `spawn`,
 * `exit`, `close` and `error` ({@link IsolatedProcessEvents}), `pid`, `exitCode`,
 * `signalCode`, `killed`, the streams, `kill()`, `ref()`/`unref()`.
 *
 * Awaiting it waits for `close`: the program has exited *and* stdout and stderr have ended,
 * so everything read from them has been delivered:
 * `const { exitCode } = await spawnIsolated({...})`. {@link exited} resolves at `exit`.
 *
 * Like child_process, it keeps the event loop alive until the program exits (see
 * {@link IsolatedProcess.unref}), and the exit is reported whether or not the handle is kept.
 * At exit stdout and stderr are resumed (paused ones too) unless they have a 'readable'
 * listener, as child_process does, so that `close` follows: read what you need before the
 * exit, or with 'data'/'readable' listeners.
 */
export class IsolatedProcess extends EventEmitter<IsolatedProcessEvents> implements PromiseLike<CloseStatus> {
  /**
   * The program's PID on the host. With `init: true` it is the program's, not init's (see
   * {@link initPid}); `kill()` signals init, which forwards the signal to the program.
   */
  readonly pid: number;
  /** With `init: true`: init's PID on the host (the sandbox's first process, PID 1 in a PID namespace); else null. */
  readonly initPid: number | null;
  /** The program's stdin, when `stdio[0]` is 'pipe'. */
  readonly stdin: Writable | null;
  /** The program's stdout, when `stdio[1]` is 'pipe'. */
  readonly stdout: Readable | null;
  /** The program's stderr, when `stdio[2]` is 'pipe'. */
  readonly stderr: Readable | null;
  /** Resolves when the program has exited and been reaped (`exit`), whatever its streams do. Never rejects. */
  readonly exited: Promise<ExitStatus>;
  /** Resolves at `close`: after the exit and the end of stdout and stderr. Never rejects. Awaiting the handle is the same. */
  readonly closed: Promise<CloseStatus>;
  /**
   * With the `info` option: the ids (inode numbers) of the sandbox's namespaces by their
   * /proc/PID/ns name (`mnt`, `net`, `pid`, `ipc`, `uts`, `cgroup`), read right after clone;
   * else null.
   */
  namespaceIds: Readonly<Record<string, number>> | null = null;
  /** The exit code once the program has exited by itself, else null (as ChildProcess.exitCode). */
  exitCode: number | null = null;
  /** The signal that ended the program, once it has, else null (as ChildProcess.signalCode). */
  signalCode: NodeJS.Signals | null = null;
  /**
   * true once a signal was delivered by kill(), `timeout`, `limits.wallTime`, abort or
   * maxBuffer (as ChildProcess.killed: not whether the program died of it).
   */
  killed = false;
  #status: ExitStatus | null = null;
  #closeStatus: CloseStatus | null = null;
  #resolveClosed!: (status: CloseStatus) => void;
  #openStreams = 0;
  #spawnEmitted = false;
  #exitEmitted = false;
  #ended = false;
  #outputIncomplete = false;
  #streamTimer: NodeJS.Timeout | null = null;

  /** @internal Created by spawnIsolated only. */
  constructor(
    private readonly native: NativeChild,
    stdioFds: readonly [number, number, number],
    exited: Promise<NativeExitStatus | null>,
    private readonly control: SandboxControl = SandboxControl.none(),
    /** With init: the program's host pid (null: not found, then `pid` is init's); undefined without init. */
    programPid?: number | null,
  ) {
    super();
    this.initPid = programPid === undefined ? null : native.pid;
    this.pid = programPid ?? native.pid;
    this.stdin = stdioFds[0] >= 0 ? new net.Socket({ fd: stdioFds[0], readable: false, writable: true }) : null;
    this.stdout = stdioFds[1] >= 0 ? new net.Socket({ fd: stdioFds[1], readable: true, writable: false }) : null;
    this.stderr = stdioFds[2] >= 0 ? new net.Socket({ fd: stdioFds[2], readable: true, writable: false }) : null;
    for (const stream of [this.stdout, this.stderr]) {
      if (stream === null) continue;
      this.#openStreams++;
      stream.once('close', () => {
        this.#openStreams--;
        this.#maybeClose();
      });
    }
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    live.set(this.pid, this);
    live.set(native.pid, this);
    control.onEnd = (reason, afterExit) => this.#onEnd(reason, afterExit);
    control.attach(native);
    // Later than child_process's next tick, so that a handle spawnIsolatedAsync delivered
    // through a promise gets its listeners first; never after 'exit' (see #emitExit).
    setImmediate(() => this.#emitSpawn());
    this.exited = exited.then(async (raw) => {
      live.delete(this.pid);
      live.delete(native.pid);
      // Nobody reads it any more: close our end now, as child_process does, or it leaks an fd.
      this.stdin?.destroy();
      const status: ExitStatus = {
        pid: this.pid,
        exitCode: raw?.exitCode ?? null,
        signal: raw?.signal != null ? (SIGNAL_NAMES.get(raw.signal) ?? null) : null,
        // After the cgroup (if any) is emptied and removed: see SandboxControl.finish.
        ...(await control.finish(raw)),
      };
      this.#status = status;
      this.exitCode = status.exitCode;
      this.signalCode = status.signal;
      // Listeners run off the promise chain: one that throws goes to uncaughtException, as
      // with child_process, instead of rejecting `exited`.
      process.nextTick(() => this.#emitExit(status));
      return status;
    });
  }

  #emitSpawn(): void {
    if (this.#spawnEmitted) return;
    this.#spawnEmitted = true;
    this.emit('spawn');
  }

  #emitExit(status: ExitStatus): void {
    this.#emitSpawn();
    this.#exitEmitted = true;
    for (const stream of [this.stdout, this.stderr]) {
      if (stream !== null && drainAtExit(stream)) stream.resume();
    }
    if (this.#ended) this.#armStreamDeadline();
    try {
      this.emit('exit', status.exitCode, status.signal);
    } finally {
      this.#maybeClose();
    }
  }

  /** The library ended the sandbox (timeout, wallTime, abort, maxBuffer): bound the wait for the streams. */
  #onEnd(_reason: KillReason, afterExit: boolean): void {
    this.#ended = true;
    // As child_process, whose timeout and abort go through kill().
    if (!afterExit && this.control.killedBy !== null) this.killed = true;
    if (afterExit) this.#destroyStreams(); // nothing is left in the sandbox to signal: only escaped holders
    else if (this.#exitEmitted) this.#armStreamDeadline();
  }

  #armStreamDeadline(): void {
    if (this.#streamTimer !== null || this.#openStreams === 0) return;
    // The open streams keep the loop alive meanwhile, so the timer need not.
    this.#streamTimer = setTimeout(() => this.#destroyStreams(), this.control.graceMs);
    this.#streamTimer.unref();
  }

  #destroyStreams(): void {
    for (const stream of [this.stdout, this.stderr]) {
      if (stream === null || stream.destroyed) continue;
      if (!stream.readableEnded) this.#outputIncomplete = true;
      stream.destroy();
    }
  }

  #maybeClose(): void {
    if (!this.#exitEmitted || this.#openStreams > 0 || this.#closeStatus !== null || this.#status === null) return;
    if (this.#streamTimer !== null) clearTimeout(this.#streamTimer);
    this.control.close();
    this.#closeStatus = { ...this.#status, outputIncomplete: this.#outputIncomplete };
    this.#resolveClosed(this.#closeStatus);
    this.emit('close', this.#status.exitCode, this.#status.signal);
  }

  /** The exit status once the program has been reaped, else null. */
  get status(): ExitStatus | null {
    return this.#status;
  }

  /** See {@link CloseStatus.outputIncomplete}: true once the library has destroyed a stream before its end. */
  get outputIncomplete(): boolean {
    return this.#outputIncomplete;
  }

  /**
   * Sends a signal to the program (through its pidfd: never to a recycled pid).
   * Default SIGKILL: as PID 1 of a PID namespace a program ignores every signal it has no
   * handler for, SIGTERM included. SIGKILL ends the whole sandbox: its PID namespace, its
   * cgroup, else its process group (see docs/limits.md).
   * @returns true if the signal was sent (and `killed` is then true), false if the program
   *   has already exited, or when sending failed otherwise: then an `error` event carries the
   *   IsolationError, as with child_process.
   * @throws TypeError/RangeError for what is not a signal name or number.
   */
  kill(signal: NodeJS.Signals | number = 'SIGKILL'): boolean {
    const err = this.control.kill(signalNumber(signal), 'kill');
    if (err === 0) {
      this.killed = true;
      return true;
    }
    if (err !== os.constants.errno.ESRCH) {
      this.emit('error', new IsolationError({ errno: err, step: 'kill', syscall: 'pidfd_send_signal', path: String(this.pid) }, 'IsolatedProcess.kill'));
    }
    return false;
  }

  /**
   * @internal Ends the whole sandbox for `reason` as a timeout would, with SIGKILL
   * (runIsolated's maxBuffer); after the program's exit, only streams are left to end.
   */
  terminate(reason: KillReason): void {
    this.control.terminate(reason, os.constants.signals.SIGKILL);
  }

  /** Lets the event loop exit while the program still runs. */
  unref(): this {
    this.native.unref();
    return this;
  }

  /** Undoes {@link IsolatedProcess.unref}. */
  ref(): this {
    this.native.ref();
    return this;
  }

  /** Makes the handle awaitable: the same as `closed.then(...)` (the exit, and all output delivered). */
  then<T = CloseStatus, E = never>(
    onfulfilled?: ((value: CloseStatus) => T | PromiseLike<T>) | null,
    onrejected?: ((reason: unknown) => E | PromiseLike<E>) | null,
  ): Promise<T | E> {
    return this.closed.then(onfulfilled, onrejected);
  }
}
