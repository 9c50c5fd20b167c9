/**
 * The host-side work of the network plan around a spawn: the namespaces to join opened
 * before clone, the PID namespace joined by this thread for the clone, the veth pair and its
 * namespace made over rtnetlink (src-native/netlink.cc, netns.cc) and deleted after exit.
 */
import * as fs from 'node:fs';
import type { NativeIpAddress, NativeNetError } from '../types/native';
import { binding } from './binding';
import { describeErrno, IsolationError } from './errors';
import { formatAddress, overlaps, type Cidr } from './ip-addresses';
import { openNamespaceFd } from './netns';
import { JOIN_HINTS, JOIN_NAMES, type JoinKind, type JoinTarget, type ValidatedNetwork, type ValidatedVeth } from './network';
import { fail } from './validate';

const C = binding.constants;
const EEXIST = 17;
const ENODEV = 19;

function openJoinTarget(target: JoinTarget): number {
  const pid = /^\/proc\/([0-9]+)\/ns\//.exec(target.path)?.[1];
  const missing = target.netnsName !== undefined
    ? `no network namespace named '${target.netnsName}' (see listNetns(), or ip netns list)`
    : pid !== undefined && !fs.existsSync(`/proc/${pid}`) ? `no process with pid ${pid}` : undefined;
  return openNamespaceFd('spawnIsolated', `join-${target.kind}`, target.path, target.flag, JOIN_NAMES[target.kind], missing);
}

/**
 * Runs `fn` (the clone) with this thread's PID namespace for children set to `pidFd`, and
 * sets it back after. A PID namespace applies to a process's future children only, so the
 * child cannot join one for itself before exec; this thread can, for the child it clones.
 * The setting is per thread and nothing else runs on this thread meanwhile.
 */
function inPidNamespace<T>(pidFd: number, path: string, fn: () => T): T {
  const NEWPID = C.CLONE_NEWPID;
  const own = openNamespaceFd('spawnIsolated', 'join-pid', '/proc/thread-self/ns/pid_for_children', NEWPID, 'PID');
  try {
    const err = binding.setns(pidFd, NEWPID);
    if (err !== 0) throw new IsolationError({ errno: err, step: 'join-pid', syscall: 'setns', path, hint: JOIN_HINTS[describeErrno(err).code] });
    try {
      return fn();
    } finally {
      // Back to our own: always allowed (it is this thread's active PID namespace).
      const back = binding.setns(own, NEWPID);
      if (back !== 0) throw new IsolationError({ errno: back, step: 'join-pid-return', syscall: 'setns', path: '/proc/thread-self/ns/pid_for_children' });
    }
  } finally {
    binding.closeFd(own);
  }
}

/**
 * A host-end name unlikely to be taken: `nsj` + this process's pid + a counter, base 36. The
 * counter is the addon's, shared by every thread of the process (worker threads each have
 * their own copy of this module).
 */
function defaultLinkName(): string {
  const sequence = binding.nextSequence() % 36 ** 6;
  return `nsj${process.pid.toString(36)}${sequence.toString(36)}`.slice(0, 15);
}

function nativeAddress(c: Cidr): NativeIpAddress {
  return { family: c.family, address: c.bytes, prefix: c.prefix };
}

/** The host end's subnets must be unused on the host: a second route to them would be ambiguous. */
function checkHostAddresses(veth: ValidatedVeth): void {
  const existing = binding.addressList();
  if (!Array.isArray(existing)) {
    const { errno, syscall, message } = existing.error;
    throw new IsolationError({ errno, step: 'veth-check', syscall, hint: message || undefined });
  }
  for (const c of veth.host) {
    for (const a of existing) {
      if (a.family !== c.family || !overlaps(c, { bytes: a.address, prefix: a.prefix })) continue;
      fail(c.option, `'${c.text}' overlaps ${formatAddress(a.address)}/${a.prefix} of interface ${a.ifname || '?'} on the host: the link needs a subnet unused there`, 'range');
    }
  }
}

function vethError(error: NativeNetError, veth: ValidatedVeth, hostName: string): IsolationError {
  const at = (list: Cidr[]): string | undefined => list[error.index]?.text;
  const paths: Record<string, string | undefined> = {
    'veth-create': hostName,
    'veth-host-address': at(veth.host),
    'veth-host-up': hostName,
    'veth-sandbox-up': veth.sandboxName,
    'veth-sandbox-address': at(veth.sandbox),
    'veth-route': veth.host[error.index] ? `default via ${formatAddress(veth.host[error.index].bytes)}` : undefined,
  };
  let hint = error.message || undefined;
  if (error.errno === EEXIST && error.step === 'veth-create') hint = `an interface named '${hostName}' exists on the host`;
  return new IsolationError({ errno: error.errno, step: error.step, syscall: error.syscall, path: paths[error.step], hint });
}

/** Makes the veth pair and the namespace of its sandbox end (held by the returned fd). */
function createVeth(veth: ValidatedVeth): { hostName: string; netnsFd: number } {
  checkHostAddresses(veth);
  for (let attempt = 0; ; attempt++) {
    const hostName = veth.hostName ?? defaultLinkName();
    const made = binding.vethCreate({
      hostName,
      sandboxName: veth.sandboxName,
      loopback: veth.loopback,
      hostAddresses: veth.host.map(nativeAddress),
      sandboxAddresses: veth.sandbox.map(nativeAddress),
      gateways: veth.defaultRoute ? veth.host.map(nativeAddress) : [],
    });
    if (!('error' in made)) return { hostName, netnsFd: made.netnsFd };
    // A default name taken (by a sandbox of an earlier process with our pid): try the next.
    if (made.error.errno === EEXIST && made.error.step === 'veth-create' && veth.hostName === undefined && attempt < 16) continue;
    throw vethError(made.error, veth, hostName);
  }
}

/** Deletes the host end (and so the pair); gone already (the kernel removes it with the namespace) is fine. */
function removeLink(name: string): void {
  const failed = binding.linkDelete(name);
  if (failed && failed.error.errno !== ENODEV) {
    process.emitWarning(`nsjail-node: could not delete veth '${name}': ${describeErrno(failed.error.errno).code}`);
  }
}

/**
 * Runs `spawn` (compile + clone) with what the network plan needs around it: the
 * namespaces to join opened (so that a missing one fails before any process starts, and
 * later joins do not depend on paths seen from earlier ones), the veth pair made, the PID
 * namespace joined by this thread for the clone. The fds are closed once the child has
 * exec'd (it holds what it joined). The veth pair is deleted as soon as `exited` resolves
 * (before anyone who awaits the handle sees the exit), or at once when the spawn fails
 * (throws or returns `{ error }`).
 */
export function withNetwork<R extends object>(network: ValidatedNetwork, exited: Promise<unknown>, spawn: () => R): R {
  if (network.join.length === 0 && network.veth === undefined && network.userAfterSetup === undefined) return spawn();
  const fds = new Map<JoinKind | 'veth' | 'userAfterSetup', number>();
  let link: string | undefined;
  try {
    for (const target of network.join) fds.set(target.kind, openJoinTarget(target));
    if (network.userAfterSetup !== undefined) {
      const target = network.userAfterSetup;
      fds.set('userAfterSetup', openNamespaceFd('spawnIsolated', 'join-user-after-setup', target.path, target.flag, JOIN_NAMES.user));
    }
    if (network.veth !== undefined) {
      const made = createVeth(network.veth);
      link = made.hostName;
      fds.set('veth', made.netnsFd);
    }
    network.prepared = fds;
    const pid = network.join.find((t) => t.kind === 'pid');
    const result = pid === undefined ? spawn() : inPidNamespace(fds.get('pid') as number, pid.path, spawn);
    if (link !== undefined && !('error' in result)) {
      const name = link;
      link = undefined;
      void exited.then(() => removeLink(name));
    }
    return result;
  } finally {
    network.prepared = undefined;
    for (const fd of fds.values()) binding.closeFd(fd);
    if (link !== undefined) removeLink(link);
  }
}
