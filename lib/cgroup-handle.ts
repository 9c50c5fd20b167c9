/**
 * The live sandbox cgroup, whichever the version: the SandboxCgroup handle (the child's
 * cgroup.procs files, CPU polling, kill: v2 cgroup.kill or v1 freeze-kill-thaw, accounting,
 * release and removal), the names its directories get and the addon's record of them, the
 * sweep that removes cgroups a dead process left behind, and the exit hook that releases
 * what is still live when Node exits. Apart from creation (lib/cgroup-v1.ts,
 * lib/cgroup-v2.ts) because a cgroup of either version lives and dies the same way once made,
 * and the names, the sweep and the exit hook share the module state (the live set) that
 * worker threads each get a copy of.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { binding } from './binding';
import { killPids, readProcs, sleep, sleepSync, tryRmdir, writeControl } from './cgroup-fs';
import { nanosToMicros, parseKeyedFile, readAccounting, readNumber, type CgroupAccounting } from './cgroup-limits';
import { readTextIfExists } from './files';

// ---------------------------------------------------------------------------------------
// Names: nsjail-<pid namespace inode>-<pid>-<sequence>, so that leftovers of a process that
// died (SIGKILL gives no chance to clean up) can be told from live ones and removed later.
// The sequence is the addon's, one per process: worker threads each load their own copy of
// this module, and names must not collide between them. A `-k` suffix marks the cgroup of a
// sandbox with dieWithParent: false, which outlives its owner: never killed by a sweep, only
// removed once empty.

let pidNamespaceId: string | undefined;
function pidNamespace(): string {
  if (pidNamespaceId === undefined) {
    const link = fs.readlinkSync('/proc/self/ns/pid');
    pidNamespaceId = /\[(\d+)\]/.exec(link)?.[1] ?? '0';
  }
  return pidNamespaceId;
}

const NAME_PATTERN = /^nsjail-(\d+)-(\d+)-\d+(-k)?$/;

/** The process exists and is not a zombie (a dead owner its parent has not reaped yet). */
function alive(pid: number): boolean {
  const stat = readTextIfExists(`/proc/${pid}/stat`);
  if (stat === undefined) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * Before each new sandbox cgroup: removes the cgroups of sandboxes whose Node process died
 * without cleaning up (SIGKILL), killing what is left in them. Only names from this PID
 * namespace are considered, and a live owner's are never touched. A readdir per spawn and
 * hierarchy; the kill and wait only when there is a leftover.
 */
export function sweepStale(parentDir: string): void {
  // Those of this process's dead worker threads' dieWithParent: false sandboxes, once empty.
  binding.cgroupSweepOrphans();
  let entries: string[];
  try {
    entries = fs.readdirSync(parentDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const m = NAME_PATTERN.exec(entry);
    if (!m || m[1] !== pidNamespace() || Number(m[2]) === process.pid || alive(Number(m[2]))) continue;
    const dir = path.join(parentDir, entry);
    if (m[3] !== undefined) {
      tryRmdir(dir); // dieWithParent: false: what runs in it is left alone
      continue;
    }
    for (let i = 0; i < 100 && readProcs(dir).length > 0; i++) {
      killPids(readProcs(dir));
      sleepSync(5);
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      // Still busy or already gone: the next process will try again.
    }
  }
}

/** A leaf name not in use: nsjail-<pidns>-<pid>-<n>, with `-k` for a sandbox that outlives its owner. */
export function leafName(keep: boolean): string {
  return `nsjail-${pidNamespace()}-${process.pid}-${binding.nextSequence()}${keep ? '-k' : ''}`;
}

/**
 * Tells the addon about a sandbox cgroup before its directories exist: a worker terminated
 * between the mkdir and the end of createV1/createV2 runs no catch block, and the addon
 * removes the directories then (those not made yet count as removed).
 */
export function trackEarly(leaves: string[], keep: boolean): number {
  return binding.cgroupTrack(leaves, [], keep);
}

// ---------------------------------------------------------------------------------------
// The sandbox cgroup

/** The directory of a sandbox cgroup in one hierarchy. */
export interface CgroupDir {
  path: string;
  /** The controllers it carries that this sandbox uses (v1: its hierarchy's; v2: enabled ones). */
  controllers: string[];
}

const live = new Set<SandboxCgroup>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A Node process that exits normally (even with sandboxes still running, e.g. unref'd
  // ones) leaves no cgroup behind. SIGKILL leaves them to sweepStale.
  // Not those of dieWithParent: false sandboxes, which outlive the process.
  process.on('exit', () => {
    for (const cgroup of live) if (!cgroup.keep) cgroup.releaseSync();
    // And those a terminated worker's teardown had to leave (still busy then), if empty by now.
    binding.cgroupSweepOrphans();
  });
}

/** A sandbox's cgroup: created before clone, joined by the child, removed after exit. */
export class SandboxCgroup {
  #released = false;
  // The addon's record of it (src-native/teardown.h): removed by the addon if this thread's
  // environment goes away without releasing it (a terminated worker).
  readonly #tracked: number;

  private constructor(
    /** 1 or 2. */
    readonly version: 1 | 2,
    /** One directory per hierarchy (one for v2). */
    readonly dirs: readonly CgroupDir[],
    private readonly parentsToRemove: readonly string[],
    /** dieWithParent: false: left with its processes when the process or thread goes away. */
    readonly keep: boolean,
    tracked?: number,
  ) {
    // The record made before the mkdirs (trackEarly), now with the parents to remove after it.
    this.#tracked = binding.cgroupTrack(dirs.map((d) => d.path), [...parentsToRemove], keep, tracked);
  }

  /** @internal */
  static make(version: 1 | 2, dirs: CgroupDir[], parentsToRemove: string[], keep = false, tracked?: number): SandboxCgroup {
    const cgroup = new SandboxCgroup(version, dirs, parentsToRemove, keep, tracked);
    live.add(cgroup);
    installExitHook();
    return cgroup;
  }

  /** The `cgroup.procs` files the child writes "0" to, joining every hierarchy. */
  get procsFiles(): string[] {
    return this.dirs.map((d) => path.join(d.path, 'cgroup.procs'));
  }

  /** The directory carrying a controller (v2: the one directory). */
  dirOf(controller: string): string | undefined {
    if (this.version === 2) return this.dirs[0]?.path;
    return this.dirs.find((d) => d.controllers.includes(controller))?.path;
  }

  /** Total CPU time used in the cgroup so far, microseconds, or null without CPU accounting. */
  cpuUsageMicros(): number | null {
    if (this.version === 2) {
      const text = readTextIfExists(path.join(this.dirs[0].path, 'cpu.stat'));
      return text === undefined ? null : (parseKeyedFile(text).get('usage_usec') ?? null);
    }
    const dir = this.dirOf('cpuacct');
    if (dir === undefined) return null;
    return nanosToMicros(readNumber(path.join(dir, 'cpuacct.usage'))) ?? null;
  }

  /** True when no process is left in any of its directories. */
  empty(): boolean {
    return this.dirs.every((d) => readProcs(d.path).length === 0);
  }

  /**
   * One immediate pass at killing everything in the cgroup: v2 cgroup.kill (atomic, Linux
   * 5.14), else SIGKILL to each pid listed. {@link release} finishes the job.
   */
  killSync(): void {
    if (this.#released) return;
    if (this.version === 2) {
      try {
        writeControl(path.join(this.dirs[0].path, 'cgroup.kill'), '1');
        return;
      } catch {
        // Before 5.14: fall through to the pid list.
      }
    }
    for (const d of this.dirs) killPids(readProcs(d.path));
  }

  /**
   * Kills everything left, waiting until the cgroup is empty. v2: cgroup.kill. v1: freeze
   * (so that nothing forks between reading cgroup.procs and the kill), SIGKILL each pid,
   * thaw; repeated until empty. Without a freezer, the pid list is killed until it stays empty.
   */
  async killAll(): Promise<void> {
    const freezer = this.version === 1 ? this.dirOf('freezer') : undefined;
    for (let round = 0; round < 400 && !this.empty(); round++) {
      if (freezer !== undefined) {
        await this.freezeKillThaw(freezer);
      } else {
        this.killSync();
      }
      if (!this.empty()) await sleep(Math.min(1 + round, 20));
    }
  }

  private async freezeKillThaw(dir: string): Promise<void> {
    const state = path.join(dir, 'freezer.state');
    try {
      writeControl(state, 'FROZEN');
      // FREEZING until every task has stopped; a task in uninterruptible sleep may hold it
      // up, in which case killing what is listed now still makes progress.
      for (let i = 0; i < 50 && readTextIfExists(state)?.trim() !== 'FROZEN'; i++) await sleep(2);
      killPids(readProcs(dir));
    } finally {
      try {
        writeControl(state, 'THAWED');
      } catch {
        // Nothing more to do: the next round reads the state again.
      }
    }
  }

  /** Reads the accounting of everything that ran in the cgroup. */
  accounting(): CgroupAccounting {
    if (this.version === 2) return readAccounting(2, { cgroup: this.dirs[0].path });
    return readAccounting(1, { cpuacct: this.dirOf('cpuacct'), memory: this.dirOf('memory'), pids: this.dirOf('pids') });
  }

  /**
   * After the program has been reaped: kills whatever is left, reads the accounting, removes
   * the cgroup (and the default parent when it is empty). Never throws; a cgroup that cannot
   * be removed is left for the next process's sweep.
   */
  async release(): Promise<CgroupAccounting> {
    if (this.#released) return {};
    try {
      await this.killAll();
    } catch {
      // A control file that vanished or refused: kill what is listed, remove what we can.
      this.killSync();
    }
    const acct = this.accounting();
    // Killed processes leave the cgroup once they have exited and been reaped: on a busy
    // machine that can take a while (2 s here, without blocking the loop).
    for (let i = 0; i < 400; i++) {
      if (this.remove()) break;
      await sleep(5);
    }
    return acct;
  }

  /** {@link release} without waiting on the event loop: after a failed spawn and at process exit. */
  releaseSync(): CgroupAccounting {
    if (this.#released) return {};
    for (let i = 0; i < 200 && !this.empty(); i++) {
      this.killSync();
      if (!this.empty()) sleepSync(5);
    }
    const acct = this.accounting();
    for (let i = 0; i < 50 && !this.remove(); i++) sleepSync(5);
    return acct;
  }

  /** rmdir each directory; true once all are gone. */
  private remove(): boolean {
    let done = true;
    for (const d of this.dirs) {
      try {
        fs.rmdirSync(d.path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') done = false;
      }
    }
    if (!done) return false;
    this.#released = true;
    live.delete(this);
    binding.cgroupUntrack(this.#tracked);
    for (const parent of this.parentsToRemove) {
      try {
        fs.rmdirSync(parent);
      } catch {
        // Another sandbox (of this or another process) is still in it, or it is gone.
      }
    }
    return true;
  }
}
