/** spawnIsolated: validate, compile, clone, and hand back a typed handle or a typed error. */
import type { NativeExitStatus, NativeFailure } from '../types/native';
import { binding } from './binding';
import { describeErrno, IsolationError } from './errors';
import { validateOptions, type SpawnOptions } from './options';
import { compilePlan, type SpawnPlan } from './plan';
import { initExitStatus } from './init';
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

/**
 * Starts `options.command` in new namespaces and returns its handle.
 *
 * Throws TypeError/RangeError for bad options and {@link IsolationError} when the sandbox
 * cannot be set up or the program cannot be executed; in both cases no process is left.
 *
 * @example
 * const { pid, exitCode } = await spawnIsolated({ command: '/bin/true', pid: true, net: true, mount: true, root: dir });
 */
export function spawnIsolated(options: SpawnOptions): IsolatedProcess {
  // Limits: the aborted-signal check and the cgroup (created now, joined by the child).
  const { options: validated, control } = prepareSandbox(validateOptions(options));
  let resolveExit!: (status: NativeExitStatus | null) => void;
  const exited = new Promise<NativeExitStatus | null>((resolve) => (resolveExit = resolve));
  let plan!: SpawnPlan;
  let result: ReturnType<typeof binding.spawn>;
  try {
    // Network: namespaces to join and the veth link, ready before clone, gone after exit.
    result = withNetwork(validated.network, exited, () => {
      plan = compilePlan(validated);
      return binding.spawn(plan.native, (status) => resolveExit(status));
    });
  } catch (e) {
    control.abandon();
    throw e;
  }
  if ('error' in result) {
    control.abandon();
    throw toError(result.error, plan);
  }
  // With init, the program's exact status comes from init's status pipe (lib/init.ts).
  const statusFd = result.statusFd;
  const programExited = statusFd >= 0 ? exited.then((raw) => initExitStatus(statusFd, raw)) : exited;
  return new IsolatedProcess(result.child, result.stdio, programExited, control);
}
