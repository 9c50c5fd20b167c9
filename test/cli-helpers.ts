/** Runs the real `nsjail-node` command (bin/nsjail-node over dist/) as a child process. */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The command under test. Needs a build of dist/ (`npm run build:dev`; `npm install` runs it). */
export const BIN = path.join(__dirname, '..', 'bin', 'nsjail-node');
/** The bwrap-exact command (bubblewrap 0.11.1's command line). */
export const BWRAP_BIN = path.join(__dirname, '..', 'bin', 'nsjail-node-bwrap');

// The command runs the compiled dist/, not lib/: a stale build would test old code.
for (const name of ['cli', 'cli-flags', 'cli-flags-mounts', 'cli-flags-process', 'cli-bwrap', 'cli-bwrap-options', 'doctor']) {
  const source = path.join(__dirname, '..', 'lib', `${name}.ts`);
  const built = path.join(__dirname, '..', 'dist', `${name}.js`);
  if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(source).mtimeMs) {
    throw new Error(`${built} is missing or older than ${source}: run \`npm run build:dev\` first`);
  }
}

/** How one run of the command ended, with everything it wrote. */
export interface CliResult {
  /** nsjail-node's own exit code (null if a signal ended it). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** What it wrote to its fd 3 (for --json-status-fd 3). */
  fd3: string;
}

/** Options of {@link cli}. */
export interface CliRunOptions {
  /** The command's environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** Written to its stdin, which is then closed. */
  input?: string;
  /** File descriptors of this process given to it as its fds 4, 5, ... */
  fds?: readonly number[];
  /** Called with the running process (e.g. to signal it). */
  onSpawn?: (child: child_process.ChildProcess) => void;
  /** The command to run: BIN (default) or BWRAP_BIN. */
  bin?: string;
  /** Its working directory; default this process's. */
  cwd?: string;
}

/** Runs `nsjail-node ...args` with stdin, stdout, stderr and fd 3 piped; resolves when it is done. */
export function cli(args: readonly string[], options: CliRunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = child_process.spawn(process.execPath, [options.bin ?? BIN, ...args], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe', ...(options.fds ?? [])],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    const out: Record<'stdout' | 'stderr' | 'fd3', Buffer[]> = { stdout: [], stderr: [], fd3: [] };
    child.stdout!.on('data', (c: Buffer) => out.stdout.push(c));
    child.stderr!.on('data', (c: Buffer) => out.stderr.push(c));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => out.fd3.push(c));
    child.stdin!.on('error', () => {}); // the program may exit without reading
    child.stdin!.end(options.input ?? '');
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const text = (k: keyof typeof out): string => Buffer.concat(out[k]).toString();
      resolve({ code, signal, stdout: text('stdout'), stderr: text('stderr'), fd3: text('fd3') });
    });
    options.onSpawn?.(child);
  });
}

/** `nsjail-node-bwrap ...args` (see {@link cli}). */
export function bwrap(args: readonly string[], options: CliRunOptions = {}): Promise<CliResult> {
  return cli(args, { ...options, bin: BWRAP_BIN });
}

/** `nsjail-node-bwrap --bind / / [...flags] /bin/sh -c script`: bwrap over the host's own root. */
export function bwrapSh(flags: readonly string[], script: string, options: CliRunOptions = {}): Promise<CliResult> {
  return bwrap(['--bind', '/', '/', ...flags, '/bin/sh', '-c', script], options);
}

/** `nsjail-node [...flags] /bin/sh -c script`. */
export function cliSh(flags: readonly string[], script: string, options: CliRunOptions = {}): Promise<CliResult> {
  return cli([...flags, '/bin/sh', '-c', script], options);
}
