/**
 * veth links between the host and a sandbox. Traffic goes only between the host end (an
 * interface this test makes, in 10.200.x.0/24 and fd00:200:x::/64) and the sandbox.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import { IsolationError, spawnIsolated } from '../lib';
import { binding } from '../lib/binding';
import { collect, lingeringZombies, openFdCount, sh } from './helpers';
import { hostInterfaces, readLine, removeLinks } from './network-helpers';

const NODE = process.execPath;
const HTTP_SERVER = `require('http').createServer((q, r) => r.end('hello ' + q.url)).listen(8080, '::', () => console.log('ready'));`;

/** GET over the host's routes, no keep-alive; the body or the error code. */
function httpGet(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 10000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

const hostName = `nsjv${process.pid.toString(36)}`.slice(0, 15);

describe('veth', () => {
  afterEach(() => removeLinks(hostName));

  test('an HTTP request from the host reaches a server in the sandbox over IPv4 and IPv6; the veth is gone after exit', async () => {
    const fdsBefore = openFdCount();
    const child = spawnIsolated({
      command: NODE,
      args: ['-e', HTTP_SERVER],
      net: true,
      veth: { hostName, hostAddress: '10.200.1.1/24', sandboxAddress: '10.200.1.2/24', ipv6: { host: 'fd00:200:1::1/64', sandbox: 'fd00:200:1::2/64' } },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      expect(await readLine(child.stdout)).toBe('ready');
      // The host end exists here, with its address.
      expect(fs.existsSync(`/sys/class/net/${hostName}`)).toBe(true);
      expect(await httpGet('http://10.200.1.2:8080/v4')).toBe('hello /v4');
      expect(await httpGet('http://[fd00:200:1::2]:8080/v6')).toBe('hello /v6');

      // Inside (joined through the running sandbox's pid): eth0 with both addresses, lo up, default routes via the host end.
      const inside = await sh('ip -o addr show; ip route show default; ip -6 route show default', { join: { net: child.pid } });
      expect(inside.stdout).toMatch(/^\d+: lo +inet 127\.0\.0\.1\/8/m);
      expect(inside.stdout).toMatch(/^\d+: eth0 +inet 10\.200\.1\.2\/24/m);
      expect(inside.stdout).toMatch(/^\d+: eth0 +inet6 fd00:200:1::2\/64/m);
      expect(inside.stdout).toMatch(/^default via 10\.200\.1\.1 dev eth0/m);
      expect(inside.stdout).toMatch(/^default via fd00:200:1::1 dev eth0/m);
    } finally {
      child.kill();
      await child;
    }
    // Gone as soon as the exit is seen, and no fd of ours left open.
    expect(fs.existsSync(`/sys/class/net/${hostName}`)).toBe(false);
    expect(openFdCount()).toBeLessThanOrEqual(fdsBefore);
    expect(await lingeringZombies()).toEqual([]);
  });

  test('defaults: a free host-end name, eth0 inside; defaultRoute: false adds no route; the pair goes with the program', async () => {
    const before = hostInterfaces();
    const r = await sh('ip -o link show eth0 >/dev/null && echo has-eth0; ip route show default | wc -l', {
      net: true,
      veth: { hostAddress: '10.200.2.1/30', sandboxAddress: '10.200.2.2/30', defaultRoute: false },
    });
    expect(r.stdout.split('\n').map((l) => l.trim())).toEqual(['has-eth0', '0', '']);
    expect(hostInterfaces()).toEqual(before);
  });

  test('bad input: invalid CIDRs and conflicting addresses fail before anything is made', async () => {
    const before = hostInterfaces();
    const fdsBefore = openFdCount();
    const bad = (veth: Record<string, unknown>): (() => unknown) => () => spawnIsolated({ command: '/bin/true', net: true, veth });
    expect(bad({ hostAddress: '10.200.3.1', sandboxAddress: '10.200.3.2/24' })).toThrow(
      "spawnIsolated: options.veth.hostAddress must be an IPv4 address with a prefix length, such as '10.200.1.1/24', got '10.200.3.1'",
    );
    expect(bad({ hostAddress: '10.200.3.300/24', sandboxAddress: '10.200.3.2/24' })).toThrow(RangeError);
    expect(bad({ hostAddress: '10.200.3.1/33', sandboxAddress: '10.200.3.2/33' })).toThrow(/hostAddress has prefix length \/33/);
    expect(bad({ hostAddress: '10.200.3.1/24', sandboxAddress: '10.200.4.2/24' })).toThrow(
      "spawnIsolated: options.veth.sandboxAddress '10.200.4.2/24' must be in the subnet of veth.hostAddress '10.200.3.1/24'",
    );
    expect(bad({ hostAddress: '10.200.3.1/24', sandboxAddress: '10.200.3.1/24' })).toThrow(/sandboxAddress must differ from veth.hostAddress/);
    expect(bad({ hostAddress: '10.200.3.1/24', sandboxAddress: '10.200.3.255/24' })).toThrow(/is the broadcast address/);
    expect(bad({ hostAddress: '127.0.0.2/8', sandboxAddress: '127.0.0.3/8' })).toThrow(/is a loopback address/);
    expect(bad({ ipv6: { host: 'fd00:200:3::1/129', sandbox: 'fd00:200:3::2/64' } })).toThrow(/veth.ipv6.host has prefix length \/129/);
    expect(bad({ ipv6: { host: 'fd00:200:3::1/64', sandbox: 'fd00:200:3:1::2/64' } })).toThrow(/must be in the subnet/);
    expect(bad({ ipv6: { host: 'fe80::1%eth0/64', sandbox: 'fe80::2/64' } })).toThrow(/must be an IPv6 address/);
    expect(bad({})).toThrow('spawnIsolated: options.veth needs addresses');
    expect(bad({ hostAddress: '10.200.3.1/24' })).toThrow('spawnIsolated: options.veth.sandboxAddress is missing');
    expect(bad({ hostName: 'a-name-too-long-for-linux', hostAddress: '10.200.3.1/24', sandboxAddress: '10.200.3.2/24' })).toThrow(/at most 15 bytes/);
    expect(bad({ sandboxName: 'lo', hostAddress: '10.200.3.1/24', sandboxAddress: '10.200.3.2/24' })).toThrow(/must not be 'lo'/);
    expect(bad({ hostAdress: '10.200.3.1/24' })).toThrow('spawnIsolated: unknown option options.veth.hostAdress (did you mean options.veth.hostAddress?)');

    // A subnet in use on the host (here by a running sandbox's veth): refused, nothing made.
    const first = spawnIsolated({
      command: '/bin/sh', args: ['-c', 'echo ready; read x'], net: true,
      veth: { hostName, hostAddress: '10.200.5.1/24', sandboxAddress: '10.200.5.2/24' }, stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      expect(await readLine(first.stdout)).toBe('ready');
      const during = hostInterfaces();
      expect(bad({ hostAddress: '10.200.5.9/24', sandboxAddress: '10.200.5.10/24' })).toThrow(
        `spawnIsolated: options.veth.hostAddress '10.200.5.9/24' overlaps 10.200.5.1/24 of interface ${hostName} on the host`,
      );
      expect(bad({ hostAddress: '10.200.0.1/16', sandboxAddress: '10.200.0.2/16' })).toThrow(/overlaps 10\.200\.5\.1\/24/);
      // A host-end name that exists: the kernel's EEXIST, and nothing made.
      let error: unknown;
      try {
        spawnIsolated({ command: '/bin/true', net: true, veth: { hostName, hostAddress: '10.200.6.1/24', sandboxAddress: '10.200.6.2/24' } });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(IsolationError);
      expect((error as Error).message).toBe(`spawnIsolated: veth-create ${hostName}: EEXIST (file exists) [RTM_NEWLINK]: an interface named '${hostName}' exists on the host`);
      expect(hostInterfaces()).toEqual(during);
      first.stdin!.end('\n');
      expect((await first).exitCode).toBe(0);
    } finally {
      first.kill();
      await first.exited;
    }
    expect(hostInterfaces()).toEqual(before);
    expect(openFdCount()).toBeLessThanOrEqual(fdsBefore);
  });

  test('the pair is deleted when the program exits, even while another process holds its namespace', async () => {
    const opts = { command: '/bin/sh', args: ['-c', 'echo ready; read x; ip -o link show eth0 2>/dev/null || echo no-eth0'], stdio: ['pipe', 'pipe', 'inherit'] } as const;
    const a = spawnIsolated({ ...opts, net: true, veth: { hostName, hostAddress: '10.200.9.1/24', sandboxAddress: '10.200.9.2/24' } });
    const b = spawnIsolated({ ...opts, join: { net: a.pid } });
    try {
      expect(await readLine(a.stdout)).toBe('ready');
      expect(await readLine(b.stdout)).toBe('ready');
      a.stdin!.end('\n');
      expect((await a).exitCode).toBe(0);
      // b keeps the namespace alive; the link went with a.
      expect(fs.existsSync(`/sys/class/net/${hostName}`)).toBe(false);
      const rest = collect(b.stdout!.resume());
      b.stdin!.end('\n');
      expect((await rest).trim()).toBe('no-eth0');
    } finally {
      a.kill();
      b.kill();
      await Promise.all([a.exited, b.exited]);
    }
  });

  test('native layer: a failure after the pair exists (address, route) deletes it again, with the kernel\'s reason', () => {
    const before = hostInterfaces();
    const fdsBefore = openFdCount();
    const fd00 = (last: number): Buffer => Buffer.from([0xfd, 0, 2, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
    const config = { hostName, sandboxName: 'eth0', loopback: true, hostAddresses: [], sandboxAddresses: [], gateways: [] };
    // Past validation on purpose: a prefix the kernel refuses, a gateway it cannot reach.
    const badAddress = binding.vethCreate({ ...config, sandboxAddresses: [{ family: 6, address: fd00(2), prefix: 200 }] });
    expect(badAddress).toEqual({ error: expect.objectContaining({ step: 'veth-sandbox-address', syscall: 'RTM_NEWADDR', errno: 22, message: expect.stringMatching(/prefix/i), index: 0 }) });
    const badRoute = binding.vethCreate({ ...config, gateways: [{ family: 6, address: fd00(1), prefix: 64 }] });
    expect(badRoute).toEqual({ error: expect.objectContaining({ step: 'veth-route', syscall: 'RTM_NEWROUTE', index: 0 }) });
    expect(hostInterfaces()).toEqual(before);
    expect(openFdCount()).toBeLessThanOrEqual(fdsBefore);
  });

  test('a program that cannot start: the pair is deleted at once', async () => {
    const before = hostInterfaces();
    expect(() => spawnIsolated({ command: '/nonexistent/program', net: true, veth: { hostName, hostAddress: '10.200.7.1/24', sandboxAddress: '10.200.7.2/24' } }))
      .toThrow(/execve \/nonexistent\/program: ENOENT/);
    expect(hostInterfaces()).toEqual(before);
  });
});
