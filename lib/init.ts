/**
 * `init: true`: a tiny reaper as the sandbox's PID 1 (src-native/init.c, built next to the
 * addon as nsjail_node_init). The sandbox's first process runs every setup step, then
 * executes init from an fd opened here before clone (so init needs no path inside the new
 * root); init forks the program, forwards signals to it, reaps orphans, and ends with the
 * program's status, which it also writes to a pipe read here (PID 1 cannot re-raise most
 * signals on itself, so the pipe is what makes `signal` exact).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeExitStatus } from '../types/native';
import { IsolationError } from './errors';
import { binding } from './binding';

const INIT_NAME = 'nsjail_node_init';

/** Where the init helper may be: next to the addon node-gyp built, or in prebuilds/. */
function initCandidates(): string[] {
  const root = path.join(__dirname, '..');
  return [
    path.join(root, 'build', 'Release', INIT_NAME),
    path.join(root, 'build', 'Debug', INIT_NAME),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, INIT_NAME),
  ];
}

let cachedFd: number | undefined;

/**
 * An fd of the init helper, opened once (close-on-exec) and kept for every later spawn.
 * Throws an IsolationError (step `init-helper`): ENOENT naming the paths tried when it was
 * not built, or the errno of the open that failed otherwise (e.g. EMFILE: out of fds).
 */
export function initFd(): number {
  if (cachedFd !== undefined) return cachedFd;
  const candidates = initCandidates();
  for (const candidate of candidates) {
    try {
      cachedFd = fs.openSync(candidate, fs.constants.O_RDONLY);
      return cachedFd;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Only a missing file means "try the next place"; anything else is the answer.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        throw new IsolationError({ errno: errnoOf(e), step: 'init-helper', syscall: 'open', path: candidate });
      }
    }
  }
  throw new IsolationError({
    errno: os.constants.errno.ENOENT,
    step: 'init-helper',
    syscall: 'open',
    path: candidates[0],
    hint: `options.init needs the ${INIT_NAME} helper built with the addon; not found at ${candidates.join(', ')}`,
  });
}

/** The errno of a Node fs error (EIO when it has none). */
function errnoOf(e: unknown): number {
  const code = (e as NodeJS.ErrnoException).code;
  return (code !== undefined ? (os.constants.errno as Record<string, number | undefined>)[code] : undefined) ?? os.constants.errno.EIO;
}

/**
 * init's argv (src-native/init.c): its name, the parent it dies with ('-' for none, else the
 * pid its getppid() returns while the spawning process lives: 0 in a new PID namespace), the
 * program's seccomp filters as hex joined by ',' in the order they are installed ('-' for
 * none), the number of lock files and their paths (in the sandbox: init holds a read lock
 * on each), the number of exec candidates, the candidates, then the program's argv.
 */
export function initArgv(parent: number | undefined, seccomp: readonly Buffer[], candidates: readonly string[], argv: readonly string[], lockFiles: readonly string[] = []): string[] {
  const filters = seccomp.length > 0 ? seccomp.map((b) => b.toString('hex')).join(',') : '-';
  return [
    'nsjail-node-init', parent === undefined ? '-' : String(parent), filters,
    String(lockFiles.length), ...lockFiles, String(candidates.length), ...candidates, ...argv,
  ];
}

function readInt(fd: number): number | null {
  const buffer = Buffer.alloc(4);
  let n = 0;
  try {
    n = fs.readSync(fd, buffer, 0, 4, null);
  } catch {
    n = 0; // EAGAIN: nothing was written
  }
  if (n !== 4) return null;
  return os.endianness() === 'LE' ? buffer.readInt32LE(0) : buffer.readInt32BE(0); // an int in host byte order
}

/** The last number of the `NSpid:` line of /proc/PID/status (the pid in its own namespace), or null. */
function innermostPid(pid: string): number | null {
  try {
    const line = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    const ids = line?.[1].trim().split(/\s+/);
    return ids ? Number(ids[ids.length - 1]) : null;
  } catch {
    return null; // gone
  }
}

/**
 * The program's host pid, right after the spawn: init wrote the pid it got from fork() to the
 * status pipe before the spawn returned, and keeps the program's zombie until that pipe has
 * been emptied. So init's children (`/proc/PID/task/PID/children`) and their NSpid are read
 * first, then the pipe (which lets init reap the program), and the child whose innermost pid
 * is the one init saw is the program. null when it cannot be found.
 */
export function initProgramPid(statusFd: number, initPid: number): number | null {
  let children: { pid: number; inner: number | null }[] = [];
  try {
    children = fs.readFileSync(`/proc/${initPid}/task/${initPid}/children`, 'utf8').trim().split(/\s+/)
      .filter((c) => c !== '').map((c) => ({ pid: Number(c), inner: innermostPid(c) }));
  } catch {
    // a kernel without /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)
  }
  const inner = readInt(statusFd);
  if (inner === null || inner <= 0) return null;
  const found = children.find((c) => c.inner === inner);
  if (found !== undefined) return found.pid;
  // init in this process's PID namespace: the pid it saw is the host's.
  return innermostPid(String(initPid)) === initPid ? inner : null;
}

/**
 * The program's exit as init reported it on the status pipe (and closes the pipe). When init
 * itself was killed before it could report (SIGKILL to the sandbox), init's own status stands.
 */
export function initExitStatus(statusFd: number, raw: NativeExitStatus | null): NativeExitStatus | null {
  let status: number | null;
  try {
    status = readInt(statusFd);
  } finally {
    binding.closeFd(statusFd); // the addon's fd (src-native/teardown.h)
  }
  if (status === null) return raw;
  const termsig = status & 0x7f;
  const rusage = raw?.rusage ?? { userMicros: 0, systemMicros: 0, maxRssKiB: null };
  if (termsig === 0) return { exitCode: (status >> 8) & 0xff, signal: null, coreDumped: false, rusage };
  return { exitCode: null, signal: termsig, coreDumped: (status & 0x80) !== 0, rusage };
}
