/**
 * Linux capabilities by name and number (<linux/capability.h>; the numbers are kernel ABI),
 * checked against the running kernel's list (/proc/sys/kernel/cap_last_cap).
 */
import * as fs from 'node:fs';
import { didYouMean } from './validate';

/** Every capability name, in number order: `CAPABILITY_NAMES[n]` is capability n. */
export const CAPABILITY_NAMES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

/** A capability name such as `'CAP_NET_BIND_SERVICE'`. */
export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/** The number of a capability name, or undefined for a name that is not one. */
export function capabilityNumber(name: string): number | undefined {
  const n = (CAPABILITY_NAMES as readonly string[]).indexOf(name);
  return n < 0 ? undefined : n;
}

/** The name of capability `n`, or `CAP_<n>` for a number newer than this table. */
export function capabilityName(n: number): string {
  return CAPABILITY_NAMES[n] ?? `CAP_${n}`;
}

let lastCap: number | undefined;

/** The highest capability the running kernel knows (cap_last_cap; 40 on Linux 5.9+). */
export function kernelLastCapability(): number {
  if (lastCap === undefined) {
    try {
      lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
    } catch {
      lastCap = CAPABILITY_NAMES.length - 1; // no /proc: trust the table
    }
  }
  return lastCap;
}

/**
 * Validates a list of capability names (`option` names it in errors) and returns the set as
 * a 64-bit mask. Unknown names are a TypeError (with the nearest name), names the running
 * kernel does not have a RangeError.
 */
export function capabilityMask(option: string, names: unknown): bigint {
  if (!Array.isArray(names)) {
    throw new TypeError(`spawnIsolated: options.${option} must be an array of capability names such as 'CAP_NET_BIND_SERVICE'`);
  }
  let mask = 0n;
  for (let i = 0; i < names.length; i++) {
    const name: unknown = names[i];
    // forEach would skip a hole of a sparse array: refuse it by name instead.
    if (name === undefined && !(i in names)) throw new TypeError(`spawnIsolated: options.${option}[${i}] is missing: holes in sparse arrays are not accepted`);
    const n = typeof name === 'string' ? capabilityNumber(name) : undefined;
    if (n === undefined) {
      const guess = typeof name === 'string' ? didYouMean(name.toUpperCase().startsWith('CAP_') ? name : `CAP_${name}`, CAPABILITY_NAMES) : undefined;
      throw new TypeError(`spawnIsolated: options.${option}[${i}] is not a capability: ${JSON.stringify(name)}${guess ? ` (did you mean '${guess}'?)` : ''}`);
    }
    if (n > kernelLastCapability()) {
      throw new RangeError(`spawnIsolated: options.${option}[${i}] ${name} is not known to this kernel (its last capability is ${capabilityName(kernelLastCapability())})`);
    }
    mask |= 1n << BigInt(n);
  }
  return mask;
}
