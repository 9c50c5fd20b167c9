/**
 * nsjail-node/syscalls: the raw layer under spawnIsolated, for callers who know what these
 * calls do to a multithreaded Node process. Each acts on the *calling thread or process*
 * immediately; none starts a process. Prefer spawnIsolated, which applies the same
 * operations in a fresh child where they are safe.
 *
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import { binding } from './binding';
import { IsolationError } from './errors';
import { checkCString } from './validate';
import { liveProcess, type ExitStatus } from './process';

const C = binding.constants;

/** Namespace kinds, named as in /proc/PID/ns. */
export type NamespaceKind = 'mnt' | 'uts' | 'ipc' | 'user' | 'pid' | 'net' | 'cgroup' | 'time';

/** The CLONE_NEW* flag of each namespace kind. */
export const NAMESPACE_FLAGS: Readonly<Record<NamespaceKind, number>> = Object.freeze({
  mnt: C.CLONE_NEWNS,
  uts: C.CLONE_NEWUTS,
  ipc: C.CLONE_NEWIPC,
  user: C.CLONE_NEWUSER,
  pid: C.CLONE_NEWPID,
  net: C.CLONE_NEWNET,
  cgroup: C.CLONE_NEWCGROUP,
  time: C.CLONE_NEWTIME,
});

const EINVAL = 22;
const ECHILD = 10;

function flagsOf(kinds: readonly NamespaceKind[], fn: string): number {
  if (!Array.isArray(kinds) || kinds.length === 0) throw new TypeError(`${fn}: namespaces must be a non-empty array of ${Object.keys(NAMESPACE_FLAGS).join(', ')}`);
  let flags = 0;
  for (const kind of kinds as readonly string[]) {
    const flag = (NAMESPACE_FLAGS as Readonly<Record<string, number | undefined>>)[kind];
    if (flag === undefined) throw new TypeError(`${fn}: unknown namespace '${String(kind)}' (known: ${Object.keys(NAMESPACE_FLAGS).join(', ')})`);
    flags |= flag;
  }
  return flags;
}

function threadCount(): number {
  const match = /^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) : 0;
}

const MULTITHREADED_HINT = (what: string): string =>
  `the kernel refuses ${what} to a multithreaded process, and Node always runs several threads (${threadCount()} now); ` +
  'use spawnIsolated, which does this in a fresh single-threaded child';

/**
 * unshare(2): moves the calling thread into new namespaces of the given kinds.
 *
 * What that means inside Node:
 * - `net`, `uts`, `ipc`, `cgroup`, `time`: only the calling thread (usually the main thread)
 *   moves; libuv's threadpool and V8's threads stay behind. Sockets opened from this thread
 *   afterwards are in the new network namespace. `time` and `pid` take effect only for
 *   children created afterwards.
 * - `mnt`: the calling thread gets its own copy of the mount table *and* its own root and
 *   cwd (CLONE_FS is implied); other threads keep the old ones, so fs calls served by the
 *   threadpool still see the host's mounts.
 * - `user`: always fails with EINVAL in Node, which is multithreaded; the error says so.
 *
 * @throws IsolationError with the errno (EPERM without privilege, EINVAL as above).
 */
export function unshare(namespaces: readonly NamespaceKind[]): void {
  const flags = flagsOf(namespaces, 'unshare');
  const err = binding.unshare(flags);
  if (err === 0) return;
  const hint = err === EINVAL && namespaces.includes('user') ? MULTITHREADED_HINT('a new user namespace') : undefined;
  throw new IsolationError({ errno: err, step: 'unshare', syscall: 'unshare', path: namespaces.join(','), hint }, 'unshare');
}

/**
 * setns(2): moves the calling thread into an existing namespace, named by a path such as
 * `/proc/PID/ns/net` or `/run/netns/NAME`, or by an open fd of one (or a pidfd).
 *
 * Only the calling thread moves: after `setns('/run/netns/x', 'net')` sockets created on this
 * thread live in that namespace, while the threadpool stays in the old one. Joining a `user`
 * or `mnt` namespace fails with EINVAL in a multithreaded process such as Node; the error
 * says so. `kind` restricts what the target may be (nstype); omit it to accept any.
 *
 * @throws IsolationError naming the target, with the errno.
 */
export function setns(target: string | number, kind?: NamespaceKind): void {
  if (typeof target === 'string') checkCString('target', target);
  else if (!Number.isInteger(target) || target < 0) throw new TypeError(`setns: target must be a path or a file descriptor, got ${String(target)}`);
  const nstype = kind === undefined ? 0 : flagsOf([kind], 'setns');
  const err = binding.setns(target, nstype);
  if (err === 0) return;
  const hint = err === EINVAL && (kind === 'user' || kind === 'mnt') ? MULTITHREADED_HINT(`joining a ${kind} namespace`) : undefined;
  throw new IsolationError({ errno: err, step: 'setns', syscall: 'setns', path: String(target), hint }, 'setns');
}

/**
 * chroot(2) + chdir("/"): changes the root directory of the *whole Node process* (all
 * threads share it), as the seed walkthrough does by hand. Every later path lookup of this
 * process, `require` included, resolves inside `path`. There is no way back unless an fd of
 * the old root is kept. Needs CAP_SYS_CHROOT.
 *
 * @throws IsolationError naming the path, with the errno.
 */
export function chroot(path: string): void {
  checkCString('path', path);
  const err = binding.chroot(path);
  if (err !== 0) throw new IsolationError({ errno: err, step: 'chroot', syscall: 'chroot', path }, 'chroot');
}

/**
 * Waits for a sandbox started by spawnIsolated to exit, without blocking the event loop
 * (its pidfd is watched on the loop). Other processes' pids are refused with ECHILD: this
 * library never calls waitpid(-1), so Node's child_process keeps reaping its own.
 */
export function waitpid(pid: number): Promise<ExitStatus> {
  const child = liveProcess(pid);
  if (!child) {
    return Promise.reject(new IsolationError({ errno: ECHILD, step: 'waitpid', syscall: 'waitpid', path: String(pid), hint: 'not a live sandbox of this library' }, 'waitpid'));
  }
  return child.exited;
}
