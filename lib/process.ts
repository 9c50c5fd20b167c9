/** The handle of a running sandbox: its pid, its streams, its exit. */
import * as net from 'node:net';
import * as os from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { NativeChild, NativeExitStatus } from '../types/native';
import { IsolationError } from './errors';
import { SandboxControl, type ExitAccounting } from './limits';

/** How a sandboxed program ended, and what it used (accounting: lib/limits.ts). */
export interface ExitStatus extends ExitAccounting {
  /** The program's PID on the host (it may be 1 inside its PID namespace). */
  pid: number;
  /** Its exit code (0..255), or null when a signal ended it. */
  exitCode: number | null;
  /** The signal that ended it, or null when it exited. */
  signal: NodeJS.Signals | null;
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

// Live sandboxes by host pid: what waitpid() may wait for.
const live = new Map<number, IsolatedProcess>();

/** The handle of a sandbox started by {@link spawnIsolated}, if it has not been reaped yet. */
export function liveProcess(pid: number): IsolatedProcess | undefined {
  return live.get(pid);
}

/**
 * A running sandboxed program. Awaiting it waits for its exit:
 * `const { exitCode } = await spawnIsolated({...})`.
 *
 * Like child_process, it keeps the event loop alive until the program exits (see
 * {@link IsolatedProcess.unref}), and the exit is reported whether or not the handle is kept.
 */
export class IsolatedProcess implements PromiseLike<ExitStatus> {
  /** The program's PID on the host. */
  readonly pid: number;
  /** The program's stdin, when `stdio[0]` is 'pipe'. */
  readonly stdin: Writable | null;
  /** The program's stdout, when `stdio[1]` is 'pipe'. */
  readonly stdout: Readable | null;
  /** The program's stderr, when `stdio[2]` is 'pipe'. */
  readonly stderr: Readable | null;
  /** Resolves when the program has exited and been reaped. Never rejects. */
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | null = null;

  /** @internal Created by spawnIsolated only. */
  constructor(
    private readonly native: NativeChild,
    stdioFds: readonly [number, number, number],
    exited: Promise<NativeExitStatus | null>,
    private readonly control: SandboxControl = SandboxControl.none(),
  ) {
    this.pid = native.pid;
    control.attach(native);
    this.stdin = stdioFds[0] >= 0 ? new net.Socket({ fd: stdioFds[0], readable: false, writable: true }) : null;
    this.stdout = stdioFds[1] >= 0 ? new net.Socket({ fd: stdioFds[1], readable: true, writable: false }) : null;
    this.stderr = stdioFds[2] >= 0 ? new net.Socket({ fd: stdioFds[2], readable: true, writable: false }) : null;
    live.set(this.pid, this);
    this.exited = exited.then(async (raw) => {
      live.delete(this.pid);
      // Nobody reads it any more: close our end now, as child_process does, or it leaks an fd.
      this.stdin?.destroy();
      this.#status = {
        pid: this.pid,
        exitCode: raw?.exitCode ?? null,
        signal: raw?.signal != null ? (SIGNAL_NAMES.get(raw.signal) ?? null) : null,
        // After the cgroup (if any) is emptied and removed: see SandboxControl.finish.
        ...(await control.finish(raw)),
      };
      return this.#status;
    });
  }

  /** The exit status once the program has been reaped, else null. */
  get status(): ExitStatus | null {
    return this.#status;
  }

  /**
   * Sends a signal to the program (through its pidfd: never to a recycled pid).
   * Default SIGKILL: as PID 1 of a PID namespace a program ignores every signal it has no
   * handler for, SIGTERM included. SIGKILL ends the whole sandbox: its PID namespace, its
   * cgroup, else its process group (see docs/limits.md).
   * @returns true if the signal was sent, false if the program has already exited.
   */
  kill(signal: NodeJS.Signals | number = 'SIGKILL'): boolean {
    const err = this.control.kill(signalNumber(signal), 'kill');
    if (err === 0) return true;
    if (err === os.constants.errno.ESRCH) return false;
    throw new IsolationError({ errno: err, step: 'kill', syscall: 'pidfd_send_signal', path: String(this.pid) }, 'IsolatedProcess.kill');
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

  /** Makes the handle awaitable: the same as `exited.then(...)`. */
  then<T = ExitStatus, E = never>(
    onfulfilled?: ((value: ExitStatus) => T | PromiseLike<T>) | null,
    onrejected?: ((reason: unknown) => E | PromiseLike<E>) | null,
  ): Promise<T | E> {
    return this.exited.then(onfulfilled, onrejected);
  }
}
