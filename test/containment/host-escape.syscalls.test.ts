/**
 * Containment of the recommended sandbox (README, "A sandbox for untrusted code"): system
 * calls through a foreign ABI. A deny list written for x86_64 numbers is bypassed by the same
 * calls made through i386's `int 0x80`, unless the filter checks the architecture:
 * seccompPresets.sandboxDefault kills foreign ABIs (foreignArch: 'kill').
 */
import { spawnSync } from 'node:child_process';
import { ATTACK, buildAttack, recommended, runAttack, without } from './attack';

const built = buildAttack(); // at collection: the kernel fact below decides which test runs
afterAll(() => built.cleanup());

// Outside any sandbox: does this kernel run `int 0x80` from a 64-bit program at all? Some do
// not (IA32 emulation off, or a hypervisor without the int 0x80 gate: this VM's kernel has
// CONFIG_IA32_EMULATION=y and still delivers SIGSEGV).
const outside = spawnSync(built.program, ['int80-getpid'], { encoding: 'utf8' });
const int80Works = outside.status === 0 && outside.stdout === 'int80-getpid ok\n';
const onlyIf = (condition: boolean): typeof test => (condition ? test : test.skip);

describe('foreign system call ABIs', () => {
  onlyIf(int80Works)('an i386 system call (int 0x80) kills the sandbox (SIGSYS); CONTROL: without seccomp, it returns', async () => {
    const r = await runAttack(recommended(built.work, ATTACK, ['int80-getpid']));
    expect(r).toMatchObject({ signal: 'SIGSYS', stdout: '' });
    const control = await runAttack(without(recommended(built.work, ATTACK, ['int80-getpid']), 'seccomp'));
    expect(control).toMatchObject({ status: 'ok', stdout: 'int80-getpid ok\n' });
  });

  onlyIf(!int80Works)('i386 int 0x80: not runnable on this kernel (SIGSEGV outside any sandbox, so neither seccomp\'s foreignArch kill nor a control can be shown); asserts that kernel fact, inside and outside', async () => {
    expect(outside).toMatchObject({ signal: 'SIGSEGV', stdout: '' });
    const r = await runAttack(without(recommended(built.work, ATTACK, ['int80-getpid']), 'seccomp'));
    expect(r).toMatchObject({ signal: 'SIGSEGV', stdout: '' });
  });

  test('an x32 system call (the x86_64 number | 0x40000000) kills the sandbox (SIGSYS) before the kernel sees it; CONTROL: without seccomp it reaches the kernel, which answers ENOSYS without CONFIG_X86_X32_ABI (this VM) or runs it', async () => {
    const r = await runAttack(recommended(built.work, ATTACK, ['x32-getpid']));
    expect(r).toMatchObject({ signal: 'SIGSYS', stdout: '' });
    const control = await runAttack(without(recommended(built.work, ATTACK, ['x32-getpid']), 'seccomp'));
    expect(control).toMatchObject({ status: 'ok', stdout: expect.stringMatching(/^x32-getpid (ok|errno=ENOSYS)\n$/) });
  });
});
