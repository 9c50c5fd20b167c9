/**
 * `nsjail-node doctor`: what this host allows, found by reading the kernel's own files and by
 * real attempts (a sandbox of /bin/true per namespace type), and what to change when it
 * refuses. Never changes anything on the host. The report's types are in doctor-report.ts,
 * the probes in doctor-probes.ts, the checks and the text in doctor-checks.ts.
 */
import * as os from 'node:os';
import { doctorChecks, doctorCoreWorks } from './doctor-checks';
import { attempt, checkCgroups, checkContainer, checkPidfd, checkSeccomp, findProgram, mountinfo, plainAttempt, readNumber } from './doctor-probes';
import { MAX_FILE, NAMESPACES, NOBODY, parseKernelVersion, type DoctorFacts, type DoctorReport } from './doctor-report';
import { compileSeccomp } from './seccomp';

export type { DoctorAttempt, DoctorCgroupV1Hierarchy, DoctorCheck, DoctorFacts, DoctorLevel, DoctorNamespace, DoctorReport } from './doctor-report';
export { parseKernelVersion } from './doctor-report';
export { doctorChecks, doctorCoreWorks, formatDoctorReport } from './doctor-checks';

/**
 * Checks what this host allows for sandboxes: kernel, clone3 and pidfds, user namespaces
 * (and what blocks them), each namespace type by a real attempt, cgroups, containers and
 * seccomp. Reads only; starts a few sandboxes of `/bin/true`, nothing else.
 *
 * @example
 * const report = await doctor();
 * for (const c of report.checks) console.log(c.level, c.summary, c.advice ?? '');
 */
export async function doctor(): Promise<DoctorReport> {
  const release = os.release();
  const kernelVersion = parseKernelVersion(release);
  const uid = process.geteuid?.() ?? os.userInfo().uid;
  const root = uid === 0;
  const host = { kernel: release, kernelVersion, arch: os.arch(), node: process.version, uid, root };

  const spawn = await attempt({});
  const clone = { clone3: await attempt({}, 'clone3'), clone: await attempt({}, 'clone') };
  const pidfd = await checkPidfd(kernelVersion);

  const namespaces = {} as DoctorReport['namespaces'];
  for (const ns of NAMESPACES) {
    const alone = await attempt({ [ns]: true });
    const max = readNumber(`/proc/sys/user/${MAX_FILE[ns]}`);
    namespaces[ns] = { ...alone, max };
    if (!root && ns !== 'user') namespaces[ns].viaUserNamespace = await attempt({ [ns]: true, user: true });
  }

  const maxUserNamespaces = readNumber('/proc/sys/user/max_user_namespaces');
  const unprivilegedUsernsClone = readNumber('/proc/sys/kernel/unprivileged_userns_clone');
  const apparmorRestrictUnprivileged = readNumber('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  const unshareBin = root ? findProgram('unshare') : undefined;
  const userNamespaces = {
    maxUserNamespaces,
    unprivilegedUsernsClone,
    apparmorRestrictUnprivileged,
    unprivilegedAllowed: maxUserNamespaces !== 0 && unprivilegedUsernsClone !== 0 && apparmorRestrictUnprivileged !== 1,
    attempt: plainAttempt(namespaces.user),
    unprivilegedAttempt: unshareBin === undefined ? null : await attempt({ command: unshareBin, args: ['--user', 'true'], uid: NOBODY, gid: NOBODY }),
  };
  // Unprivileged, a PID namespace needs a user namespace around it.
  const init = await attempt({ pid: true, init: true, user: !root });
  const limits = await attempt({ limits: { memory: 64 * 1024 * 1024, pids: 64 } });
  const seccompAttempt = await attempt({ seccomp: { bpf: compileSeccomp({ defaultAction: 'allow' }) } });

  const mounts = mountinfo();
  const facts: DoctorFacts = {
    host, spawn, clone, pidfd, userNamespaces, init, namespaces,
    cgroups: { ...checkCgroups(mounts), limits }, container: checkContainer(mounts), seccomp: { ...checkSeccomp(), attempt: seccompAttempt },
  };
  return { ok: doctorCoreWorks(facts), ...facts, checks: doctorChecks(facts) };
}
