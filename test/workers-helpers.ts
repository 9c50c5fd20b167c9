/** Helpers for the worker-thread tests: scenarios in a Node process of their own, marked sandboxes. */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DIST = path.join(__dirname, '..', 'dist');
export const CHURN = path.join(__dirname, 'fixtures', 'worker-churn.js');

/** A marker for sandboxes' environments (NSJ_MARKER=...) unique to this test. */
export function envMarker(tag: string): string {
  return `nsjw-${process.pid}-${tag}-${Math.floor(Math.random() * 1e9)}`;
}

/** Host pids of live (not zombie) processes with NSJ_MARKER=<marker> in their environment. */
export function markedByEnv(marker: string): number[] {
  const found: number[] = [];
  const needle = `NSJ_MARKER=${marker}`;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!fs.readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(needle)) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z') found.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** SIGKILL to what a failed test left. */
export function killByEnv(marker: string): void {
  for (const pid of markedByEnv(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Live, or a zombie nobody reaped. */
export function processState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0];
  } catch {
    return null;
  }
}

/** The entries of a directory, or [] when it does not exist. */
export function entries(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Removes a test's cgroup parent in every v1 hierarchy and in the v2 one (for finally blocks). */
export function removeCgroupParent(parent: string): void {
  for (const root of entries('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', root, parent);
    for (const e of entries(dir)) {
      if (!e.startsWith('nsjail-')) continue;
      try {
        fs.rmdirSync(path.join(dir, e));
      } catch {
        // busy: reported by the test's own assertion
      }
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      // gone or busy
    }
  }
}

/** The sandbox cgroups under `parent` in any hierarchy. */
export function cgroupsUnder(parent: string): string[] {
  const found: string[] = [];
  for (const root of entries('/sys/fs/cgroup')) {
    for (const e of entries(path.join('/sys/fs/cgroup', root, parent))) {
      if (e.startsWith('nsjail-')) found.push(path.join(root, parent, e));
    }
  }
  return found;
}

/** Runs `node -e script` (or a file with args) to its end: status and output. */
export function runNode(args: string[], timeoutMs = 170_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = childProcess.spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Polls until `check()` holds or `ms` passed; returns the last result. */
export async function eventually<T>(fn: () => T, check: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = fn();
  while (!check(v) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    v = fn();
  }
  return v;
}
