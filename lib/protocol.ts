/**
 * The process protocol of a spawn with a caller outside this process (bubblewrap's
 * --info-fd, --block-fd and --userns-block-fd): what the parent reports right after clone,
 * and where the child waits for the caller. The parent side is src-native/spawn.cc (after
 * clone, before it lets the child go on), the child's wait is src-native/child.cc (BlockOn).
 */
import type { NativePlan } from '../types/native';
import { binding } from './binding';
import { checkObject, describe, fail, rejectUnknownKeys } from './validate';

/** Options of spawnIsolated for a caller that talks to the sandbox through file descriptors. */
export interface ProtocolOptions {
  /**
   * Report the sandbox's namespaces right after clone, before the child sets anything up (it
   * waits for the parent meanwhile, so the clone is fork-like: no CLONE_VM|CLONE_VFORK). Their
   * ids (the inode numbers `readlink /proc/PID/ns/NAME` shows) are on the handle as
   * {@link IsolatedProcess.namespaceIds}, for the namespaces the options create (mnt, net,
   * pid, ipc, uts, cgroup; not user). With `fd`, a file descriptor of this process, they are
   * also written there, with the pid of the sandbox's first process (init's with `init`), as
   * bubblewrap's --info-fd does:
   * `{\n    "child-pid": 4242,\n    "ipc-namespace": 4026532290,\n    ...\n}\n`; the fd is then
   * closed (the spawn takes it over: also the child's copy is closed, so its reader sees end of
   * file while the sandbox runs). When the spawn fails before that, the fd is left open.
   */
  info?: { fd?: number };
  /**
   * A file descriptor of this process the child reads one byte from (or end of file) once
   * the sandbox is set up, before the seccomp filter and execve: the program starts only
   * when the caller writes to it (bubblewrap's --block-fd). The spawn call does not return
   * before then (spawnIsolatedAsync's promise does not resolve).
   */
  blockFd?: number;
  /**
   * Needs `user: true` and `info`. After the info is written, the parent reads one byte (or
   * end of file) from this fd of this process before the child goes on, and writes no id
   * maps: the caller writes /proc/PID/uid_map and gid_map meanwhile (bubblewrap's
   * --userns-block-fd), so `uidMap`, `gidMap` and `groups` cannot be given; the ids stay
   * what the caller's maps make them unless `uid`/`gid` are given.
   */
  userNamespaceBlockFd?: number;
}

/** The option names this file owns. */
export const PROTOCOL_OPTION_KEYS = ['info', 'blockFd', 'userNamespaceBlockFd'] as const;

/** Protocol options after validation. */
export interface ValidatedProtocol {
  /** undefined: no info; -1: the ids only. */
  infoFd: number | undefined;
  blockFd: number | undefined;
  userNamespaceBlockFd: number | undefined;
}

function checkFd(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(option, `must be a file descriptor (an integer), got ${describe(value)}`);
  if (value < 0 || value > 0x7fffffff) fail(option, `must be a file descriptor (a non-negative integer), got ${value}`, 'range');
  return value;
}

/** Validates the protocol options; `user` is options.user. */
export function validateProtocol(options: ProtocolOptions, user: boolean): ValidatedProtocol {
  let infoFd: number | undefined;
  if (options.info !== undefined) {
    const info = checkObject('info', options.info);
    rejectUnknownKeys(info, ['fd'], 'options.info.');
    infoFd = info.fd === undefined ? -1 : checkFd('info.fd', info.fd);
  }
  const blockFd = options.blockFd === undefined ? undefined : checkFd('blockFd', options.blockFd);
  let userNamespaceBlockFd: number | undefined;
  if (options.userNamespaceBlockFd !== undefined) {
    userNamespaceBlockFd = checkFd('userNamespaceBlockFd', options.userNamespaceBlockFd);
    if (!user) fail('userNamespaceBlockFd', 'needs user: true (the caller writes the maps of the new user namespace)');
    if (infoFd === undefined) fail('userNamespaceBlockFd', 'needs info (the caller learns the pid whose maps to write from it)');
  }
  return { infoFd, blockFd, userNamespaceBlockFd };
}

// /proc/PID/ns names of the namespaces a clone flag creates, in bubblewrap's order.
const NAMESPACE_NAMES: readonly [string, keyof typeof binding.constants][] = [
  ['cgroup', 'CLONE_NEWCGROUP'], ['ipc', 'CLONE_NEWIPC'], ['mnt', 'CLONE_NEWNS'], ['net', 'CLONE_NEWNET'], ['pid', 'CLONE_NEWPID'], ['uts', 'CLONE_NEWUTS'],
];

/**
 * What the protocol adds to the native plan, given the namespaces asked for (`wanted`, clone
 * flags before any is deferred), and the clone flags it withholds: the parent must act
 * between clone and exec, which CLONE_VFORK would delay.
 */
export function protocolPlan(p: ValidatedProtocol, wanted: number): { native: Pick<NativePlan, 'info' | 'blockFd' | 'usernsBlockFd'>; withheldCloneFlags: number } {
  const native: Pick<NativePlan, 'info' | 'blockFd' | 'usernsBlockFd'> = {};
  let withheldCloneFlags = 0;
  if (p.infoFd !== undefined) {
    const C = binding.constants;
    native.info = { fd: p.infoFd, namespaces: NAMESPACE_NAMES.filter(([, flag]) => (wanted & C[flag]) !== 0).map(([name]) => name) };
    withheldCloneFlags = C.CLONE_VM | C.CLONE_VFORK;
  }
  if (p.blockFd !== undefined) native.blockFd = p.blockFd;
  if (p.userNamespaceBlockFd !== undefined) native.usernsBlockFd = p.userNamespaceBlockFd;
  return { native, withheldCloneFlags };
}
