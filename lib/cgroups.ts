/**
 * Cgroups for sandboxes, v1 and v2, detected at run time: one cgroup per sandbox under a
 * configurable parent, its limits written before clone, joined by the child before exec
 * (lib/limits.ts plans the join step), its accounting read after exit, everything left in it
 * killed, and the directory removed.
 *
 * This is the entry the rest of the library imports: which version a request gets
 * (chooseVersion) and createSandboxCgroup, which hands over to lib/cgroup-v1.ts or
 * lib/cgroup-v2.ts. The other concerns live in their own files and are re-exported here:
 * lib/cgroup-hierarchies.ts (where the hierarchies are mounted), lib/cgroup-limits.ts (the
 * request, its limit writes and the accounting parsing, shared by both versions),
 * lib/cgroup-handle.ts (the live SandboxCgroup: kill, release, stale sweep, exit hook) and
 * lib/cgroup-fs.ts (the cgroupfs primitives and their errors). Only these files touch
 * cgroupfs. The parts that decide (which hierarchy, which files get which values, how
 * accounting files parse) are plain functions over text and numbers, so that the cgroup v2
 * logic this machine cannot run is still tested.
 */
import * as path from 'node:path';
import { ERRNO } from './cgroup-fs';
import type { SandboxCgroup } from './cgroup-handle';
import { detectHierarchies, type CgroupHierarchy } from './cgroup-hierarchies';
import { requiredControllers, type CgroupRequest } from './cgroup-limits';
import { createV1 } from './cgroup-v1';
import { controllersOffered, createV2 } from './cgroup-v2';
import { IsolationError } from './errors';

export { SandboxCgroup, type CgroupDir } from './cgroup-handle';
export { cgroupMode, detectHierarchies, parseMountinfo, type CgroupHierarchy } from './cgroup-hierarchies';
export {
  CPU_PERIOD_MICROS, cpuQuotaMicros, limitWrites, parseKeyedFile, readAccounting, requiredControllers, V1_TCP_LIMIT_FILE,
  type CgroupAccounting, type CgroupRequest, type CgroupWrite,
} from './cgroup-limits';
export { busyParentHint, subtreeControlWrites } from './cgroup-v2';

/** The default parent: a directory of this name under each hierarchy's root. */
export const DEFAULT_CGROUP_PARENT = 'nsjail-node';

/** Which version a request uses: forced, or 'auto' as documented. Pure. */
export function chooseVersion(
  req: CgroupRequest,
  hierarchies: readonly CgroupHierarchy[],
  v2Offered: readonly string[] | null,
): 1 | 2 {
  if (req.version !== 'auto') return req.version;
  if (path.isAbsolute(req.parent)) return 2;
  const v1 = hierarchies.filter((h) => h.version === 1);
  const v1Has = (c: string): boolean => v1.some((h) => h.controllers.includes(c));
  const v2 = v2Offered !== null;
  if (v1.length === 0) return v2 ? 2 : 1;
  if ([...requiredControllers(req, 1).keys()].every(v1Has)) return 1;
  if (v2 && [...requiredControllers(req, 2).keys()].every((c) => v2Offered.includes(c))) return 2;
  return 1; // report what v1 lacks
}

/**
 * Creates the cgroup of one sandbox and writes its limits; throws IsolationError (nothing
 * left behind) when a needed controller is missing or the parent is not writable.
 */
export function createSandboxCgroup(req: CgroupRequest, hierarchies: readonly CgroupHierarchy[] = detectHierarchies(), keep = false): SandboxCgroup {
  const v2Mount = hierarchies.find((h) => h.version === 2 && h.mountPoint === '/sys/fs/cgroup') ?? hierarchies.find((h) => h.version === 2);
  const absolute = path.isAbsolute(req.parent);
  const v2Base = absolute ? req.parent : v2Mount?.mountPoint;
  const v2Offered = v2Base === undefined ? null : controllersOffered(v2Base);
  const version = chooseVersion(req, hierarchies, v2Offered);
  if (version === 1 && absolute) {
    throw new IsolationError({
      errno: ERRNO.EINVAL, step: 'cgroup-parent', syscall: 'open', path: req.parent,
      hint: 'an absolute cgroupParent names a cgroup v2 directory; for cgroup v1 give a name relative to each controller\'s mount',
    });
  }
  return version === 2 ? createV2(req, v2Base, v2Offered, keep) : createV1(req, hierarchies, keep);
}
