/** Named network namespaces (iproute2-compatible), joining namespaces like nsenter, withNetns. */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { once } from 'node:events';
import { createNetns, deleteNetns, listNetns, spawnIsolated, withNetns, IsolationError } from '../lib';
import { makeTempDir, run, sh } from './helpers';
import { ipNetnsList, procNetDevNames, readLine, removeNetns, testNetnsName, tryConnect } from './network-helpers';

const nsLink = (pid: number | 'self' | 'thread-self', kind: string): string => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

describe('named network namespaces', () => {
  test('create, list, delete round trip; ip netns list agrees both ways', async () => {
    const ours = testNetnsName('ours');
    const theirs = testNetnsName('theirs');
    try {
      expect(createNetns(ours)).toBe(`/run/netns/${ours}`);
      expect(listNetns()).toContain(ours);
      expect(ipNetnsList()).toContain(ours);
      // A real, new namespace: another inode than ours, and `ip netns exec` can enter it.
      expect(fs.statSync(`/run/netns/${ours}`).ino).not.toBe(fs.statSync('/proc/self/ns/net').ino);
      const inside = execFileSync('ip', ['netns', 'exec', ours, 'cat', '/proc/net/dev']).toString();
      expect(procNetDevNames(inside)).toEqual(['lo']);
      // lo is up by default (`ip netns add` leaves it down; loopback: false does the same).
      expect(execFileSync('ip', ['-n', ours, '-o', 'link', 'show', 'lo']).toString()).toMatch(/<LOOPBACK,UP,LOWER_UP>/);

      // Made by ip, seen and deleted here; made here, deleted by ip.
      execFileSync('ip', ['netns', 'add', theirs]);
      expect(listNetns()).toEqual(expect.arrayContaining([ours, theirs]));
      deleteNetns(theirs);
      expect(ipNetnsList()).not.toContain(theirs);
      execFileSync('ip', ['netns', 'delete', ours]);
      expect(listNetns()).not.toContain(ours);
      expect(fs.existsSync(`/run/netns/${ours}`)).toBe(false);
    } finally {
      removeNetns(ours, theirs);
    }
  });

  test('loopback: false leaves lo down, as ip netns add does', () => {
    const name = testNetnsName('down');
    try {
      createNetns(name, { loopback: false });
      expect(execFileSync('ip', ['-n', name, '-o', 'link', 'show', 'lo']).toString()).toMatch(/<LOOPBACK> .* state DOWN/);
    } finally {
      removeNetns(name);
    }
  });

  test('a sandbox joined to a named namespace (by name or path) sees an interface created there', async () => {
    const name = testNetnsName('join');
    try {
      createNetns(name);
      execFileSync('ip', ['-n', name, 'link', 'add', 'name', 'nsjt0', 'type', 'veth', 'peer', 'name', 'nsjt1']);
      const byName = await sh('readlink /proc/self/ns/net; cat /proc/net/dev', { join: { net: name } });
      expect(byName.exitCode).toBe(0);
      const [link, ...dev] = byName.stdout.split('\n');
      expect(link).toBe(`net:[${fs.statSync(`/run/netns/${name}`).ino}]`);
      expect(procNetDevNames(dev.join('\n'))).toEqual(['lo', 'nsjt0', 'nsjt1']);
      const byPath = await sh('cat /proc/net/dev', { join: { net: `/run/netns/${name}` } });
      expect(procNetDevNames(byPath.stdout)).toEqual(['lo', 'nsjt0', 'nsjt1']);
      // The host does not have them.
      expect(fs.existsSync('/sys/class/net/nsjt0')).toBe(false);
    } finally {
      removeNetns(name);
    }
  });

  test('withNetns: a net.Server listening inside is reachable from that namespace only', async () => {
    const name = testNetnsName('with');
    const token = `inside ${name}`;
    const before = nsLink('thread-self', 'net');
    const server = net.createServer((socket) => socket.end(token));
    try {
      createNetns(name);
      // listen without a host binds at once, on this (moved) thread.
      const returned = withNetns(name, () => {
        expect(nsLink('thread-self', 'net')).toBe(`net:[${fs.statSync(`/run/netns/${name}`).ino}]`);
        return server.listen(0);
      });
      expect(returned).toBe(server);
      expect(nsLink('thread-self', 'net')).toBe(before);
      if (!server.listening) await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;

      // From a sandbox in that namespace: connected.
      const inside = await run({ command: 'bash', args: ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port} && cat <&3`], join: { net: name } });
      expect(inside.stdout).toBe(token);
      // From this namespace, same address and port: not that server.
      expect(await tryConnect(port)).not.toBe(token);
    } finally {
      server.close();
      removeNetns(name);
    }
  });

  test('withNetns returns the thread to its namespace when fn throws; bad targets fail before moving', () => {
    const name = testNetnsName('throw');
    const before = nsLink('thread-self', 'net');
    try {
      createNetns(name);
      expect(() => withNetns(name, () => { throw new Error('from fn'); })).toThrow('from fn');
      expect(nsLink('thread-self', 'net')).toBe(before);
      expect(() => withNetns(testNetnsName('nosuch'), () => 1)).toThrow(/withNetns: open \/run\/netns\/nsjt-\d+-nosuch: ENOENT .*no network namespace named/);
      expect(() => withNetns('/proc/self/ns/uts', () => 1)).toThrow(/EINVAL .*not a network namespace/);
      expect(nsLink('thread-self', 'net')).toBe(before);
    } finally {
      removeNetns(name);
    }
  });
});

describe('joining namespaces, as nsenter does', () => {
  test('pid, mnt, net and uts of a running sandbox: its processes, its mounts, its interfaces', async () => {
    const { dir, cleanup } = makeTempDir();
    // A: new pid, mount, net and uts namespaces, its own /proc, a tmpfs with a marker, a sleep.
    const a = spawnIsolated({
      command: '/bin/sh',
      args: ['-c', `mount -t proc proc /proc && mount -t tmpfs sbx ${dir} && echo marker-a > ${dir}/m && { sleep 600 & echo ready; read x; }`],
      pid: true, mount: true, net: true, uts: true, hostname: 'sandbox-a', capabilities: ['CAP_SYS_ADMIN'],
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      expect(await readLine(a.stdout)).toBe('ready');
      // Wait for the background child to have become `sleep`.
      const sleeping = (): boolean => fs.readFileSync(`/proc/${a.pid}/task/${a.pid}/children`, 'utf8').trim().split(' ').filter(Boolean)
        .some((pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep');
      for (let i = 0; i < 500 && !sleeping(); i++) await new Promise((r) => setTimeout(r, 10));
      const b = await sh(`echo $$; ps -e -o pid=,comm=; cat ${dir}/m; hostname; for k in pid mnt net uts; do readlink /proc/self/ns/$k; done`, {
        join: { pid: a, mnt: a.pid, net: `/proc/${a.pid}/ns/net`, uts: a },
      });
      expect(b.stderr).toBe('');
      const lines = b.stdout.trim().split('\n');
      // B is a member of A's PID namespace (not its init), and sees A's processes.
      expect(Number(lines[0])).toBeGreaterThan(1);
      const ps = lines.slice(1, -6).map((l) => l.trim());
      expect(ps).toEqual(expect.arrayContaining(['1 sh', expect.stringMatching(/^\d+ sleep$/), `${lines[0]} sh`]));
      expect(ps.length).toBeLessThan(10);
      // A's mounts (the host's directory is empty), A's host name, A's namespaces.
      expect(lines.slice(-6, -4)).toEqual(['marker-a', 'sandbox-a']);
      expect(fs.readdirSync(dir)).toEqual([]);
      expect(lines.slice(-4)).toEqual(['pid', 'mnt', 'net', 'uts'].map((k) => nsLink(a.pid, k)));
      a.stdin!.end('\n');
      expect((await a).exitCode).toBe(0);
    } finally {
      a.kill();
      await a.exited;
      cleanup();
    }
  });

  test('user, ipc and cgroup of a running sandbox', async () => {
    const a = spawnIsolated({ command: '/bin/sh', args: ['-c', 'ipcmk -Q >/dev/null && echo ready && read x'], user: true, ipc: true, cgroup: true, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      expect(await readLine(a.stdout)).toBe('ready');
      const b = await sh('id -u; tail -n +2 /proc/sysvipc/msg | wc -l; for k in user ipc cgroup; do readlink /proc/self/ns/$k; done', { join: { user: a, ipc: a, cgroup: a } });
      expect(b.stderr).toBe('');
      expect(b.stdout.trim().split('\n').map((l) => l.trim())).toEqual(['0', '1', ...['user', 'ipc', 'cgroup'].map((k) => nsLink(a.pid, k))]);
      a.stdin!.end('\n');
      expect((await a).exitCode).toBe(0);
    } finally {
      a.kill();
      await a.exited;
    }
  });

  test('time: the program sees the clock offsets of the joined time namespace', async () => {
    const offset = 1_000_000;
    // util-linux unshare makes the time namespace (the library has no option for a new one).
    const holder = spawn('unshare', ['--time', '--boottime', String(offset), '--fork', '--kill-child', 'sleep', '600'], { stdio: 'ignore' });
    try {
      let inner = 0;
      for (let i = 0; i < 200 && !inner; i++) {
        await new Promise((r) => setTimeout(r, 10));
        inner = Number(fs.readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, 'utf8').trim().split(' ')[0]) || 0;
        if (inner && nsLink(inner, 'time') === nsLink('self', 'time')) inner = 0; // not unshared yet
      }
      expect(inner).toBeGreaterThan(0);
      const b = await sh('cat /proc/uptime; readlink /proc/self/ns/time', { join: { time: inner } });
      const [uptime, link] = b.stdout.trim().split('\n');
      const hostUptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
      expect(Number(uptime.split(' ')[0]) - hostUptime).toBeGreaterThan(offset - 60);
      expect(link).toBe(nsLink(inner, 'time'));
    } finally {
      holder.kill('SIGKILL');
      await once(holder, 'exit');
    }
  });

  test('a namespace that does not exist: a clear error before any process starts', () => {
    expect(() => spawnIsolated({ command: '/bin/true', join: { net: testNetnsName('nosuch') } })).toThrow(
      /^spawnIsolated: join-net \/run\/netns\/nsjt-\d+-nosuch: ENOENT \(no such file or directory\) \[open\]: no network namespace named/,
    );
    expect(() => spawnIsolated({ command: '/bin/true', join: { pid: 4194303 } })).toThrow(/join-pid \/proc\/4194303\/ns\/pid: ENOENT .*no process with pid 4194303/);
    expect(() => spawnIsolated({ command: '/bin/true', join: { mnt: '/etc/hostname' } })).toThrow(/join-mnt \/etc\/hostname: ENOTTY .*not a namespace file/);
    expect(() => spawnIsolated({ command: '/bin/true', join: { uts: '/proc/self/ns/net' } })).toThrow(/join-uts \/proc\/self\/ns\/net: EINVAL .*not a UTS namespace/);
    try {
      spawnIsolated({ command: '/bin/true', join: { net: testNetnsName('nosuch') } });
    } catch (err) {
      expect(err).toBeInstanceOf(IsolationError);
      expect((err as IsolationError).code).toBe('ENOENT');
    }
  });

  test('duplicate and unknown names: clear errors, nothing left behind', () => {
    const name = testNetnsName('dup');
    try {
      createNetns(name);
      const inode = fs.statSync(`/run/netns/${name}`).ino;
      expect(() => createNetns(name)).toThrow(`createNetns: netns-create /run/netns/${name}: EEXIST (file exists) [open]: a network namespace named '${name}' exists`);
      // The first one is untouched.
      expect(fs.statSync(`/run/netns/${name}`).ino).toBe(inode);
      expect(listNetns().filter((n) => n === name)).toEqual([name]);
      deleteNetns(name);
      expect(() => deleteNetns(name)).toThrow(`deleteNetns: netns-delete /run/netns/${name}: ENOENT (no such file or directory) [lstat]: no network namespace named '${name}'`);
      expect(listNetns()).not.toContain(name);
    } finally {
      removeNetns(name);
    }
    expect(() => createNetns('a/b')).toThrow(RangeError);
    expect(() => createNetns('..')).toThrow("createNetns: name must be a file name (not empty, '.' or '..', without '/' or NUL bytes), got '..'");
    expect(() => createNetns(testNetnsName('x'), { lo: true } as never)).toThrow('createNetns: unknown option lo');
    expect(listNetns()).not.toContain(testNetnsName('x'));
  });
});
