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
  'mount -t proc proc /proc',
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
    console.log(`1. A rootfs in ${root}: sh, ls, cat, mount and every library they load (the ldd + cp step)`);
    const manifest = await buildRootfs(root, ['/bin/sh', 'ls', 'cat', 'mount', 'tail', 'cut', 'tr', 'grep']);
    fs.mkdirSync(path.join(root, 'proc'));
    console.log(`   ${manifest.files.length} paths created\n`);

    console.log("2. spawnIsolated({ command: '/bin/sh', root, pid: true, net: true, mount: true, uts: true, ipc: true, hostname: 'sandbox' })");
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
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    console.log(`   host PID ${child.pid}; inside the sandbox:\n`);
    const status = await child;
    console.log(`\n3. Exit status: ${JSON.stringify(status)}`);
    console.log(`   Host hostname still '${os.hostname()}'; the proc mount went away with the sandbox's mount namespace.`);
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
