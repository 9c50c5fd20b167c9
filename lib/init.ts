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
 * none), the number of exec candidates, the candidates, then the program's argv.
 */
export function initArgv(parent: number | undefined, seccomp: readonly Buffer[], candidates: readonly string[], argv: readonly string[]): string[] {
  const filters = seccomp.length > 0 ? seccomp.map((b) => b.toString('hex')).join(',') : '-';
  return ['nsjail-node-init', parent === undefined ? '-' : String(parent), filters, String(candidates.length), ...candidates, ...argv];
}

/**
 * The program's exit as init reported it on the status pipe (and closes the pipe). When init
 * itself was killed before it could report (SIGKILL to the sandbox), init's own status stands.
 */
export function initExitStatus(statusFd: number, raw: NativeExitStatus | null): NativeExitStatus | null {
  const buffer = Buffer.alloc(4);
  let n = 0;
  try {
    n = fs.readSync(statusFd, buffer, 0, 4, null);
  } catch {
    n = 0; // EAGAIN: nothing was written
  } finally {
    binding.closeFd(statusFd); // the addon's fd (src-native/teardown.h)
  }
  if (n !== 4) return raw;
  const status = os.endianness() === 'LE' ? buffer.readInt32LE(0) : buffer.readInt32BE(0); // an int in host byte order
  const termsig = status & 0x7f;
  const rusage = raw?.rusage ?? { userMicros: 0, systemMicros: 0, maxRssKiB: 0 };
  if (termsig === 0) return { exitCode: (status >> 8) & 0xff, signal: null, coreDumped: false, rusage };
  return { exitCode: null, signal: termsig, coreDumped: (status & 0x80) !== 0, rusage };
}
