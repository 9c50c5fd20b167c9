/**
 * Where the cgroup hierarchies are: the cgroup and cgroup2 mounts of this process's mount
 * namespace, parsed from /proc/self/mountinfo, and which cgroup mode (v1, v2, hybrid, none)
 * that makes. A concern of its own because both the v1 and v2 creation paths, doctor and the
 * tests start from it, and the parsing is a pure function over text (tested on fixed
 * mountinfo texts in test/cgroups.logic.test.ts) while only detectHierarchies reads a file.
 */
import * as fs from 'node:fs';
import { cgroupError } from './cgroup-fs';

/** A cgroup hierarchy mounted in this mount namespace. */
export interface CgroupHierarchy {
  version: 1 | 2;
  /** Where it is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`. */
  mountPoint: string;
  /** v1: the controllers bound to it (from the mount's options). v2: empty; see cgroup.controllers. */
  controllers: string[];
}

/** The cgroup v1 controllers the kernel knows (anything else in a mount's options is an option). */
const V1_CONTROLLERS = new Set([
  'cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'net_prio', 'blkio', 'perf_event',
  'hugetlb', 'pids', 'rdma', 'misc',
]);

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The cgroup hierarchies in a /proc/self/mountinfo text: every cgroup2 mount, and every v1
 * mount that carries controllers (a hierarchy mounted twice is listed once). Pure.
 */
export function parseMountinfo(text: string): CgroupHierarchy[] {
  const found: CgroupHierarchy[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const before = line.slice(0, dash).split(' ');
    const [fstype, , superOptions = ''] = line.slice(dash + 3).split(' ');
    if (before.length < 5 || (fstype !== 'cgroup' && fstype !== 'cgroup2')) continue;
    const mountPoint = unescapeMountPath(before[4]);
    if (fstype === 'cgroup2') {
      if (seen.has('cgroup2')) continue;
      seen.add('cgroup2');
      found.push({ version: 2, mountPoint, controllers: [] });
      continue;
    }
    const controllers = superOptions.split(',').filter((o) => V1_CONTROLLERS.has(o)).sort();
    const key = controllers.join(',');
    if (controllers.length === 0 || seen.has(key)) continue;
    seen.add(key);
    found.push({ version: 1, mountPoint, controllers });
  }
  // A pure v2 system mounts cgroup2 at /sys/fs/cgroup; prefer that mount if there are several.
  return found;
}

/** The hierarchies of this process's mount namespace; IsolationError when mountinfo cannot be read (e.g. EMFILE). */
export function detectHierarchies(): CgroupHierarchy[] {
  const file = '/proc/self/mountinfo';
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw cgroupError('cgroup-detect', 'open', file, e);
  }
  return parseMountinfo(text);
}

/** Which cgroup version(s) this process can use, for docs and tools. */
export function cgroupMode(hierarchies: readonly CgroupHierarchy[] = detectHierarchies()): 'v1' | 'v2' | 'hybrid' | 'none' {
  const v1 = hierarchies.some((h) => h.version === 1);
  const v2 = hierarchies.some((h) => h.version === 2);
  return v1 && v2 ? 'hybrid' : v1 ? 'v1' : v2 ? 'v2' : 'none';
}
