/**
 * The creation of a sandbox cgroup on cgroup v2: the controllers the parent offers
 * (cgroup.controllers), their delegation down the tree (`+controller` into each level's
 * cgroup.subtree_control, from the hierarchy root to the parent), the hint for the EBUSY a
 * parent with processes of its own gives (busyParentHint, using this process's own v2
 * directory), then one leaf directory and the v2 limit files (memory.max, memory.swap.max,
 * pids.max, cpu.max). Its own file because v2's single delegated tree has rules v1 does not
 * (no internal processes, controllers enabled per level, an absolute cgroupParent) and
 * shares only the limits logic and the live handle with lib/cgroup-v1.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { binding } from './binding';
import { cgroupError, ERRNO, makeParents, missingController, readControlIfExists, tryRmdir, writeControl } from './cgroup-fs';
import { leafName, SandboxCgroup, sweepStale, trackEarly } from './cgroup-handle';
import { detectHierarchies } from './cgroup-hierarchies';
import { limitWrites, optionalControllers, requiredControllers, type CgroupRequest } from './cgroup-limits';
import { IsolationError } from './errors';
import { readTextIfExists } from './files';

/** The controllers a cgroup v2 directory offers its children, or null when it is not a v2 cgroup. */
export function controllersOffered(dir: string): string[] | null {
  const text = readControlIfExists(path.join(dir, 'cgroup.controllers'), 'cgroup-controller');
  return text === undefined ? null : text.trim().split(/\s+/).filter(Boolean);
}

/**
 * cgroup v2: `+controller` into each level's cgroup.subtree_control from the hierarchy root
 * down to the parent, for the controllers not yet enabled there. Pure: what to write where.
 */
export function subtreeControlWrites(levels: readonly { dir: string; enabled: readonly string[] }[], controllers: readonly string[]): { file: string; data: string }[] {
  const writes: { file: string; data: string }[] = [];
  for (const level of levels) {
    const missing = controllers.filter((c) => !level.enabled.includes(c));
    if (missing.length) writes.push({ file: path.join(level.dir, 'cgroup.subtree_control'), data: missing.map((c) => `+${c}`).join(' ') });
  }
  return writes;
}

/**
 * The hint of an EBUSY from cgroup.subtree_control: `dir` has processes of its own. When
 * this process is one of them (`ownDir`, its cgroup v2 directory), the way out is to move it
 * into a child cgroup (what doctor advises for a delegated cgroup). Pure.
 */
export function busyParentHint(dir: string, ownDir: string | undefined, pid: number): string {
  const rule = 'cgroup v2 enables controllers only for the children of a cgroup without processes of its own';
  if (ownDir !== undefined && path.resolve(ownDir) === path.resolve(dir)) {
    return `${rule}, and this process is in ${dir} itself: move it into a child cgroup first ` +
      `(mkdir ${path.join(dir, 'supervisor')}, then write ${pid} into ${path.join(dir, 'supervisor', 'cgroup.procs')}) and keep ${dir} as cgroupParent`;
  }
  return `${rule}: give cgroupParent a cgroup whose processes are elsewhere (or move them into a child cgroup of it through its cgroup.procs)`;
}

/** This process's cgroup v2 directory (from /proc/self/cgroup under the cgroup2 mount), if any. */
function ownV2Dir(): string | undefined {
  const rel = /^0::(\/.*)$/m.exec(readTextIfExists('/proc/self/cgroup') ?? '')?.[1];
  const mount = detectHierarchies().find((h) => h.version === 2);
  return rel === undefined || mount === undefined ? undefined : path.join(mount.mountPoint, rel);
}

function enableControllers(dir: string, controllers: readonly string[]): void {
  const enabled = readControlIfExists(path.join(dir, 'cgroup.subtree_control'), 'cgroup-enable')?.trim().split(/\s+/).filter(Boolean) ?? [];
  for (const w of subtreeControlWrites([{ dir, enabled }], controllers)) {
    try {
      writeControl(w.file, w.data);
    } catch (e) {
      const busy = (e as NodeJS.ErrnoException).code === 'EBUSY';
      throw cgroupError('cgroup-enable', 'write', w.file, e, busy ? busyParentHint(dir, ownV2Dir(), process.pid) : undefined);
    }
  }
}

/**
 * Creates the v2 cgroup of one sandbox under `base` (the cgroup2 mount, or an absolute
 * cgroupParent), enabling the controllers it needs on the way down, and writes its limits;
 * throws IsolationError (nothing left behind) when a needed controller is missing or the
 * parent is not writable.
 */
export function createV2(req: CgroupRequest, base: string | undefined, offered: string[] | null, keep: boolean): SandboxCgroup {
  if (base === undefined || offered === null) {
    throw new IsolationError({
      errno: ERRNO.ENOENT, step: 'cgroup-controller', syscall: 'open', path: base ?? '/proc/self/mountinfo',
      hint: base === undefined ? 'no cgroup v2 hierarchy is mounted' : `${base} is not a cgroup v2 directory (no cgroup.controllers)`,
    });
  }
  const needed = requiredControllers(req, 2);
  for (const [controller, option] of needed) {
    if (!offered.includes(controller)) throw missingController(option, controller, path.join(base, 'cgroup.controllers'), offered);
  }
  const controllers = [...new Set([...needed.keys(), ...optionalControllers(2).filter((c) => offered.includes(c))])];
  const absolute = path.isAbsolute(req.parent);
  const parentDir = absolute ? req.parent : path.join(base, req.parent);
  const leaf = path.join(parentDir, leafName(keep));
  const parents: string[] = [];
  let made = false;
  const tracked = trackEarly([leaf], keep);
  try {
    for (let attempt = 0; ; attempt++) {
      if (absolute) {
        enableControllers(parentDir, controllers);
      } else {
        const created = makeParents(base, req.parent, (dir) => enableControllers(dir, controllers));
        enableControllers(parentDir, controllers);
        if (req.defaultParent) parents.splice(0, parents.length, parentDir);
        else if (created.length) parents.push(...created.reverse());
      }
      sweepStale(parentDir);
      try {
        fs.mkdirSync(leaf);
        made = true;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || absolute || attempt >= 5) throw cgroupError('cgroup-mkdir', 'mkdir', leaf, e);
      }
    }
    const swapFile = fs.existsSync(path.join(leaf, 'memory.swap.max'));
    if (req.memorySwap !== undefined && !swapFile) {
      throw missingController('limits.memorySwap', 'memory (with swap accounting: memory.swap.max)', leaf, offered);
    }
    for (const w of limitWrites(2, req, swapFile)) {
      const file = path.join(leaf, w.file);
      try {
        writeControl(file, w.data);
      } catch (e) {
        throw cgroupError('cgroup-limit', 'write', file, e);
      }
    }
  } catch (e) {
    if (made) tryRmdir(leaf);
    for (const p of new Set(parents)) tryRmdir(p);
    binding.cgroupUntrack(tracked);
    throw e;
  }
  return SandboxCgroup.make(2, [{ path: leaf, controllers }], [...new Set(parents)], keep, tracked);
}
