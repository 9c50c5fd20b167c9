/**
 * doctor's probes of the host: the kernel's own files read (sysctls, mountinfo, cgroups,
 * seccomp status, container signs) and real attempts to start a sandbox of /bin/true.
 * Each returns facts for the report; none changes anything on the host.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { V1_TCP_LIMIT_FILE } from './cgroups';
import { atLeast, type DoctorAttempt, type DoctorCgroupV1Hierarchy, type DoctorReport } from './doctor-report';
import { IsolationError } from './errors';
import { readTextIfExists } from './files';
import type { SpawnOptions } from './options';
import { spawnIsolated } from './spawn';

const ATTEMPT_TIMEOUT_MS = 10_000;

function readText(file: string): string | null {
  return readTextIfExists(file) ?? null;
}

export function readNumber(file: string): number | null {
  const text = readText(file);
  if (text === null) return null;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : null;
}

function writable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function words(text: string | null): string[] {
  return text === null ? [] : text.split(/\s+/).filter((w) => w !== '');
}

/** A binary that exits 0, for the attempts: /bin/true, else Node itself. */
function trueCommand(): Pick<SpawnOptions, 'command' | 'args'> {
  for (const candidate of ['/bin/true', '/usr/bin/true']) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return { command: candidate, args: [] };
    } catch {
      // try the next
    }
  }
  return { command: process.execPath, args: ['-e', ''] };
}

/** A program on this process's PATH (or the usual bin dirs), if it is there. */
export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // try the next
    }
  }
  return undefined;
}

function failure(err: unknown): DoctorAttempt {
  if (err instanceof IsolationError) return { works: false, error: err.message, code: err.code };
  return { works: false, error: err instanceof Error ? err.message : String(err) };
}

/** Starts the true binary with `extra` options and waits for its exit (bounded). */
export async function attempt(extra: Partial<SpawnOptions>, cloneEngine?: 'clone3' | 'clone'): Promise<DoctorAttempt> {
  const saved = process.env.NSJAIL_NODE_CLONE;
  let child: ReturnType<typeof spawnIsolated>;
  try {
    // The engine is read while the plan is compiled, i.e. inside this synchronous call.
    if (cloneEngine !== undefined) process.env.NSJAIL_NODE_CLONE = cloneEngine;
    child = spawnIsolated({ ...trueCommand(), stdio: 'ignore', ...extra });
  } catch (err) {
    return failure(err);
  } finally {
    if (saved === undefined) delete process.env.NSJAIL_NODE_CLONE;
    else process.env.NSJAIL_NODE_CLONE = saved;
  }
  return awaitExit(child);
}

async function awaitExit(child: ReturnType<typeof spawnIsolated>): Promise<DoctorAttempt> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ATTEMPT_TIMEOUT_MS)));
  const result = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (result === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
    return { works: false, error: `no exit reported within ${ATTEMPT_TIMEOUT_MS / 1000} s (the pidfd watcher did not fire)` };
  }
  if (result.exitCode === 0) return { works: true };
  return { works: false, error: `the program ended with ${result.signal ?? `exit code ${result.exitCode}`}` };
}

function pidfdCount(): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[pidfd]') n++;
    } catch {
      // closed while we looked (the readdir's own fd)
    }
  }
  return n;
}

export async function checkPidfd(version: [number, number, number]): Promise<DoctorReport['pidfd']> {
  let works = false;
  try {
    const before = pidfdCount();
    const child = spawnIsolated({ ...trueCommand(), stdio: 'ignore' });
    // Synchronously after the spawn, before the loop can reap it: its pidfd is open.
    const held = pidfdCount() > before;
    works = held && (await awaitExit(child)).works;
  } catch {
    works = false;
  }
  const kallsyms = readText('/proc/kallsyms');
  if (kallsyms !== null && kallsyms.includes('sys_clone')) {
    return { works, pidfdOpen: /sys_pidfd_open\b/.test(kallsyms), pidfdOpenSource: 'kallsyms' };
  }
  return { works, pidfdOpen: atLeast(version, 5, 3), pidfdOpenSource: 'kernel-version' };
}

interface MountEntry {
  root: string;
  mountpoint: string;
  fstype: string;
  source: string;
  superOptions: string[];
}

export function mountinfo(): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of (readText('/proc/self/mountinfo') ?? '').split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const left = line.slice(0, dash).split(' ');
    const right = line.slice(dash + 3).split(' ');
    // Paths are octal-escaped (\040 for a space).
    const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    entries.push({ root: unescape(left[3]), mountpoint: unescape(left[4]), fstype: right[0], source: right[1], superOptions: (right[2] ?? '').split(',') });
  }
  return entries;
}

/** This process's cgroups from /proc/self/cgroup: controller list ('' for v2) -> path. */
function ownCgroups(): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of (readText('/proc/self/cgroup') ?? '').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) map.set(m[1], m[2]);
  }
  return map;
}

function cgroupDir(mount: MountEntry, cgroupPath: string): string {
  // With a cgroup namespace or a bind-mounted subtree the mount's root is not '/'.
  const rel = mount.root !== '/' && cgroupPath.startsWith(mount.root) ? cgroupPath.slice(mount.root.length) : cgroupPath;
  const dir = path.posix.join(mount.mountpoint, rel);
  return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
}

export function checkCgroups(mounts: MountEntry[]): Omit<DoctorReport['cgroups'], 'limits'> {
  const known = new Set(
    (readText('/proc/cgroups') ?? '').split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split('\t')[0]),
  );
  const own = ownCgroups();
  const v1: DoctorCgroupV1Hierarchy[] = [];
  for (const m of mounts.filter((e) => e.fstype === 'cgroup')) {
    const controllers = m.superOptions.filter((o) => known.has(o));
    if (controllers.length === 0) continue; // a named hierarchy such as name=systemd
    const ownPath = [...own.entries()].find(([list]) => list.split(',').some((c) => controllers.includes(c)))?.[1] ?? '/';
    const cgroup = cgroupDir(m, ownPath);
    v1.push({ controllers, mountpoint: m.mountpoint, cgroup, writable: writable(cgroup) });
  }
  const v2mount = mounts.find((e) => e.fstype === 'cgroup2');
  let v2: DoctorReport['cgroups']['v2'] = { mountpoint: null, cgroup: null, controllers: [], subtreeControl: [], delegated: false };
  if (v2mount) {
    const cgroup = cgroupDir(v2mount, own.get('') ?? '/');
    v2 = {
      mountpoint: v2mount.mountpoint,
      cgroup,
      controllers: words(readText(path.join(cgroup, 'cgroup.controllers'))),
      subtreeControl: words(readText(path.join(cgroup, 'cgroup.subtree_control'))),
      delegated: writable(cgroup) && writable(path.join(cgroup, 'cgroup.subtree_control')),
    };
  }
  const mode = v1.length > 0 ? (v2mount ? 'hybrid' : 'v1') : v2mount ? 'v2' : 'none';
  const v1Memory = v1.find((h) => h.controllers.includes('memory'));
  const socketMemory = v1Memory
    ? (fs.existsSync(path.join(v1Memory.mountpoint, V1_TCP_LIMIT_FILE)) ? 'v1-tcp' : 'v1-none')
    : v2.controllers.includes('memory') ? 'v2' : null;
  return { mode, v1, v2, socketMemory };
}

const CONTAINER_CGROUP = /docker|kubepods|containerd|libpod|lxc|crio|garden|buildkit|actions_job/;

export function checkContainer(mounts: MountEntry[]): DoctorReport['container'] {
  const hints: DoctorReport['container']['hints'] = [];
  if (fs.existsSync('/.dockerenv')) hints.push({ hint: '/.dockerenv exists', strong: false });
  if (fs.existsSync('/run/.containerenv')) hints.push({ hint: '/run/.containerenv exists (Podman)', strong: true });
  const env = process.env.container;
  if (env) hints.push({ hint: `the environment variable container=${env} is set`, strong: true });
  const pid1 = readText('/proc/1/cgroup');
  const match = pid1 && CONTAINER_CGROUP.exec(pid1);
  if (match) hints.push({ hint: `PID 1's cgroup names '${match[0]}' (/proc/1/cgroup)`, strong: true });
  const root = mounts.filter((m) => m.mountpoint === '/').pop();
  if (root && /overlay|aufs/.test(root.fstype)) hints.push({ hint: `the root filesystem is ${root.fstype} (/proc/self/mountinfo)`, strong: true });
  // Docker and Podman bind-mount these three files over the image's.
  const bound = ['/etc/hostname', '/etc/hosts', '/etc/resolv.conf'].filter((f) => mounts.some((m) => m.mountpoint === f));
  if (bound.length === 3) hints.push({ hint: '/etc/hostname, /etc/hosts and /etc/resolv.conf are bind mounts', strong: true });
  const verdict = hints.some((h) => h.strong) ? 'yes' : hints.length > 0 ? 'possibly' : 'no';
  return { verdict, hints };
}

export function checkSeccomp(): Omit<DoctorReport['seccomp'], 'attempt'> {
  const status = readText('/proc/self/status') ?? '';
  const field = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status);
    return m ? Number(m[1]) : null;
  };
  return { mode: field('Seccomp'), filters: field('Seccomp_filters'), actions: words(readText('/proc/sys/kernel/seccomp/actions_avail')) };
}

export function plainAttempt(a: DoctorAttempt): DoctorAttempt {
  return { works: a.works, ...(a.error !== undefined ? { error: a.error } : {}), ...(a.code !== undefined ? { code: a.code } : {}) };
}

