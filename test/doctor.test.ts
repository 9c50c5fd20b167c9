/**
 * doctor reports this machine truthfully. Every expectation is computed here, independently of
 * lib/doctor.ts: from /proc/mounts (doctor reads mountinfo), util-linux unshare(1) for the
 * namespace attempts (doctor uses spawnIsolated), and the kernel's own files.
 */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { doctor, doctorChecks, doctorCoreWorks, formatDoctorReport, type DoctorFacts, type DoctorReport } from '../lib/doctor';
import { cli } from './cli-helpers';

const read = (file: string): string | null => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null);
const readNumber = (file: string): number | null => {
  const text = read(file);
  return text === null ? null : Number(text.trim());
};

/** /proc/mounts: device, mountpoint, type, options. */
const mounts = fs.readFileSync('/proc/mounts', 'utf8').trim().split('\n').map((l) => {
  const [, mountpoint, type, options] = l.split(' ');
  return { mountpoint, type, options: options.split(',') };
});

// Controllers a cgroup v1 hierarchy can carry (Documentation/admin-guide/cgroup-v1).
const V1_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'blkio', 'perf_event', 'net_prio', 'hugetlb', 'pids', 'rdma', 'misc'];

/** unshare(1) from util-linux: can this user make a namespace of that kind? */
function unshareWorks(...flags: string[]): boolean {
  return child_process.spawnSync('unshare', [...flags, 'true'], { stdio: 'ignore' }).status === 0;
}

let report: DoctorReport;
beforeAll(async () => {
  report = await doctor();
});

describe('doctor reports this machine', () => {
  test('kernel, architecture, Node and user', () => {
    const release = os.release();
    const [major, minor, patch] = release.split(/[.-]/).map(Number);
    expect(report.host).toEqual({
      kernel: release, kernelVersion: [major, minor, patch], arch: process.arch, node: process.version, uid: process.getuid!(), root: process.getuid!() === 0,
    });
    expect(report.host.root).toBe(true); // CI and this machine run the tests as root
    expect(major > 5 || (major === 5 && minor >= 3)).toBe(true);
  });

  test('the core works here, and the report says so (exit 0)', () => {
    expect(report.ok).toBe(true);
    expect(report.spawn).toEqual({ works: true });
    expect(report.checks.filter((c) => c.level === 'fail')).toEqual([]);
  });

  test('clone3 and clone both work; pidfds work; pidfd_open as /proc/kallsyms says', () => {
    const kallsyms = fs.readFileSync('/proc/kallsyms', 'utf8');
    expect(kallsyms).toMatch(/sys_clone3$/m);
    expect(report.clone).toEqual({ clone3: { works: true }, clone: { works: true } });
    expect(report.pidfd).toEqual({ works: true, pidfdOpen: /sys_pidfd_open$/m.test(kallsyms), pidfdOpenSource: 'kallsyms' });
  });

  test('user namespaces: the sysctls as they are, and the real attempt as unshare(1) finds it', () => {
    const u = report.userNamespaces;
    expect(u.maxUserNamespaces).toBe(readNumber('/proc/sys/user/max_user_namespaces'));
    expect(u.unprivilegedUsernsClone).toBe(readNumber('/proc/sys/kernel/unprivileged_userns_clone'));
    expect(u.apparmorRestrictUnprivileged).toBe(readNumber('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'));
    expect(u.unprivilegedAllowed).toBe(u.maxUserNamespaces !== 0 && u.unprivilegedUsernsClone !== 0 && u.apparmorRestrictUnprivileged !== 1);
    expect(u.attempt.works).toBe(unshareWorks('--user'));
    expect(u.attempt.works).toBe(true);
    // As root, doctor also tries as nobody: setpriv(1) + unshare(1) give the same answer.
    const asNobody = child_process.spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'unshare', '--user', 'true'], { stdio: 'ignore' }).status === 0;
    expect(u.unprivilegedAttempt).toEqual(asNobody ? { works: true } : expect.objectContaining({ works: false }));
  });

  test('the init helper built next to the addon runs as PID 1', () => {
    expect(fs.existsSync(`${__dirname}/../build/Release/nsjail_node_init`) || fs.existsSync(`${__dirname}/../prebuilds/linux-${process.arch}/nsjail_node_init`)).toBe(true);
    expect(report.init).toEqual({ works: true });
  });

  test.each([
    ['pid', ['--pid', '--fork'], 'max_pid_namespaces'],
    ['net', ['--net'], 'max_net_namespaces'],
    ['mount', ['--mount'], 'max_mnt_namespaces'],
    ['uts', ['--uts'], 'max_uts_namespaces'],
    ['ipc', ['--ipc'], 'max_ipc_namespaces'],
    ['user', ['--user'], 'max_user_namespaces'],
    ['cgroup', ['--cgroup'], 'max_cgroup_namespaces'],
  ] as const)('%s namespace: works as unshare(1) finds, with its sysctl limit', (ns, flags, max) => {
    const entry = report.namespaces[ns];
    expect(entry.works).toBe(unshareWorks(...flags));
    expect(entry.works).toBe(true);
    expect(entry.max).toBe(readNumber(`/proc/sys/user/${max}`));
    // As root nothing needs a user namespace, so none is tried.
    expect(entry.viaUserNamespace).toBeUndefined();
  });

  test('cgroups: v1 controllers from /proc/mounts, the cgroup2 mount and what its cgroup.controllers lists', () => {
    const v1 = mounts.filter((m) => m.type === 'cgroup').map((m) => m.options.filter((o) => V1_CONTROLLERS.includes(o))).filter((c) => c.length > 0);
    const v2 = mounts.find((m) => m.type === 'cgroup2');
    expect(report.cgroups.v1.map((h) => h.controllers).sort()).toEqual(v1.sort());
    expect(report.cgroups.v1.map((h) => h.mountpoint).sort()).toEqual(
      mounts.filter((m) => m.type === 'cgroup' && m.options.some((o) => V1_CONTROLLERS.includes(o))).map((m) => m.mountpoint).sort());
    // This machine: memory, pids and cpu on v1 (writable for root), beside a cgroup2 mount.
    const flat = v1.flat();
    expect(flat).toEqual(expect.arrayContaining(['memory', 'pids', 'cpu']));
    expect(report.cgroups.v1.every((h) => h.writable)).toBe(true);
    expect(report.cgroups.mode).toBe(v1.length > 0 ? (v2 ? 'hybrid' : 'v1') : v2 ? 'v2' : 'none');
    expect(report.cgroups.mode).toBe('hybrid');

    // The v2 side: the process's own cgroup (0::PATH) under the cgroup2 mount.
    const ownV2 = /^0::(.*)$/m.exec(fs.readFileSync('/proc/self/cgroup', 'utf8'))![1];
    const dir = `${v2!.mountpoint}${ownV2 === '/' ? '' : ownV2}`;
    expect(report.cgroups.v2.mountpoint).toBe(v2!.mountpoint);
    expect(report.cgroups.v2.cgroup).toBe(dir);
    expect(report.cgroups.v2.controllers).toEqual(fs.readFileSync(`${dir}/cgroup.controllers`, 'utf8').split(/\s+/).filter(Boolean));
    // Here it carries none of the controllers limits need: they are all on v1.
    expect(report.cgroups.v2.controllers).not.toContain('memory');
    expect(report.cgroups.v2.controllers).not.toContain('pids');
    expect(report.cgroups.v2.delegated).toBe(true); // root may write anywhere
    // memory and pids are writable on v1, so a sandbox with those limits starts.
    expect(report.cgroups.limits).toEqual({ works: true });
  });

  test('container: each hint matches what is on disk, and the verdict follows from them', () => {
    const hints = report.container.hints.map((h) => h.hint);
    expect(hints.includes('/.dockerenv exists')).toBe(fs.existsSync('/.dockerenv'));
    expect(hints.some((h) => h.startsWith('/run/.containerenv'))).toBe(fs.existsSync('/run/.containerenv'));
    const root = mounts.filter((m) => m.mountpoint === '/').pop()!;
    expect(hints.some((h) => h.startsWith('the root filesystem is'))).toBe(/overlay|aufs/.test(root.type));
    const pid1 = fs.readFileSync('/proc/1/cgroup', 'utf8');
    expect(hints.some((h) => h.startsWith("PID 1's cgroup"))).toBe(/docker|kubepods|containerd|libpod|lxc|crio/.test(pid1));
    const strong = report.container.hints.filter((h) => h.strong).length;
    expect(report.container.verdict).toBe(strong > 0 ? 'yes' : hints.length > 0 ? 'possibly' : 'no');
    // This machine is a VM whose image came from Docker: /.dockerenv, but an ext4 root and PID 1 at the cgroup root.
    expect(root.type).not.toMatch(/overlay/);
    expect(report.container.verdict).toBe(fs.existsSync('/.dockerenv') ? 'possibly' : 'no');
  });

  test('seccomp: this process\'s mode and the kernel\'s actions', () => {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    expect(report.seccomp).toEqual({
      mode: Number(/^Seccomp:\s+(\d+)/m.exec(status)![1]),
      filters: Number(/^Seccomp_filters:\s+(\d+)/m.exec(status)![1]),
      actions: fs.readFileSync('/proc/sys/kernel/seccomp/actions_avail', 'utf8').trim().split(' '),
      attempt: { works: true },
    });
    expect(report.seccomp.actions).toContain('errno');
  });

  test('the words: one check per finding, advice on each warning, the text report', () => {
    const ids = report.checks.map((c) => c.id);
    expect(ids).toEqual(expect.arrayContaining([
      'kernel', 'spawn', 'clone3', 'pidfd', 'userns', 'namespace.pid', 'namespace.net', 'namespace.mount', 'namespace.uts',
      'namespace.ipc', 'namespace.user', 'namespace.cgroup', 'init', 'cgroups', 'container', 'seccomp',
    ]));
    for (const c of report.checks.filter((x) => x.level === 'warn' || x.level === 'fail')) expect([c.id, c.advice]).toEqual([c.id, expect.any(String)]);
    const text = formatDoctorReport(report);
    expect(text.split('\n')[0]).toBe(`nsjail-node doctor: Linux ${os.release()} (${process.arch}), Node ${process.version}, uid 0 (root)`);
    expect(text).toMatch(new RegExp(`^OK +kernel +Linux ${os.release().replace(/\./g, '\\.')}`, 'm'));
    expect(text).toMatch(/^OK +cgroups +cgroup mode hybrid; v1 controllers: .*memory/m);
    expect(text.trimEnd().split('\n').pop()).toMatch(/^Result: the core works/);
  });
});

describe('doctor puts other hosts in words', () => {
  // The facts of a few hosts this machine is not, derived from this machine's report.
  const facts = (): DoctorFacts => JSON.parse(JSON.stringify({ ...report, checks: undefined, ok: undefined })) as DoctorFacts;
  const check = (f: DoctorFacts, id: string) => doctorChecks(f).find((c) => c.id === id)!;

  test('Ubuntu 24.04, unprivileged: AppArmor blocks user namespaces, so the core fails with the sysctl to change', () => {
    const f = facts();
    f.host.uid = 1000;
    f.host.root = false;
    f.userNamespaces.apparmorRestrictUnprivileged = 1;
    f.userNamespaces.unprivilegedAllowed = false;
    f.userNamespaces.attempt = { works: false, error: 'spawnIsolated: uid-map /proc/self/uid_map: EPERM (operation not permitted) [write]', code: 'EPERM' };
    for (const ns of ['pid', 'net', 'mount', 'uts', 'ipc', 'user', 'cgroup'] as const) {
      f.namespaces[ns] = { works: false, code: 'EPERM', error: 'EPERM', max: 1000, viaUserNamespace: { works: false, code: 'EPERM' } };
    }
    expect(check(f, 'userns')).toMatchObject({ level: 'fail', advice: expect.stringContaining('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0') });
    expect(check(f, 'namespace.net')).toMatchObject({ level: 'fail' });
    expect(check(f, 'namespace.uts')).toMatchObject({ level: 'warn' });
    expect(doctorCoreWorks(f)).toBe(false);
    expect(formatDoctorReport({ ...f, ok: false, checks: doctorChecks(f) })).toMatch(/Result: the core does NOT work here \(failed: userns, namespace\.pid, namespace\.net, namespace\.mount\)/);
  });

  test('unprivileged with user namespaces allowed: the others work inside one, and doctor says to ask for it', () => {
    const f = facts();
    f.host.root = false;
    f.namespaces.net = { works: false, code: 'EPERM', max: 1000, viaUserNamespace: { works: true } };
    expect(check(f, 'namespace.net')).toMatchObject({ level: 'info', advice: expect.stringContaining('--unshare-user') });
    // Never "OK" beside a failure: the line says plainly that it works with a user namespace.
    expect(check(f, 'namespace.net').summary).toBe('net namespace works together with a user namespace (alone the kernel refuses it: EPERM)');
    expect(doctorCoreWorks(f)).toBe(true);
  });

  test('cgroup v2 only and not delegated: limits need a delegated cgroup', () => {
    const f = facts();
    f.cgroups = {
      mode: 'v2', v1: [], v2: { mountpoint: '/sys/fs/cgroup', cgroup: '/sys/fs/cgroup/user.slice', controllers: ['cpu', 'memory', 'pids'], subtreeControl: [], delegated: false },
      limits: { works: false, code: 'EACCES', error: 'spawnIsolated: cgroup-create /sys/fs/cgroup/user.slice/nsjail-node: EACCES (permission denied) [mkdir]' },
      socketMemory: 'v2',
    };
    expect(check(f, 'cgroups')).toMatchObject({ level: 'warn', advice: expect.stringContaining('Delegate=yes') });
    // Followed literally, "pass its cgroup as cgroupParent" ends in EBUSY while the process is in it.
    expect(check(f, 'cgroups')?.advice).toContain('into a child of it');
  });

  test('cgroup v2 delegated to this user but holding this process: move it into a child, then pass the delegated cgroup', () => {
    // As in the uid 65534 check of npm run test:kernels (a cgroup chowned as Delegate=yes does).
    const f = facts();
    f.cgroups = {
      mode: 'v2', v1: [], v2: { mountpoint: '/sys/fs/cgroup', cgroup: '/sys/fs/cgroup/app.scope', controllers: ['cpu', 'memory', 'pids'], subtreeControl: [], delegated: true },
      limits: { works: false, code: 'EACCES', error: 'spawnIsolated: cgroup-parent /sys/fs/cgroup/nsjail-node: EACCES (permission denied) [mkdir]' },
      socketMemory: 'v2',
    };
    const advice = check(f, 'cgroups')?.advice ?? '';
    expect(advice).toContain('/sys/fs/cgroup/app.scope is delegated to this user');
    expect(advice).toContain('mkdir /sys/fs/cgroup/app.scope/supervisor');
    expect(advice).toContain('/sys/fs/cgroup/app.scope/supervisor/cgroup.procs');
    expect(advice).toContain('pass /sys/fs/cgroup/app.scope as cgroupParent');
  });

  test('inside Docker with its default profile: container named, and what to change', () => {
    const f = facts();
    f.container = { verdict: 'yes', hints: [{ hint: 'the root filesystem is overlay (/proc/self/mountinfo)', strong: true }] };
    f.seccomp.mode = 2;
    expect(check(f, 'container')).toMatchObject({ level: 'warn', summary: expect.stringContaining('overlay'), advice: expect.stringContaining('seccomp=unconfined') });
    expect(check(f, 'seccomp')).toMatchObject({ level: 'info', summary: expect.stringContaining('already runs under') });
  });

  test('root on a host that blocks unprivileged user namespaces: a warning for other users', () => {
    const f = facts();
    f.userNamespaces.unprivilegedUsernsClone = 0;
    f.userNamespaces.unprivilegedAllowed = false;
    f.userNamespaces.unprivilegedAttempt = { works: false, error: 'the program ended with exit code 1' };
    expect(check(f, 'userns')).toMatchObject({ level: 'warn', advice: expect.stringContaining('sysctl -w kernel.unprivileged_userns_clone=1') });
    expect(doctorCoreWorks(f)).toBe(true);
  });

  test('without the init helper: a warning that says how to get it', () => {
    const f = facts();
    f.init = { works: false, error: 'spawnIsolated: options.init needs the nsjail_node_init helper built with the addon' };
    expect(check(f, 'init')).toMatchObject({ level: 'warn', advice: expect.stringContaining('npm rebuild nsjail-node') });
  });

  test('a kernel older than 5.3 fails the core', () => {
    const f = facts();
    f.host.kernelVersion = [4, 19, 0];
    expect(check(f, 'kernel')).toMatchObject({ level: 'fail', advice: expect.stringContaining('5.3') });
    expect(doctorCoreWorks(f)).toBe(false);
  });
});

describe('nsjail-node doctor', () => {
  test('prints the report and exits 0 here', async () => {
    const r = await cli(['doctor']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')[0]).toBe(`nsjail-node doctor: Linux ${os.release()} (${process.arch}), Node ${process.version}, uid 0 (root)`);
    expect(r.stdout).toMatch(/^OK +namespace\.user +user namespace works$/m);
    expect(r.stdout.trimEnd().split('\n').pop()).toMatch(/^Result: the core works/);
  });

  test('--json prints the same facts as doctor()', async () => {
    const r = await cli(['doctor', '--json']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as DoctorReport;
    expect(json.ok).toBe(true);
    expect(json.host).toEqual(report.host);
    expect(json.cgroups.v1.map((h) => h.controllers)).toEqual(report.cgroups.v1.map((h) => h.controllers));
    expect(json.checks.map((c) => [c.id, c.level])).toEqual(report.checks.map((c) => [c.id, c.level]));
  });
});

describe('doctor says whether limits.memory counts socket buffers', () => {
  test('here (cgroup v1 with memory.kmem.tcp): v1-tcp, and the cgroups line says TCP buffers are held', () => {
    const hasTcp = fs.existsSync('/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes');
    expect(report.cgroups.socketMemory).toBe(hasTcp ? 'v1-tcp' : 'v1-none');
    const line = report.checks.find((c) => c.id === 'cgroups')!;
    expect(line.summary).toMatch(hasTcp ? /TCP buffers are held to a limit of the same size as limits\.memory/ : /NOT counted/);
  });

  test('a v1 host without memory.kmem.tcp: the cgroups line says socket buffers are NOT counted, with advice; v2 counts them', () => {
    const f = JSON.parse(JSON.stringify({ ...report, checks: undefined, ok: undefined })) as DoctorFacts;
    f.cgroups.socketMemory = 'v1-none';
    const line = doctorChecks(f).find((c) => c.id === 'cgroups')!;
    expect(line.summary).toMatch(/socket buffers are NOT counted by limits\.memory/);
    expect(line.advice).toMatch(/to count socket buffers, use cgroup v2/);
    f.cgroups.socketMemory = 'v2';
    expect(doctorChecks(f).find((c) => c.id === 'cgroups')!.summary).toMatch(/socket buffers are counted in limits\.memory \(cgroup v2 memory\.current\)/);
  });
});
