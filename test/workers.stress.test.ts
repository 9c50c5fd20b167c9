/**
 * Stress: hundreds of workers, each starting sandboxes of every kind (sync, async, init, with
 * a cgroup, joining a namespace, dieWithParent: false) and terminated after a random 0-20 ms,
 * so that termination lands at every point of a spawn. Runs in a Node process of its own: the
 * process must survive, and nothing made by the run may be left: no sandbox process, no
 * cgroup, no pidfd, pipe or namespace fd in the process.
 */
import { CHURN, DIST, cgroupsUnder, envMarker, eventually, killByEnv, markedByEnv, removeCgroupParent, runNode } from './workers-helpers';

const CYCLES = 150;

describe('workers terminated at random points of their spawns', () => {
  const parent = `nsjail-wtest-${process.pid}-stress`;
  afterAll(() => removeCgroupParent(parent));

  test(`${CYCLES} workers of 6 spawns each: the process survives and nothing made is left`, async () => {
    const marker = envMarker('stress');
    try {
      const modes = ['async', 'sync', 'init', 'cgroup', 'join', 'keep'];
      const r = await runNode([CHURN, JSON.stringify({ dist: DIST, cycles: CYCLES, spawns: 6, modes, marker, cgroupParent: parent })], 280_000);
      expect({ code: r.code, signal: r.signal, fatal: /FATAL ERROR|Segmentation|Aborted/.exec(r.stderr)?.[0] }).toEqual({ code: 0, signal: null, fatal: undefined });
      expect(r.stderr).not.toMatch(/closed but not opened/);
      const report = JSON.parse(r.stdout) as { errors: string[]; before: Record<string, number>; after: Record<string, number> };
      expect(report.errors).toEqual([]);
      // The process's fds: as many pidfds, pipes and namespace fds as before the churn.
      const kinds = (fds: Record<string, number>): Record<string, number> => Object.fromEntries(
        Object.entries(fds).filter(([k]) => k === 'anon_inode:[pidfd]' || k === 'pipe' || /^(net|uts|pid|mnt)$/.test(k)),
      );
      expect(kinds(report.after)).toEqual(kinds(report.before));
      expect(await eventually(() => markedByEnv(marker), (p) => p.length === 0)).toEqual([]);
      expect(cgroupsUnder(parent)).toEqual([]);
    } finally {
      killByEnv(marker);
    }
  }, 300_000);
});
