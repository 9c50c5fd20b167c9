/** Errors raised by nsjail-node, shaped like Node's own SystemError. */
import * as os from 'node:os';
import { binding } from './binding';

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(os.constants.errno)) {
  if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);
}

/** The fields that locate a failure: which step, which system call, on what path. */
export interface IsolationErrorDetails {
  /** Negative errno, as in Node's SystemError (e.g. -2 for ENOENT). */
  errno: number;
  /** The step of the spawn that failed, e.g. `execve`, `pivot-root`, `clone`. */
  step: string;
  /** The system call that returned the error. */
  syscall: string;
  /** The path the step worked on, when it has one. */
  path?: string;
  /** Extra words for the message, e.g. why this errno is likely here. */
  hint?: string;
}

/** Describes an errno: its code (`ENOENT`) and text (`no such file or directory`). */
export function describeErrno(errno: number): { code: string; text: string } {
  const n = Math.abs(errno);
  return { code: binding.errnoName(n) ?? ERRNO_NAMES.get(n) ?? `E${n}`, text: binding.strerror(n).toLowerCase() };
}

// Hints for errnos that mean the same wherever they occur: this process ran out of something.
const OUT_OF_FDS = 'this process is out of file descriptors (RLIMIT_NOFILE, `ulimit -n`) or the system is (ENFILE)';
const DEFAULT_HINTS: Readonly<Record<string, string>> = { EMFILE: OUT_OF_FDS, ENFILE: OUT_OF_FDS };

/**
 * A sandbox could not be set up or its program could not be started: a system call failed,
 * in the parent (e.g. `clone`) or in the child before execve (e.g. `pivot-root`, `execve`).
 *
 * @example `spawnIsolated: execve /bin/nosuch: ENOENT (no such file or directory)`
 */
export class IsolationError extends Error {
  /** The errno's symbolic code, e.g. `ENOENT`. */
  readonly code: string;
  /** Negative errno, as in Node's SystemError. */
  readonly errno: number;
  /** The step of the spawn that failed. */
  readonly step: string;
  /** The system call that failed. */
  readonly syscall: string;
  /** The path involved, if any. */
  readonly path: string | undefined;

  constructor(details: IsolationErrorDetails, prefix = 'spawnIsolated') {
    const { code, text } = describeErrno(details.errno);
    const where = details.path !== undefined ? `${details.step} ${details.path}` : details.step;
    const call = details.syscall !== details.step ? ` [${details.syscall}]` : '';
    const hintText = [details.hint, DEFAULT_HINTS[code]].filter(Boolean).join('; ');
    const hint = hintText ? `: ${hintText}` : '';
    super(`${prefix}: ${where}: ${code} (${text})${call}${hint}`);
    this.name = 'IsolationError';
    this.code = code;
    this.errno = -Math.abs(details.errno);
    this.step = details.step;
    this.syscall = details.syscall;
    this.path = details.path;
  }
}
