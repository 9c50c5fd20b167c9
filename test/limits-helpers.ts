/** Helpers for the limits and cgroups tests: marked processes, leftover cgroups, a C memory hog. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detectHierarchies } from '../lib/cgroups';

/**
 * A unique sleep: `sleep 1000 <marker>` sleeps 1000 s plus a fraction no other process uses,
 * so that a test can find its processes in /proc from outside any namespace.
 */
export function marker(): string {
  return `0.${process.pid}${Math.floor(Math.random() * 1e9)}`;
}

/** Host pids of live (not zombie) processes whose command line holds the marker. */
export function markedPids(mark: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.split('\0').includes(mark)) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z') found.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Waits until `check` is true (polling), or fails with `what` after `ms`. */
export async function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Kills marked processes a failed test may have left. */
export function killMarked(mark: string): void {
  for (const pid of markedPids(mark)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/**
 * Cgroup directories whose name holds `needle` (default: this process's sandbox names,
 * `nsjail-<pidns>-<pid>-<n>`), searched three levels deep under every cgroup mount.
 */
export function leftoverCgroups(needle = `-${process.pid}-`): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const full = path.join(dir, e.name);
      if (e.name.includes('nsjail') && e.name.includes(needle)) found.push(full);
      if (depth > 1) walk(full, depth - 1);
    }
  };
  for (const h of detectHierarchies()) walk(h.mountPoint, 3);
  return found;
}

/** The cgroup path of a live process in the hierarchy with `controller` (v1) or '' (v2). */
export function cgroupOf(pid: number, controller: string): string | undefined {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  for (const line of lines) {
    const [, controllers, p] = line.split(':');
    if (controllers.split(',').includes(controller)) return p;
  }
  return undefined;
}

const HOG_SOURCE = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* hog N: allocate and touch N MiB, then exit 0. hog 0: allocate and touch until killed. */
int main(int argc, char **argv) {
  long mib = argc > 1 ? atol(argv[1]) : 0;
  for (long i = 0; mib == 0 || i < mib; i++) {
    char *p = malloc(1 << 20);
    if (!p) return 3;
    memset(p, 1, 1 << 20);
  }
  return 0;
}
`;

/** Compiles the memory hog into `dir` (cc is on this machine and CI); returns its path. */
export function buildHog(dir: string): string {
  const source = path.join(dir, 'hog.c');
  const binary = path.join(dir, 'hog');
  fs.writeFileSync(source, HOG_SOURCE);
  execFileSync('cc', ['-O1', '-o', binary, source]);
  return binary;
}
