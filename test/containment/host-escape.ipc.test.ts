/**
 * Containment of the recommended sandbox (README, "A sandbox for untrusted code"): what
 * processes share besides the file system: loopback and abstract sockets, SysV and POSIX IPC,
 * the kernel keyring. Each attack runs inside the recommended configuration as root against a
 * host object the test made; a CONTROL with the protection taken away reaches that object.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ATTACK, buildAttack, marker, recommended, runAttack, tempDir, withHostIpc, without } from './attack';

let built: ReturnType<typeof buildAttack>;
beforeAll(() => {
  built = buildAttack();
});
afterAll(() => built?.cleanup());

/** A listening server that counts the connections it accepts. */
async function listen(address: { port: 0; host: '127.0.0.1' } | { path: string }): Promise<{ server: net.Server; accepted: () => number }> {
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address, resolve);
  });
  return { server, accepted: () => count };
}

const close = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('host sockets', () => {
  test('a host listener on 127.0.0.1 and a host abstract unix socket are unreachable from inside net: true; CONTROL: without net, both accept the connection', async () => {
    const tcp = await listen({ port: 0, host: '127.0.0.1' });
    const name = marker('nsjail-test'); // abstract: "\0nsjail-test-<hex>"
    const unix = await listen({ path: `\0${name}` });
    try {
      const port = String((tcp.server.address() as net.AddressInfo).port);
      const args = ['tcp', port, 'abstract', name];
      const r = await runAttack(recommended(built.work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      // The sandbox's own loopback has no listener; its abstract namespace is its own.
      expect(r.results).toEqual({ tcp: 'errno=ECONNREFUSED', abstract: 'errno=ECONNREFUSED' });
      // The network namespace holds alone, without seccomp.
      expect((await runAttack(without(recommended(built.work, ATTACK, args), 'seccomp'))).results).toEqual(r.results);
      expect([tcp.accepted(), unix.accepted()]).toEqual([0, 0]);

      const control = await runAttack(without(recommended(built.work, ATTACK, args), 'net'));
      expect(control.results).toEqual({ tcp: 'ok', abstract: 'ok' });
      // The host side saw both connections (accepted asynchronously).
      for (let i = 0; i < 100 && tcp.accepted() + unix.accepted() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect([tcp.accepted(), unix.accepted()]).toEqual([1, 1]);
    } finally {
      await close(tcp.server);
      await close(unix.server);
    }
  });
});

describe('host unix sockets and shared memory files', () => {
  test("a host unix socket in a temp dir and a POSIX shared memory object in the host's /dev/shm are out of reach (the mount namespace shows neither); CONTROL: without mount namespace, both are reached", async () => {
    const dir = tempDir('nsjail-node-socket-');
    const socketPath = path.join(dir.dir, 'listener.sock');
    const shm = path.join('/dev/shm', marker('nsjail-test'));
    const unix = await listen({ path: socketPath });
    try {
      fs.chmodSync(socketPath, 0o777);
      fs.writeFileSync(shm, 'host only\n', { mode: 0o666 });
      const args = ['unix', socketPath, 'access', shm, 'write', shm];
      const r = await runAttack(recommended(built.work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.results).toEqual({ unix: 'errno=ENOENT', access: 'errno=ENOENT', write: 'errno=ENOENT' });
      expect(unix.accepted()).toBe(0);
      expect(fs.readFileSync(shm, 'utf8')).toBe('host only\n');

      const control = await runAttack({ command: built.program, args });
      expect(control.results).toEqual({ unix: 'ok', access: 'ok', write: 'ok' });
      expect(fs.readFileSync(shm, 'utf8')).toBe('attacked\n');
    } finally {
      await close(unix.server);
      fs.rmSync(shm, { force: true });
      dir.cleanup();
    }
  });
});

describe('SysV and POSIX IPC', () => {
  test('a host SysV shared memory segment, message queue and POSIX message queue the test made are invisible inside ipc: true; CONTROL: without ipc, all three are reached', async () => {
    await withHostIpc(built.hostSetup, async (args) => {
      const r = await runAttack(recommended(built.work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.results).toEqual({ shm: 'errno=EINVAL', msg: 'errno=EINVAL', mq: 'errno=ENOENT' });
      expect((await runAttack(without(recommended(built.work, ATTACK, args), 'seccomp'))).results).toEqual(r.results);

      const control = await runAttack(without(recommended(built.work, ATTACK, args), 'ipc'));
      expect(control.results).toEqual({ shm: 'ok', msg: 'ok', mq: 'host message' });
    });
  });
});

describe('kernel keyrings', () => {
  test("a key the test adds to root's user keyring cannot be described, read or linked from inside; CONTROL: as root without user namespace and seccomp, it is read", async () => {
    const payload = marker('secret');
    let serial = '';
    try {
      serial = execFileSync(built.hostSetup, ['key-add', marker('nsjail-test-key'), payload], { encoding: 'utf8' }).trim();
      expect(serial).toMatch(/^\d+$/);
      const args = ['key-describe', serial, 'key-read', serial, 'key-link', serial];
      const r = await runAttack(recommended(built.work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      // seccompPresets.sandboxDefault refuses keyctl and add_key outright.
      expect(r.results).toEqual({ 'key-describe': 'errno=EPERM', 'key-read': 'errno=EPERM', 'key-link': 'errno=EPERM' });
      // Without seccomp the user namespace still keeps the payload and the link out of reach
      // (the key's default permissions give its owner's uid only "view": describing it may work).
      const bare = await runAttack(without(recommended(built.work, ATTACK, args), 'seccomp'));
      expect(bare.results).toMatchObject({ 'key-read': expect.stringMatching(/^errno=/), 'key-link': expect.stringMatching(/^errno=/) });

      const control = await runAttack(without(recommended(built.work, ATTACK, args), 'user', 'seccomp'));
      expect(control.results).toMatchObject({ 'key-describe': 'ok', 'key-read': payload });
    } finally {
      if (serial) execFileSync(built.hostSetup, ['key-invalidate', serial]);
    }
  });
});
