/**
 * IP addresses with a prefix, as the veth options give them: parsed (IPv4, IPv6), checked
 * for use as an end of a link (not loopback, multicast, ...; both ends in one subnet), and
 * compared with the host's own addresses (overlaps) and printed back (formatAddress).
 */
import * as net from 'node:net';
import { describe, fail } from './validate';

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
export function overlaps(a: { bytes: Buffer; prefix: number }, b: { bytes: Buffer; prefix: number }): boolean {
  if (a.bytes.length !== b.bytes.length) return false;
  const p = Math.min(a.prefix, b.prefix);
  return networkOf(a.bytes, p).equals(networkOf(b.bytes, p));
}

/** An address as text (IPv6 shortened as RFC 5952 says). */
export function formatAddress(bytes: Buffer): string {
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

/** `ADDRESS/PREFIX` of `family`, given as `option`: a TypeError or RangeError naming it when it cannot be an end of a link. */
export function parseCidr(option: string, value: unknown, family: 4 | 6): Cidr {
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
export function checkPair(host: Cidr, sandbox: Cidr): void {
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
