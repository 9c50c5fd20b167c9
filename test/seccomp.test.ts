/**
 * seccomp filters in the real kernel: chosen errno, SIGSYS kills, the preset against ptrace,
 * mount, bpf and the rest (each with a control run that shows the call works without it),
 * argument conditions, refused x32 calls and a foreign architecture, precompiled programs.
 */
import { IsolationError, seccompPresets, spawnIsolated, compileSeccomp } from '../lib';
import { compileSeccompFor, nativeSeccompTarget } from '../lib/seccomp';
import { lingeringZombies, run } from './helpers';
import { buildProbe, errnoOf, probeResults } from './identity-helpers';

let probe: string;
let cleanup: () => void;

beforeAll(() => {
  ({ probe, cleanup } = buildProbe());
});

afterAll(() => cleanup?.());

/** Runs the probe with the given probes as arguments; returns its results and exit. */
async function probeRun(probes: string[], options: Omit<Parameters<typeof run>[0], 'command' | 'args'> = {}) {
  const r = await run({ command: probe, args: probes, ...options });
  return { ...r, results: probeResults(r.stdout) };
}

describe('seccomp in the kernel', () => {
  test('a denied system call fails with the chosen errno, the others run', async () => {
    const r = await probeRun(['getpid', 'socket-unix'], {
      seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: { errno: 'EACCES' } }] },
    });
    expect(r.exitCode).toBe(0);
    expect(r.results).toEqual({ getpid: errnoOf('EACCES'), 'socket-unix': 'ok' });
  });

  test("'kill' ends the program with SIGSYS and the ExitStatus says so", async () => {
    const killed = await probeRun(['getpid'], { seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: 'kill' }] } });
    expect(killed).toMatchObject({ exitCode: null, signal: 'SIGSYS', stdout: '' });
    const trapped = await probeRun(['getpid'], { seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: 'trap' }] } });
    expect(trapped).toMatchObject({ exitCode: null, signal: 'SIGSYS' });
    const logged = await probeRun(['getpid'], { seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: 'log' }] } });
    expect(logged).toMatchObject({ exitCode: 0, results: { getpid: 'ok' } });
  });

  test('argument conditions select the calls a rule applies to', async () => {
    const r = await probeRun(['socket-inet', 'socket-unix'], {
      seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['socket'], action: { errno: 'EAFNOSUPPORT' }, args: [{ index: 0, op: 'maskedEq', mask: 0xffffffff, value: 2 }] }] },
    });
    expect(r.results).toEqual({ 'socket-inet': errnoOf('EAFNOSUPPORT'), 'socket-unix': 'ok' });
  });

  test('the preset blocks mount, bpf, new user namespaces and personality tricks, which work without it', async () => {
    // As host root with the capabilities kept, so that only seccomp can be what refuses.
    const base = { mount: true, capabilities: ['CAP_SYS_ADMIN', 'CAP_BPF'] as const };
    const probes = ['mount', 'bpf', 'userns', 'personality-norandom', 'personality-linux', 'getpid'];
    const control = await probeRun(probes, { ...base, capabilities: [...base.capabilities] });
    expect(control.results).toEqual({ mount: 'ok', bpf: 'ok', userns: 'ok', 'personality-norandom': 'ok', 'personality-linux': 'ok', getpid: 'ok' });
    const denied = await probeRun(probes, { ...base, capabilities: [...base.capabilities], seccomp: seccompPresets.sandboxDefault });
    expect(denied.results).toEqual({
      mount: errnoOf('EPERM'), bpf: errnoOf('EPERM'), userns: errnoOf('EPERM'), 'personality-norandom': errnoOf('EPERM'),
      'personality-linux': 'ok', getpid: 'ok',
    });
  });

  test('the preset blocks ptrace, which works without it', async () => {
    // PTRACE_TRACEME makes this process the tracer: the probe does nothing after it but exit.
    expect((await probeRun(['ptrace'])).results).toEqual({ ptrace: 'ok' });
    expect((await probeRun(['ptrace'], { seccomp: seccompPresets.sandboxDefault })).results).toEqual({ ptrace: errnoOf('EPERM') });
  });

  test('an x32 system call is refused (killed by default), even when every native call is allowed', async () => {
    const target = nativeSeccompTarget();
    expect(target.arch).toBe('x86_64'); // this machine; on arm64 there is no x32 and the check is not compiled in
    // Without a filter the kernel answers it (ENOSYS on kernels without CONFIG_X86_X32_ABI).
    const control = await probeRun(['x32']);
    expect(control.exitCode).toBe(0);
    expect(control.results.x32).toMatch(/^(ok|errno=\d+)$/);
    expect(await probeRun(['x32'], { seccomp: { defaultAction: 'allow' } })).toMatchObject({ signal: 'SIGSYS', stdout: '' });
    const soft = await probeRun(['x32', 'getpid'], { seccomp: { defaultAction: 'allow', foreignArch: { errno: 'EPERM' } } });
    expect(soft.results).toEqual({ x32: errnoOf('EPERM'), getpid: 'ok' });
  });

  test('a program of a foreign architecture is refused', async () => {
    // i386 calls (int 0x80) cannot be made on this VM (it faults before any system call), so
    // the same check is exercised the other way round: a filter built for arm64 sees every
    // call of this x86_64 program as foreign, from its very first one (execve).
    const forArm64 = compileSeccompFor({ defaultAction: 'allow' }, { ...nativeSeccompTarget(), arch: 'aarch64', auditArch: 0xc00000b7, x32Bit: 0 }, 'test');
    expect(await probeRun(['getpid'], { seccomp: { bpf: forArm64 } })).toMatchObject({ exitCode: null, signal: 'SIGSYS', stdout: '' });
  });

  test('a precompiled program is installed as given', async () => {
    const compiled = compileSeccomp({ defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: { errno: 'EXDEV' } }] });
    expect((await probeRun(['getpid'], { seccomp: { bpf: compiled } })).results).toEqual({ getpid: errnoOf('EXDEV') });
    // By hand: "ld nr; jeq execve, deny; ret ALLOW; deny: ret ERRNO(EPERM)": the program's
    // own execve fails, and the spawn says so.
    const insns: [number, number, number, number][] = [
      [0x20, 0, 0, 0], [0x15, 1, 0, nativeSeccompTarget().syscalls.execve], [0x06, 0, 0, 0x7fff0000], [0x06, 0, 0, 0x00050001],
    ];
    const denyExec = Buffer.alloc(insns.length * 8);
    insns.forEach(([code, jt, jf, k], i) => {
      denyExec.writeUInt16LE(code, i * 8);
      denyExec.writeUInt8(jt, i * 8 + 2);
      denyExec.writeUInt8(jf, i * 8 + 3);
      denyExec.writeUInt32LE(k, i * 8 + 4);
    });
    let error: unknown;
    try {
      spawnIsolated({ command: probe, seccomp: { bpf: denyExec } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IsolationError);
    expect(error).toMatchObject({ step: 'execve', code: 'EPERM' });
    // A program the kernel rejects is reported at the seccomp step.
    const invalid = Buffer.alloc(8);
    invalid.writeUInt16LE(0xffff, 0);
    expect(() => spawnIsolated({ command: probe, seccomp: { bpf: invalid } })).toThrow(/seccomp: EINVAL .*the kernel rejected the BPF program/);
    expect(await lingeringZombies()).toEqual([]);
  });

  test('the filter holds in a rootless-style sandbox (user namespace, no capabilities)', async () => {
    const r = await probeRun(['mount', 'getpid'], { user: true, mount: true, pid: true, seccomp: seccompPresets.sandboxDefault });
    expect(r.results).toEqual({ mount: errnoOf('EPERM'), getpid: 'ok' });
  });

  // The death signal is armed for the last time before the filter, never after it: a policy
  // may deny prctl or poll to the program without breaking its spawn.
  test.each([
    ['prctl denied (EPERM)', { syscalls: ['prctl'], action: { errno: 'EPERM' } }],
    ['ppoll killing the process', { syscalls: ['ppoll'], action: 'kill' }],
  ] as const)('a policy with %s: the program still starts (dieWithParent on)', async (_what, rule) => {
    const r = await run({ command: '/bin/sh', args: ['-c', 'echo started'], pid: true, dieWithParent: true, seccomp: { defaultAction: 'allow', rules: [rule] } });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'started\n' });
  });
});
