/**
 * The cgroupfs primitives every other cgroup file builds on: writing a control file (never
 * creating one), reading one where "missing" is an answer but any other failure is not,
 * mkdir -p / rmdir of cgroup directories, listing and SIGKILLing a cgroup's processes,
 * sleeps for the kill loops, and the IsolationErrors all of them raise (with the delegation
 * hint for EACCES/EPERM/EROFS). One place so that v1 creation, v2 creation and the live
 * handle report failures the same way, and so that the files depending on it import from
 * here rather than from each other.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IsolationError } from './errors';
import { readTextIfExists } from './files';

// ---------------------------------------------------------------------------------------
// Errors

export const ERRNO = os.constants.errno;

function errnoOf(e: unknown): number {
  const code = (e as NodeJS.ErrnoException).code;
  return (code !== undefined ? (ERRNO as Record<string, number | undefined>)[code] : undefined) ?? ERRNO.EIO;
}

const DELEGATION_HINT =
  'creating cgroups needs write access to the parent: run as root, or in a cgroup delegated to this user ' +
  '(cgroup v2: e.g. `systemd-run --user --scope -p Delegate=yes`, then move this process into a child cgroup of the scope\'s, ' +
  'since cgroup v2 enables controllers only below a cgroup without processes of its own, and give the scope\'s cgroup as cgroupParent), ' +
  'or without the limits that need a cgroup (limits.memory, limits.pids, limits.cpu; limits.wallTime, limits.cpuTime and limits.rlimits work without one)';

export function cgroupError(step: string, syscall: string, file: string, e: unknown, hint?: string): IsolationError {
  const errno = errnoOf(e);
  const why = hint ?? (errno === ERRNO.EACCES || errno === ERRNO.EPERM || errno === ERRNO.EROFS ? DELEGATION_HINT : undefined);
  return new IsolationError({ errno, step, syscall, path: file, hint: why });
}

export function missingController(option: string, controller: string, where: string, offered: string[]): IsolationError {
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

export function writeControl(file: string, data: string): void {
  // O_WRONLY without O_CREAT: a control file that does not exist is an error, never created.
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  try {
    fs.writeSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
}

export function readProcs(dir: string): number[] {
  const text = readTextIfExists(path.join(dir, 'cgroup.procs'));
  if (text === undefined) return [];
  return text.split('\n').filter(Boolean).map(Number);
}

export function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // ESRCH: it has just exited.
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const sleepBuffer = new Int32Array(new SharedArrayBuffer(4));
/** A synchronous sleep, where waiting on the event loop is not possible: releaseSync (a failed spawn, the process 'exit' hook) and the sweep of stale cgroups during a synchronous creation. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepBuffer, 0, 0, ms);
}

/**
 * A control file's text, or undefined when it does not exist. Any other failure (out of
 * fds, EACCES) is an IsolationError naming `step` and the file: taking it for "missing"
 * would turn it into a wrong diagnosis (no controller, no cgroup v2 here).
 */
export function readControlIfExists(file: string, step: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw cgroupError(step, 'open', file, e);
  }
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
export function makeParents(root: string, relative: string, beforeEach?: (dir: string) => void): string[] {
  const made: string[] = [];
  let dir = root;
  for (const part of relative.split('/').filter(Boolean)) {
    beforeEach?.(dir);
    dir = path.join(dir, part);
    if (makeDir(dir, 'cgroup-parent')) made.push(dir);
  }
  return made;
}

export function tryRmdir(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not ours to insist on
  }
}
