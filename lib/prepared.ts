/**
 * prepareSandbox: options validated and compiled once (the plan, the seccomp programs, the
 * addon's parsed copy of the plan), spawned many times with only what varies between runs.
 */
import type { NativePreparedPlan, NativeRun, NativeStdio } from '../types/native';
import { binding } from './binding';
import { LIMIT_OPTION_KEYS, validateLimits, type Limits, type LimitOptions, type ValidatedLimits } from './limits';
import {
  CORE_OPTION_KEYS, validateArgs, validateCwd, validateOptions, validateStdio,
  type EnvList, type SpawnOptions, type StdioOption, type ValidatedOptions,
} from './options';
import { FILESYSTEM_OPTION_KEYS } from './filesystem';
import { IDENTITY_OPTION_KEYS } from './identity';
import { NETWORK_OPTION_KEYS, validateNetwork } from './network';
import { PROTOCOL_OPTION_KEYS } from './protocol';
import { compilePlan, execCandidates, packEnv, packStrings, pathVariable, stdioFor, type SpawnPlan } from './plan';
import type { IsolatedProcess } from './process';
import { runToEnd, type RunOptions, type RunResult } from './run';
import {
  handleFor, launch, spawnLaunchedAsync, spawnOnThisThread,
  type ErrorContext, type Launch, type Spawned,
} from './spawn';
import type { StepLabel } from './steps';
import { checkCString, checkObject, describe, isCString, ownOptions, rejectUnknownKeys } from './validate';

/**
 * What may differ between the runs of a {@link PreparedSandbox}; everything else is fixed
 * by the options given to {@link prepareSandbox}.
 */
export interface SandboxRun {
  /** Arguments after argv[0], instead of the prepared `args`. */
  args?: readonly string[];
  /** argv[0] as the program sees it, instead of the prepared one. */
  argv0?: string;
  /**
   * Variables added to the prepared environment, replacing those of the same name; a
   * variable given as `undefined` is removed from it for this run.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Standard streams for this run (see {@link SpawnOptions.stdio}); default: the prepared options' `stdio`. */
  stdio?: StdioOption | readonly [StdioOption, StdioOption, StdioOption];
  /** Working directory inside the sandbox for this run (absolute). */
  cwd?: string;
  /** See {@link LimitOptions.timeout}. */
  timeout?: number;
  /** See {@link LimitOptions.killSignal}. */
  killSignal?: NodeJS.Signals | number;
  /** See {@link LimitOptions.signal}. */
  signal?: AbortSignal;
  /** See {@link LimitOptions.forceKillAfter}. */
  forceKillAfter?: number;
  /** The limit that may vary between runs: `wallTime` (the others shape the sandbox's cgroup and plan). */
  limits?: Pick<Limits, 'wallTime'>;
}

/** What {@link PreparedSandbox.run} takes: a run's differences and runIsolated's collecting options. */
export interface SandboxRunToEnd extends Omit<SandboxRun, 'stdio'>, Pick<RunOptions, 'maxBuffer' | 'input' | 'encoding'> {}

const RUN_KEYS: readonly string[] = ['args', 'argv0', 'env', 'stdio', 'cwd', 'timeout', 'killSignal', 'signal', 'forceKillAfter', 'limits'];
const RUN_TO_END_KEYS: readonly string[] = [...RUN_KEYS.filter((k) => k !== 'stdio'), 'maxBuffer', 'input', 'encoding'];
const FIXED = 'is fixed when the sandbox is prepared: prepareSandbox() another sandbox for a different value';
const FIXED_HINTS: Readonly<Record<string, string>> = Object.fromEntries(
  [...CORE_OPTION_KEYS, ...FILESYSTEM_OPTION_KEYS, ...IDENTITY_OPTION_KEYS, ...LIMIT_OPTION_KEYS, ...NETWORK_OPTION_KEYS]
    .filter((key) => !RUN_KEYS.includes(key))
    .map((key) => [key, FIXED]),
);
const RUN_LIMIT_HINTS: Readonly<Record<string, string>> = Object.fromEntries(
  ['memory', 'memorySwap', 'pids', 'cpu', 'cpuTime', 'rlimits'].map((key) => [key, FIXED]),
);

/** A validation error of a run, named as the run's option rather than spawnIsolated's. */
function asRunError(e: unknown, name: string): unknown {
  if (!(e instanceof TypeError || e instanceof RangeError)) return e;
  if (!e.message.startsWith('spawnIsolated: ')) return e;
  const message = `${name}: ${e.message.slice('spawnIsolated: '.length).replace(/\boptions\./g, 'run.')}`;
  if (message === e.message) return e;
  return e instanceof RangeError ? new RangeError(message) : new TypeError(message);
}

/** A run's differences, validated. */
interface ResolvedRun {
  argv: string[];
  /** The variables set for this run (checked; keys and values in turn), and those removed. */
  envSet: string[];
  envRemoved: string[];
  stdio: [StdioOption, StdioOption, StdioOption];
  cwd: string | undefined;
  limits: ValidatedLimits;
}

/** The plan compiled once, the addon's parsed copy of it, and what a run changes in it. */
interface Compiled {
  plan: SpawnPlan;
  native: NativePreparedPlan;
  /** cgroup.procs files per run: how many join steps the plan starts with (they get each run's paths). */
  cgroupJoins: number;
  /** The prepared argv, packed at its first use. */
  argv?: Buffer;
}

/**
 * A sandbox configuration validated and compiled once by {@link prepareSandbox}, to spawn
 * many times. Each spawn is a sandbox of its own, as one from spawnIsolated with the same
 * options would be: new namespaces, its own cgroup (when limits ask for one), its own host id
 * (a root caller's user namespace), its own network links; only the validation of the
 * options and the compilation of the plan are done once.
 */
export class PreparedSandbox {
  readonly #options: ValidatedOptions;
  readonly #envPacked: Buffer;
  readonly #envKeys: Set<string>;
  /** The plan is compiled once (at prepare, or with a cgroup at the first spawn) where no run needs its own. */
  readonly #compiledOnce: boolean;
  #compiled: Compiled | null = null;
  #closed = false;

  /** The network options as given, when a veth link is made per spawn: checked against the host again each time. */
  readonly #vethOptions: SpawnOptions | undefined;

  /** @internal Use {@link prepareSandbox}. */
  constructor(options: ValidatedOptions, given?: SpawnOptions) {
    this.#options = options;
    this.#vethOptions = options.network.veth !== undefined && given !== undefined ? { ...given } : undefined;
    this.#envPacked = packEnv(options.env);
    this.#envKeys = new Set(options.env.filter((_, i) => i % 2 === 0));
    const { identity, network } = options;
    // Plans that hold per-spawn resources other than the cgroup (a host id and its idmapped
    // trees, namespaces joined or a veth link made for each spawn) or whose init carries the
    // argv are compiled for each spawn, from the options validated here. (A namespace to join
    // is opened on the host for each spawn: compiled once, its path would be looked up by the
    // child, inside the sandbox it has set up by then.)
    this.#compiledOnce = !identity.wantsHostId && !identity.init && network.join.length === 0 && network.userAfterSetup === undefined && network.veth === undefined;
    if (this.#compiledOnce && options.limits.cgroup === null) this.#compiled = this.#compile(options);
  }

  /**
   * Starts the program once more, as {@link spawnIsolated} would with the prepared options
   * and this run's differences. Throws TypeError/RangeError for a bad `run` (naming it, e.g.
   * `run.args[2]`) and IsolationError as spawnIsolated does.
   */
  spawn(run: SandboxRun = {}): IsolatedProcess {
    return this.#spawn(run, 'PreparedSandbox.spawn');
  }

  #spawn(run: SandboxRun, name: string): IsolatedProcess {
    const r = this.#resolve(run, RUN_KEYS, name);
    const l = launch(this.#launchOptions(r));
    const compiled = this.#compiledFor(l);
    if (compiled === null) return spawnOnThisThread(this.#withEnv(l, r));
    let native!: NativeRun;
    let result: ReturnType<typeof binding.spawnPrepared>;
    try {
      native = this.#nativeRun(compiled, r, l);
      result = binding.spawnPrepared(compiled.native, native, l.onExit);
    } catch (e) {
      l.control.abandon();
      throw e;
    }
    return handleFor(l, () => this.#errorContext(compiled, r, native), result);
  }

  /**
   * Like {@link spawn}, with clone and the sandbox's set-up on the library's spawner threads,
   * as {@link spawnIsolatedAsync}.
   */
  spawnAsync(run: SandboxRun = {}): Promise<Spawned> {
    try {
      const r = this.#resolve(run, RUN_KEYS, 'PreparedSandbox.spawnAsync');
      const l = launch(this.#launchOptions(r));
      const compiled = this.#compiledFor(l);
      if (compiled === null) return spawnLaunchedAsync(this.#withEnv(l, r));
      return new Promise((resolve, reject) => {
        try {
          const native = this.#nativeRun(compiled, r, l);
          binding.spawnPreparedAsync(compiled.native, native, l.onExit, (result) => {
            try {
              if ('thrown' in result) {
                l.control.abandon();
                throw result.thrown;
              }
              resolve({ child: handleFor(l, () => this.#errorContext(compiled, r, native), result) });
            } catch (e) {
              reject(e);
            }
          });
        } catch (e) {
          // Refused before it was queued: no callback will come.
          l.control.abandon();
          reject(e);
        }
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Runs the program to its end and collects its output, as {@link runIsolated} does with
   * the prepared options and this run's differences.
   */
  run(run: SandboxRunToEnd & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
  run(run?: SandboxRunToEnd): Promise<RunResult<string>>;
  async run(run: SandboxRunToEnd = {}): Promise<RunResult<string | Buffer>> {
    const checked = this.#checkRun(run, RUN_TO_END_KEYS, 'PreparedSandbox.run');
    const { maxBuffer, input, encoding, ...rest } = checked as SandboxRunToEnd;
    return runToEnd({ maxBuffer, input, encoding }, (stdio) => this.#spawn({ ...rest, stdio }, 'PreparedSandbox.run'), 'PreparedSandbox.run');
  }

  /**
   * Releases the compiled plan; later spawns throw. Sandboxes already started are not
   * affected (each holds what it needs until its exit).
   */
  close(): void {
    this.#closed = true;
    this.#compiled = null;
  }

  #checkRun(run: unknown, keys: readonly string[], name: string): SandboxRun {
    if (this.#closed) throw new Error(`${name}: this prepared sandbox is closed`);
    if (run === null || typeof run !== 'object' || Array.isArray(run)) throw new TypeError(`${name}: run must be an object, got ${describe(run)}`);
    const own = ownOptions(run);
    try {
      rejectUnknownKeys(own, keys, 'options.', FIXED_HINTS);
    } catch (e) {
      throw asRunError(e, name);
    }
    return own as SandboxRun;
  }

  /** Validates a run's differences (each only when given) against the prepared options. */
  #resolve(runOptions: SandboxRun, keys: readonly string[], name: string): ResolvedRun {
    const run = this.#checkRun(runOptions, keys, name);
    const o = this.#options;
    try {
      let argv = o.argv;
      if (run.args !== undefined || run.argv0 !== undefined) {
        const argv0 = run.argv0 === undefined ? o.argv[0] : checkCString('argv0', run.argv0, { allowEmpty: true });
        argv = [argv0, ...(run.args === undefined ? o.argv.slice(1) : validateArgs(run.args))];
      }
      const envSet: string[] = [];
      const envRemoved: string[] = [];
      if (run.env !== undefined) {
        const vars = checkObject('env', run.env) as Record<string, unknown>;
        for (const key of Object.keys(vars)) {
          const value = vars[key];
          if (!isCString(key)) checkCString(`env key '${key}'`, key);
          if (key.includes('=')) throw new RangeError(`spawnIsolated: options.env key '${key}' must not contain '='`);
          if (value === undefined) {
            envRemoved.push(key);
            continue;
          }
          envSet.push(key, isCString(value, true) ? value : checkCString(`env.${key}`, value, { allowEmpty: true }));
        }
      }
      return {
        argv,
        envSet,
        envRemoved,
        stdio: run.stdio === undefined ? o.stdio : validateStdio(run.stdio),
        cwd: run.cwd === undefined ? o.cwd : validateCwd(run.cwd),
        limits: this.#runLimits(run),
      };
    } catch (e) {
      throw asRunError(e, name);
    }
  }

  /** The prepared limits with this run's timers and signal. */
  #runLimits(run: SandboxRun): ValidatedLimits {
    const base = this.#options.limits;
    const { timeout, killSignal, signal, forceKillAfter, limits } = run;
    if (timeout === undefined && killSignal === undefined && signal === undefined && forceKillAfter === undefined && limits === undefined) return base;
    if (limits !== undefined) rejectUnknownKeys(checkObject('limits', limits), ['wallTime'], 'options.limits.', RUN_LIMIT_HINTS);
    const v = validateLimits({ timeout, killSignal, signal, forceKillAfter, limits: limits === undefined ? undefined : { wallTime: limits.wallTime } } as LimitOptions);
    return {
      ...base,
      timeoutMs: timeout !== undefined ? v.timeoutMs : base.timeoutMs,
      killSignal: killSignal !== undefined ? v.killSignal : base.killSignal,
      signal: signal !== undefined ? v.signal : base.signal,
      forceKillAfterMs: forceKillAfter !== undefined ? v.forceKillAfterMs : base.forceKillAfterMs,
      wallTimeMs: limits?.wallTime !== undefined ? v.wallTimeMs : base.wallTimeMs,
    };
  }

  /** The options the run's supervision is armed with (its env is only needed on the slow path: #withEnv). */
  #launchOptions(r: ResolvedRun): ValidatedOptions {
    // A veth link's addresses are checked against the host's interfaces as they are now.
    const network = this.#vethOptions ? validateNetwork(this.#vethOptions, this.#options.namespaces) : this.#options.network;
    return { ...this.#options, argv: r.argv, stdio: r.stdio, cwd: r.cwd, limits: r.limits, network };
  }

  /** The run's whole environment. */
  #envList(r: ResolvedRun): EnvList {
    if (r.envSet.length === 0 && r.envRemoved.length === 0) return this.#options.env;
    const vars = new Map<string, string>();
    const env = this.#options.env;
    for (let i = 0; i < env.length; i += 2) vars.set(env[i], env[i + 1]);
    for (const key of r.envRemoved) vars.delete(key);
    for (let i = 0; i < r.envSet.length; i += 2) vars.set(r.envSet[i], r.envSet[i + 1]);
    return [...vars].flat();
  }

  #withEnv(l: Launch, r: ResolvedRun): Launch {
    l.validated = { ...l.validated, env: this.#envList(r) };
    return l;
  }

  /** The plan for a launched run, compiled now if this is its first; null: compile per spawn. */
  #compiledFor(l: Launch): Compiled | null {
    if (this.#closed) {
      l.control.abandon();
      throw new Error('PreparedSandbox: this prepared sandbox is closed');
    }
    if (!this.#compiledOnce) return null;
    try {
      // With a cgroup, the first spawn's cgroup.procs files give the join steps' shape (the
      // rest is the prepared options', not this run's: its cwd is a run's difference).
      this.#compiled ??= this.#compile({ ...this.#options, limits: { ...this.#options.limits, cgroupProcs: l.validated.limits.cgroupProcs } });
    } catch (e) {
      l.control.abandon();
      throw e;
    }
    // A run whose cgroup has other hierarchies than the first (it cannot be patched): per spawn.
    return l.validated.limits.cgroupProcs.length === this.#compiled.cgroupJoins ? this.#compiled : null;
  }

  #compile(options: ValidatedOptions): Compiled {
    const plan = compilePlan(options);
    const { argv: _argv, envp: _envp, stdio: _stdio, ...fixed } = plan.native;
    // Each run packs its own: the plan kept for error messages holds no view of the scratch.
    const kept: SpawnPlan = { ...plan, native: { ...plan.native, argv: Buffer.alloc(0), envp: Buffer.alloc(0) } };
    return { plan: kept, native: binding.preparePlan(fixed), cgroupJoins: plan.cgroupJoins };
  }

  /** The addon's part of a run: packed argv and environment, stdio, and the steps it changes. */
  #nativeRun(compiled: Compiled, r: ResolvedRun, l: Launch): NativeRun {
    const o = this.#options;
    let envp = this.#envPacked;
    let path: string | undefined;
    if (r.envSet.length > 0 || r.envRemoved.length > 0) {
      // Only added variables: appended to the prepared ones as they are, without repacking them.
      const replaces = r.envRemoved.length > 0 || r.envSet.some((key, i) => i % 2 === 0 && this.#envKeys.has(key));
      envp = replaces ? packEnv(this.#envList(r), 'envp') : packEnv(r.envSet, 'envp', this.#envPacked);
      if (r.envRemoved.includes('PATH') || r.envSet.some((key, i) => i % 2 === 0 && key === 'PATH')) path = pathVariable(this.#envList(r));
    }
    const run: NativeRun = {
      // A run's own strings are packed into the reused scratch: the run goes to the addon at once.
      argv: r.argv === o.argv ? (compiled.argv ??= packStrings(o.argv)) : packStrings(r.argv, 'argv'),
      envp,
      stdio: r.stdio.map((s, fd) => stdioFor(s, fd)) as [NativeStdio, NativeStdio, NativeStdio],
    };
    // A bare command is looked up on this run's PATH.
    if (path !== undefined && !o.command.includes('/')) run.runCandidates = execCandidates(o.command, ['PATH', path]);
    const stepPaths = l.validated.limits.cgroupProcs.map((file, index) => ({ index, path: file }));
    if (r.cwd !== o.cwd && r.cwd !== undefined) {
      if (compiled.plan.cwdStep.present) stepPaths.push({ index: compiled.plan.cwdStep.index, path: r.cwd });
      else run.chdirAt = { index: compiled.plan.cwdStep.index, path: r.cwd };
    }
    if (stepPaths.length > 0) run.stepPaths = stepPaths;
    return run;
  }

  /** The labels and exec details of a failed run, as its plan would have had them. */
  #errorContext(compiled: Compiled, r: ResolvedRun, run: NativeRun): ErrorContext {
    const plan = compiled.plan;
    const labels: StepLabel[] = [...plan.labels];
    for (const { index, path } of run.stepPaths ?? []) labels[index] = { ...labels[index], path };
    if (run.chdirAt) labels.splice(run.chdirAt.index, 0, { step: 'chdir', syscall: 'chdir', path: run.chdirAt.path });
    const pathVar = run.runCandidates ? pathVariable(this.#envList(r)) : plan.exec.pathVar;
    return {
      labels,
      parentLabels: plan.parentLabels,
      exec: { ...plan.exec, pathVar },
      native: { execCandidates: run.runCandidates ?? plan.native.execCandidates, cloneFlags: plan.native.cloneFlags, init: plan.native.init },
    };
  }
}

/**
 * Validates and compiles `options` once and returns a {@link PreparedSandbox} that starts
 * the program as many times as asked, each time in a sandbox of its own, with only what
 * varies between runs given per run ({@link SandboxRun}: argv, environment additions,
 * stdio, cwd, timers). For workloads that start the same configuration again and again (a
 * judge's test cases, a test harness): each spawn skips validating the options and
 * compiling the plan. Throws TypeError/RangeError for bad options, as spawnIsolated does.
 *
 * @example
 * const box = prepareSandbox({ command: '/usr/bin/solution', pid: true, net: true, limits: { memory: 256 << 20 } });
 * for (const input of tests) console.log((await box.run({ input, timeout: 2000 })).stdout);
 */
export function prepareSandbox(options: SpawnOptions): PreparedSandbox {
  const validated = validateOptions(options);
  // The protocol's fds are one spawn's: info's is closed after it, the block fds are read up.
  for (const key of PROTOCOL_OPTION_KEYS) {
    if (options[key] !== undefined) throw new TypeError(`prepareSandbox: options.${key} is for a single spawn (its file descriptor is used up by it): use spawnIsolated`);
  }
  return new PreparedSandbox(validated, options);
}
