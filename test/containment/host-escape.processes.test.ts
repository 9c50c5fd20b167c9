/**
 * Containment of the recommended sandbox (README, "A sandbox for untrusted code"): host
 * processes. Each attack runs inside the recommended configuration as root; the test checks
 * from the host that its own target is untouched, and a CONTROL with the protection taken away
 * shows that the same attack does reach the target, so that each test can fail.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { ATTACK, buildAttack, exitOf, marker, markedSleepSeconds, killByMarker, pidsWithMarker, recommended, runAttack, runCases, startHostSleep, without, type Case } from './attack';
import { lingeringZombies } from '../helpers';

let work = '';
let program = '';
let cleanupAttack: (() => void) | undefined;
beforeAll(() => {
  const built = buildAttack();
  work = built.work;
  program = built.program;
  cleanupAttack = built.cleanup;
});
afterAll(() => cleanupAttack?.());
afterEach(async () => {
  expect(await lingeringZombies()).toEqual([]);
});

/** Waits (bounded) until no host process has the marker; returns the pids still there. */
async function goneByMarker(mark: string): Promise<number[]> {
  for (let i = 0; i < 100 && pidsWithMarker(mark).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return pidsWithMarker(mark);
}

/** The recommended config less its proc entry (a procfs needs pid: true). */
function withoutProc(options: ReturnType<typeof recommended>): ReturnType<typeof recommended> {
  return { ...options, mounts: (options.mounts ?? []).filter((m) => m.type !== 'proc') };
}

// The marker goes to the attack in two halves, so that its own command line does not match.
const halves = (mark: string): [string, string] => [mark.slice(0, 3), mark.slice(3)];

describe('host processes', () => {
  test('a host sleep the test started cannot be seen, signalled, ptraced or read/written through /proc/<pid>/mem; CONTROL: without pid and user namespaces, keeping CAP_KILL and CAP_SYS_PTRACE, all four reach it', async () => {
    const target = startHostSleep();
    try {
      const pid = String(target.pid);
      const args = ['sees', ...halves(target.mark), 'signal0', pid, 'ptrace', pid, 'mem', pid, 'kill', pid];
      const r = await runAttack(recommended(work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      // The pid is not in the sandbox's PID namespace; seccomp refuses ptrace before the lookup.
      expect(r.results).toEqual({ sees: 'no', signal0: 'errno=ESRCH', ptrace: 'errno=EPERM', mem: 'errno=ENOENT', kill: 'errno=ESRCH' });
      // The namespaces hold on their own, without seccomp.
      const bare = await runAttack(without(recommended(work, ATTACK, args), 'seccomp'));
      expect(bare.results).toEqual({ sees: 'no', signal0: 'errno=ESRCH', ptrace: 'errno=ESRCH', mem: 'errno=ENOENT', kill: 'errno=ESRCH' });
      expect(target.alive()).toBe(true);

      // The host's own /proc and the host path of the program: no mount namespace either.
      const control = await runAttack({ command: program, args, capabilities: ['CAP_KILL', 'CAP_SYS_PTRACE'] });
      expect(control.results).toEqual({ sees: 'yes', signal0: 'ok', ptrace: 'ok', mem: 'ok', kill: 'ok' });
      expect(await exitOf(target.child)).toBe('SIGKILL');
    } finally {
      target.stop();
    }
  });
});

describe('after the sandbox ends', () => {
  test('a daemonized descendant (fork, setsid, fork) does not outlive the sandbox, with limits and without (the PID namespace alone); CONTROL: without pid namespace and cgroup, it survives', async () => {
    const mark = markedSleepSeconds();
    try {
      const args = ['daemon', '/bin/sleep', mark];
      const r = await runAttack(recommended(work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '', stdout: 'daemon ok\n' });
      expect(await goneByMarker(mark)).toEqual([]);
      const pidNsAlone = await runAttack(without(recommended(work, ATTACK, args), 'limits'));
      expect(pidNsAlone).toMatchObject({ status: 'ok', stdout: 'daemon ok\n' });
      expect(await goneByMarker(mark)).toEqual([]);

      const control = await runAttack(without(withoutProc(recommended(work, ATTACK, args)), 'pid', 'init', 'limits'));
      expect(control).toMatchObject({ status: 'ok', stdout: 'daemon ok\n' });
      expect(pidsWithMarker(mark)).toHaveLength(1);
    } finally {
      killByMarker(mark);
    }
  });
});

describe('resource bombs', () => {
  test('a fork bomb is held by limits.pids (64) and the host can still fork; CONTROL: without limits the same program makes all 200 processes (its own bound)', async () => {
    const r = await runAttack(recommended(work, ATTACK, ['forkbomb', '200']));
    expect(r).toMatchObject({ status: 'ok', stderr: '' });
    const made = Number(r.results.forkbomb);
    expect(made).toBeGreaterThan(0);
    expect(made).toBeLessThan(64); // init and the program itself count too
    expect(execFileSync('/bin/sh', ['-c', 'echo forked'], { encoding: 'utf8' })).toBe('forked\n');
    const control = await runAttack(without(recommended(work, ATTACK, ['forkbomb', '200']), 'limits'));
    expect(control.results).toEqual({ forkbomb: '200' });
  });

  test("a memory bomb is held by limits.memory (256 MiB): the sandbox ends with status 'memory'; CONTROL: without limits it gets its 320 MiB", async () => {
    const r = await runAttack(recommended(work, ATTACK, ['membomb', '1024']));
    expect(r).toMatchObject({ status: 'memory', stdout: '' });
    const control = await runAttack(without(recommended(work, ATTACK, ['membomb', '320']), 'limits'));
    expect(control).toMatchObject({ status: 'ok', stdout: 'membomb 320\n' });
  });
});

describe('descriptors', () => {
  test('no descriptor but 0, 1, 2 inside, while the parent holds 20 more and an inheritable (non-CLOEXEC) fd 100; CONTROL: a plain child_process of the same parent lists fd 100', async () => {
    const cases: Record<string, Case> = {
      sandbox: recommended(work, ATTACK, ['fds']),
      plain: { plain: true, command: program, args: ['fds'] },
    };
    // The shell opens fd 100 without O_CLOEXEC and execs Node with it (a low number such as 7
    // would not do: Node reuses those at start-up).
    const { results } = await runCases(cases, { wrap: ['/bin/bash', '-c', 'exec 100</dev/null; exec "$@"', 'bash'] });
    expect(results.sandbox).toMatchObject({ status: 'ok', stderr: '', stdout: 'fds 0,1,2\n' });
    expect(results.plain.stdout).toMatch(/^fds 0,1,2(,\d+)*\n$/);
    expect(results.plain.stdout!.trim().slice(4).split(',')).toContain('100');
  });
});

describe('the terminal', () => {
  const legacy = (() => {
    try {
      return fs.readFileSync('/proc/sys/dev/tty/legacy_tiocsti', 'utf8').trim();
    } catch {
      return 'absent'; // kernels before 6.2: TIOCSTI always allowed on the controlling terminal
    }
  })();
  const allowed = legacy !== '0';
  // Run under script(1), so that the Node process has a pty as its controlling terminal and stdin.
  const underScript = { wrap: ['script', '-qec'], wrapAsString: true };
  const tiocsti = (text: string, extra: Partial<Case> = {}): Case => ({ ...recommended(work, ATTACK, ['tiocsti', text]), stdinInherit: true, ...extra });

  (allowed ? test : test.skip)('TIOCSTI into the terminal on stdin fails (a new session has no controlling terminal) and nothing reaches it; CONTROL: with newSession: false, the injected text is echoed by the terminal', async () => {
    const attack = marker('injected');
    const injected = marker('injected');
    const { results, output } = await runCases({ attack: tiocsti(`${attack}\n`), control: tiocsti(`${injected}\n`, { newSession: false }) }, underScript);
    expect(results.attack).toMatchObject({ status: 'ok', stderr: '', stdout: 'tiocsti errno=EPERM\n' });
    expect(output).not.toContain(attack);
    expect(results.control).toMatchObject({ stdout: 'tiocsti ok\n' });
    expect(output).toContain(injected);
  });

  (allowed ? test.skip : test)('TIOCSTI is refused by this kernel altogether (dev.tty.legacy_tiocsti = 0): no CONTROL can show an injection; the sandbox and the control both get EIO', async () => {
    const { results } = await runCases({ attack: tiocsti('x'), control: tiocsti('x', { newSession: false }) }, underScript);
    expect(results.attack).toMatchObject({ stdout: 'tiocsti errno=EIO\n' });
    expect(results.control).toMatchObject({ stdout: 'tiocsti errno=EIO\n' });
  });
});
