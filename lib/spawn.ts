/** spawnIsolated: validate, compile, clone, and hand back a typed handle or a typed error. */
import type { NativeExitStatus, NativeFailure, NativeSpawned } from '../types/native';
import { binding } from './binding';
import { describeErrno, IsolationError } from './errors';
import { explainExecFailure } from './exec-diagnosis';
import { deliverExit } from './exits';
import { validateOptions, type SpawnOptions, type ValidatedOptions } from './options';
import { compilePlan, type SpawnPlan } from './plan';
import { initExitStatus, initProgramPid } from './init';
import { IsolatedProcess } from './process';
import { armSandbox, type SandboxControl } from './supervision';
import { allocateHostId, closePrepared, prepareIdmappedTrees, type PreparedTrees } from './hostids';
import { withHostId } from './identity';
import { withNetwork } from './network-host';
import type { StepLabel } from './steps';

// Steps the child runs around the plan's own (src-native/child_plan.h: kStep*).
const FIXED_STEPS: Record<number, { step: string; syscall: string }> = {
  [-1]: { step: 'execve', syscall: 'execve' },
  [-2]: { step: 'stdio', syscall: 'dup2' },
  [-3]: { step: 'signals', syscall: 'sigaction' },
  [-4]: { step: 'close-fds', syscall: 'close_range' },
  [-5]: { step: 'die-with-parent', syscall: 'prctl' },
  [-6]: { step: 'setsid', syscall: 'setsid' },
  [-7]: { step: 'id-maps', syscall: 'read' }, // waiting for the parent-written id maps
  [-8]: { step: 'init', syscall: 'execveat' },
  [-9]: { step: 'seccomp', syscall: 'seccomp' }, // installed by init for the program
  [-10]: { step: 'init-fork', syscall: 'fork' },
  [-11]: { step: 'lock-file', syscall: 'fcntl' }, // init taking options.lockFiles[candidate]
};

const HINTS: Record<string, string> = {
  clone: 'the kernel refused a namespace; `nsjail-node doctor` tells which ones this host allows',
  clone3: 'the kernel refused a namespace; `nsjail-node doctor` tells which ones this host allows',
};

// clone's EAGAIN: fork(2) says which limits. (EMFILE's hint is IsolationError's own.)
const CLONE_EAGAIN_HINT =
  "no process could be created: this user's process limit (RLIMIT_NPROC, `ulimit -u`), the pids cgroup of this process, or the system's (kernel.threads-max, pid_max) is reached";

/** What naming a failed spawn needs of its plan (a prepared sandbox builds it only on failure). */
export type ErrorContext = Pick<SpawnPlan, 'labels' | 'parentLabels' | 'exec'> & {
  native: Pick<SpawnPlan['native'], 'execCandidates' | 'cloneFlags' | 'init'>;
};

/** Lock file `i` of a plan, as init's argv has it (lib/init.ts: after the filters, their count first). */
function lockFileOf(plan: ErrorContext, i: number): string | undefined {
  const argv = plan.native.init?.argv;
  return argv !== undefined && i >= 0 && i < Number(argv[3]) ? argv[4 + i] : undefined;
}

/** The IsolationError for a spawn that failed before exec, named by the plan's labels. */
export function toError(failure: NativeFailure, plan: ErrorContext): IsolationError {
  const code = describeErrno(failure.errno).code;
  if (failure.where === 'child') {
    if (failure.step === -1) {
      const candidates = plan.native.execCandidates;
      const failed = candidates[failure.candidate] ?? candidates[0];
      const { command, pathVar, view } = plan.exec;
      const named = explainExecFailure(view, command, candidates, pathVar, failed, code);
      return new IsolationError({ errno: failure.errno, step: 'execve', syscall: 'execve', ...named });
    }
    const whole: StepLabel | undefined = failure.step === -11
      ? { ...FIXED_STEPS[-11], path: lockFileOf(plan, failure.candidate) }
      : failure.step >= 0 ? plan.labels[failure.step] : FIXED_STEPS[failure.step];
    const label = whole?.parts?.[failure.candidate] ?? whole;
    const root = plan.exec.view.root;
    const inRoot = label?.step === 'chdir' && root !== undefined ? `the path is looked up inside the root ${root}` : undefined;
    const hint = (label as StepLabel | undefined)?.hints?.[code] ?? inRoot;
    return new IsolationError({ errno: failure.errno, ...(label ?? { step: `step ${failure.step}`, syscall: 'unknown' }), hint });
  }
  if (failure.where === 'stdio') {
    return new IsolationError({ errno: failure.errno, step: `stdio[${failure.step}]`, syscall: failure.syscall });
  }
  if (failure.where === 'parent-setup') {
    const label = plan.parentLabels[failure.step] ?? { step: 'id-maps', syscall: failure.syscall };
    const helper = failure.candidate >= 0 ? `${failure.syscall} exited with status ${failure.candidate}; ` : '';
    const hint = label.hints?.[code];
    return new IsolationError({ errno: failure.errno, step: label.step, syscall: failure.syscall, path: label.path, hint: helper || hint ? `${helper}${hint ?? ''}` : undefined });
  }
  // An unprivileged caller can create the other namespaces only inside a new user namespace.
  const needsUserNamespace = failure.errno === 1 && failure.syscall.startsWith('clone') && (plan.native.cloneFlags & binding.constants.CLONE_NEWUSER) === 0 && process.geteuid?.() !== 0;
  const hint = needsUserNamespace
    ? 'without root, new namespaces need a user namespace too: add user: true'
    : failure.errno === 1 || failure.errno === 22 ? HINTS[failure.syscall]
    : code === 'EAGAIN' && failure.syscall.startsWith('clone') ? CLONE_EAGAIN_HINT : undefined;
  return new IsolationError({ errno: failure.errno, step: failure.syscall, syscall: failure.syscall, hint });
}

/** A spawn under way: validated options, the limits' control, and the exit to come. */
export interface Launch {
  validated: ValidatedOptions;
  control: SandboxControl;
  exited: Promise<NativeExitStatus | null>;
  onExit: (status: NativeExitStatus | null) => void;
  /** Idmapped trees for the child to attach: closed here once the spawn has returned. */
  prepared: PreparedTrees | undefined;
}

/**
 * A root caller's sandbox with a user namespace gets a host id of its own (lib/hostids.ts),
 * released with the sandbox, and its writable binds and root become idmapped trees.
 */
function onHostId(v: ValidatedOptions, control: SandboxControl): { validated: ValidatedOptions; prepared?: PreparedTrees } {
  if (!v.identity.wantsHostId) return { validated: v };
  const lease = allocateHostId();
  control.onRelease(() => lease.release());
  const fsv = v.filesystem;
  const prepared = fsv.mountNamespace && (fsv.mounts !== undefined || fsv.root !== undefined)
    ? prepareIdmappedTrees(fsv.mounts, fsv.root, lease.id)
    : undefined;
  return { validated: { ...v, identity: withHostId(v.identity, lease.id), filesystem: { ...fsv, prepared } }, prepared };
}

/** Arms the sandbox's supervision for validated options: its own cgroup, host id and exit promise. */
export function launch(validated: ValidatedOptions): Launch {
  // Limits: the aborted-signal check and the cgroup (created now, joined by the child).
  const sandbox = armSandbox(validated);
  const control = sandbox.control;
  let hosted: ReturnType<typeof onHostId>;
  try {
    hosted = onHostId(sandbox.options, control);
  } catch (e) {
    control.abandon();
    throw e;
  }
  let onExit!: (status: NativeExitStatus | null) => void;
  // One exit per loop iteration (lib/exits.ts): several at once would each start a spawn in it.
  const exited = new Promise<NativeExitStatus | null>((resolve) => (onExit = (status) => deliverExit(() => resolve(status))));
  return { validated: hosted.validated, control, exited, onExit, prepared: hosted.prepared };
}

/** The handle for a successful spawn, or the IsolationError for a failed one. */
export function handleFor(l: Launch, plan: ErrorContext | (() => ErrorContext), result: NativeSpawned | { error: NativeFailure }): IsolatedProcess {
  if ('error' in result) {
    l.control.abandon();
    throw toError(result.error, typeof plan === 'function' ? plan() : plan);
  }
  // With init, the program's pid and exact status come from init's status pipe (lib/init.ts);
  // the pid is read now, before init may reap the program.
  const statusFd = result.statusFd;
  const programPid = statusFd >= 0 ? initProgramPid(statusFd, result.child.pid) : undefined;
  const programExited = statusFd >= 0 ? l.exited.then((raw) => initExitStatus(statusFd, raw)) : l.exited;
  // The stdio fds pass from the addon to their sockets here (statusFd stays the addon's: lib/init.ts).
  binding.releaseFds(result.stdio);
  const handle = new IsolatedProcess(result.child, result.stdio, programExited, l.control, programPid);
  if (result.namespaceIds) handle.namespaceIds = Object.freeze({ ...result.namespaceIds });
  return handle;
}

/** Compiles the plan; on a failure here the cgroup made for the sandbox is removed again. */
function planFor(l: Launch): SpawnPlan {
  try {
    return compilePlan(l.validated);
  } catch (e) {
    l.control.abandon();
    throw e;
  }
}

/**
 * Starts `options.command` in new namespaces and returns its handle.
 *
 * Throws TypeError/RangeError for bad options and {@link IsolationError} when the sandbox
 * cannot be set up or the program cannot be executed; in both cases no process is left.
 * The call returns once the program has been exec'd: the event loop waits while the child
 * sets the sandbox up (about a millisecond; see {@link spawnIsolatedAsync}).
 *
 * @example
 * const { pid, exitCode } = await spawnIsolated({ command: '/bin/true', pid: true, net: true, mount: true, root: dir });
 */
export function spawnIsolated(options: SpawnOptions): IsolatedProcess {
  return spawnOnThisThread(launch(validateOptions(options)));
}

/** Clone on the calling thread, with the network's joins and veth prepared around it. */
export function spawnOnThisThread(l: Launch): IsolatedProcess {
  let plan!: SpawnPlan;
  let result: ReturnType<typeof binding.spawn>;
  try {
    // Network: namespaces to join and the veth link, ready before clone, gone after exit.
    result = withNetwork(l.validated.network, l.exited, () => {
      plan = planFor(l);
      return binding.spawn(plan.native, l.onExit);
    });
  } catch (e) {
    l.control.abandon();
    throw e;
  } finally {
    closePrepared(l.prepared);
  }
  return handleFor(l, plan, result);
}

/** binding.spawnAsync; when it throws instead of queueing the spawn, the sandbox's cgroup goes. */
function spawnAsyncOrAbandon(l: Launch, plan: SpawnPlan, done: Parameters<typeof binding.spawnAsync>[2]): void {
  try {
    binding.spawnAsync(plan.native, l.onExit, done);
  } catch (e) {
    closePrepared(l.prepared);
    l.control.abandon();
    throw e;
  }
}

/** What {@link spawnIsolatedAsync} resolves with. */
export interface Spawned {
  /**
   * The handle. It is wrapped because it is itself awaitable: a promise resolved with it
   * directly would wait for the program's exit and yield its ExitStatus instead.
   */
  readonly child: IsolatedProcess;
}

/**
 * Like {@link spawnIsolated}, but clone and the child's set-up run on the library's spawner
 * threads (one per two CPUs, at most 8; not libuv's thread pool), so the event loop goes on
 * while the sandbox is set up: for servers that start many sandboxes. Resolves once the
 * program has been exec'd; rejects with the same errors.
 * Sandboxes that join existing namespaces or get a veth link are still set up on the
 * calling thread (the namespaces they use are held by it), as by spawnIsolated.
 * An `options.signal` aborted while the spawn is under way ends the sandbox as soon as the
 * spawn completes: the promise resolves with a handle whose status says `killedBy: 'abort'`
 * (one aborted before the call rejects with AbortError and starts nothing).
 *
 * @example
 * const { child } = await spawnIsolatedAsync({ command: '/bin/true', pid: true, net: true });
 * const { exitCode } = await child;
 */
export function spawnIsolatedAsync(options: SpawnOptions): Promise<Spawned> {
  try {
    return spawnValidatedAsync(validateOptions(options));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** spawnIsolatedAsync of options validated already. */
export function spawnValidatedAsync(validated: ValidatedOptions): Promise<Spawned> {
  try {
    return spawnLaunchedAsync(launch(validated));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The asynchronous spawn of a launched sandbox: its plan compiled now, clone on a spawner thread. */
export function spawnLaunchedAsync(l: Launch): Promise<Spawned> {
  if (l.validated.network.join.length > 0 || l.validated.network.veth !== undefined) {
    return Promise.resolve({ child: spawnOnThisThread(l) });
  }
  let plan: SpawnPlan;
  try {
    plan = planFor(l);
  } catch (e) {
    closePrepared(l.prepared);
    throw e;
  }
  return new Promise((resolve, reject) => {
    // The addon may refuse the plan before queueing it: then no callback comes, and the
    // cgroup and the idmapped trees made for the sandbox are released here (the throw
    // becomes the rejection).
    spawnAsyncOrAbandon(l, plan, (result) => {
      closePrepared(l.prepared);
      try {
        if ('thrown' in result) {
          l.control.abandon();
          throw result.thrown;
        }
        resolve({ child: handleFor(l, plan, result) });
      } catch (e) {
        reject(e);
      }
    });
  });
}
