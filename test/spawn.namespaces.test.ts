/** The seed walkthrough observed from inside: each namespace really isolates what it names. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { hostIdRange, spawnIsolated } from '../lib';
import { makeTempDir, run, sh } from './helpers';

const readLine = (stream: NodeJS.ReadableStream): Promise<string> =>
  new Promise((resolve) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        stream.off('data', onData);
        resolve(buffered.slice(0, nl));
      }
    };
    stream.on('data', onData);
  });

describe('namespaces seen from inside', () => {
  test('pid: the program is PID 1 with parent 0, while the handle holds its host PID', async () => {
    const child = spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo $$ $PPID; read x'], pid: true, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const line = await readLine(child.stdout!);
      expect(line).toBe('1 0');
      expect(child.pid).toBeGreaterThan(1);
      // The host sees that pid, and its NSpid line shows both numbers: host pid, then 1.
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      expect(status).toMatch(new RegExp(`^NSpid:\\s+${child.pid}\\s+1$`, 'm'));
      child.stdin!.end('\n');
      expect(await child).toMatchObject({ pid: child.pid, exitCode: 0, signal: null });
    } finally {
      child.kill();
    }
  });

  test('without pid: the program sees its host PID', async () => {
    const r = await sh('echo $$');
    expect(Number(r.stdout)).toBe(r.pid);
  });

  test('net: /proc/net/dev lists only lo', async () => {
    const r = await sh('cat /proc/net/dev', { net: true });
    const interfaces = r.stdout.split('\n').slice(2).filter(Boolean).map((l) => l.split(':')[0].trim());
    expect(interfaces).toEqual(['lo']);
    // The host has more than lo, so the test could fail if the namespace were not new.
    const host = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).filter(Boolean);
    expect(host.length).toBeGreaterThan(1);
  });

  test('uts: a host name set inside leaves the host name unchanged', async () => {
    const before = os.hostname();
    // Changing it from inside needs CAP_SYS_ADMIN, which a sandbox drops unless kept.
    const r = await sh('hostname; hostname changed-inside; hostname', { uts: true, hostname: 'sandbox', capabilities: ['CAP_SYS_ADMIN'] });
    expect(r.stdout).toBe('sandbox\nchanged-inside\n');
    expect(os.hostname()).toBe(before);
  });

  test('ipc: a System V message queue made inside is invisible outside', async () => {
    const hostQueues = (): string[] => fs.readFileSync('/proc/sysvipc/msg', 'utf8').split('\n').slice(1).filter(Boolean);
    const before = hostQueues();
    const child = spawnIsolated({
      command: '/bin/sh',
      args: ['-c', 'ipcmk -Q >/dev/null && tail -n +2 /proc/sysvipc/msg | wc -l; read x'],
      ipc: true,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      // Inside: exactly the one queue it made. Outside, while it exists: the host's table as before.
      expect((await readLine(child.stdout!)).trim()).toBe('1');
      expect(hostQueues()).toEqual(before);
      child.stdin!.end('\n');
      expect((await child).exitCode).toBe(0);
    } finally {
      child.kill();
    }
  });

  test('mount: a mount made inside is invisible outside and gone with the sandbox', async () => {
    const { dir, cleanup } = makeTempDir();
    const mountinfoBefore = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const child = spawnIsolated({
      command: '/bin/sh',
      args: ['-c', `mount -t tmpfs sandbox-tmp ${dir} && echo hi > ${dir}/inside && ls ${dir}; read x`],
      mount: true,
      capabilities: ['CAP_SYS_ADMIN'], // to mount from inside
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      expect(await readLine(child.stdout!)).toBe('inside');
      expect(fs.readdirSync(dir)).toEqual([]);
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toBe(mountinfoBefore);
      child.stdin!.end('\n');
      expect((await child).exitCode).toBe(0);
    } finally {
      child.kill();
      cleanup();
    }
  });

  test('user: root inside; outside a host id of its own for a root caller (else the caller\'s uid)', async () => {
    const r = await sh('id -u; id -g; cat /proc/self/uid_map', { user: true });
    const [uid, gid, map] = r.stdout.split('\n');
    expect([uid, gid]).toEqual(['0', '0']);
    const [inside, outside, count] = map.trim().split(/\s+/).map(Number);
    expect([inside, count]).toEqual([0, 1]);
    // The host sees the process under the mapped id: never host root's (test/containment/hostids.test.ts).
    const { base, count: ids } = hostIdRange();
    if (process.geteuid!() === 0) expect(outside >= base && outside < base + ids).toBe(true);
    else expect(outside).toBe(process.geteuid!());
    expect(r.exitCode).toBe(0);
  });

  test('cgroup: the program sees its cgroup as the root', async () => {
    const r = await sh('cat /proc/self/cgroup', { cgroup: true });
    for (const line of r.stdout.trim().split('\n')) expect(line.split(':')[2]).toBe('/');
  });

  test('all namespaces at once', async () => {
    const r = await sh('echo $$; hostname; cat /proc/net/dev | tail -n +3 | wc -l', {
      pid: true, net: true, mount: true, uts: true, ipc: true, user: true, cgroup: true, hostname: 'all',
    });
    expect(r.stdout.split('\n').map((s) => s.trim())).toEqual(['1', 'all', '1', '']);
  });

  test('env: only PATH by default; nothing of the host unless given', async () => {
    process.env.NSJAIL_NODE_TEST_SECRET = 'leak';
    try {
      const r = await run({ command: 'env' });
      expect(r.stdout.trim().split('\n')).toEqual([`PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`]);
      const given = await run({ command: '/usr/bin/env', env: { A: '1', B: 'two words' } });
      expect(given.stdout.trim().split('\n').sort()).toEqual(['A=1', 'B=two words']);
    } finally {
      delete process.env.NSJAIL_NODE_TEST_SECRET;
    }
  });

  test('argv0 and cwd', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const r = await run({ command: '/bin/sh', argv0: 'custom-name', args: ['-c', 'echo $0; pwd'], cwd: dir });
      expect(r.stdout).toBe(`custom-name\n${dir}\n`);
      const inherited = await sh('pwd');
      expect(inherited.stdout.trim()).toBe(process.cwd());
    } finally {
      cleanup();
    }
  });
});
