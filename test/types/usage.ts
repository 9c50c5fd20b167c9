// Type tests: compiled with `tsc --noEmit` by test/packaging.test.ts. Each @ts-expect-error
// line must be an error; everything else must compile.
import { prepareSandbox, runIsolated, spawnIsolated, IsolationError, type PreparedSandbox, type SandboxRun, type CloseStatus, type ExitStatus, type IsolatedProcess, type SpawnOptions } from 'nsjail-node';
import { Readable } from 'node:stream';
import { unshare, setns, waitpid, type NamespaceKind } from 'nsjail-node/syscalls';
import { buildRootfs, type RootfsManifest } from 'nsjail-node/rootfs';

export async function usage(): Promise<void> {
  const child: IsolatedProcess = spawnIsolated({ command: '/bin/true', pid: true, net: true, mount: true, root: '/srv' });
  const { pid, exitCode, signal }: ExitStatus = await child;
  const n: number = pid;
  const code: number | null = exitCode;
  const sig: NodeJS.Signals | null = signal;
  void [n, code, sig];
  child.kill('SIGTERM');
  child.stdout?.on('data', (chunk: Buffer) => chunk.length);
  const status: ExitStatus = await waitpid(child.pid);
  void status;

  // child_process's events and fields.
  child.on('exit', (c: number | null, s: NodeJS.Signals | null) => void [c, s]);
  child.once('close', (c: number | null, s: NodeJS.Signals | null) => void [c, s]);
  child.on('spawn', () => undefined);
  child.on('error', (e: Error) => e.message);
  // @ts-expect-error 'exit' gives a code and a signal, not a string
  child.on('exit', (c: string) => c);
  const fields: [number | null, NodeJS.Signals | null, boolean, number | null] = [child.exitCode, child.signalCode, child.killed, child.initPid];
  void fields;
  const closed: CloseStatus = await child.closed;
  const incomplete: boolean = closed.outputIncomplete;
  const exitedOnly: ExitStatus = await child.exited;
  void [incomplete, exitedOnly];
  const run = await runIsolated({ command: 'cat', input: Readable.from(['x']), forceKillAfter: 500, encoding: 'buffer' });
  const out: Buffer = run.stdout;
  void [out, run.outputIncomplete];

  const options: SpawnOptions = { command: 'sh', args: ['-c', 'true'], stdio: ['pipe', 'inherit', 2], env: { A: '1' } };
  void options;
  // @ts-expect-error command is required
  spawnIsolated({ pid: true });
  // @ts-expect-error namespaces are booleans
  spawnIsolated({ command: 'x', pid: 'yes' });
  // @ts-expect-error not a stdio value
  spawnIsolated({ command: 'x', stdio: 'pip' });
  // @ts-expect-error not a signal name
  child.kill('SIGNOPE');

  const kinds: NamespaceKind[] = ['net', 'uts'];
  unshare(kinds);
  setns('/proc/1/ns/net', 'net');
  // @ts-expect-error not a namespace kind
  unshare(['network']);

  // A prepared sandbox: only a run's differences per spawn.
  const box: PreparedSandbox = prepareSandbox({ command: '/bin/sh', pid: true, limits: { memory: 1 << 28 } });
  const runPart: SandboxRun = { args: ['-c', 'true'], env: { A: '1', B: undefined }, cwd: '/', stdio: 'ignore', timeout: 1000, limits: { wallTime: 5000 } };
  const once: IsolatedProcess = box.spawn(runPart);
  const { child: later } = await box.spawnAsync({ args: ['-c', 'exit 3'] });
  const collected: string = (await box.run({ input: 'x', maxBuffer: 1024 })).stdout;
  const bytes: Buffer = (await box.run({ encoding: 'buffer' })).stdout;
  void [once, later, collected, bytes];
  // @ts-expect-error namespaces are fixed when the sandbox is prepared
  box.spawn({ pid: false });
  // @ts-expect-error only wallTime varies between runs
  box.spawn({ limits: { memory: 1 } });
  // @ts-expect-error run() collects stdout and stderr itself
  void box.run({ stdio: 'inherit' });
  box.close();

  const manifest: RootfsManifest = await buildRootfs('/tmp/root', ['/bin/sh']);
  void manifest.programs;

  try {
    spawnIsolated({ command: '/nonexistent' });
  } catch (e) {
    if (e instanceof IsolationError) {
      const fields: [string, number, string, string, string | undefined] = [e.code, e.errno, e.step, e.syscall, e.path];
      void fields;
    }
  }
}
