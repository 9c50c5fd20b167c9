/**
 * Containment of the recommended sandbox (README, "A sandbox for untrusted code"): host
 * processes. Each attack runs inside the recommended configuration as root; the test checks
 * from the host that its own target is untouched, and a CONTROL with the protection taken away
 * shows that the same attack does reach the target, so that each test can fail.
 */
import { ATTACK, buildAttack, exitOf, recommended, runAttack, startHostSleep, without } from './attack';

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
