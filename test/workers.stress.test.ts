/**
 * Stress: hundreds of workers, each starting sandboxes of every kind (sync, async, init, with
 * a cgroup, joining a namespace, with a veth, dieWithParent: false) and terminated after a
 * random 0-20 ms, so that termination lands at every point of a spawn. Runs in a Node process of its own: the
 * process must survive, and nothing made by the run may be left: no sandbox process, no
 * cgroup, no pidfd, pipe or namespace fd in the process.
 */
import * as fs from 'node:fs';
import { CHURN, DIST, cgroupsUnder, envMarker, eventually, killByEnv, markedByEnv, removeCgroupParent, runNode } from './workers-helpers';

// 150 cycles keep `npm test` near two minutes here; NSJAIL_NODE_STRESS_CYCLES=3000 runs the
// long version (thousands of termination points, about 40 minutes on 2 cores).
const CYCLES = Number(process.env.NSJAIL_NODE_STRESS_CYCLES ?? 150);
const SPAWNS = 7;
const RUN_MS = Math.max(280_000, CYCLES * 1_000);

describe('workers terminated at random points of their spawns', () => {
  const parent = `nsjail-wtest-${process.pid}-stress`;
  afterAll(() => removeCgroupParent(parent));

  test(`${CYCLES} workers of ${SPAWNS} spawns each: the process survives and nothing made is left`, async () => {
    const marker = envMarker('stress');
    try {
      const modes = ['async', 'sync', 'init', 'cgroup', 'join', 'keep', 'veth'];
      const r = await runNode([CHURN, JSON.stringify({ dist: DIST, cycles: CYCLES, spawns: SPAWNS, modes, marker, cgroupParent: parent })], RUN_MS);
      // On a crash, what it printed (its native stack) is in the diff.
      const crashed = r.code !== 0 || /FATAL ERROR|Segmentation/.test(r.stderr);
      expect({ code: r.code, signal: r.signal, stderr: crashed ? r.stderr.slice(0, 3000) : '' }).toEqual({ code: 0, signal: null, stderr: '' });
      expect(r.stderr).not.toMatch(/closed but not opened/);
      const report = JSON.parse(r.stdout) as { pid: number; errors: string[]; before: Record<string, number>; after: Record<string, number> };
      expect(report.errors).toEqual([]);
      // The process's fds: as many pidfds, pipes and namespace fds as before the churn.
      const kinds = (fds: Record<string, number>): Record<string, number> => Object.fromEntries(
        Object.entries(fds).filter(([k]) => k === 'anon_inode:[pidfd]' || k === 'pipe' || /^(net|uts|pid|mnt)$/.test(k)),
      );
      expect(kinds(report.after)).toEqual(kinds(report.before));
      expect(await eventually(() => markedByEnv(marker), (p) => p.length === 0)).toEqual([]);
      expect(cgroupsUnder(parent)).toEqual([]);
      // Default veth names: nsj<pid base 36><n>. They go with their namespaces.
      const links = (): string[] => fs.readdirSync('/sys/class/net').filter((n) => n.startsWith(`nsj${report.pid.toString(36)}`));
      expect(await eventually(links, (l) => l.length === 0)).toEqual([]);
    } finally {
      killByEnv(marker);
    }
  }, RUN_MS + 20_000);
});
