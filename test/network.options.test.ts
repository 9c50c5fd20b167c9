/** Network options: what is refused before any process starts, and the plan they compile to. */
import { spawnIsolated } from '../lib';
import { validateOptions } from '../lib/options';
import { compilePlan } from '../lib/plan';
import { binding } from '../lib/binding';
import { openFdCount } from './helpers';

const C = binding.constants;

describe('network options', () => {
  test('conflicts and bad shapes are refused with the option named', () => {
    const fdsBefore = openFdCount();
    const bad = (options: Record<string, unknown>): (() => unknown) => () => spawnIsolated({ command: '/bin/true', ...options });
    expect(bad({ net: true, join: { net: 'x' } })).toThrow(
      'spawnIsolated: options.join.net conflicts with net: true: a sandbox either joins a network namespace or gets a new one',
    );
    expect(bad({ mount: true, join: { mnt: 1 } })).toThrow('spawnIsolated: options.join.mnt conflicts with mount: true');
    expect(bad({ pid: true, join: { pid: 1 } })).toThrow(RangeError);
    expect(bad({ time: true, join: { time: 1 } })).toThrow('spawnIsolated: options.join.time conflicts with time: true');
    expect(bad({ user: true, join: { uts: 1 } })).toThrow(/options.join cannot be combined with user: true/);
    expect(bad({ pid: true, join: { user: 1 } })).toThrow(/options.join.user cannot be combined with new namespaces \(pid: true\)/);
    expect(bad({ join: { nett: 'x' } })).toThrow('spawnIsolated: unknown option options.join.nett (did you mean options.join.net?)');
    expect(bad({ join: 'x' })).toThrow("spawnIsolated: options.join must be an object, got the string 'x'");
    expect(bad({ join: { net: 0 } })).toThrow('spawnIsolated: options.join.net must be a pid (1..4194304), got 0');
    expect(bad({ join: { net: 'a/b' } })).toThrow(/options.join.net must be a network namespace name/);
    expect(bad({ join: { uts: 'relative' } })).toThrow("spawnIsolated: options.join.uts must be a pid or a path such as /proc/PID/ns/uts, got the string 'relative'");
    expect(bad({ join: { ipc: true } })).toThrow(TypeError);
    expect(bad({ loopback: true })).toThrow(/options.loopback needs net: true/);
    expect(bad({ net: true, loopback: 'yes' })).toThrow('spawnIsolated: options.loopback must be a boolean');
    expect(bad({ veth: { hostAddress: '10.200.3.1/24', sandboxAddress: '10.200.3.2/24' } })).toThrow(/options.veth needs net: true/);
    expect(bad({ net: true, user: true, veth: { hostAddress: '10.200.3.1/24', sandboxAddress: '10.200.3.2/24' } })).toThrow(/options.veth cannot be combined with user: true/);
    expect(openFdCount()).toBeLessThanOrEqual(fdsBefore);
  });

  test('the plan: lo up only in a namespace made by clone; joins first, the user namespace first of all', () => {
    const ops = (options: Record<string, unknown>): string[] => compilePlan(validateOptions({ command: '/bin/true', ...options })).labels.map((l) => l.step);
    expect(ops({ net: true })).toContain('loopback-up');
    expect(ops({ net: true, loopback: false })).not.toContain('loopback-up');
    expect(ops({})).not.toContain('loopback-up');
    const joined = ops({ join: { mnt: '/proc/1/ns/mnt', net: 'x', user: 7, uts: 7, pid: 7 } });
    // pid is joined by the spawning thread around clone, not by a step.
    expect(joined.filter((s) => s.startsWith('join-'))).toEqual(['join-user', 'join-uts', 'join-net', 'join-mnt']);
    const plan = compilePlan(validateOptions({ command: '/bin/true', join: { net: 'x', time: 1 } }));
    expect(plan.native.steps[plan.labels.findIndex((l) => l.step === 'join-net')]).toEqual({ op: 'setns', path: '/run/netns/x', flags: C.CLONE_NEWNET });
    // Joining a time namespace clones without CLONE_VM (the kernel refuses it to a process sharing memory).
    expect(plan.native.cloneFlags & C.CLONE_VM).toBe(0);
    expect(compilePlan(validateOptions({ command: '/bin/true', net: true })).native.cloneFlags & C.CLONE_VM).toBe(C.CLONE_VM);
  });
});
