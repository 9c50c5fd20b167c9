/** Loopback in a new network namespace: up by default, private to each sandbox. */
import * as fs from 'node:fs';
import { spawnIsolated } from '../lib';
import { collect, lingeringZombies, run, sh } from './helpers';
import { hostInterfaces, procNetDevNames, readLine, tcpServerScript } from './network-helpers';

const NODE = process.execPath;

// A client that retries until the server (started in the background) listens, then prints
// what it read.
const CLIENT = (port: number): string => `
const net = require('net');
const attempt = (left) => {
  const c = net.connect(${port}, '127.0.0.1');
  let data = '';
  c.on('data', (d) => (data += d));
  c.on('end', () => console.log(data));
  c.on('error', (e) => {
    if (e.code === 'ECONNREFUSED' && left > 0) return setTimeout(() => attempt(left - 1), 20);
    console.log('client error ' + e.code);
  });
};
attempt(500);`;

// A server and a client in one process: prints what the client read, or its error.
const TALK = `const net = require('net');
const server = net.createServer((c) => c.end('hi')).listen(0, '127.0.0.1', () => {
  const c = net.connect(server.address().port, '127.0.0.1');
  c.on('data', (d) => console.log('got ' + d));
  c.on('error', (e) => console.log('connect ' + e.code));
  c.on('close', () => server.close());
});`;

describe('loopback', () => {
  test('lo is up by default: a TCP server and a client talk over 127.0.0.1 inside; the host\'s interfaces are not visible', async () => {
    const script = `'${NODE}' -e "$SERVER" >/dev/null & '${NODE}' -e "$CLIENT"; kill $!; cat /proc/net/dev; ip -o link`;
    const r = await run({
      command: '/bin/sh',
      args: ['-c', script],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SERVER: tcpServerScript('127.0.0.1', 7000, 'pong over lo'), CLIENT: CLIENT(7000) },
      net: true,
      pid: true,
    });
    expect(r.stderr).toBe('');
    const [reply, ...rest] = r.stdout.split('\n');
    expect(reply).toBe('pong over lo');
    const text = rest.join('\n');
    expect(procNetDevNames(text.slice(0, text.indexOf('1: lo')))).toEqual(['lo']);
    expect(text).toMatch(/^1: lo: <LOOPBACK,UP,LOWER_UP>/m);
    // The host has more than lo (so the test could fail if the namespace were not new).
    expect(hostInterfaces().length).toBeGreaterThan(1);
  });

  test('loopback: false leaves lo down, as the kernel makes it: 127.0.0.1 is unreachable', async () => {
    const down = await run({ command: NODE, args: ['-e', TALK], net: true, loopback: false });
    expect(down.stdout.trim()).toBe('connect ENETUNREACH');
    const up = await run({ command: NODE, args: ['-e', TALK], net: true });
    expect(up.stdout.trim()).toBe('got hi');
    const link = await sh('ip -o link show lo', { net: true, loopback: false });
    expect(link.stdout).toMatch(/^1: lo: <LOOPBACK> .* state DOWN/);
  });

  test('two sandboxes listen on the same port at the same time', async () => {
    const port = 7001;
    // Each serves its own name on the same port, then (on a line on stdin) asks its own server.
    const program = (name: string): string =>
      `${tcpServerScript('127.0.0.1', port, name)}
       process.stdin.once('data', () => require('net').connect(${port}, '127.0.0.1').on('data', (d) => { console.log(String(d)); process.exit(0); }));`;
    const a = spawnIsolated({ command: NODE, args: ['-e', program('sandbox a')], net: true, stdio: ['pipe', 'pipe', 'inherit'] });
    const b = spawnIsolated({ command: NODE, args: ['-e', program('sandbox b')], net: true, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      // Both listen now, neither has exited: the same port is bound twice at once.
      expect(await readLine(a.stdout)).toBe('ready');
      expect(await readLine(b.stdout)).toBe('ready');
      expect(a.status).toBeNull();
      expect(b.status).toBeNull();
      const outA = collect(a.stdout!.resume());
      const outB = collect(b.stdout!.resume());
      a.stdin!.end('go\n');
      b.stdin!.end('go\n');
      expect((await outA).trim()).toBe('sandbox a');
      expect((await outB).trim()).toBe('sandbox b');
      expect((await a).exitCode).toBe(0);
      expect((await b).exitCode).toBe(0);
    } finally {
      a.kill();
      b.kill();
      await Promise.all([a.exited, b.exited]);
    }
    expect(await lingeringZombies()).toEqual([]);
  });

  test('a joined or inherited network namespace is left as it is (no loopback step)', async () => {
    const r = await sh('cat /proc/net/dev');
    // Without net: true the sandbox is in this process's namespace, with the host's interfaces.
    expect(procNetDevNames(r.stdout)).toEqual(procNetDevNames(fs.readFileSync('/proc/net/dev', 'utf8')));
  });
});
