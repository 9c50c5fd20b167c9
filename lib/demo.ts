/**
 * `npm start`: the seed walkthrough (copy a rootfs by hand, chroot, PID 1 in a new PID
 * namespace, a network namespace with only `lo`) as one spawnIsolated call.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildRootfs } from './rootfs';
import { spawnIsolated } from './spawn';

const INSIDE = [
  'echo "PID: $$   PPID: $PPID"',
  'echo "hostname: $(cat /proc/sys/kernel/hostname)"',
  'echo "root listing: $(ls / | tr "\\n" " ")"',
  'echo "network interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " ")"',
  'echo "processes: $(ls /proc | grep -E "^[0-9]+$" | tr "\\n" " ")"',
].join('; ');

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-demo-'));
  try {
    console.log('nsjail-node: the seed walkthrough in one call\n');
    console.log(`1. A rootfs in ${root}: sh, ls, cat and every library they load (the ldd + cp step)`);
    const manifest = await buildRootfs(root, ['/bin/sh', 'ls', 'cat', 'tail', 'cut', 'tr', 'grep']);
    console.log(`   ${manifest.files.length} paths created\n`);

    console.log("2. spawnIsolated({ command: '/bin/sh', root, pid: true, net: true, mount: true, uts: true, ipc: true,");
    console.log("                 hostname: 'sandbox', loopback: false, mounts: [{ type: 'proc' }] })");
    console.log('   inside the sandbox:\n');
    const child = spawnIsolated({
      command: '/bin/sh',
      args: ['-c', INSIDE],
      root,
      pid: true,
      net: true,
      mount: true,
      uts: true,
      ipc: true,
      hostname: 'sandbox',
      loopback: false, // as in the seed: lo exists, down
      mounts: [{ type: 'proc' }], // a /proc of the sandbox's own PID namespace
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const status = await child;
    const { pid, exitCode, signal, wallTimeMs } = status;
    console.log(`\n3. Exit status: ${JSON.stringify({ pid, exitCode, signal, wallTimeMs: Math.round(wallTimeMs) })} (pid as the host sees it)`);
    console.log(`   The host's hostname is still '${os.hostname()}'; the sandbox's /proc mount went away with it.`);
    process.exitCode = status.exitCode ?? 1;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    console.log(`4. Removed ${root}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
