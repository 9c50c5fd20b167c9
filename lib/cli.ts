/**
 * The `nsjail-node` command: `nsjail-node [FLAGS] [--] COMMAND [ARGS...]` runs COMMAND in a
 * sandbox with this terminal's stdio and exits with its exit status; `nsjail-node doctor`
 * checks the host. The flags live in tables (lib/cli-flags.ts); this file scans argv with
 * them, runs the sandbox and maps its end to an exit status.
 *
 * argv is scanned by hand, not with util.parseArgs: bubblewrap's flags take two values
 * (`--bind SRC DEST`), and scanning must stop at the first word that is not a flag, so that
 * the command's own flags (`ls -l`) are left alone. `doctor` uses parseArgs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { FLAG_FAMILIES as BASE_FAMILIES, keptCapabilities, UsageError, type CliFlag, type CliFlagFamily, type CliMode, type CliState } from './cli-flags';
import { afterFlag, BWRAP_FILESYSTEM_FLAGS, BWRAP_NAMESPACE_FLAGS } from './cli-flags-mounts';
import {
  BWRAP_EXTRA_FLAGS, BWRAP_FS_EXTRA_FLAGS, cgroupNamespacesAvailable, MAX_ARGS, newProtocolState, PROTOCOL_FLAGS, readArgsFd, userNamespacesAvailable,
} from './cli-flags-process';
import { doctor, formatDoctorReport } from './doctor';
import { IsolationError } from './errors';
import type { SpawnOptions } from './options';
import type { ExitStatus, IsolatedProcess } from './process';
import { spawnIsolated } from './spawn';
import { describe, didYouMean } from './validate';

/** Exit statuses of nsjail-node itself (a program's own status is passed through). */
export const EXIT = {
  /** A bad flag or option. */
  usage: 2,
  /** The sandbox could not be set up (an IsolationError before execve). */
  setupFailed: 125,
  /** The program was found but could not be executed (execve: EACCES, ENOEXEC, ...). */
  cannotExecute: 126,
  /** The program was not found (execve: ENOENT). */
  notFound: 127,
} as const;

/** What a command line asks for. */
export type CommandLine =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'doctor'; json: boolean }
  | { kind: 'run'; options: SpawnOptions; jsonStatusFd: number | undefined; warnings: string[]; levelPrefix: boolean };

/** Every flag family of both entry points, in the order --help lists them. */
export const FLAG_FAMILIES: readonly CliFlagFamily[] = [
  ...BASE_FAMILIES, BWRAP_FS_EXTRA_FLAGS, BWRAP_FILESYSTEM_FLAGS, BWRAP_NAMESPACE_FLAGS, PROTOCOL_FLAGS, BWRAP_EXTRA_FLAGS,
];

const FLAGS = new Map<string, CliFlag>(FLAG_FAMILIES.flatMap((family) => family.flags.map((flag) => [flag.name, flag] as const)));

const SYNOPSIS = [
  'Usage: nsjail-node [FLAGS] [--] COMMAND [ARGS...]',
  '       nsjail-node doctor [--json]',
];

/** The short usage printed after a command-line error. */
export function usage(): string {
  return `${SYNOPSIS.join('\n')}\nRun 'nsjail-node --help' for every flag.\n`;
}

const HELP_COLUMNS = 100;

/** Word-wraps `text` to `columns`, the first line after `lead`, the rest indented as deep. */
function wrap(text: string, lead: string, columns: number): string[] {
  const lines: string[] = [];
  let line = lead;
  for (const word of text.split(' ')) {
    if (line.trim() !== '' && line.length + 1 + word.length > columns && line.length > lead.length) {
      lines.push(line);
      line = ' '.repeat(lead.length);
    }
    line += line.length === lead.length || line.endsWith(' ') ? word : ` ${word}`;
  }
  lines.push(line);
  return lines;
}

/** The full --help text, generated from the flag tables. */
export function helpText(): string {
  const lines = [
    ...SYNOPSIS,
    '',
    'Runs COMMAND in new Linux namespaces, with this terminal\'s stdin, stdout and stderr.',
    'Scanning stops at the first word that is not a flag (or after --). No namespace is made',
    'unless a flag asks for it; the program always starts in a new session, with no capabilities',
    '(see --cap-add) and no_new_privs, and dies with nsjail-node.',
    '',
  ];
  const label = (flag: CliFlag): string => [flag.name, ...flag.values].join(' ');
  const width = Math.max(...FLAG_FAMILIES.flatMap((f) => f.flags.map((flag) => label(flag).length)));
  for (const family of FLAG_FAMILIES) {
    lines.push(...wrap(`${family.title}:`, '', HELP_COLUMNS));
    for (const flag of family.flags) lines.push(...wrap(flag.help, `  ${label(flag).padEnd(width)}  `, HELP_COLUMNS));
    lines.push('');
  }
  lines.push(
    'Other:',
    `  ${'-h, --help'.padEnd(width)}  this text`,
    `  ${'--version'.padEnd(width)}  the version of nsjail-node`,
    '',
    'doctor:',
    '  nsjail-node doctor checks what this host allows (kernel, clone3, pidfd, user namespaces,',
    '  each namespace type, cgroups, containers, seccomp) and says what to change;',
    '  --json prints the report as JSON. Exit status 0 when the core works, 1 otherwise.',
    '',
    'Exit status:',
    '  the program\'s own exit code; 128+N when signal N ended it;',
    `  ${EXIT.usage} for a bad flag; ${EXIT.setupFailed} when the sandbox could not be set up;`,
    `  ${EXIT.cannotExecute} when COMMAND could not be executed; ${EXIT.notFound} when COMMAND was not found.`,
    '  SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to nsjail-node are passed on to',
    '  the program; a second SIGINT kills it with SIGKILL.',
  );
  return lines.join('\n') + '\n';
}

/** A fresh scan state for `mode`, with `env` as the environment to edit. */
export function newState(env: NodeJS.ProcessEnv, mode: CliMode = 'nsjail-node'): CliState {
  const vars = new Map<string, string>();
  for (const [key, value] of Object.entries(env)) if (value !== undefined) vars.set(key, value);
  return {
    options: {}, env: vars, needsMount: undefined, needsPid: undefined, jsonStatusFd: undefined, capabilityEdits: [], asPid1: false,
    mode, protocol: newProtocolState(), warnings: [], seen: new Set(),
  };
}

const COUNT_WORDS = ['no arguments', 'an argument', 'two arguments', 'three arguments'];
// bubblewrap's own words where they are not "takes an argument".
const ONE_ARGUMENT = new Set(['--argv0', '--chdir', '--remount-ro']);

/** What a scan found: help, version, or the state and the command. */
export type Scan = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; state: CliState; command: string | undefined; args: string[] };

/**
 * Scans flags until the first word that is not one (or `--`), applying each to a fresh
 * state; `--args FD` is replaced by the arguments read from FD. In 'bwrap' mode the words
 * are bubblewrap's: every word starting with '-' is a flag, no `--flag=value`, and its
 * error messages.
 * @throws UsageError for a bad flag or a missing value.
 */
export function scanFlags(argv: readonly string[], env: NodeJS.ProcessEnv, mode: CliMode): Scan {
  // A hole or a non-string would otherwise surface as a crash in the scan, or as an argument.
  for (let i = 0; i < argv.length; i++) {
    if (typeof argv[i] !== 'string') throw new TypeError(`parseCommandLine: argv[${i}] must be a string, got ${i in argv ? describe(argv[i]) : 'a hole (sparse array)'}`);
  }
  const bwrap = mode === 'bwrap';
  const state = newState(env, mode);
  const words = [...argv];
  // Where the words read by --args end: an --args among them is refused, as by bubblewrap.
  let fromFileEnd = 0;
  let i = 0;
  try {
    while (i < words.length) {
      const arg = words[i];
      if (arg === '--') {
        i++;
        break;
      }
      if (!arg.startsWith('-') || (arg === '-' && !bwrap)) break;
      if ((arg === '-h' && !bwrap) || arg === '--help') return { kind: 'help' };
      if (arg === '--version') return { kind: 'version' };
      // `--flag=value` is accepted for flags with one value (not by bubblewrap).
      const eq = bwrap ? -1 : arg.indexOf('=');
      const name = eq > 0 ? arg.slice(0, eq) : arg;
      const flag = FLAGS.get(name);
      if (!flag) {
        if (bwrap) throw new UsageError(`Unknown option ${name}`);
        const guess = didYouMean(name, [...FLAGS.keys()]);
        throw new UsageError(`unknown flag ${name}${guess ? ` (did you mean ${guess}?)` : ''}`);
      }
      let values: string[];
      if (eq > 0) {
        if (flag.values.length !== 1) throw new UsageError(`${name} ${flag.values.length === 0 ? 'takes no value' : `takes ${flag.values.length} values: ${name} ${flag.values.join(' ')}`}`);
        values = [arg.slice(eq + 1)];
        i += 1;
      } else {
        values = words.slice(i + 1, i + 1 + flag.values.length);
        if (values.length < flag.values.length) {
          if (bwrap) throw new UsageError(`${name} takes ${ONE_ARGUMENT.has(name) ? 'one argument' : COUNT_WORDS[flag.values.length]}`);
          throw new UsageError(`${name} needs ${flag.values.length === 1 ? 'a value' : `${flag.values.length} values`}: ${name} ${flag.values.join(' ')}`);
        }
        i += 1 + flag.values.length;
      }
      if (name === '--args') {
        if (i - 2 < fromFileEnd) throw new UsageError('--args not supported in arguments file');
        const inserted = readArgsFd(values[0]);
        if (words.length + inserted.length > MAX_ARGS) throw new UsageError(`Exceeded maximum number of arguments ${MAX_ARGS}`);
        words.splice(i, 0, ...inserted);
        fromFileEnd = i + inserted.length;
        continue;
      }
      flag.apply(state, values);
      afterFlag(state, name);
    }
    afterFlag(state, undefined);
  } catch (err) {
    if (err instanceof UsageError) err.levelPrefix = state.protocol.levelPrefix;
    throw err;
  }
  const [command, ...args] = words.slice(i);
  return { kind: 'run', state, command, args };
}

/**
 * Parses nsjail-node's arguments (argv without `node` and the script).
 * @throws UsageError for a bad flag, a missing value or a missing command.
 */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CommandLine {
  if (argv[0] === 'doctor') return parseDoctor(argv.slice(1));
  const scan = scanFlags(argv, env, 'nsjail-node');
  if (scan.kind !== 'run') return scan;
  const { state, command, args } = scan;
  if (command === undefined || command === '') throw new UsageError('no COMMAND given');
  return { kind: 'run', options: finish(state, command, args), jsonStatusFd: state.jsonStatusFd, warnings: state.warnings, levelPrefix: state.protocol.levelPrefix };
}

function finish(state: CliState, command: string, args: string[]): SpawnOptions {
  const o = state.options;
  const p = state.protocol;
  if (p.userTry && !o.user && userNamespacesAvailable()) o.user = true;
  if (p.cgroupTry && !o.cgroup) o.cgroup = cgroupNamespacesAvailable();
  if (p.usernsBlockFd !== undefined && !o.user) throw new UsageError('--userns-block-fd needs --unshare-user');
  if (p.usernsBlockFd !== undefined && p.infoFd === undefined) throw new UsageError('--userns-block-fd needs --info-fd (the caller learns the pid whose maps to write from it)');
  if (p.infoFd !== undefined) o.info = { fd: p.infoFd };
  if (p.blockFd !== undefined) o.blockFd = p.blockFd;
  if (p.usernsBlockFd !== undefined) o.userNamespaceBlockFd = p.usernsBlockFd;
  if (o.hostname !== undefined && !o.uts) throw new UsageError('--hostname needs --unshare-uts (else it would rename the host)');
  if (state.needsPid !== undefined && !o.pid) {
    throw new UsageError(`${state.needsPid} needs --unshare-pid (a procfs shows the PID namespace it is mounted from: without a new one it would list every host process)`);
  }
  if (state.needsMount !== undefined) o.mount = true;
  if (state.asPid1 && !o.pid) throw new UsageError('--as-pid-1 needs --unshare-pid');
  // As bubblewrap: in a PID namespace an init is PID 1 unless --as-pid-1.
  if (o.pid) o.init = !state.asPid1;
  if (state.capabilityEdits.length > 0) o.capabilities = keptCapabilities(state.capabilityEdits, o.user ?? false);
  if (!o.user && (o.uid === undefined) !== (o.gid === undefined)) {
    throw new UsageError(`${o.uid === undefined ? '--gid needs --uid' : '--uid needs --gid'} too without --unshare-user (switching one id alone would keep the other, e.g. root's group)`);
  }
  return { ...o, command, args, env: Object.fromEntries(state.env), stdio: 'inherit' };
}

function parseDoctor(argv: readonly string[]): CommandLine {
  try {
    const { values } = parseArgs({ args: [...argv], options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    if (values.help) return { kind: 'help' };
    return { kind: 'doctor', json: values.json ?? false };
  } catch (err) {
    const unknown = (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && /'([^']+)'/.exec((err as Error).message);
    throw new UsageError(unknown ? `doctor: unknown flag ${unknown[1]} (doctor takes only --json)` : `doctor: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** The exit status for a program's end: its code, or 128+N for signal N (125 if neither was collected). */
export function exitStatusCode(status: ExitStatus): number {
  if (status.exitCode !== null) return status.exitCode;
  const n = status.signal !== null ? os.constants.signals[status.signal] : undefined;
  return n !== undefined ? 128 + n : EXIT.setupFailed;
}

/** One line on why a limit ended the program, or undefined when it ended by itself. */
function limitNote(status: ExitStatus, options: SpawnOptions): string | undefined {
  if (status.killedBy === 'wallTime') return `the program was killed: wall-time limit of ${(options.limits?.wallTime ?? 0) / 1000} s (--time) reached`;
  if (status.killedBy === 'cpuTime') return `the program was killed: CPU-time limit of ${options.limits?.cpuTime ?? 0} s (--cpu-time) reached`;
  if (status.status === 'memory') return 'the program was killed by the kernel: out of memory under the --memory limit';
  return undefined;
}

// Library words in the library's own messages, and the flags that say the same on the command line.
const OPTION_WORDS: readonly [RegExp, string][] = [
  [/\badd user: true\b/g, 'add --unshare-user'],
  [/\bpass user: true \(--unshare-user\)/g, 'pass --unshare-user'],
  [/\buser: true\b/g, '--unshare-user'],
  [/\bgive its path as cgroupParent\b/g, 'give its path as cgroupParent (a library option: the command line has no flag for it)'],
  [/\blimits\.memory\b/g, '--memory'],
  [/\blimits\.pids\b/g, '--pids'],
  [/\blimits\.cpu\b/g, '--cpus'],
  [/\blimits\.wallTime\b/g, '--time'],
  [/\blimits\.cpuTime\b/g, '--cpu-time'],
  [/\blimits\.rlimits\b/g, '--rlimit'],
];

/** An error message as the command line says it: flags, not option names. */
function inFlagWords(message: string): string {
  let text = message.replace(/^spawnIsolated: /, '');
  for (const [words, flag] of OPTION_WORDS) text = text.replace(words, flag);
  return text;
}

// --level-prefix: this command's own messages start with a syslog level (<3> error, <4> warning).
let levelPrefix = false;

/** One line of nsjail-node's own on stderr, at syslog `level`. */
function say(level: 3 | 4, text: string): void {
  process.stderr.write(`${levelPrefix ? `<${level}>` : ''}nsjail-node: ${text}\n`);
}

function writeStatus(fd: number | undefined, value: unknown): void {
  if (fd === undefined) return;
  try {
    fs.writeSync(fd, `${JSON.stringify(value)}\n`);
  } catch (err) {
    say(3, `--json-status-fd ${fd}: ${(err as Error).message}`);
  }
}

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/**
 * Passes signals sent to us on to the program; returns the undo. Installed before the spawn:
 * the program may run (and be signalled by whoever waits for its output) before spawnIsolated
 * has returned, and a signal caught meanwhile is handled on the next loop turn.
 */
function ignoreLateSignal(): void {}

function forwardSignals(target: () => IsolatedProcess | undefined): () => void {
  let interrupts = 0;
  const handlers = FORWARDED.map((signal) => {
    const handler = (): void => {
      const child = target();
      if (!child) return;
      // A PID-1 program ignores signals it has no handler for: a second Ctrl-C must still end it.
      if (signal === 'SIGINT' && ++interrupts > 1) child.kill('SIGKILL');
      else child.kill(signal);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    // The program has ended and nsjail-node is about to exit with its status: a signal that
    // arrives now (a second Ctrl-C racing the exit) is dropped, not allowed to kill
    // nsjail-node and replace that status with its own death by signal.
    for (const [signal, handler] of handlers) {
      process.off(signal, handler);
      process.on(signal, ignoreLateSignal);
    }
  };
}

function setupFailure(err: IsolationError, jsonStatusFd: number | undefined): number {
  say(3, inFlagWords(err.message));
  writeStatus(jsonStatusFd, { error: { message: err.message, code: err.code, errno: err.errno, step: err.step, syscall: err.syscall, path: err.path ?? null } });
  if (err.step !== 'execve') return EXIT.setupFailed;
  return err.code === 'ENOENT' ? EXIT.notFound : EXIT.cannotExecute;
}

async function runSandbox(options: SpawnOptions, jsonStatusFd: number | undefined): Promise<number> {
  let child: IsolatedProcess | undefined;
  const stopForwarding = forwardSignals(() => child);
  try {
    try {
      child = spawnIsolated(options);
    } catch (err) {
      if (err instanceof IsolationError) return setupFailure(err, jsonStatusFd);
      // The library named an option; on the command line that is still a usage mistake.
      if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(err.message.replace(/^spawnIsolated: /, ''));
      throw err;
    }
    const status = await child.exited;
    writeStatus(jsonStatusFd, status);
    const note = limitNote(status, options);
    if (note) say(3, note);
    return exitStatusCode(status);
  } finally {
    stopForwarding();
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(`${__dirname}/../package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Runs the command line `argv` (without `node` and the script) and resolves to the exit
 * status nsjail-node should end with. Writes to this process's stdout and stderr.
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const line = parseCommandLine(argv);
    switch (line.kind) {
      case 'help':
        process.stdout.write(helpText());
        return 0;
      case 'version':
        process.stdout.write(`nsjail-node ${packageVersion()}\n`);
        return 0;
      case 'doctor': {
        const report = await doctor();
        process.stdout.write(line.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
        return report.ok ? 0 : 1;
      }
      case 'run':
        levelPrefix = line.levelPrefix;
        for (const warning of line.warnings) say(4, `warning: ${warning}`);
        return await runSandbox(line.options, line.jsonStatusFd);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      levelPrefix = err.levelPrefix;
      say(3, err.message);
      process.stderr.write(usage());
      return EXIT.usage;
    }
    throw err;
  }
}
