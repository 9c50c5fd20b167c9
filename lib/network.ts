/**
 * The sandbox's network and the namespaces it joins: `lo` up in a new network namespace,
 * a veth link to the host, and existing namespaces of any kind entered instead of created
 * (what nsenter does). Here: the options, their validation, and the child steps they
 * compile into (src-native/child_net.cc). Addresses are parsed in ip-addresses.ts; what has
 * to exist before clone (fds of the namespaces to join, the veth pair and its namespace) is
 * made by withNetwork in network-host.ts, over rtnetlink and setns.
 */
import { binding } from './binding';
import { checkPair, parseCidr, type Cidr } from './ip-addresses';
import { NETNS_DIR } from './netns';
import type { ValidatedOptions } from './options';
import type { PlannedStep } from './steps';
import { checkBoolean, checkCString, checkObject, describe, fail, rejectUnknownKeys } from './validate';

export type { Cidr } from './ip-addresses';

const C = binding.constants;

/** Namespace kinds that can be joined, named as in /proc/PID/ns. */
export type JoinKind = 'user' | 'cgroup' | 'ipc' | 'uts' | 'net' | 'pid' | 'mnt' | 'time';

/**
 * An existing namespace: a pid (that process's `/proc/PID/ns/KIND`), an object with a `pid`
 * such as a running sandbox's IsolatedProcess, or an absolute path of a namespace file
 * (`/proc/PID/ns/KIND`, or a bind mount of one). For `net`, also the name of a named
 * network namespace (`/run/netns/NAME`, see createNetns / `ip netns add`).
 */
export type NamespaceRef = number | string | { readonly pid: number };

/**
 * Existing namespaces the sandbox enters instead of getting new ones, as `nsenter` does.
 * Each one excludes the matching new namespace (`join.net` and `net: true`, `join.mnt` and
 * `mount: true`, ...).
 */
export interface JoinOptions {
  /** Network namespace: a name in /run/netns, a path, or a pid. */
  net?: NamespaceRef;
  /** Mount namespace (the program starts at its root). */
  mnt?: NamespaceRef;
  /**
   * PID namespace: the program becomes a member (not PID 1) and sees its processes. Joined
   * by this thread around clone, since a PID namespace applies only to children.
   */
  pid?: NamespaceRef;
  /** UTS namespace (host name). */
  uts?: NamespaceRef;
  /** IPC namespace. */
  ipc?: NamespaceRef;
  /**
   * User namespace, joined first. Excludes `user: true`. New mount, network, UTS and IPC
   * namespaces are then made after the join (unshare), so they belong to the joined user
   * namespace and the sandbox, root there, sets them up as bubblewrap's --userns does; new
   * PID, cgroup and time namespaces cannot be combined with it (join those too).
   */
  user?: NamespaceRef;
  /** Cgroup namespace. */
  cgroup?: NamespaceRef;
  /**
   * A user namespace entered once the sandbox is set up, right before its ids, capabilities
   * and seccomp filter are applied and the program starts (bubblewrap's --userns2): e.g. one
   * nested in the sandbox's own (joined with `user`, or made with `user: true`), so that the
   * program runs there while the sandbox's mounts were made with the outer one's rights. The
   * ids the program gets (`uid`/`gid`, default 0) must be mapped in it.
   */
  userAfterSetup?: NamespaceRef;
  /**
   * Time namespace. The kernel refuses it to a process that shares its memory, so this
   * sandbox is cloned without CLONE_VM (a copy-on-write fork: costs grow with this
   * process's memory).
   */
  time?: NamespaceRef;
}

/** The two ends of a veth link, each `ADDRESS/PREFIX`, in the same subnet. */
export interface VethAddressPair {
  /** The host end's address, e.g. `fd00:200:1::1/64`; the sandbox's IPv6 gateway. */
  host: string;
  /** The sandbox end's address, e.g. `fd00:200:1::2/64`. */
  sandbox: string;
}

/**
 * A veth link between the host and the sandbox's new network namespace (needs
 * `net: true`): a pair of interfaces, one in each, both up with their addresses, and
 * default routes inside via the host's end. The pair is deleted when the program exits.
 * No NAT or firewall rule is added: the sandbox reaches the host end's addresses, and
 * whatever the host routes for it.
 */
export interface VethOptions {
  /** Name of the host end (at most 15 bytes). Default: a free `nsj...` name. */
  hostName?: string;
  /** Name of the sandbox end. Default `eth0`. */
  sandboxName?: string;
  /** The host end's IPv4 address with prefix, e.g. `10.200.1.1/24`. */
  hostAddress?: string;
  /** The sandbox end's IPv4 address, in the same subnet, e.g. `10.200.1.2/24`. */
  sandboxAddress?: string;
  /** IPv6 addresses of both ends (added without duplicate address detection: usable at once). */
  ipv6?: VethAddressPair;
  /** Default routes inside via the host end (IPv4 and IPv6). Default true. */
  defaultRoute?: boolean;
}

/** Network options of spawnIsolated (the `net` namespace flag itself is a core option). */
export interface NetworkOptions {
  /**
   * Bring `lo` up in the sandbox's new network namespace, so that 127.0.0.1 and ::1 work.
   * Default true with `net: true`; `false` leaves it down, as the kernel makes it.
   */
  loopback?: boolean;
  /** Existing namespaces to enter instead of new ones: see {@link JoinOptions}. */
  join?: JoinOptions;
  /** A veth link to the host: see {@link VethOptions}. */
  veth?: VethOptions;
  /**
   * A seccomp filter, installed before the program's own `seccomp` (both apply), that lets
   * socket() and socketpair() create only the socket families a network namespace isolates
   * (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, ...: see docs/network.md) and
   * refuses the others with EAFNOSUPPORT: above all AF_VSOCK, whose ports and peers (the
   * hypervisor's services on a VM) are the machine's. io_uring_setup fails with EPERM, as
   * io_uring can create sockets without the socket system call. Default: `net`'s value.
   * `false` lets the program reach the host through such families. The filter needs
   * `noNewPrivs: true` (the default) or CAP_SYS_ADMIN kept.
   */
  socketFamilyFilter?: boolean;
}

/** The option names this file owns. */
export const NETWORK_OPTION_KEYS = ['loopback', 'join', 'veth', 'socketFamilyFilter'] as const;

// setIds flags (src-native/child_steps.h).
const SET_IDS_GID = 2;
const SET_IDS_UID = 4;
const SET_IDS_KEEP_CAPS = 8;

// New namespaces that join.user allows: made with unshare once the user namespace is joined.
const AFTER_JOIN_FLAGS: Readonly<Record<string, number>> = {
  mount: C.CLONE_NEWNS, net: C.CLONE_NEWNET, uts: C.CLONE_NEWUTS, ipc: C.CLONE_NEWIPC,
};

// nsenter's order: the user namespace first (it grants the rights to join the others).
const JOIN_KINDS: readonly JoinKind[] = ['user', 'cgroup', 'ipc', 'uts', 'net', 'pid', 'mnt', 'time'];

const JOIN_FLAGS: Readonly<Record<JoinKind, number>> = {
  user: C.CLONE_NEWUSER, cgroup: C.CLONE_NEWCGROUP, ipc: C.CLONE_NEWIPC, uts: C.CLONE_NEWUTS,
  net: C.CLONE_NEWNET, pid: C.CLONE_NEWPID, mnt: C.CLONE_NEWNS, time: C.CLONE_NEWTIME,
};

/** Each kind as named in error messages. */
export const JOIN_NAMES: Readonly<Record<JoinKind, string>> = {
  user: 'user', cgroup: 'cgroup', ipc: 'IPC', uts: 'UTS', net: 'network', pid: 'PID', mnt: 'mount', time: 'time',
};

// The core option that makes a new namespace of each kind.
const NEW_NAMESPACE_OPTION: Readonly<Record<JoinKind, string>> = {
  user: 'user', cgroup: 'cgroup', ipc: 'ipc', uts: 'uts', net: 'net', pid: 'pid', mnt: 'mount', time: 'time',
};

// PID_MAX_LIMIT on 64-bit kernels.
const PID_MAX = 4194304;

/** A namespace to join, resolved to its file. */
export interface JoinTarget {
  kind: JoinKind;
  path: string;
  flag: number;
  /** The name in /run/netns, when `net` was given by name. */
  netnsName?: string;
}

/** veth options after validation. */
export interface ValidatedVeth {
  hostName: string | undefined;
  sandboxName: string;
  /** The host end's addresses (IPv4 first); also the sandbox's gateways. */
  host: Cidr[];
  /** The sandbox end's addresses, in the same order. */
  sandbox: Cidr[];
  defaultRoute: boolean;
  loopback: boolean;
}

/** Network options after validation. */
export interface ValidatedNetwork {
  /** options.net: the sandbox gets a new network namespace. */
  netNamespace: boolean;
  /** Bring `lo` up in the network namespace made by clone (not with veth: made up already). */
  loopback: boolean;
  /** Namespaces to join, in setns order. */
  join: JoinTarget[];
  veth: ValidatedVeth | undefined;
  /**
   * Filled by withNetwork (network-host.ts) right before the plan is compiled: the fds (in
   * this process) of the namespaces to join and of the veth's namespace, which the child's
   * setns steps use.
   */
  prepared: ReadonlyMap<JoinKind | 'veth' | 'userAfterSetup', number> | undefined;
  /** With join.user: the clone flags of the new namespaces, unshared once the user namespace is joined. */
  unshareAfterJoin: number;
  /** join.userAfterSetup: entered right before the privilege steps. */
  userAfterSetup: JoinTarget | undefined;
}


// ---------------------------------------------------------------------------------------
// Validation

/** A network interface name as the kernel accepts it (dev_valid_name). */
function checkInterfaceName(option: string, value: unknown): string {
  const name = checkCString(option, value);
  if (Buffer.byteLength(name) > 15) fail(option, `must be at most 15 bytes (IFNAMSIZ - 1), got '${name}'`, 'range');
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) fail(option, `must not be '.' or '..' nor contain '/', ':' or white space, got '${name}'`, 'range');
  return name;
}

function validateJoinTarget(kind: JoinKind, value: unknown, option = `join.${kind}`): JoinTarget {
  const flag = JOIN_FLAGS[kind];
  let ref = value;
  if (ref !== null && typeof ref === 'object' && !Array.isArray(ref) && 'pid' in ref) ref = (ref as { pid: unknown }).pid;
  if (typeof ref === 'number') {
    if (!Number.isInteger(ref) || ref < 1 || ref > PID_MAX) fail(option, `must be a pid (1..${PID_MAX}), got ${ref}`, 'range');
    return { kind, flag, path: `/proc/${ref}/ns/${kind}` };
  }
  if (typeof ref === 'string' && ref.startsWith('/')) return { kind, flag, path: checkCString(option, ref) };
  if (kind === 'net' && typeof ref === 'string') {
    if (ref === '' || ref === '.' || ref === '..' || ref.includes('/') || ref.includes('\0') || Buffer.byteLength(ref) > 255) {
      fail(option, `must be a network namespace name (a file name in ${NETNS_DIR}), a pid, or an absolute path, got '${ref}'`, 'range');
    }
    return { kind, flag, path: `${NETNS_DIR}/${ref}`, netnsName: ref };
  }
  const forms = kind === 'net' ? 'a pid, a network namespace name, or a path such as /proc/PID/ns/net' : `a pid or a path such as /proc/PID/ns/${kind}`;
  return fail(option, `must be ${forms}, got ${describe(value)}`, typeof ref === 'string' ? 'range' : 'type');
}

function validateVeth(value: unknown, loopback: boolean): ValidatedVeth {
  const o = checkObject('veth', value);
  rejectUnknownKeys(o, ['hostName', 'sandboxName', 'hostAddress', 'sandboxAddress', 'ipv6', 'defaultRoute'], 'options.veth.');
  const hostName = o.hostName === undefined ? undefined : checkInterfaceName('veth.hostName', o.hostName);
  const sandboxName = o.sandboxName === undefined ? 'eth0' : checkInterfaceName('veth.sandboxName', o.sandboxName);
  if (sandboxName === 'lo') fail('veth.sandboxName', "must not be 'lo' (the sandbox's loopback interface)", 'range');
  const host: Cidr[] = [];
  const sandbox: Cidr[] = [];
  if ((o.hostAddress === undefined) !== (o.sandboxAddress === undefined)) {
    fail(o.hostAddress === undefined ? 'veth.hostAddress' : 'veth.sandboxAddress', 'is missing: give both ends an IPv4 address, or neither');
  }
  if (o.hostAddress !== undefined) {
    host.push(parseCidr('veth.hostAddress', o.hostAddress, 4));
    sandbox.push(parseCidr('veth.sandboxAddress', o.sandboxAddress, 4));
    checkPair(host[0], sandbox[0]);
  }
  if (o.ipv6 !== undefined) {
    const v6 = checkObject('veth.ipv6', o.ipv6);
    rejectUnknownKeys(v6, ['host', 'sandbox'], 'options.veth.ipv6.');
    const h = parseCidr('veth.ipv6.host', v6.host, 6);
    const s = parseCidr('veth.ipv6.sandbox', v6.sandbox, 6);
    checkPair(h, s);
    host.push(h);
    sandbox.push(s);
  }
  if (host.length === 0) fail('veth', 'needs addresses: hostAddress and sandboxAddress (IPv4), ipv6, or both');
  return { hostName, sandboxName, host, sandbox, defaultRoute: checkBoolean('veth.defaultRoute', o.defaultRoute, true), loopback };
}

/**
 * Validates the network options. `namespaces` are the new namespaces the core options ask
 * for, against which joins and veth are checked.
 */
export function validateNetwork(options: NetworkOptions, namespaces: ValidatedOptions['namespaces']): ValidatedNetwork {
  // `time: true` (a new time namespace) is an identity option, not a core namespace flag.
  const isNew: Readonly<Record<string, boolean | undefined>> = { ...namespaces, time: (options as { time?: unknown }).time === true };
  if (options.loopback !== undefined && !namespaces.net) fail('loopback', 'needs net: true (it is about the sandbox\'s new network namespace; a joined one is left as it is)');
  const loopback = checkBoolean('loopback', options.loopback, true);

  const join: JoinTarget[] = [];
  if (options.join !== undefined) {
    const o = checkObject('join', options.join);
    rejectUnknownKeys(o, [...JOIN_KINDS, 'userAfterSetup'], 'options.join.');
    for (const kind of JOIN_KINDS) {
      if (o[kind] === undefined) continue;
      if (isNew[NEW_NAMESPACE_OPTION[kind]]) {
        fail(`join.${kind}`, `conflicts with ${NEW_NAMESPACE_OPTION[kind]}: true: a sandbox either joins a ${JOIN_NAMES[kind]} namespace or gets a new one`, 'range');
      }
      join.push(validateJoinTarget(kind, o[kind]));
    }
    if (join.length > 0 && namespaces.user) {
      fail('join', 'cannot be combined with user: true: the new user namespace has no privilege over existing namespaces (setns would fail with EPERM); join a user namespace with join.user instead', 'range');
    }
    // Made by unshare after the join, these belong to the joined user namespace; a PID or
    // time namespace applies only to children, and a cgroup namespace is made after the
    // cgroup join (lib/limits.ts), so those are refused.
    const made = Object.keys(isNew).filter((k) => isNew[k] && !AFTER_JOIN_FLAGS[k]);
    if (join.some((t) => t.kind === 'user') && made.length > 0) {
      fail('join.user', `cannot be combined with new namespaces (${made.map((k) => `${k}: true`).join(', ')}): they would belong to this process's user namespace, where the joined program has no privilege; join those too, or leave out join.user`, 'range');
    }
  }
  const joinOption = options.join as Record<string, unknown> | undefined;
  const userAfterSetup = joinOption?.userAfterSetup === undefined ? undefined : validateJoinTarget('user', joinOption.userAfterSetup, 'join.userAfterSetup');
  let unshareAfterJoin = 0;
  if (join.some((t) => t.kind === 'user')) {
    for (const [key, flag] of Object.entries(AFTER_JOIN_FLAGS)) if (isNew[key]) unshareAfterJoin |= flag;
    if (options.veth !== undefined) fail('veth', 'cannot be combined with join.user: the link\'s namespace belongs to this process\'s user namespace, which the joined sandbox cannot enter', 'range');
  }

  let veth: ValidatedVeth | undefined;
  if (options.veth !== undefined) {
    veth = validateVeth(options.veth, loopback);
    if (!namespaces.net) fail('veth', 'needs net: true (the link\'s sandbox end goes into the sandbox\'s new network namespace)');
    if (namespaces.user) {
      fail('veth', 'cannot be combined with user: true: the link\'s namespace is made by this process before clone, and a sandbox in a new user namespace may not enter it (EPERM)', 'range');
    }
  }

  return { netNamespace: namespaces.net, loopback: namespaces.net && loopback && veth === undefined, join, veth, prepared: undefined, unshareAfterJoin, userAfterSetup };
}

// ---------------------------------------------------------------------------------------
// Steps

/** Why a join fails, by errno code (also for the PID namespace joined in network-host.ts). */
export const JOIN_HINTS: Readonly<Record<string, string>> = {
  EPERM: 'joining needs CAP_SYS_ADMIN over the user namespace that owns the target',
  EINVAL: 'the kernel refused this namespace here (joining the same user namespace again, or a PID namespace that is not below ours)',
};

/**
 * Before anything else: joining existing namespaces (setns), the user namespace first, then
 * the veth's namespace. The PID namespace is not a step: see withNetwork (network-host.ts).
 */
export function joinSteps(network: ValidatedNetwork): PlannedStep[] {
  const steps: PlannedStep[] = [];
  for (const target of network.join) {
    if (target.kind === 'pid') continue;
    const fd = network.prepared?.get(target.kind);
    // Without withNetwork (a plan only looked at), the child would open the path itself.
    const native = fd === undefined
      ? { op: 'setns' as const, path: target.path, flags: target.flag }
      : { op: 'setns' as const, flags: target.flag, values: [BigInt(fd)] };
    steps.push({ native, label: { step: `join-${target.kind}`, syscall: 'setns', path: target.path, hints: JOIN_HINTS } });
  }
  if (network.unshareAfterJoin !== 0) {
    // The new namespaces, owned by the joined user namespace; then its root's ids, as this
    // process's own are unmapped there and could not create a file in the mount plan (EOVERFLOW).
    const hints = { EINVAL: 'the joined user namespace maps no uid/gid 0, which sets up its new namespaces' };
    steps.push(
      { native: { op: 'unshare', flags: network.unshareAfterJoin }, label: { step: 'namespaces-in-joined-user', syscall: 'unshare' } },
      { native: { op: 'setIds', flags: SET_IDS_GID, values: [0n, 0n] }, label: { step: 'ids-in-joined-user', syscall: 'setresgid', hints } },
      { native: { op: 'setIds', flags: SET_IDS_UID | SET_IDS_KEEP_CAPS, values: [0n] }, label: { step: 'ids-in-joined-user', syscall: 'setresuid', hints } },
    );
  }
  if (network.veth !== undefined) {
    const fd = network.prepared?.get('veth');
    if (fd === undefined) throw new Error('nsjail-node: internal error: options.veth is compiled only inside withNetwork()');
    steps.push({
      native: { op: 'setns', flags: C.CLONE_NEWNET, values: [BigInt(fd)] },
      label: { step: 'veth-join', syscall: 'setns', path: network.veth.sandboxName, hints: JOIN_HINTS },
    });
  }
  return steps;
}

/** join.userAfterSetup: the user namespace entered once the sandbox is set up. */
export function userAfterSetupSteps(network: ValidatedNetwork): PlannedStep[] {
  const target = network.userAfterSetup;
  if (target === undefined) return [];
  const fd = network.prepared?.get('userAfterSetup');
  const native = fd === undefined
    ? { op: 'setns' as const, path: target.path, flags: target.flag }
    : { op: 'setns' as const, flags: target.flag, values: [BigInt(fd)] };
  return [{ native, label: { step: 'join-user-after-setup', syscall: 'setns', path: target.path, hints: JOIN_HINTS } }];
}

/** Inside the new network namespace: `lo` up. */
export function networkSteps(network: ValidatedNetwork): PlannedStep[] {
  if (!network.loopback) return [];
  return [{ native: { op: 'loopbackUp' }, label: { step: 'loopback-up', syscall: 'ioctl', path: 'lo' } }];
}

/**
 * Clone flags the network plan takes out: a veth's namespace is made before clone and
 * joined (no CLONE_NEWNET), and joining a time namespace needs a child that does not share
 * this process's memory (no CLONE_VM: setns(CLONE_NEWTIME) fails with EUSERS otherwise).
 */
export function withheldCloneFlags(network: ValidatedNetwork): number {
  let flags = 0;
  if (network.veth !== undefined) flags |= C.CLONE_NEWNET;
  if (network.join.some((t) => t.kind === 'time')) flags |= C.CLONE_VM;
  return flags | network.unshareAfterJoin;
}
