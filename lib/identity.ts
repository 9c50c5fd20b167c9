/**
 * Who the program is inside the sandbox: the user namespace and its id maps. Compiled into
 * child steps; src-native/child_identity.cc executes the ones beyond plain file writes.
 */
import * as os from 'node:os';
import type { PlannedStep } from './steps';
import { writeFileStep } from './steps';

/** Identity options of spawnIsolated (the `user` namespace flag itself is a core option). */
export interface IdentityOptions {}

/** The option names this file owns. */
export const IDENTITY_OPTION_KEYS = [] as const;

/** Identity options after validation. */
export interface ValidatedIdentity {
  userNamespace: boolean;
}

/** Validates the identity options; `userNamespace` is options.user. */
export function validateIdentity(_options: IdentityOptions, userNamespace: boolean): ValidatedIdentity {
  return { userNamespace };
}

/** The caller's effective ids, for the default user-namespace map. */
export function callerIds(): { uid: number; gid: number } {
  const info = os.userInfo();
  return { uid: process.geteuid?.() ?? info.uid, gid: process.getegid?.() ?? info.gid };
}

/**
 * First of all: the user-namespace map the child writes for itself. One line, the caller's
 * ids as 0 inside, setgroups denied first (the kernel's rule for an unprivileged writer).
 */
export function userNamespaceSteps(identity: ValidatedIdentity): PlannedStep[] {
  if (!identity.userNamespace) return [];
  const { uid, gid } = callerIds();
  return [
    writeFileStep('/proc/self/setgroups', 'deny', 'setgroups-deny'),
    writeFileStep('/proc/self/uid_map', `0 ${uid} 1\n`, 'uid-map'),
    writeFileStep('/proc/self/gid_map', `0 ${gid} 1\n`, 'gid-map'),
  ];
}

/** Last of all, right before execve: dropping privileges (ids, capabilities, seccomp). */
export function privilegeSteps(_identity: ValidatedIdentity): PlannedStep[] {
  return [];
}
