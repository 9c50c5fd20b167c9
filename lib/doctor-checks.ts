/**
 * doctor's facts in words: the checks with their advice (pure: they read no files and start
 * nothing), the core verdict, and the report as text.
 */
import * as path from 'node:path';
import {
  atLeast, MAX_FILE, NAMESPACES, NOBODY, type DoctorAttempt, type DoctorCheck, type DoctorFacts, type DoctorLevel, type DoctorNamespace, type DoctorReport,
} from './doctor-report';

/** The core needs these (the seed's three); the rest only narrow what a sandbox can hide. */
const CORE_NAMESPACES: readonly DoctorNamespace[] = ['pid', 'net', 'mount'];
/** CLONE_PIDFD (5.2) and pollable pidfds (5.3): every spawn uses both. */
const MIN_KERNEL: [number, number] = [5, 3];

function describeAttempt(a: DoctorAttempt): string {
  return a.works ? 'works' : `fails: ${a.error ?? 'unknown error'}`;
}

/** Whether the core works on a host with these facts: new enough kernel, a spawn, pidfds, and pid/net/mount namespaces. */
export function doctorCoreWorks(r: DoctorFacts): boolean {
  const coreNamespaces = CORE_NAMESPACES.every((ns) => r.namespaces[ns].works || (r.namespaces[ns].viaUserNamespace?.works ?? false));
  return atLeast(r.host.kernelVersion, MIN_KERNEL[0], MIN_KERNEL[1]) && r.spawn.works && r.pidfd.works && coreNamespaces;
}

/**
 * The facts in words: one check per finding, with advice where something should change.
 * Pure: doctor() (doctor.ts) calls it with what it found; it can be called with any facts.
 */
export function doctorChecks(r: DoctorFacts): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const add = (id: string, level: DoctorLevel, summary: string, advice?: string): void => {
    checks.push(advice === undefined ? { id, level, summary } : { id, level, summary, advice });
  };
  const v = r.host.kernelVersion;
  const kernelOk = atLeast(v, MIN_KERNEL[0], MIN_KERNEL[1]);
  add('kernel', kernelOk ? 'ok' : 'fail', `Linux ${r.host.kernel} on ${r.host.arch}: ${kernelOk ? 'new enough' : 'too old'} (${MIN_KERNEL.join('.')} or newer needed)`,
    kernelOk ? undefined : `nsjail-node needs Linux ${MIN_KERNEL.join('.')} or newer (clone with CLONE_PIDFD, pollable pidfds); upgrade the kernel`);
  add('privileges', 'info', r.host.root
    ? 'running as root: every namespace type is allowed without a user namespace'
    : `running as uid ${r.host.uid}: namespaces other than user need a user namespace (user: true / --unshare-user)`);

  add('spawn', r.spawn.works ? 'ok' : 'fail', `a plain sandbox (no namespaces) ${describeAttempt(r.spawn)}`,
    r.spawn.works ? undefined : 'nothing can start here; if the error is EPERM or ENOSYS from clone/clone3, a seccomp filter (container runtime) is likely blocking it');
  if (r.clone.clone3.works) {
    add('clone3', 'ok', 'clone3 works (NSJAIL_NODE_CLONE=clone3)');
  } else {
    add('clone3', 'warn', `clone3 ${describeAttempt(r.clone.clone3)}; clone(2) ${describeAttempt(r.clone.clone)}`,
      r.clone.clone.works
        ? 'spawnIsolated falls back to clone(2) by itself; clone3 is missing before Linux 5.3 and some container seccomp profiles answer ENOSYS for it (update the runtime\'s profile to allow clone3)'
        : 'neither clone3 nor clone works: see the spawn line');
  }
  const pidfdText = `pidfd_open ${r.pidfd.pidfdOpen ? 'present' : 'absent'} (by ${r.pidfd.pidfdOpenSource})`;
  add('pidfd', r.pidfd.works ? 'ok' : 'fail',
    r.pidfd.works ? `spawns get a pidfd and their exit arrives through it; ${pidfdText}` : `no pidfd from a spawn, or its exit never arrived; ${pidfdText}`,
    r.pidfd.works ? undefined : 'pidfds (CLONE_PIDFD, Linux 5.2; poll, Linux 5.3) are how nsjail-node waits for a sandbox: upgrade the kernel, or allow them in the seccomp profile');

  const u = r.userNamespaces;
  const sysctls = [
    `user.max_user_namespaces=${u.maxUserNamespaces ?? 'absent'}`,
    ...(u.unprivilegedUsernsClone !== null ? [`kernel.unprivileged_userns_clone=${u.unprivilegedUsernsClone}`] : []),
    ...(u.apparmorRestrictUnprivileged !== null ? [`kernel.apparmor_restrict_unprivileged_userns=${u.apparmorRestrictUnprivileged}`] : []),
  ].join(', ');
  const unprivAdvice: string[] = [];
  if (u.maxUserNamespaces === 0) unprivAdvice.push('sysctl -w user.max_user_namespaces=15000');
  if (u.unprivilegedUsernsClone === 0) unprivAdvice.push('sysctl -w kernel.unprivileged_userns_clone=1');
  if (u.apparmorRestrictUnprivileged === 1) {
    unprivAdvice.push('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give the node binary an AppArmor profile with the `userns,` rule (see Ubuntu\'s "unprivileged user namespace restrictions")');
  }
  // As root, the real attempt as nobody is the truth for other users; the sysctls explain it.
  const unpriv = u.unprivilegedAttempt;
  const unprivOk = unpriv !== null ? unpriv.works : u.unprivilegedAllowed;
  const unprivText = unpriv !== null
    ? `for unprivileged users: unshare --user as uid ${NOBODY} ${describeAttempt(unpriv)}`
    : u.unprivilegedAllowed ? 'by the sysctls unprivileged users may create them' : 'by the sysctls unprivileged users may NOT create them';
  if (u.attempt.works) {
    add('userns', r.host.root && !unprivOk ? 'warn' : 'ok', `user namespaces work for this user; ${unprivText} (${sysctls})`,
      r.host.root && !unprivOk
        ? `fine as root; for other users: ${unprivAdvice.length > 0 ? unprivAdvice.join('; ') : 'no sysctl explains it: look for an LSM (AppArmor, SELinux) or seccomp policy that refuses CLONE_NEWUSER'}`
        : undefined);
  } else {
    add('userns', r.host.root ? 'warn' : 'fail', `user namespaces ${describeAttempt(u.attempt)} (${sysctls})`,
      unprivAdvice.length > 0 ? unprivAdvice.join('; ') : 'the kernel may lack CONFIG_USER_NS, or a seccomp filter (container runtime) refuses clone with CLONE_NEWUSER; run on the host or with a profile that allows it');
  }

  for (const ns of NAMESPACES) {
    const a = r.namespaces[ns];
    const via = a.viaUserNamespace;
    const works = a.works || (via?.works ?? false);
    const core = CORE_NAMESPACES.includes(ns);
    // Works only inside a user namespace: say so plainly, not "OK ... fails: <error>".
    const onlyViaUser = !a.works && via?.works === true;
    let summary = onlyViaUser ? `${ns} namespace works together with a user namespace (alone the kernel refuses it: ${a.code ?? 'error'})` : `${ns} namespace ${describeAttempt(a)}`;
    if (via && !onlyViaUser) summary += `; inside a user namespace it ${describeAttempt(via)}`;
    let advice: string | undefined;
    if (!works) {
      if (a.max === 0) advice = `user.max_${MAX_FILE[ns].slice(4)} is 0: sysctl -w user.${MAX_FILE[ns]}=15000`;
      else if (!r.host.root) advice = 'unprivileged: enable user namespaces (see the userns line) and pass user: true / --unshare-user';
      else advice = 'refused even to root: a container runtime\'s seccomp profile or missing privileges (run with --privileged or on the host), or the kernel lacks this namespace type';
    } else if (!a.works && via?.works) {
      advice = 'pass user: true (--unshare-user) together with this namespace';
    }
    add(`namespace.${ns}`, onlyViaUser ? 'info' : works ? 'ok' : core ? 'fail' : 'warn', summary, advice);
  }

  if (r.init.works) {
    add('init', 'ok', 'the init helper runs as PID 1 of a PID namespace (init: true; the command line\'s default with --unshare-pid)');
  } else {
    add('init', 'warn', `the init helper ${describeAttempt(r.init)}`,
      'init: true (and the command line\'s --unshare-pid without --as-pid-1) needs nsjail_node_init, built with the addon: reinstall or rebuild nsjail-node (npm rebuild nsjail-node)');
  }

  const c = r.cgroups;
  const v1ctl = c.v1.flatMap((h) => h.controllers.map((ctl) => `${ctl}${h.writable ? '' : ' (read-only for this user)'}`));
  const v1Usable = new Set(c.v1.filter((h) => h.writable).flatMap((h) => h.controllers));
  const v2Usable = new Set(c.v2.delegated ? c.v2.controllers : []);
  const usable = (ctl: string): boolean => v1Usable.has(ctl) || v2Usable.has(ctl);
  const limitsOk = usable('memory') && usable('pids');
  let cgSummary = `cgroup mode ${c.mode}`;
  if (c.v1.length > 0) cgSummary += `; v1 controllers: ${v1ctl.join(', ')}`;
  if (c.v2.mountpoint !== null) {
    cgSummary += `; v2 at ${c.v2.mountpoint}, own cgroup ${c.v2.cgroup} has ${c.v2.controllers.length > 0 ? `controllers ${c.v2.controllers.join(' ')}` : 'no controllers'}` +
      `, ${c.v2.delegated ? 'delegated (writable) to this user' : 'not delegated to this user'}`;
  }
  cgSummary += c.limits.works ? '; a sandbox with memory and pids limits works' : `; a sandbox with memory and pids limits ${describeAttempt(c.limits)}`;
  const socketText: Record<NonNullable<typeof c.socketMemory>, string> = {
    'v1-tcp': 'socket buffers: TCP buffers are held to a limit of the same size as limits.memory (memory.kmem.tcp)',
    'v1-none': 'socket buffers are NOT counted by limits.memory (cgroup v1 without memory.kmem.tcp.limit_in_bytes): a sandbox can queue more than its limit in sockets it does not read',
    v2: 'socket buffers are counted in limits.memory (cgroup v2 memory.current)',
  };
  if (c.socketMemory !== null) cgSummary += `; ${socketText[c.socketMemory]}`;
  let cgAdvice: string | undefined;
  if (!c.limits.works || !limitsOk) {
    cgAdvice = c.mode === 'none'
      ? 'no cgroup filesystem is mounted: mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)'
      : c.v2.mountpoint !== null && !(v1Usable.has('memory') && v1Usable.has('pids'))
        ? (c.v2.delegated && c.v2.cgroup !== null
          // Delegated, yet the default parent is out of reach and this process's own cgroup
          // cannot be the parent while the process is in it (no internal processes in v2).
          ? `this process's cgroup ${c.v2.cgroup} is delegated to this user, but cgroup v2 enables controllers only below a cgroup ` +
            `without processes of its own: move this process into a child of it (mkdir ${path.join(c.v2.cgroup, 'supervisor')}, then write its pid into ` +
            `${path.join(c.v2.cgroup, 'supervisor', 'cgroup.procs')}) and pass ${c.v2.cgroup} as cgroupParent`
          : 'memory/pids limits need the memory and pids controllers delegated to this user: run under a delegated systemd unit ' +
            '(systemd-run --user --scope -p Delegate=yes ...), move this process from the unit\'s cgroup into a child of it ' +
            '(mkdir <unit cgroup>/supervisor, then write its pid into supervisor/cgroup.procs) and pass the unit\'s cgroup as cgroupParent, or run as root')
        : 'memory/pids limits need the memory and pids controllers writable for this user (v1 hierarchies you may write to, or a delegated cgroup v2 subtree)';
  }
  if (c.socketMemory === 'v1-none') {
    const socketAdvice = 'to count socket buffers, use cgroup v2 or a kernel whose cgroup v1 memory controller has memory.kmem.tcp.*, or give untrusted sandboxes no network at all (net: true with loopback: false)';
    cgAdvice = cgAdvice ? `${cgAdvice}; ${socketAdvice}` : socketAdvice;
  }
  // Limits are a feature, not the core: rlimits and time limits work without cgroups.
  add('cgroups', c.limits.works ? 'ok' : 'warn', cgSummary, cgAdvice);

  const k = r.container;
  if (k.verdict === 'no') add('container', 'ok', 'not inside a container (no /.dockerenv, /run/.containerenv, container cgroup names or overlay root)');
  else if (k.verdict === 'possibly') {
    add('container', 'info', `possibly inside a container: ${k.hints.map((h) => h.hint).join('; ')}; no strong sign (overlay root, container cgroups, /run/.containerenv)`,
      'a host or VM built from a container image keeps /.dockerenv; if this is a container, the namespace lines above show what its runtime allows');
  } else {
    add('container', 'warn', `inside a container: ${k.hints.map((h) => h.hint).join('; ')}`,
      'container runtimes block namespaces and mounts by default (Docker: --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cap-add SYS_ADMIN, or --privileged; Podman rootless works with user namespaces); the namespace lines above show what this one allows');
  }

  const s = r.seccomp;
  const filterSupport = s.actions.length > 0;
  const modeText = s.mode === 0 ? 'this process runs unfiltered' : s.mode === 2 ? `this process already runs under ${s.filters ?? 'some'} seccomp filter(s) (a container runtime or service manager put them there)` : s.mode === 1 ? 'this process is in strict seccomp mode' : 'Seccomp field unreadable';
  const attemptText = s.attempt.works ? 'a sandbox with a filter works' : `a sandbox with a filter ${describeAttempt(s.attempt)}`;
  add('seccomp', !s.attempt.works ? 'warn' : s.mode === 2 ? 'info' : 'ok',
    `${filterSupport ? `seccomp filters supported (actions: ${s.actions.join(' ')})` : 'no seccomp filter support (no /proc/sys/kernel/seccomp/actions_avail)'}; ${attemptText}; ${modeText}`,
    !s.attempt.works
      ? 'sandboxes cannot be given a seccomp filter: use a kernel built with CONFIG_SECCOMP_FILTER, or allow seccomp(2) in the outer policy'
      : s.mode === 2 ? 'an outer filter may refuse syscalls a sandbox needs (clone3, mount, unshare); the namespace lines show whether it does' : undefined);
  return checks;
}

const LABEL: Record<DoctorLevel, string> = { ok: 'OK  ', info: 'INFO', warn: 'WARN', fail: 'FAIL' };

/** The report as text: a header, one line per check with its advice indented below, a verdict. */
export function formatDoctorReport(report: DoctorReport): string {
  const h = report.host;
  const lines = [`nsjail-node doctor: Linux ${h.kernel} (${h.arch}), Node ${h.node}, uid ${h.uid}${h.root ? ' (root)' : ''}`, ''];
  const width = Math.max(...report.checks.map((c) => c.id.length));
  for (const c of report.checks) {
    lines.push(`${LABEL[c.level]}  ${c.id.padEnd(width)}  ${c.summary}`);
    if (c.advice) lines.push(`${' '.repeat(width + 8)}-> ${c.advice}`);
  }
  lines.push('');
  const failed = report.checks.filter((c) => c.level === 'fail').map((c) => c.id);
  const warned = report.checks.filter((c) => c.level === 'warn').map((c) => c.id);
  lines.push(report.ok
    ? `Result: the core works${warned.length > 0 ? ` (warnings: ${warned.join(', ')})` : ''}.`
    : `Result: the core does NOT work here (failed: ${failed.join(', ')}); see the advice above.`);
  return lines.join('\n') + '\n';
}
