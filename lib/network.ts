/**
 * The sandbox's network and the namespaces it joins: `lo` up in a new network namespace,
 * a veth link to the host, and existing namespaces of any kind entered instead of created
 * (what nsenter does). Compiled into child steps (src-native/child_net.cc); what has to
 * exist before clone (fds of the namespaces to join, the veth pair and its namespace) is
 * made by {@link withNetwork} over rtnetlink and setns (src-native/netns.cc, netlink.cc).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { NativeIpAddress, NativeNetError } from '../types/native';
import { binding } from './binding';
import { describeErrno, IsolationError } from './errors';
import { NETNS_DIR, openNamespaceFd } from './netns';
import type { ValidatedOptions } from './options';
import type { PlannedStep } from './steps';
import { checkBoolean, checkCString, checkObject, describe, fail, rejectUnknownKeys } from './validate';

const C = binding.constants;
const EEXIST = 17;
const ENODEV = 19;

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

const JOIN_NAMES: Readonly<Record<JoinKind, string>> = {
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

/** An address with its prefix, parsed. */
export interface Cidr {
  family: 4 | 6;
  bytes: Buffer;
  prefix: number;
  /** As the user wrote it. */
  text: string;
  /** The option it came from, for errors: `veth.hostAddress`, `veth.ipv6.host`, ... */
  option: string;
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
   * Filled by {@link withNetwork} right before the plan is compiled: the fds (in this
   * process) of the namespaces to join and of the veth's namespace, which the child's setns
   * steps use.
   */
  prepared: ReadonlyMap<JoinKind | 'veth' | 'userAfterSetup', number> | undefined;
  /** With join.user: the clone flags of the new namespaces, unshared once the user namespace is joined. */
  unshareAfterJoin: number;
  /** join.userAfterSetup: entered right before the privilege steps. */
  userAfterSetup: JoinTarget | undefined;
}

// ---------------------------------------------------------------------------------------
// Addresses

function parseIPv4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
  return Buffer.from(parts.map(Number));
}

function parseIPv6(text: string): Buffer | undefined {
  if (!net.isIPv6(text) || text.includes('%')) return undefined;
  const groups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((g) => {
      if (!g.includes('.')) return [parseInt(g, 16)];
      const v4 = parseIPv4(g);
      return v4 ? [v4.readUInt16BE(0), v4.readUInt16BE(2)] : [NaN];
    });
  };
  const gap = text.indexOf('::');
  let all: number[];
  if (gap < 0) {
    all = groups(text);
  } else {
    const head = groups(text.slice(0, gap));
    const tail = groups(text.slice(gap + 2));
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  if (all.length !== 8 || all.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return bytes;
}

/** The address masked to `prefix` bits. */
function networkOf(bytes: Buffer, prefix: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] &= (0xff << (8 - bits)) & 0xff;
  }
  return out;
}

/** Whether two subnets share any address. */
function overlaps(a: { bytes: Buffer; prefix: number }, b: { bytes: Buffer; prefix: number }): boolean {
  if (a.bytes.length !== b.bytes.length) return false;
  const p = Math.min(a.prefix, b.prefix);
  return networkOf(a.bytes, p).equals(networkOf(b.bytes, p));
}

function formatAddress(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The longest run of zero groups becomes '::' (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Addresses that cannot be an end of a link: loopback, multicast, unspecified, reserved. */
function unusable(family: 4 | 6, bytes: Buffer): string | undefined {
  if (family === 4) {
    if (bytes[0] === 127) return 'a loopback address';
    if (bytes[0] === 0) return 'in 0.0.0.0/8 (this host)';
    if (bytes[0] >= 224 && bytes[0] < 240) return 'a multicast address';
    if (bytes[0] >= 240) return 'reserved (240.0.0.0/4)';
    return undefined;
  }
  if (bytes.equals(Buffer.alloc(16))) return 'the unspecified address';
  if (bytes.equals(Buffer.from([...new Array<number>(15).fill(0), 1]))) return 'the loopback address';
  if (bytes[0] === 0xff) return 'a multicast address';
  if (bytes.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]))) return 'an IPv4-mapped address';
  return undefined;
}

function parseCidr(option: string, value: unknown, family: 4 | 6): Cidr {
  const example = family === 4 ? '10.200.1.1/24' : 'fd00:200:1::1/64';
  const shape = `an IPv${family} address with a prefix length, such as '${example}'`;
  if (typeof value !== 'string') return fail(option, `must be ${shape}, got ${describe(value)}`);
  const slash = value.indexOf('/');
  const prefixText = slash < 0 ? '' : value.slice(slash + 1);
  const bytes = slash < 0 ? undefined : family === 4 ? parseIPv4(value.slice(0, slash)) : parseIPv6(value.slice(0, slash));
  if (!bytes || !/^[0-9]{1,3}$/.test(prefixText)) return fail(option, `must be ${shape}, got '${value}'`, 'range');
  const prefix = Number(prefixText);
  const max = family === 4 ? 32 : 128;
  // Both ends share the subnet, so it must hold at least two addresses.
  if (prefix < 1 || prefix > max - 1) return fail(option, `has prefix length /${prefix}: it must be 1..${max - 1}, so that both ends of the link share the subnet, got '${value}'`, 'range');
  const why = unusable(family, bytes);
  if (why) return fail(option, `is ${why}, not usable on a link, got '${value}'`, 'range');
  return { family, bytes, prefix, text: value, option };
}

/** Both ends in the same subnet, different, and (IPv4) neither the subnet's network nor broadcast address. */
function checkPair(host: Cidr, sandbox: Cidr): void {
  if (host.prefix !== sandbox.prefix || !overlaps(host, sandbox)) {
    fail(sandbox.option, `'${sandbox.text}' must be in the subnet of ${host.option} '${host.text}' (same network, same prefix length)`, 'range');
  }
  if (host.bytes.equals(sandbox.bytes)) fail(sandbox.option, `must differ from ${host.option}, got '${sandbox.text}' for both`, 'range');
  if (host.family === 4 && host.prefix <= 30) {
    const network = networkOf(host.bytes, host.prefix);
    const mask = networkOf(Buffer.alloc(4, 0xff), host.prefix);
    const broadcast = Buffer.from(network.map((b, i) => b | (~mask[i] & 0xff)));
    for (const end of [host, sandbox]) {
      if (end.bytes.equals(network)) fail(end.option, `'${end.text}' is the network address of its subnet`, 'range');
      if (end.bytes.equals(broadcast)) fail(end.option, `'${end.text}' is the broadcast address of its subnet`, 'range');
    }
  }
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

const JOIN_HINTS: Readonly<Record<string, string>> = {
  EPERM: 'joining needs CAP_SYS_ADMIN over the user namespace that owns the target',
  EINVAL: 'the kernel refused this namespace here (joining the same user namespace again, or a PID namespace that is not below ours)',
};

/**
 * Before anything else: joining existing namespaces (setns), the user namespace first, then
 * the veth's namespace. The PID namespace is not a step: see {@link withNetwork}.
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

// ---------------------------------------------------------------------------------------
// Before clone and after exit

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
