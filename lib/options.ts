/**
 * The public options of spawnIsolated and their validation. Everything a user can get wrong
 * is caught here, with the option's name and the reason, before any process starts.
 */
import { capabilityNumber } from './capabilities';
import { FILESYSTEM_OPTION_KEYS, validateFilesystem, type FilesystemOptions, type ValidatedFilesystem } from './filesystem';
import { IDENTITY_OPTION_KEYS, validateIdentity, type IdentityOptions, type ValidatedIdentity } from './identity';
import { LIMIT_OPTION_KEYS, validateLimits, type LimitOptions, type ValidatedLimits } from './limits';
import { NETWORK_OPTION_KEYS, validateNetwork, type NetworkOptions, type ValidatedNetwork } from './network';
import { PROTOCOL_OPTION_KEYS, validateProtocol, type ProtocolOptions, type ValidatedProtocol } from './protocol';
import { socketFamilyFilter } from './socket-families';
import { checkAbsolutePath, checkArray, checkBoolean, checkCString, describe, isCString, fail, ownOptions, rejectUnknownKeys } from './validate';

/** Where one of the program's standard streams goes. */
export type StdioOption =
  /** A pipe to this process: the handle's `stdin`/`stdout`/`stderr` stream. */
  | 'pipe'
  /** This process's own descriptor of the same number. */
  | 'inherit'
  /**
   * Nothing, as /dev/null would give, without handing the program a host inode it could
   * change (fchmod on fd 0): stdin is an empty pipe with no writer (reads see end of file at
   * once), stdout and stderr a pipe this process drains and discards on a thread of its own.
   */
  | 'ignore'
  /** A file descriptor of this process, duplicated into the child. */
  | number;

/**
 * Options of {@link spawnIsolated}. Only `command` is required; every namespace is off by
 * default. The feature groups (filesystem, identity, limits, network) are documented in
 * their own interfaces.
 */
export interface SpawnOptions extends CoreOptions, FilesystemOptions, IdentityOptions, LimitOptions, NetworkOptions, ProtocolOptions {}

/** The program, its environment and the namespaces it gets. */
export interface CoreOptions {
  /**
   * The program: an absolute path inside the sandbox, a path relative to `cwd`, or a bare
   * name looked up on the sandbox's `PATH` (from `env`, else {@link DEFAULT_PATH}) inside
   * the new root.
   */
  command: string;
  /** Arguments after argv[0]. */
  args?: readonly string[];
  /** argv[0] as the program sees it; defaults to `command`. */
  argv0?: string;
  /**
   * The program's whole environment. Default: only `PATH` ({@link DEFAULT_PATH}). The host's
   * environment is never passed on unless given here (e.g. `env: process.env`).
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Working directory inside the sandbox (absolute). Default: `/` with `root`, else this process's cwd. */
  cwd?: string;
  /** Host name inside the sandbox; needs `uts: true`. */
  hostname?: string;
  /** New PID namespace: the program is PID 1 and sees only its own descendants. */
  pid?: boolean;
  /** New network namespace: only a loopback interface. */
  net?: boolean;
  /** New mount namespace, made private first so that no mount propagates to the host. */
  mount?: boolean;
  /** New UTS namespace (host name and domain name). */
  uts?: boolean;
  /** New IPC namespace (System V IPC and POSIX message queues). */
  ipc?: boolean;
  /**
   * New user namespace. 0 inside (or `uid`/`gid`) is the caller's uid and gid outside, or,
   * when the caller is root, an unprivileged host id leased to this sandbox alone (see
   * {@link configureHostIds}: the sandbox's root never owns what host root owns); the child
   * writes that single-line map itself, with setgroups denied. `uidMap`, `gidMap` and
   * `groups` make the parent write the maps instead. Needed by callers who are not root to
   * create any namespace.
   */
  user?: boolean;
  /** New cgroup namespace: the program's cgroup appears as the root. */
  cgroup?: boolean;
  /** Standard streams: one value for all three, or one each for stdin, stdout, stderr. Default 'pipe'. */
  stdio?: StdioOption | readonly [StdioOption, StdioOption, StdioOption];
  /** Kill the sandbox with SIGKILL when the thread that spawned it exits. Default true. */
  dieWithParent?: boolean;
  /** Start the program in a new session (setsid), detached from any terminal. Default true. */
  newSession?: boolean;
}

/** The PATH a sandbox gets when `env` does not give one. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * An environment after validation: keys and values in turn (`[key0, value0, key1, ...]`),
 * one flat array, packed for the addon as `key=value` strings (lib/plan.ts: packEnv).
 */
export type EnvList = readonly string[];

/** Options after validation: defaults filled in, shapes normalised. */
export interface ValidatedOptions {
  command: string;
  argv: string[];
  env: EnvList;
  cwd: string | undefined;
  hostname: string | undefined;
  namespaces: { pid: boolean; net: boolean; mount: boolean; uts: boolean; ipc: boolean; user: boolean; cgroup: boolean };
  stdio: [StdioOption, StdioOption, StdioOption];
  dieWithParent: boolean;
  newSession: boolean;
  filesystem: ValidatedFilesystem;
  identity: ValidatedIdentity;
  limits: ValidatedLimits;
  network: ValidatedNetwork;
  protocol: ValidatedProtocol;
}

export const CORE_OPTION_KEYS: readonly (keyof CoreOptions)[] = [
  'command', 'args', 'argv0', 'env', 'cwd', 'hostname', 'pid', 'net', 'mount', 'uts', 'ipc', 'user',
  'cgroup', 'stdio', 'dieWithParent', 'newSession',
];

const KNOWN_KEYS: readonly string[] = [
  ...CORE_OPTION_KEYS, ...FILESYSTEM_OPTION_KEYS, ...IDENTITY_OPTION_KEYS, ...LIMIT_OPTION_KEYS, ...NETWORK_OPTION_KEYS, ...PROTOCOL_OPTION_KEYS,
];

const NAMESPACE_KEYS = ['pid', 'net', 'mount', 'uts', 'ipc', 'user', 'cgroup'] as const;

// Options of child_process and execa that this library spells differently.
const TO_LIMITS = (name: string): string => `limits are grouped: use limits: { ${name}: ... }`;
const HABITS: Readonly<Record<string, string>> = {
  input: "spawnIsolated takes no input; use runIsolated({ input }), or write to child.stdin (stdio 'pipe', the default)",
  shell: "there is no shell option; run one explicitly: command: '/bin/sh', args: ['-c', script]",
  detached: 'a sandbox always starts in a new session (newSession: true); to let it outlive this process use dieWithParent: false',
  encoding: 'spawnIsolated gives streams; decode with child.stdout.setEncoding(), or use runIsolated({ encoding })',
  maxBuffer: 'collecting output is runIsolated({ maxBuffer }); spawnIsolated gives streams',
  forceKillAfterDelay: "there is no forceKillAfterDelay; killSignal with timeout or signal kills the sandbox (default 'SIGKILL')",
  windowsHide: 'nsjail-node is Linux only; remove it',
  serialization: 'there is no IPC channel to a sandbox; use stdio pipes',
  memory: TO_LIMITS('memory'),
  pids: TO_LIMITS('pids'),
  cpu: TO_LIMITS('cpu'),
  cpuTime: TO_LIMITS('cpuTime'),
  wallTime: TO_LIMITS('wallTime'),
  rlimits: TO_LIMITS('rlimits'),
};

function checkStdio(option: string, value: unknown): StdioOption {
  if (value === 'pipe' || value === 'inherit' || value === 'ignore') return value;
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) fail(option, `must be a file descriptor (a non-negative integer), got ${value}`, 'range');
    return value;
  }
  return fail(option, `must be 'pipe', 'inherit', 'ignore' or a file descriptor, got ${describe(value)}`);
}

/** `args`: an array of strings without NUL bytes (checked one by one only to name a bad one). */
export function validateArgs(value: unknown): string[] {
  return checkArray('args', value, 'an array of strings', (a, i) => (isCString(a, true) ? a : checkCString(`args[${i}]`, a, { allowEmpty: true })));
}

/**
 * `env`: an object of strings, as one flat list of keys and values in turn ({@link EnvList});
 * undefined values are left out. One pass, each string looked at once: it runs on every
 * spawn, for environments of thousands of variables too.
 */
export function validateEnv(value: unknown): EnvList {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('env', `must be an object of strings, got ${describe(value)}`);
  // Object.keys, not Object.entries: several times faster on a large (dictionary-mode)
  // object such as an environment of thousands of variables.
  const vars = value as Record<string, unknown>;
  const keys = Object.keys(vars);
  const env: string[] = new Array<string>(keys.length * 2);
  let n = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const v = vars[key];
    if (v === undefined) continue;
    if (key.length === 0 || key.includes('\0') || key.includes('=')) checkEnvKey(key);
    env[n++] = key;
    env[n++] = typeof v === 'string' && !v.includes('\0') ? v : checkCString(`env.${key}`, v, { allowEmpty: true });
  }
  env.length = n;
  return env;
}

/** Throws the error for a bad environment variable name. */
function checkEnvKey(key: string): void {
  checkCString(`env key '${key}'`, key);
  if (key.includes('=')) fail(`env`, `key '${key}' must not contain '='`, 'range');
}

/** `cwd`: an absolute path inside the sandbox. */
export function validateCwd(value: unknown): string {
  if (typeof value === 'string' && value !== '' && !value.startsWith('/')) {
    fail('cwd', `must be an absolute path inside the sandbox, got '${value}' (for a host directory without root, path.resolve() it first)`, 'range');
  }
  return checkAbsolutePath('cwd', value);
}

/** `stdio`: one value for all three streams, or one each; default 'pipe'. */
export function validateStdio(value: unknown): [StdioOption, StdioOption, StdioOption] {
  if (value === undefined) return ['pipe', 'pipe', 'pipe'];
  if (Array.isArray(value)) {
    if (value.length !== 3) fail('stdio', `as an array must have 3 entries (stdin, stdout, stderr), got ${value.length}`, 'range');
    const [stdin, stdout, stderr] = checkArray('stdio', value, 'an array', (s, i) => checkStdio(`stdio[${i}]`, s));
    return [stdin, stdout, stderr];
  }
  const one = checkStdio('stdio', value);
  return [one, one, one];
}

/** Validates user options and fills in defaults; throws TypeError/RangeError naming the option. */
export function validateOptions(given: SpawnOptions): ValidatedOptions {
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new TypeError(`spawnIsolated: options must be an object, got ${describe(given)}`);
  }
  const options = ownOptions(given);
  rejectUnknownKeys(options, KNOWN_KEYS, 'options.', HABITS);

  const command = checkCString('command', options.command);
  const argv0 = options.argv0 === undefined ? command : checkCString('argv0', options.argv0, { allowEmpty: true });
  const args = options.args === undefined ? [] : validateArgs(options.args);
  const env: EnvList = options.env === undefined ? ['PATH', DEFAULT_PATH] : validateEnv(options.env);

  const namespaces = {} as ValidatedOptions['namespaces'];
  for (const key of NAMESPACE_KEYS) namespaces[key] = checkBoolean(key, options[key], false);

  const cwd = options.cwd === undefined ? undefined : validateCwd(options.cwd);
  let hostname: string | undefined;
  if (options.hostname !== undefined) {
    hostname = checkCString('hostname', options.hostname);
    if (Buffer.byteLength(hostname) > 64) fail('hostname', 'must be at most 64 bytes (HOST_NAME_MAX)', 'range');
    if (!namespaces.uts) fail('hostname', 'needs uts: true (a host name set without a UTS namespace would change the host\'s)');
  }

  const stdio = validateStdio(options.stdio);

  const protocol = validateProtocol(options, namespaces.user);
  const identity = validateIdentity(options, namespaces.user, protocol.userNamespaceBlockFd !== undefined);
  // Installed first: the program's own filter cannot lift it (a filter can only restrict).
  const socketFilter = socketFamilyFilter(options.socketFamilyFilter, {
    net: namespaces.net,
    noNewPrivs: identity.noNewPrivs,
    keepsSysAdmin: (identity.capabilities & (1n << BigInt(capabilityNumber('CAP_SYS_ADMIN') ?? 21))) !== 0n,
  });
  if (socketFilter) identity.seccomp.unshift(socketFilter);

  return {
    command,
    argv: [argv0, ...args],
    env,
    cwd,
    hostname,
    namespaces,
    stdio,
    dieWithParent: checkBoolean('dieWithParent', options.dieWithParent, true),
    newSession: checkBoolean('newSession', options.newSession, true),
    filesystem: validateFilesystem(options, namespaces),
    identity,
    limits: validateLimits(options),
    network: validateNetwork(options, namespaces),
    protocol,
  };
}
