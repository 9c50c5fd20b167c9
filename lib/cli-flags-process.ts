/**
 * bubblewrap's process-protocol flags and the rest of its 0.11.1 command line that is about
 * the process, not the filesystem: --args, --info-fd, --block-fd, --userns-block-fd,
 * --sync-fd, --level-prefix, --argv0, the -try namespace flags, labels. Shared by both
 * entry points (lib/cli.ts, lib/cli-bwrap.ts); lib/cli-flags.ts has the families they
 * started with.
 */
import * as fs from 'node:fs';
import { bind, mountFlag, onlyLast, parseFd, UsageError, type CliFlag, type CliFlagFamily, type CliState } from './cli-flags';

function fdFlag(name: `--${string}`, help: string, set: (s: CliState, fd: number) => void): CliFlag {
  return {
    name,
    values: ['FD'],
    help,
    apply(s, [text]) {
      onlyLast(s, name);
      set(s, parseFd(name, text));
    },
  };
}

const toggle = (name: `--${string}`, help: string, apply: (s: CliState) => void): CliFlag => ({ name, values: [], help, apply: (s) => apply(s) });

/** The largest number of arguments bubblewrap reads (its hardening against huge --args files). */
export const MAX_ARGS = 9000;

/**
 * The arguments --args FD gives: FD read to its end (then closed), split at NUL bytes, as
 * bubblewrap's `--args` does (a trailing NUL ends the last one; no empty one after it).
 */
export function readArgsFd(text: string): string[] {
  const fd = parseFd('--args', text);
  let data: Buffer;
  try {
    data = fs.readFileSync(fd);
  } catch (err) {
    throw new UsageError(`Can't read --args data: ${(err as Error).message}`);
  }
  try {
    fs.closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
  const args: string[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    args.push(data.subarray(start, end).toString());
    start = end + 1;
  }
  if (args.length > MAX_ARGS) throw new UsageError(`Exceeded maximum number of arguments ${MAX_ARGS}`);
  return args;
}

/** The fds and messages of the sandbox's protocol with its caller. */
export const PROTOCOL_FLAGS: CliFlagFamily = {
  title: 'Process protocol (file descriptors of this command, as bubblewrap takes them; none reaches the program)',
  flags: [
    {
      name: '--args',
      values: ['FD'],
      help: 'read more arguments from FD (NUL-separated) and parse them in place of --args FD; not allowed inside such a file',
      apply() {
        // The scanner (lib/cli.ts) splices them in: this entry is for --help and the flag table.
        throw new UsageError('--args not supported in arguments file');
      },
    },
    fdFlag('--info-fd', 'write {"child-pid": N, "<ns>-namespace": ID, ...} (the sandbox\'s first process, its namespaces\' inode numbers) to FD right after ' +
      'the sandbox is created, before anything runs in it, then close FD', (s, fd) => (s.protocol.infoFd = fd)),
    fdFlag('--block-fd', 'once the sandbox is set up, wait until FD has data to read (or is closed) before running COMMAND', (s, fd) => (s.protocol.blockFd = fd)),
    fdFlag('--userns-block-fd', 'with --unshare-user and --info-fd: after writing the info, wait until FD has data (or is closed) before setting the sandbox up; ' +
      'the caller writes /proc/PID/uid_map and gid_map meanwhile (none is written here)', (s, fd) => (s.protocol.usernsBlockFd = fd)),
    fdFlag('--sync-fd', 'keep FD open in this command while the sandbox runs (its reader sees end of file when the sandbox is gone)', (s, fd) => (s.protocol.syncFd = fd)),
    toggle('--level-prefix', 'prefix this command\'s own messages with a syslog level, <3> for errors and <4> for warnings (for systemd\'s journal)', (s) => (s.protocol.levelPrefix = true)),
    {
      name: '--argv0',
      values: ['VALUE'],
      help: 'argv[0] of COMMAND as the program sees it (the program is still found by COMMAND)',
      apply(s, [value]) {
        if (s.options.argv0 !== undefined) throw new UsageError('--argv0 used multiple times');
        s.options.argv0 = value;
      },
    },
  ],
};

/** bubblewrap's flags that had no equivalent in the `nsjail-node` tables. */
export const BWRAP_EXTRA_FLAGS: CliFlagFamily = {
  title: 'More of bubblewrap\'s flags',
  flags: [
    toggle('--unshare-user-try', 'new user namespace if this kernel allows one (user.max_user_namespaces is not 0), else none', (s) => (s.protocol.userTry = true)),
    toggle('--unshare-cgroup-try', 'new cgroup namespace if this kernel has them, else none', (s) => (s.protocol.cgroupTry = true)),
    {
      name: '--exec-label',
      values: ['LABEL'],
      help: 'SELinux label of COMMAND: refused, this build has no SELinux support',
      apply(s) {
        onlyLast(s, '--exec-label');
        throw new UsageError('labeling not supported on this system');
      },
    },
    {
      name: '--file-label',
      values: ['LABEL'],
      help: 'SELinux label of the files the sandbox creates: refused, this build has no SELinux support',
      apply(s) {
        onlyLast(s, '--file-label');
        throw new UsageError('labeling not supported on this system');
      },
    },
  ],
};

/** A fresh ProtocolState. */
export function newProtocolState(): CliState['protocol'] {
  return {
    infoFd: undefined, blockFd: undefined, usernsBlockFd: undefined, syncFd: undefined,
    levelPrefix: false, userTry: false, cgroupTry: false,
  };
}

/**
 * Whether a new user namespace can be made here, by bubblewrap's --unshare-user-try test:
 * the kernel has them (/proc/self/ns/user), they are not disabled (RHEL 7's module
 * parameter) and user.max_user_namespaces is not 0.
 */
export function userNamespacesAvailable(): boolean {
  if (!fs.existsSync('/proc/self/ns/user')) return false;
  try {
    if (fs.readFileSync('/sys/module/user_namespace/parameters/enable', 'utf8').startsWith('N')) return false;
  } catch {
    // no such parameter: enabled
  }
  try {
    if (fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8') === '0\n') return false;
  } catch {
    // not readable: assume allowed, as bubblewrap does
  }
  return true;
}

/** Whether this kernel has cgroup namespaces (bubblewrap's --unshare-cgroup-try test). */
export function cgroupNamespacesAvailable(): boolean {
  return fs.existsSync('/proc/self/ns/cgroup');
}

/** bubblewrap's filesystem flags that the library's entries already cover. */
export const BWRAP_FS_EXTRA_FLAGS: CliFlagFamily = {
  title: 'More of bubblewrap\'s filesystem flags',
  flags: [
    mountFlag('--dev-bind-try', ['SRC', 'DEST'], 'like --dev-bind, skipped when SRC does not exist', (v) => bind('--dev-bind-try', v, { try: true })),
    mountFlag('--remount-ro', ['DEST'], 'make the mount at DEST read-only (that mount alone, not those under it)', ([dest]) => ({ type: 'remount-ro', target: dest })),
    mountFlag('--mqueue', ['DEST'], 'mount a POSIX message-queue filesystem (of the sandbox\'s IPC namespace) on DEST', ([dest]) => ({ type: 'mqueue', target: dest })),
  ],
};
