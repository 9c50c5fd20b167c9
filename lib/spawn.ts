/** spawnIsolated: validate, compile, clone, and hand back a typed handle or a typed error. */
import type { NativeExitStatus, NativeFailure, NativeSpawned } from '../types/native';
import { binding } from './binding';
import { describeErrno, IsolationError } from './errors';
import { validateOptions, type SpawnOptions, type ValidatedOptions } from './options';
import { compilePlan, type SpawnPlan } from './plan';
import { initExitStatus, initProgramPid } from './init';
import { IsolatedProcess } from './process';
import { prepareSandbox } from './limits';
import { withNetwork } from './network';
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
};

const HINTS: Record<string, string> = {
  clone: 'the kernel refused a namespace; `nsjail-node doctor` tells which ones this host allows',
  clone3: 'the kernel refused a namespace; `nsjail-node doctor` tells which ones this host allows',
};

function toError(failure: NativeFailure, plan: SpawnPlan): IsolationError {
  if (failure.where === 'child') {
    if (failure.step === -1) {
      return new IsolationError({
        errno: failure.errno,
        step: 'execve',
        syscall: 'execve',
        path: plan.native.execCandidates[failure.candidate] ?? plan.native.execCandidates[0],
      });
    }
    const label = failure.step >= 0 ? plan.labels[failure.step] : FIXED_STEPS[failure.step];
    const hint = (label as StepLabel | undefined)?.hints?.[describeErrno(failure.errno).code];
    return new IsolationError({ errno: failure.errno, ...(label ?? { step: `step ${failure.step}`, syscall: 'unknown' }), hint });
  }
  if (failure.where === 'stdio') {
    return new IsolationError({ errno: failure.errno, step: `stdio[${failure.step}]`, syscall: failure.syscall });
  }
  if (failure.where === 'parent-setup') {
    const label = plan.parentLabels[failure.step] ?? { step: 'id-maps', syscall: failure.syscall };
    const helper = failure.candidate >= 0 ? `${failure.syscall} exited with status ${failure.candidate}; ` : '';
    const hint = label.hints?.[describeErrno(failure.errno).code];
    return new IsolationError({ errno: failure.errno, step: label.step, syscall: failure.syscall, path: label.path, hint: helper || hint ? `${helper}${hint ?? ''}` : undefined });
  }
  // An unprivileged caller can create the other namespaces only inside a new user namespace.
  const needsUserNamespace = failure.errno === 1 && failure.syscall.startsWith('clone') && (plan.native.cloneFlags & binding.constants.CLONE_NEWUSER) === 0 && process.geteuid?.() !== 0;
  const hint = needsUserNamespace
    ? 'without root, new namespaces need a user namespace too: add user: true'
    : failure.errno === 1 || failure.errno === 22 ? HINTS[failure.syscall] : undefined;
  return new IsolationError({ errno: failure.errno, step: failure.syscall, syscall: failure.syscall, hint });
}

/** A spawn under way: validated options, the limits' control, and the exit to come. */
interface Launch {
  validated: ValidatedOptions;
  control: ReturnType<typeof prepareSandbox>['control'];
  exited: Promise<NativeExitStatus | null>;
  onExit: (status: NativeExitStatus | null) => void;
}

function launch(options: SpawnOptions): Launch {
  // Limits: the aborted-signal check and the cgroup (created now, joined by the child).
  const { options: validated, control } = prepareSandbox(validateOptions(options));
  let onExit!: (status: NativeExitStatus | null) => void;
  const exited = new Promise<NativeExitStatus | null>((resolve) => (onExit = resolve));
  return { validated, control, exited, onExit };
}

/** The handle for a successful spawn, or the IsolationError for a failed one. */
function handleFor(l: Launch, plan: SpawnPlan, result: NativeSpawned | { error: NativeFailure }): IsolatedProcess {
  if ('error' in result) {
    l.control.abandon();
    throw toError(result.error, plan);
  }
  // With init, the program's pid and exact status come from init's status pipe (lib/init.ts);
  // the pid is read now, before init may reap the program.
  const statusFd = result.statusFd;
  const programPid = statusFd >= 0 ? initProgramPid(statusFd, result.child.pid) : undefined;
  const programExited = statusFd >= 0 ? l.exited.then((raw) => initExitStatus(statusFd, raw)) : l.exited;
  return new IsolatedProcess(result.child, result.stdio, programExited, l.control, programPid);
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
  return spawnOnThisThread(launch(options));
}

/** Clone on the calling thread, with the network's joins and veth prepared around it. */
function spawnOnThisThread(l: Launch): IsolatedProcess {
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
  }
  return handleFor(l, plan, result);
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
    const l = launch(options);
    if (l.validated.network.join.length > 0 || l.validated.network.veth !== undefined) {
      return Promise.resolve({ child: spawnOnThisThread(l) });
    }
    const plan = planFor(l);
    return new Promise((resolve, reject) => {
      binding.spawnAsync(plan.native, l.onExit, (result) => {
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
  } catch (e) {
    return Promise.reject(e);
  }
}
