/**
 * The creation of a sandbox cgroup on cgroup v1: one directory per hierarchy that carries a
 * controller the sandbox needs or uses (freezer for the kill, cpuacct and memory for the
 * accounting), made under the same relative parent in each, then the v1 limit files written
 * (memory.limit_in_bytes, memsw when the kernel accounts swap, the TCP buffer limit that
 * turns on their accounting, cpu.cfs_*). Its own file because v1 and v2 lay cgroups out
 * differently (many hierarchies against one tree with delegation) and share only the limits
 * logic and the live handle, which both import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { binding } from './binding';
import { cgroupError, makeParents, missingController, tryRmdir, writeControl } from './cgroup-fs';
import { leafName, SandboxCgroup, sweepStale, trackEarly, type CgroupDir } from './cgroup-handle';
import type { CgroupHierarchy } from './cgroup-hierarchies';
import { limitWrites, optionalControllers, requiredControllers, V1_TCP_LIMIT_FILE, type CgroupRequest } from './cgroup-limits';

/**
 * Creates the v1 cgroup of one sandbox in every hierarchy it uses and writes its limits;
 * throws IsolationError (nothing left behind) when a needed controller is missing.
 */
export function createV1(req: CgroupRequest, hierarchies: readonly CgroupHierarchy[], keep: boolean): SandboxCgroup {
  const v1 = hierarchies.filter((h) => h.version === 1);
  const offered = [...new Set(v1.flatMap((h) => h.controllers))].sort();
  const needed = requiredControllers(req, 1);
  for (const [controller, option] of needed) {
    if (!offered.includes(controller)) throw missingController(option, controller, '/proc/self/mountinfo', offered);
  }
  const wanted = new Set([...needed.keys(), ...optionalControllers(1).filter((c) => offered.includes(c))]);
  const used = v1.filter((h) => h.controllers.some((c) => wanted.has(c)));
  const memoryHierarchy = used.find((h) => h.controllers.includes('memory'));
  const swapFile = memoryHierarchy !== undefined && fs.existsSync(path.join(memoryHierarchy.mountPoint, 'memory.memsw.limit_in_bytes'));
  if (req.memorySwap !== undefined && !swapFile) {
    throw missingController('limits.memorySwap', 'memory (with swap accounting: memory.memsw.*)', memoryHierarchy?.mountPoint ?? '/proc/self/mountinfo', offered);
  }
  const tcpFile = memoryHierarchy !== undefined && fs.existsSync(path.join(memoryHierarchy.mountPoint, V1_TCP_LIMIT_FILE));
  const writes = limitWrites(1, req, swapFile, tcpFile);
  const name = leafName(keep);
  const dirs: CgroupDir[] = [];
  const parents = new Set<string>();
  const tracked = trackEarly(used.map((h) => path.join(h.mountPoint, req.parent, name)), keep);
  try {
    for (const h of used) {
      const parentDir = path.join(h.mountPoint, req.parent);
      const leaf = path.join(parentDir, name);
      for (let attempt = 0; ; attempt++) {
        const made = makeParents(h.mountPoint, req.parent);
        for (const p of req.defaultParent ? [parentDir] : made.reverse()) parents.add(p);
        sweepStale(parentDir);
        try {
          fs.mkdirSync(leaf);
          break;
        } catch (e) {
          // ENOENT: another process removed the (empty) default parent just now.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw cgroupError('cgroup-mkdir', 'mkdir', leaf, e);
        }
      }
      dirs.push({ path: leaf, controllers: h.controllers.filter((c) => wanted.has(c)) });
    }
    for (const w of writes) {
      const file = path.join(dirs.find((d) => d.controllers.includes(w.controller))!.path, w.file);
      try {
        writeControl(file, w.data);
      } catch (e) {
        throw cgroupError('cgroup-limit', 'write', file, e);
      }
    }
  } catch (e) {
    // Nothing has joined yet: the new directories are empty and rmdir cannot fail on them.
    for (const d of dirs) tryRmdir(d.path);
    for (const p of parents) tryRmdir(p);
    binding.cgroupUntrack(tracked);
    throw e;
  }
  return SandboxCgroup.make(1, dirs, [...parents], keep, tracked);
}
