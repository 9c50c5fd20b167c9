/** Several seccomp filters (bubblewrap's repeated --add-seccomp-fd): all installed in order, all apply. */
import { spawnIsolated, type SeccompPolicy } from '../lib';
import { sh } from './helpers';

const denyMkdir: SeccompPolicy = { defaultAction: 'allow', rules: [{ syscalls: ['mkdir', 'mkdirat'], action: { errno: 'EPERM' } }] };
const denyRmdirAndMkdir: SeccompPolicy = {
  defaultAction: 'allow',
  rules: [{ syscalls: ['rmdir', 'unlinkat'], action: { errno: 'EACCES' } }, { syscalls: ['mkdir', 'mkdirat'], action: { errno: 'EROFS' } }],
};
const sandbox = { mount: true, mounts: [{ type: 'bind' as const, source: '/', target: '/', readonly: true }, { type: 'tmpfs' as const, target: '/tmp' }] };
const SCRIPT = 'mkdir /tmp/a 2>&1 | sed "s/.*: //"';

test('every filter applies; between two errnos for one call the later filter\'s wins; control: one filter alone leaves the other call alone', async () => {
  const one = await sh(SCRIPT, { ...sandbox, seccomp: [denyMkdir] });
  expect(one.stdout).toBe('Operation not permitted\n');
  const both = await sh(SCRIPT, { ...sandbox, seccomp: [denyMkdir, denyRmdirAndMkdir] });
  // Refused by both: the later filter's errno.
  expect(both.stdout).toBe('Read-only file system\n');
  const reversed = await sh(SCRIPT, { ...sandbox, seccomp: [denyRmdirAndMkdir, denyMkdir] });
  expect(reversed.stdout).toBe('Operation not permitted\n');
  // A filter that allows everything does not lift a later one's refusal.
  const rmdirOnly = await sh('mkdir /tmp/c && rmdir /tmp/c 2>&1 | sed "s/.*: //"', { ...sandbox, seccomp: [{ defaultAction: 'allow' }, { defaultAction: 'allow', rules: [{ syscalls: ['rmdir', 'unlinkat'], action: { errno: 'EACCES' } }] }] });
  expect(rmdirOnly.stdout).toBe('Permission denied\n');
});

test('a bad filter in the list is refused by its index before any process starts', () => {
  expect(() => spawnIsolated({ command: '/bin/true', seccomp: [denyMkdir, { bpf: Buffer.alloc(3) }] })).toThrow(/options\.seccomp\[1\]\.bpf must hold 1\.\.4096 BPF instructions/);
  expect(() => spawnIsolated({ command: '/bin/true', seccomp: [denyMkdir, 'x' as unknown as SeccompPolicy] })).toThrow(/options\.seccomp\[1\]/);
  const big = { bpf: Buffer.alloc(4096 * 8, 0) };
  expect(() => spawnIsolated({ command: '/bin/true', seccomp: Array.from({ length: 9 }, () => big) })).toThrow(/more than 32768 BPF instructions/);
});
