/**
 * Named network namespaces, kept as iproute2 keeps them: a bind mount of the namespace on
 * `/run/netns/NAME` (with `/run/netns` a shared mount point), so that `ip netns list`,
 * `ip netns exec NAME ...` and this library see the same ones. Everything is done with
 * unshare, mount and setns (src-native/netns.cc); `ip` is never run.
 *
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import type { NativeNetError } from '../types/native';
import { binding } from './binding';
import { IsolationError } from './errors';
import { describe, ownOptions } from './validate';

/** Where named network namespaces live (iproute2's NETNS_RUN_DIR). */
export const NETNS_DIR = '/run/netns';

const ENOENT = 2;
const EEXIST = 17;
const EINVAL = 22;
const ENOTTY = 25;

/** Checks a namespace name as iproute2 does: a file name in {@link NETNS_DIR}. */
export function checkNetnsName(fn: string, name: unknown, what = 'name'): string {
  if (typeof name !== 'string') throw new TypeError(`${fn}: ${what} must be a string, got ${describe(name)}`);
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new RangeError(`${fn}: ${what} must be a file name (not empty, '.' or '..', without '/' or NUL bytes), got '${name}'`);
  }
  if (Buffer.byteLength(name) > 255) throw new RangeError(`${fn}: ${what} must be at most 255 bytes (NAME_MAX)`);
  return name;
}

/** The path of a named network namespace: `/run/netns/NAME`. */
export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${checkNetnsName('netnsPath', name)}`;
}

/**
 * A network namespace given as a name (in {@link NETNS_DIR}) or as an absolute path such as
 * `/proc/PID/ns/net`: the path to open.
 */
export function netnsTarget(fn: string, nameOrPath: unknown, what = 'name'): string {
  if (typeof nameOrPath === 'string' && nameOrPath.startsWith('/')) {
    if (nameOrPath.includes('\0')) throw new RangeError(`${fn}: ${what} must not contain NUL bytes`);
    return nameOrPath;
  }
  return `${NETNS_DIR}/${checkNetnsName(fn, nameOrPath, what)}`;
}

function fail(fn: string, error: NativeNetError, path: string, hint?: string): never {
  throw new IsolationError({ errno: error.errno, step: error.step, syscall: error.syscall, path, hint: hint ?? (error.message || undefined) }, fn);
}

/** Options of {@link createNetns}. */
export interface CreateNetnsOptions {
  /**
   * Bring the namespace's `lo` up, so that 127.0.0.1 and ::1 work in it. Default true
   * (`ip netns add` leaves it down; `false` does the same).
   */
  loopback?: boolean;
}

/**
 * Creates a named network namespace, like `ip netns add NAME`: a new namespace whose only
 * interface is `lo`, bind-mounted on `/run/netns/NAME`. It lives until {@link deleteNetns}
 * (or `ip netns delete`), whether or not any process is in it. The first call may turn
 * `/run/netns` into a shared mount point of the host, as ip does.
 *
 * @returns the namespace's path, `/run/netns/NAME`.
 * @throws IsolationError EEXIST when the name is taken; nothing is left behind on failure.
 * @example
 * createNetns('lab');
 * try { await spawnIsolated({ command: 'ip', args: ['addr'], join: { net: 'lab' } }); }
 * finally { deleteNetns('lab'); }
 */
export function createNetns(name: string, options: CreateNetnsOptions = {}): string {
  checkNetnsName('createNetns', name);
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`createNetns: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'loopback') throw new TypeError(`createNetns: unknown option ${key}`);
  }
  const loopback = ownOptions(options).loopback ?? true;
  if (typeof loopback !== 'boolean') throw new TypeError(`createNetns: options.loopback must be a boolean, got ${describe(loopback)}`);
  const path = `${NETNS_DIR}/${name}`;
  const error = binding.netnsCreate(NETNS_DIR, path, loopback);
  if (error) {
    const hint = error.error.errno === EEXIST && error.error.step === 'netns-create' ? `a network namespace named '${name}' exists` : undefined;
    fail('createNetns', error.error, error.error.step === 'netns-dir' ? NETNS_DIR : path, hint);
  }
  return path;
}

/**
 * The named network namespaces, sorted: the entries of `/run/netns`, as `ip netns list`
 * shows them (empty when the directory does not exist).
 */
export function listNetns(): string[] {
  try {
    return fs.readdirSync(NETNS_DIR).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Deletes a named network namespace, like `ip netns delete NAME`: its bind mount is
 * detached and the file removed. The namespace itself (with its interfaces) goes when no
 * process is left in it and nothing else holds it.
 *
 * @throws IsolationError ENOENT when there is no namespace of that name.
 */
export function deleteNetns(name: string): void {
  const path = `${NETNS_DIR}/${checkNetnsName('deleteNetns', name)}`;
  const error = binding.netnsDelete(path);
  if (error) fail('deleteNetns', error.error, path, error.error.errno === ENOENT ? `no network namespace named '${name}'` : undefined);
}

/**
 * Opens a namespace file and checks its kind (an fd >= 3, close-on-exec). The fd belongs to
 * the addon: close it with `binding.closeFd` (never fs.closeSync, which in a worker warns
 * about an fd fs did not open); it is closed anyway when the environment goes away.
 * @internal
 */
export function openNamespaceFd(fn: string, step: string, path: string, nstype: number, kind: string, missingHint?: string): number {
  const opened = binding.nsOpen(path);
  if ('error' in opened) {
    const { errno, syscall } = opened.error;
    const hint = errno === ENOENT ? missingHint : errno === ENOTTY ? 'not a namespace file (a /proc/PID/ns/* file or a bind mount of one)' : undefined;
    throw new IsolationError({ errno, step, syscall, path, hint }, fn);
  }
  if (opened.nstype !== nstype) {
    binding.closeFd(opened.fd);
    throw new IsolationError({ errno: EINVAL, step, syscall: 'ioctl', path, hint: `not a ${kind} namespace` }, fn);
  }
  return opened.fd;
}

/**
 * Runs `fn` with the calling thread inside another network namespace, then moves the thread
 * back, also when `fn` throws. `nameOrPath` is a name in `/run/netns` or a path such as
 * `/proc/PID/ns/net`.
 *
 * Only the calling thread moves (setns(2) on it), and only while `fn` runs synchronously:
 * - sockets created synchronously inside `fn` stay in that namespace for their lifetime:
 *   `server.listen(port)` or `server.listen({ port })` binds at once, so a Node server
 *   created this way serves inside the namespace;
 * - but `server.listen(port, host)` (and `net.connect`) resolve the host on a later tick,
 *   even for an IP literal, and then open the socket outside: listen without a host
 *   (the namespace has only its own addresses anyway);
 * - work done later or elsewhere stays outside: callbacks and promises, `dns.lookup` and
 *   fs calls (libuv's threadpool), worker threads, and child processes started after `fn`.
 *
 * @throws IsolationError ENOENT when the namespace does not exist, EINVAL when the path is
 * not a network namespace.
 * @example
 * const server = http.createServer(handler);
 * withNetns('lab', () => server.listen(8080));   // reachable at port 8080 inside 'lab' only
 */
export function withNetns<T>(nameOrPath: string, fn: () => T): T {
  const path = netnsTarget('withNetns', nameOrPath);
  if (typeof fn !== 'function') throw new TypeError(`withNetns: fn must be a function, got ${describe(fn)}`);
  const NEWNET = binding.constants.CLONE_NEWNET;
  const target = openNamespaceFd('withNetns', 'open', path, NEWNET, 'network', `no network namespace named '${nameOrPath}'`);
  let original = -1;
  try {
    original = openNamespaceFd('withNetns', 'open', '/proc/thread-self/ns/net', NEWNET, 'network');
    const err = binding.setns(target, NEWNET);
    if (err !== 0) throw new IsolationError({ errno: err, step: 'enter', syscall: 'setns', path }, 'withNetns');
    try {
      return fn();
    } finally {
      const back = binding.setns(original, NEWNET);
      // Cannot happen short of a kernel change; if it did, this thread would stay inside.
      if (back !== 0) throw new IsolationError({ errno: back, step: 'return', syscall: 'setns', path: '/proc/thread-self/ns/net' }, 'withNetns');
    }
  } finally {
    binding.closeFd(target);
    if (original >= 0) binding.closeFd(original);
  }
}
