/**
 * The `nsjail-node-bwrap` command: bubblewrap 0.11.1's command line, defaults, messages,
 * exit statuses and --info-fd/--json-status-fd output, over the library (no second engine:
 * every sandbox is a spawnIsolated call). The flag tables are the `nsjail-node` command's
 * (lib/cli.ts scans them in 'bwrap' mode); lib/cli-bwrap-options.ts applies bubblewrap's
 * defaults. bin/nsjail-node-bwrap runs it; installed as `bwrap` on PATH it is a drop-in.
 */
import * as fs from 'node:fs';
import { binding } from './binding';
import { finishBwrap } from './cli-bwrap-options';
import { UsageError } from './cli-flags';
import { exitStatusCode, scanFlags } from './cli';
import { IsolationError } from './errors';
import type { SpawnOptions } from './options';
import type { IsolatedProcess } from './process';
import { spawnIsolated } from './spawn';

// The parent this command started under, for --die-with-parent's check that it still lives.
const STARTING_PARENT = process.ppid;

/** The bubblewrap release whose command line this entry point follows. */
export const BWRAP_VERSION = '0.11.1';

/** bubblewrap's usage text, with `program` (its argv[0], as bubblewrap prints it) in the first line. */
export function bwrapUsage(program: string): string {
  return `usage: ${program} [OPTIONS...] [--] COMMAND [ARGS...]

    --help                       Print this help
    --version                    Print version
    --args FD                    Parse NUL-separated args from FD
    --argv0 VALUE                Set argv[0] to the value VALUE before running the program
    --level-prefix               Prepend e.g. <3> to diagnostic messages
    --unshare-all                Unshare every namespace we support by default
    --share-net                  Retain the network namespace (can only combine with --unshare-all)
    --unshare-user               Create new user namespace (may be automatically implied if not setuid)
    --unshare-user-try           Create new user namespace if possible else continue by skipping it
    --unshare-ipc                Create new ipc namespace
    --unshare-pid                Create new pid namespace
    --unshare-net                Create new network namespace
    --unshare-uts                Create new uts namespace
    --unshare-cgroup             Create new cgroup namespace
    --unshare-cgroup-try         Create new cgroup namespace if possible else continue by skipping it
    --userns FD                  Use this user namespace (cannot combine with --unshare-user)
    --userns2 FD                 After setup switch to this user namespace, only useful with --userns
    --disable-userns             Disable further use of user namespaces inside sandbox
    --assert-userns-disabled     Fail unless further use of user namespace inside sandbox is disabled
    --pidns FD                   Use this pid namespace (as parent namespace if using --unshare-pid)
    --uid UID                    Custom uid in the sandbox (requires --unshare-user or --userns)
    --gid GID                    Custom gid in the sandbox (requires --unshare-user or --userns)
    --hostname NAME              Custom hostname in the sandbox (requires --unshare-uts)
    --chdir DIR                  Change directory to DIR
    --clearenv                   Unset all environment variables
    --setenv VAR VALUE           Set an environment variable
    --unsetenv VAR               Unset an environment variable
    --lock-file DEST             Take a lock on DEST while sandbox is running
    --sync-fd FD                 Keep this fd open while sandbox is running
    --bind SRC DEST              Bind mount the host path SRC on DEST
    --bind-try SRC DEST          Equal to --bind but ignores non-existent SRC
    --dev-bind SRC DEST          Bind mount the host path SRC on DEST, allowing device access
    --dev-bind-try SRC DEST      Equal to --dev-bind but ignores non-existent SRC
    --ro-bind SRC DEST           Bind mount the host path SRC readonly on DEST
    --ro-bind-try SRC DEST       Equal to --ro-bind but ignores non-existent SRC
    --bind-fd FD DEST            Bind open directory or path fd on DEST
    --ro-bind-fd FD DEST         Bind open directory or path fd read-only on DEST
    --remount-ro DEST            Remount DEST as readonly; does not recursively remount
    --overlay-src SRC            Read files from SRC in the following overlay
    --overlay RWSRC WORKDIR DEST Mount overlayfs on DEST, with RWSRC as the host path for writes and
                                 WORKDIR an empty directory on the same filesystem as RWSRC
    --tmp-overlay DEST           Mount overlayfs on DEST, with writes going to an invisible tmpfs
    --ro-overlay DEST            Mount overlayfs read-only on DEST
    --exec-label LABEL           Exec label for the sandbox
    --file-label LABEL           File label for temporary sandbox content
    --proc DEST                  Mount new procfs on DEST
    --dev DEST                   Mount new dev on DEST
    --tmpfs DEST                 Mount new tmpfs on DEST
    --mqueue DEST                Mount new mqueue on DEST
    --dir DEST                   Create dir at DEST
    --file FD DEST               Copy from FD to destination DEST
    --bind-data FD DEST          Copy from FD to file which is bind-mounted on DEST
    --ro-bind-data FD DEST       Copy from FD to file which is readonly bind-mounted on DEST
    --symlink SRC DEST           Create symlink at DEST with target SRC
    --seccomp FD                 Load and use seccomp rules from FD (not repeatable)
    --add-seccomp-fd FD          Load and use seccomp rules from FD (repeatable)
    --block-fd FD                Block on FD until some data to read is available
    --userns-block-fd FD         Block on FD until the user namespace is ready
    --info-fd FD                 Write information about the running container to FD
    --json-status-fd FD          Write container status to FD as multiple JSON documents
    --new-session                Create a new terminal session
    --die-with-parent            Kills with SIGKILL child process (COMMAND) when bwrap or bwrap's parent dies.
    --as-pid-1                   Do not install a reaper process with PID=1
    --cap-add CAP                Add cap CAP when running as privileged user
    --cap-drop CAP               Drop cap CAP when running as privileged user
    --perms OCTAL                Set permissions of next argument (--bind-data, --file, etc.)
    --size BYTES                 Set size of next argument (only for --tmpfs)
    --chmod OCTAL PATH           Change permissions of PATH (must already exist)
`;
}

/** How bubblewrap prefixes its own messages: `bwrap: `, after `<3>`/`<4>` with --level-prefix. */
class Log {
  constructor(public levelPrefix = false) {}
  error(message: string): void {
    process.stderr.write(`${this.levelPrefix ? '<3>' : ''}bwrap: ${message}\n`);
  }
  warn(message: string): void {
    process.stderr.write(`${this.levelPrefix ? '<4>' : ''}bwrap: ${message}\n`);
  }
}

function strerror(err: IsolationError): string {
  return binding.strerror(Math.abs(err.errno));
}

/** A setup failure in bubblewrap's words where scripts match them, else the library's message. */
export function bwrapMessage(err: IsolationError, command: string): string {
  if (err.step === 'execve') return `execvp ${command}: ${strerror(err)}`;
  if (/ source$/.test(err.step) && err.path !== undefined && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) {
    return `Can't find source path ${err.path}: ${strerror(err)}`;
  }
  if (/ symlink$/.test(err.step) && err.path !== undefined && err.code === 'EEXIST') {
    // The destination is usually a host path bound in at the same place (the suite's case);
    // where it is not, the sandbox's own file is gone with it and only the fact is said.
    try {
      return `Can't make symlink at ${err.path}: existing destination is ${fs.readlinkSync(err.path)}`;
    } catch {
      return `Can't make symlink at ${err.path}: destination exists and is not a symlink`;
    }
  }
  return err.message.replace(/^spawnIsolated: /, '');
}

/** JSON of the namespace ids as bubblewrap writes them on one line: `, "mnt-namespace": N`... */
function namespaceFields(child: IsolatedProcess): string {
  return Object.entries(child.namespaceIds ?? {}).map(([name, id]) => `, "${name}-namespace": ${id}`).join('');
}

function writeAll(fd: number, text: string): boolean {
  try {
    fs.writeSync(fd, text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a bwrap command line (argv without `node` and the script; `program` is the name the
 * usage line shows) and resolves to the exit status: the program's, 128+N for signal N, 1
 * for bubblewrap's own errors (setup failures and exec failures included), 0 for --help.
 */
export async function mainBwrap(argv: readonly string[], program = 'bwrap'): Promise<number> {
  const log = new Log();
  let options: SpawnOptions;
  let jsonStatusFd: number | undefined;
  try {
    if (argv.length === 0) {
      process.stderr.write(bwrapUsage(program));
      return 1;
    }
    const scan = scanFlags(argv, process.env, 'bwrap');
    if (scan.kind === 'help') {
      process.stdout.write(bwrapUsage(program));
      return 0;
    }
    if (scan.kind === 'version') {
      process.stdout.write(`bubblewrap ${BWRAP_VERSION}\n`);
      return 0;
    }
    const { state, command, args } = scan;
    log.levelPrefix = state.protocol.levelPrefix;
    for (const warning of state.warnings) log.warn(warning);
    if (command === undefined) {
      process.stderr.write(bwrapUsage(program));
      return 1;
    }
    options = finishBwrap(state, command, args);
    jsonStatusFd = state.jsonStatusFd;
  } catch (err) {
    if (err instanceof UsageError) {
      // As bubblewrap: prefixed if --level-prefix came before the mistake.
      log.levelPrefix = err.levelPrefix;
      log.error(err.message);
      return 1;
    }
    throw err;
  }
  // --die-with-parent: "when bwrap or bwrap's parent dies": this process too is killed with its parent.
  if (options.dieWithParent === true && binding.dieWithParent(STARTING_PARENT) !== 0) return 1;
  let child: IsolatedProcess;
  try {
    child = spawnIsolated(options);
  } catch (err) {
    if (err instanceof IsolationError) {
      log.error(bwrapMessage(err, options.command));
      return 1;
    }
    if (err instanceof TypeError || err instanceof RangeError) {
      log.error(err.message.replace(/^spawnIsolated: /, ''));
      return 1;
    }
    throw err;
  }
  // bubblewrap writes this right after clone; the program may already run now (the ids were read before it did).
  if (jsonStatusFd !== undefined) writeAll(jsonStatusFd, `{ "child-pid": ${child.initPid ?? child.pid}${namespaceFields(child)} }\n`);
  const status = await child.exited;
  const code = status.exitCode === null && status.signal === null ? 1 : exitStatusCode(status);
  if (jsonStatusFd !== undefined) {
    writeAll(jsonStatusFd, `{ "exit-code": ${code} }\n`);
    try {
      fs.closeSync(jsonStatusFd);
    } catch {
      // nothing left to release
    }
  }
  return code;
}
