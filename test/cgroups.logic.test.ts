/**
 * The decisions of lib/cgroups.ts and the lib/cgroup-*.ts files it re-exports (hierarchies,
 * limits, v2 delegation) as plain functions: which hierarchy, which files get which
 * values, how accounting files parse. This is how the cgroup v2 limit and accounting logic
 * is covered on a machine whose v2 hierarchy has no controllers: the parsing is run on a fake
 * cgroup directory tree in a temp dir (testing file-reading logic, not mocking a syscall);
 * creating, joining, killing and removing run for real in cgroups.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  busyParentHint, chooseVersion, cpuQuotaMicros, limitWrites, parseKeyedFile, parseMountinfo, readAccounting, requiredControllers,
  subtreeControlWrites, type CgroupHierarchy, type CgroupRequest,
} from '../lib/cgroups';
import { makeTempDir } from './helpers';

const MiB = 1024 * 1024;

// This machine's /proc/self/mountinfo (cgroup lines and a few others).
const HYBRID = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

// A systemd system with cgroup v2 only, and a v1 system with cpu,cpuacct co-mounted twice.
const PURE_V2 = `35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const COMOUNTED = `40 30 0:40 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:20 - cgroup cgroup rw,cpu,cpuacct
41 30 0:40 / /mnt/cpu\\040again rw - cgroup cgroup rw,cpuacct,cpu
42 30 0:41 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids,clone_children
`;

const request = (r: Partial<CgroupRequest>): CgroupRequest => ({ version: 'auto', parent: 'nsjail-node', defaultParent: true, cpuAccounting: false, ...r });

describe('detection', () => {
  test('mountinfo: v1 hierarchies with their controllers, the cgroup2 mount, named hierarchies skipped', () => {
    expect(parseMountinfo(HYBRID)).toEqual<CgroupHierarchy[]>([
      { version: 1, mountPoint: '/sys/fs/cgroup/cpu', controllers: ['cpu'] },
      { version: 1, mountPoint: '/sys/fs/cgroup/cpuacct', controllers: ['cpuacct'] },
      { version: 1, mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'] },
      { version: 1, mountPoint: '/sys/fs/cgroup/freezer', controllers: ['freezer'] },
      { version: 1, mountPoint: '/sys/fs/cgroup/pids', controllers: ['pids'] },
      { version: 2, mountPoint: '/sys/fs/cgroup/unified', controllers: [] },
    ]);
    expect(parseMountinfo(PURE_V2)).toEqual([{ version: 2, mountPoint: '/sys/fs/cgroup', controllers: [] }]);
    // Co-mounted controllers are one hierarchy (listed once), options are not controllers.
    expect(parseMountinfo(COMOUNTED)).toEqual([
      { version: 1, mountPoint: '/sys/fs/cgroup/cpu,cpuacct', controllers: ['cpu', 'cpuacct'] },
      { version: 1, mountPoint: '/sys/fs/cgroup/pids', controllers: ['pids'] },
    ]);
    expect(parseMountinfo('50 30 0:50 / /mnt/a\\040b rw - cgroup2 cgroup2 rw\n')[0].mountPoint).toBe('/mnt/a b');
  });

  test("version 'auto': v1 when it carries every controller needed, else v2 when that does, forced otherwise", () => {
    const hybrid = parseMountinfo(HYBRID);
    const noPidsV1 = hybrid.filter((h) => !h.controllers.includes('pids'));
    expect(chooseVersion(request({ memory: 1, pids: 1 }), hybrid, ['hugetlb'])).toBe(1);
    expect(chooseVersion(request({ pids: 1 }), noPidsV1, ['pids', 'memory'])).toBe(2);
    // Neither has it: v1, whose error names what is missing.
    expect(chooseVersion(request({ pids: 1 }), noPidsV1, ['memory'])).toBe(1);
    expect(chooseVersion(request({ memory: 1 }), parseMountinfo(PURE_V2), ['cpu', 'memory', 'pids'])).toBe(2);
    expect(chooseVersion(request({ version: 2, memory: 1 }), hybrid, ['hugetlb'])).toBe(2);
    expect(chooseVersion(request({ parent: '/sys/fs/cgroup/user.slice/me' }), hybrid, [])).toBe(2);
  });

  test('required controllers name the option that needs them; v2 needs none for CPU accounting', () => {
    const req = request({ memorySwap: 0, pids: 'max', cpu: 0.5, cpuAccounting: true });
    expect([...requiredControllers(req, 1)]).toEqual([['memory', 'limits.memorySwap'], ['pids', 'limits.pids'], ['cpu', 'limits.cpu'], ['cpuacct', 'limits.cpuTime']]);
    expect([...requiredControllers(req, 2).keys()]).toEqual(['memory', 'pids', 'cpu']);
  });
});

describe('limit files', () => {
  test('cgroup v2: memory.max, memory.swap.max (0 unless given), pids.max, cpu.max', () => {
    const req = request({ memory: 64 * MiB, pids: 32, cpu: 0.5 });
    expect(limitWrites(2, req, true)).toEqual([
      { controller: 'memory', file: 'memory.max', data: String(64 * MiB) },
      { controller: 'memory', file: 'memory.swap.max', data: '0' },
      { controller: 'pids', file: 'pids.max', data: '32' },
      { controller: 'cpu', file: 'cpu.max', data: '50000 100000' },
    ]);
    // Without swap accounting the implicit "no swap" is skipped; an explicit one is kept (and refused by createSandboxCgroup).
    expect(limitWrites(2, req, false).map((w) => w.file)).toEqual(['memory.max', 'pids.max', 'cpu.max']);
    expect(limitWrites(2, request({ memory: 'max', pids: 'max', cpu: 'max' }), true)).toEqual([
      { controller: 'memory', file: 'memory.max', data: 'max' },
      { controller: 'pids', file: 'pids.max', data: 'max' },
      { controller: 'cpu', file: 'cpu.max', data: 'max 100000' },
    ]);
    expect(limitWrites(2, request({ memory: MiB, memorySwap: 2 * MiB }), true)[1]).toEqual({ controller: 'memory', file: 'memory.swap.max', data: String(2 * MiB) });
  });

  test('cgroup v1: memory then memsw (memory + swap), pids.max, CFS period then quota', () => {
    expect(limitWrites(1, request({ memory: 64 * MiB, memorySwap: MiB, pids: 32, cpu: 2 }), true)).toEqual([
      { controller: 'memory', file: 'memory.limit_in_bytes', data: String(64 * MiB) },
      { controller: 'memory', file: 'memory.memsw.limit_in_bytes', data: String(65 * MiB) },
      { controller: 'pids', file: 'pids.max', data: '32' },
      { controller: 'cpu', file: 'cpu.cfs_period_us', data: '100000' },
      { controller: 'cpu', file: 'cpu.cfs_quota_us', data: '200000' },
    ]);
    expect(limitWrites(1, request({ memory: 64 * MiB }), true)[1].data).toBe(String(64 * MiB));
    expect(limitWrites(1, request({ memory: 'max', cpu: 'max' }), true)).toEqual([
      { controller: 'memory', file: 'memory.limit_in_bytes', data: '-1' },
      { controller: 'cpu', file: 'cpu.cfs_period_us', data: '100000' },
      { controller: 'cpu', file: 'cpu.cfs_quota_us', data: '-1' },
    ]);
  });

  test('CPU quota: a share of 100 ms, never under the kernel\'s 1 ms', () => {
    expect(cpuQuotaMicros(0.25)).toBe(25_000);
    expect(cpuQuotaMicros(0.01)).toBe(1000);
    expect(cpuQuotaMicros(0.0001)).toBe(1000);
  });

  test('cgroup v2 subtree_control: only the controllers not yet enabled, at each level', () => {
    expect(subtreeControlWrites(
      [{ dir: '/sys/fs/cgroup', enabled: ['cpu', 'memory', 'pids'] }, { dir: '/sys/fs/cgroup/nsjail-node', enabled: ['memory'] }],
      ['memory', 'pids', 'cpu'],
    )).toEqual([{ file: '/sys/fs/cgroup/nsjail-node/cgroup.subtree_control', data: '+pids +cpu' }]);
  });
});

describe('accounting files (fake cgroup trees in a temp dir)', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = makeTempDir()));
  afterEach(() => cleanup());

  const tree = (files: Record<string, string>): string => {
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), text);
    }
    return dir;
  };

  test('cgroup v2: cpu.stat, memory.peak, memory.events oom_kill, pids.events max', () => {
    tree({
      'cpu.stat': 'usage_usec 1500000\nuser_usec 1200000\nsystem_usec 300000\nnr_periods 0\n',
      'memory.peak': `${64 * MiB}\n`,
      'memory.events': 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n',
      'pids.events': 'max 7\n',
    });
    expect(readAccounting(2, { cgroup: dir })).toEqual({
      cpuUsageMicros: 1_500_000, cpuUserMicros: 1_200_000, cpuSystemMicros: 300_000,
      memoryPeakBytes: 64 * MiB, oomKills: 1, pidsLimitHits: 7,
    });
  });

  test('cgroup v2 without the memory and pids controllers: only cpu.stat (as on this machine)', () => {
    tree({ 'cpu.stat': 'usage_usec 10\nuser_usec 4\nsystem_usec 6\n' });
    expect(readAccounting(2, { cgroup: dir })).toEqual({ cpuUsageMicros: 10, cpuUserMicros: 4, cpuSystemMicros: 6 });
  });

  test('cgroup v1: cpuacct in ns, memory high-water, oom_control oom_kill, failcnt, pids.events', () => {
    tree({
      'cpuacct/cpuacct.usage': '2000000000\n',
      'cpuacct/cpuacct.usage_user': '1500000000\n',
      'cpuacct/cpuacct.usage_sys': '500000000\n',
      'memory/memory.max_usage_in_bytes': `${32 * MiB}\n`,
      'memory/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
      'memory/memory.failcnt': '40\n',
      'pids/pids.events': 'max 0\n',
    });
    expect(readAccounting(1, { cpuacct: path.join(dir, 'cpuacct'), memory: path.join(dir, 'memory'), pids: path.join(dir, 'pids') })).toEqual({
      cpuUsageMicros: 2_000_000, cpuUserMicros: 1_500_000, cpuSystemMicros: 500_000,
      memoryPeakBytes: 32 * MiB, oomKills: 2, memoryFailcnt: 40, pidsLimitHits: 0,
    });
  });

  test('keyed files ignore what is not `key integer`', () => {
    expect([...parseKeyedFile('a 1\n\nb x\n c  -2 \n')]).toEqual([['a', 1], ['c', -2]]);
  });
});

describe('cgroup v2 EBUSY from cgroup.subtree_control (checked against a real kernel by npm run test:kernels)', () => {
  test('this process in the parent itself (a delegated cgroup given as cgroupParent): the hint says to move it into a child cgroup first', () => {
    const hint = busyParentHint('/sys/fs/cgroup/user.slice/app.scope', '/sys/fs/cgroup/user.slice/app.scope/', 4242);
    expect(hint).toContain('this process is in /sys/fs/cgroup/user.slice/app.scope itself');
    expect(hint).toContain('mkdir /sys/fs/cgroup/user.slice/app.scope/supervisor');
    expect(hint).toContain('write 4242 into /sys/fs/cgroup/user.slice/app.scope/supervisor/cgroup.procs');
  });

  test('other processes in the parent: the hint names the rule, not this process', () => {
    const hint = busyParentHint('/sys/fs/cgroup/app.scope', '/sys/fs/cgroup/app.scope/supervisor', 4242);
    expect(hint).toMatch(/^cgroup v2 enables controllers only for the children of a cgroup without processes of its own: /);
    expect(hint).not.toContain('4242');
    expect(busyParentHint('/sys/fs/cgroup/app.scope', undefined, 1)).not.toContain('itself');
  });
});
