/** spawnIsolated: validate, compile, clone, and hand back a typed handle or a typed error. */
import type { NativeExitStatus, NativeFailure } from '../types/native';
import { binding } from './binding';
import { IsolationError } from './errors';
import { validateOptions, type SpawnOptions } from './options';
import { compilePlan, type SpawnPlan } from './plan';
import { IsolatedProcess } from './process';

// Steps the child runs around the plan's own (src-native/child_plan.h: kStep*).
const FIXED_STEPS: Record<number, { step: string; syscall: string }> = {
  [-1]: { step: 'execve', syscall: 'execve' },
  [-2]: { step: 'stdio', syscall: 'dup2' },
  [-3]: { step: 'signals', syscall: 'sigaction' },
  [-4]: { step: 'close-fds', syscall: 'close_range' },
  [-5]: { step: 'die-with-parent', syscall: 'prctl' },
  [-6]: { step: 'setsid', syscall: 'setsid' },
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
    return new IsolationError({ errno: failure.errno, ...(label ?? { step: `step ${failure.step}`, syscall: 'unknown' }) });
  }
  if (failure.where === 'stdio') {
    return new IsolationError({ errno: failure.errno, step: `stdio[${failure.step}]`, syscall: failure.syscall });
  }
  const hint = failure.errno === 1 || failure.errno === 22 ? HINTS[failure.syscall] : undefined;
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
  const plan = compilePlan(validateOptions(options));
  let resolveExit!: (status: NativeExitStatus | null) => void;
  const exited = new Promise<NativeExitStatus | null>((resolve) => (resolveExit = resolve));
  const result = binding.spawn(plan.native, (status) => resolveExit(status));
  if ('error' in result) throw toError(result.error, plan);
  return new IsolatedProcess(result.child, result.stdio, exited);
}
