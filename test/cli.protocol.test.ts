/**
 * The process-protocol flags of bwrap(1), on both entry points where they are shared:
 * --args, --info-fd, --json-status-fd (bwrap's two documents), --block-fd,
 * --userns-block-fd, --sync-fd. Each wait is observed from the kernel (the waiting process
 * blocked in read(2) on that fd, /proc/PID/syscall), never by timing.
 */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN, BWRAP_BIN, bwrap, cli, type CliResult } from './cli-helpers';
import { makeTempDir } from './helpers';

jest.setTimeout(30000);

const SYS_read = process.arch === 'arm64' ? 63 : 0;

/** Resolves once `pid` is blocked in read(2) on `fd` (its /proc/PID/syscall); rejects after `deadline` ms or when it is gone. */
async function blockedInRead(pid: number, fd: number, deadline = 10000): Promise<void> {
  const end = Date.now() + deadline;
  for (;;) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/syscall`, 'utf8');
    } catch {
      throw new Error(`process ${pid} is gone`);
    }
    const [nr, arg0] = text.split(' ');
    if (Number(nr) === SYS_read && Number(arg0) === fd) return;
    if (Date.now() > end) throw new Error(`process ${pid} did not block in read(${fd}): ${text.trim()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A FIFO's two ends, [read, write], both of this process (Node has no pipe(2)). `blocking`:
 * the read end blocks (opened read-write, so it never sees end of file); else it does not.
 */
function makePipe(blocking: boolean): [number, number] {
  const dir = fs.mkdtempSync('/tmp/nsjail-node-fifo-');
  const fifo = path.join(dir, 'p');
  try {
    child_process.execFileSync('mkfifo', [fifo]);
    const r = fs.openSync(fifo, blocking ? fs.constants.O_RDWR : fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const w = fs.openSync(fifo, fs.constants.O_WRONLY);
    return [r, w];
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
}

/** Starts a command with extra fds (fd 3 piped, `fds` as 4, 5, ...) and collects what it writes. */
function start(bin: string, args: readonly string[], fds: readonly (number | 'pipe')[]): { child: child_process.ChildProcess; done: Promise<CliResult> } {
  const child = child_process.spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe', ...fds] });
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], fd3: [] as Buffer[] };
  child.stdout!.on('data', (c: Buffer) => out.stdout.push(c));
  child.stderr!.on('data', (c: Buffer) => out.stderr.push(c));
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => out.fd3.push(c));
  child.stdin!.on('error', () => {});
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({
      code, signal, stdout: Buffer.concat(out.stdout).toString(), stderr: Buffer.concat(out.stderr).toString(), fd3: Buffer.concat(out.fd3).toString(),
    }));
  });
  return { child, done };
}

/** Everything written to a child's stdio pipe `n` until its end. */
function readToEnd(child: child_process.ChildProcess, n: number): Promise<string> {
  const stream = child.stdio[n] as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}

describe('--args FD', () => {
  test.each([['nsjail-node', BIN], ['nsjail-node-bwrap', BWRAP_BIN]])('%s: NUL-separated arguments read from FD, parsed in its place', async (_name, bin) => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = path.join(dir, 'args');
      fs.writeFileSync(file, '--setenv\0A\0from file\0--setenv\0B\0two\0');
      const fd = fs.openSync(file, 'r');
      try {
        const head = bin === BWRAP_BIN ? ['--bind', '/', '/'] : [];
        const r = await cli([...head, '--setenv', 'A', 'before', '--args', '4', '--setenv', 'B', 'after', '/bin/sh', '-c', 'echo "$A/$B"'], { bin, fds: [fd] });
        expect(r.stdout).toBe('from file/after\n');
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      cleanup();
    }
  });

  test('--args inside an arguments file is refused, as by bubblewrap', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = path.join(dir, 'args');
      fs.writeFileSync(file, '--args\x004\0');
      const fd = fs.openSync(file, 'r');
      try {
        const r = await bwrap(['--args', '4', 'true'], { fds: [fd] });
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: 'bwrap: --args not supported in arguments file\n' });
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      cleanup();
    }
  });
});

describe('--level-prefix', () => {
  test('nsjail-node: its own warnings <4>, errors <3> (without the flag: none)', async () => {
    const warned = await cli(['--level-prefix', '--chdir', '/', '--chdir', '/', 'true']);
    expect({ code: warned.code, stderr: warned.stderr }).toEqual({ code: 0, stderr: '<4>nsjail-node: warning: Only the last --chdir option will take effect\n' });
    expect((await cli(['--chdir', '/', '--chdir', '/', 'true'])).stderr).toBe('nsjail-node: warning: Only the last --chdir option will take effect\n');
    const refused = await cli(['--level-prefix', '--frobnicate', 'true']);
    expect(refused.code).toBe(2);
    expect(refused.stderr.split('\n')[0]).toBe('<3>nsjail-node: unknown flag --frobnicate');
  });
});

describe('--info-fd and --json-status-fd', () => {
  test.each([['nsjail-node', BIN], ['nsjail-node-bwrap', BWRAP_BIN]])('%s --info-fd: the first process\'s pid and the namespaces\' ids, as the program sees them', async (_name, bin) => {
    const head = bin === BWRAP_BIN ? ['--bind', '/', '/'] : ['--mount'];
    const r = await cli([...head, '--unshare-net', '--unshare-pid', '--unshare-ipc', '--info-fd', '3', '/bin/sh', '-c', 'stat -L -c "%n %i" /proc/self/ns/net /proc/self/ns/pid /proc/self/ns/ipc'], { bin });
    expect(r.code).toBe(0);
    const info = JSON.parse(r.fd3) as Record<string, number>;
    expect(r.fd3).toMatch(/^\{\n {4}"child-pid": \d+,\n/);
    const seen = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split(' ')).map(([n, id]) => [`${path.basename(n)}-namespace`, Number(id)]));
    expect(info).toMatchObject(seen);
    expect(info['child-pid']).toBeGreaterThan(1);
  });

  test('nsjail-node-bwrap --json-status-fd: {"child-pid", ids} then {"exit-code"}', async () => {
    const r = await bwrap(['--bind', '/', '/', '--unshare-net', '--json-status-fd', '3', '/bin/sh', '-c', 'readlink /proc/self/ns/net; exit 42']);
    expect(r.code).toBe(42);
    const lines = r.fd3.split('\n');
    expect(lines[0]).toMatch(/^\{ "child-pid": \d+, "mnt-namespace": \d+, "net-namespace": (\d+) \}$/);
    expect(`net:[${/"net-namespace": (\d+)/.exec(lines[0])![1]}]\n`).toBe(r.stdout);
    expect(lines.slice(1)).toEqual(['{ "exit-code": 42 }', '']);
  });

  test('nsjail-node-bwrap --json-status-fd: no "exit-code" when the program could not be executed', async () => {
    const r = await bwrap(['--bind', '/', '/', '--json-status-fd', '3', '/']);
    expect(r.code).toBe(1);
    expect(r.fd3).not.toMatch(/exit-code/);
  });
});

describe('--block-fd, --userns-block-fd, --sync-fd', () => {
  test.each([['nsjail-node', BIN], ['nsjail-node-bwrap', BWRAP_BIN]])('%s --block-fd: the program starts only once FD has data', async (_name, bin) => {
    const [r, w] = makePipe(true);
    try {
      const head = bin === BWRAP_BIN ? ['--bind', '/', '/'] : [];
      // fd 4 is the block fd; --info-fd 3 tells which process to watch.
      const run = start(bin, [...head, '--info-fd', '3', '--block-fd', '4', '/bin/echo', 'started'], [r]);
      const info = JSON.parse(await readToEnd(run.child, 3)) as { 'child-pid': number };
      // The sandbox exists and waits in read(4): the program has not started.
      await blockedInRead(info['child-pid'], 4);
      fs.writeSync(w, 'x');
      const result = await run.done;
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 0, stdout: 'started\n' });
    } finally {
      fs.closeSync(r);
      fs.closeSync(w);
    }
  });

  test('--userns-block-fd: the info arrives (to its end) while the sandbox waits; the caller\'s id maps are the ones used', async () => {
    const [r, w] = makePipe(true);
    try {
      const run = start(BWRAP_BIN, ['--bind', '/', '/', '--unshare-user', '--info-fd', '3', '--userns-block-fd', '4', '/bin/sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u'], [r]);
      // End of file on the info pipe while the sandbox waits: nothing else holds it open.
      const info = JSON.parse(await readToEnd(run.child, 3)) as { 'child-pid': number };
      const pid = info['child-pid'];
      // The sandbox's own ids (this process's, root) must stay mapped for its set-up: as 1000 inside.
      fs.writeFileSync(`/proc/${pid}/uid_map`, '1000 0 1\n');
      fs.writeFileSync(`/proc/${pid}/setgroups`, 'deny');
      fs.writeFileSync(`/proc/${pid}/gid_map`, '1000 0 1\n');
      fs.writeSync(w, 'x');
      const result = await run.done;
      expect(result.code).toBe(0);
      expect(result.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' '))).toEqual(['1000 0 1', '1000 0 1', '1000', '']);
      // Control: without --userns-block-fd the map is bubblewrap's own (root to root).
      const control = await bwrap(['--bind', '/', '/', '--unshare-user', '/bin/cat', '/proc/self/uid_map']);
      expect(control.stdout.trim().split(/\s+/).join(' ')).toBe('0 0 1');
    } finally {
      fs.closeSync(r);
      fs.closeSync(w);
    }
  });

  test('--sync-fd: its reader sees end of file only once the sandbox is gone', async () => {
    const [r, w] = makePipe(false);
    try {
      // The command holds the write end as its fd 4; ours is closed, so only it keeps the pipe open.
      const run = start(BWRAP_BIN, ['--bind', '/', '/', '--sync-fd', '4', '/bin/sh', '-c', 'echo running; read line'], [w]);
      fs.closeSync(w);
      const stdout = run.child.stdout!;
      await new Promise<void>((resolve) => stdout.once('data', () => resolve()));
      // The program runs: no end of file yet (EAGAIN on the non-blocking read end).
      expect(() => fs.readSync(r, Buffer.alloc(1))).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
      run.child.stdin!.end('done\n');
      expect((await run.done).code).toBe(0);
      expect(fs.readSync(r, Buffer.alloc(1))).toBe(0);
    } finally {
      fs.closeSync(r);
    }
  });
});
