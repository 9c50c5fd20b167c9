/**
 * Containment of the recommended sandbox (README, "A sandbox for untrusted code"): the file
 * system. Each attack runs inside the recommended configuration as root; the test checks from
 * the host that its own sentinel is untouched, and a CONTROL with the protection taken away
 * shows that the same attack does work, so that each test can fail.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ATTACK, WORK, buildAttack, recommended, runAttack, tempDir, without } from './attack';
import { expectHostMountsUnchanged } from '../helpers';

let built: ReturnType<typeof buildAttack>;
beforeAll(() => {
  built = buildAttack();
});
afterAll(() => built?.cleanup());

expectHostMountsUnchanged();

/** A host dir holding a sentinel file only the host should see. */
function hostSentinel(): { dir: string; file: string; cleanup: () => void } {
  const t = tempDir('nsjail-node-sentinel-');
  const file = path.join(t.dir, 'sentinel');
  fs.writeFileSync(file, 'host only\n');
  return { ...t, file };
}

describe('chroot and pivot_root', () => {
  test('the classic chroot breakout, pivot_root and /oldroot reach no host file; CONTROL: chroot without a mount namespace (root + mount: false, CAP_SYS_CHROOT kept) escapes', async () => {
    const host = hostSentinel();
    const rootfs = tempDir('nsjail-node-rootfs-');
    try {
      const args = ['access', host.file, 'access', '/oldroot', 'chroot-escape', host.file];
      const r = await runAttack(recommended(built.work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.results).toEqual({ access: 'errno=ENOENT', 'chroot-escape': 'errno=EPERM' });

      // Without seccomp and keeping CAP_SYS_CHROOT, the breakout runs and ends at the
      // sandbox's own root: pivot_root left nothing above it.
      const bare = { ...without(recommended(built.work, ATTACK, ['chroot-escape', host.file]), 'seccomp'), capabilities: ['CAP_SYS_CHROOT'] as const };
      expect((await runAttack(bare)).results).toEqual({ 'chroot-escape': 'errno=ENOENT' });

      // pivot_root(".", ".") and detaching the old root: seccomp refuses it; without seccomp
      // the sandbox has no CAP_SYS_ADMIN; with it kept, whatever it does (EINVAL here) the
      // host file stays out of reach.
      expect((await runAttack(recommended(built.work, ATTACK, ['pivot-root', '/']))).results).toEqual({ 'pivot-root': 'errno=EPERM' });
      expect((await runAttack(without(recommended(built.work, ATTACK, ['pivot-root', '/']), 'seccomp'))).results).toEqual({ 'pivot-root': 'errno=EPERM' });
      const kept = { ...without(recommended(built.work, ATTACK, ['pivot-root', '/', 'access', host.file]), 'seccomp'), capabilities: ['CAP_SYS_ADMIN'] as const };
      expect((await runAttack(kept)).results).toEqual({ 'pivot-root': expect.any(String), access: 'errno=ENOENT' });
      expect(fs.readFileSync(host.file, 'utf8')).toBe('host only\n');

      // CONTROL: the seed's plain chroot (no mount namespace) is escapable, as docs/filesystem.md says.
      fs.copyFileSync(built.program, path.join(rootfs.dir, 'attack'));
      fs.chmodSync(path.join(rootfs.dir, 'attack'), 0o755);
      fs.mkdirSync(path.join(rootfs.dir, 'tmp'));
      const control = await runAttack({ command: '/attack', args: ['access', host.file, 'chroot-escape', host.file], root: rootfs.dir, capabilities: ['CAP_SYS_CHROOT'] });
      expect(control.results).toEqual({ access: 'errno=ENOENT', 'chroot-escape': 'ok' });
    } finally {
      host.cleanup();
      rootfs.cleanup();
    }
  });
});

describe('read-only binds', () => {
  test('remount,rw, mount_setattr and umount of the read-only /work fail and its host file stays unchanged; CONTROL: as real root keeping CAP_SYS_ADMIN, remount,rw works and the write reaches the host', async () => {
    // World-writable, so that only the read-only mount stands between the sandbox and it.
    const sentinel = path.join(built.work, 'sentinel');
    fs.writeFileSync(sentinel, 'host only\n');
    fs.chmodSync(sentinel, 0o666);
    try {
      const args = ['remount', WORK, 'mount-setattr', WORK, 'umount', WORK, 'write', `${WORK}/sentinel`];
      const expected = { remount: 'errno=EPERM', 'mount-setattr': 'errno=EPERM', umount: 'errno=EPERM', write: 'errno=EROFS' };
      const r = await runAttack(recommended(built.work, ATTACK, args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.results).toEqual(expected);
      // Without seccomp, no CAP_SYS_ADMIN holds it alone.
      expect((await runAttack(without(recommended(built.work, ATTACK, args), 'seccomp'))).results).toEqual(expected);
      expect(fs.readFileSync(sentinel, 'utf8')).toBe('host only\n');

      const control = await runAttack({
        ...without(recommended(built.work, ATTACK, ['remount', WORK, 'write', `${WORK}/sentinel`]), 'user', 'seccomp'),
        capabilities: ['CAP_SYS_ADMIN'],
      });
      expect(control.results).toEqual({ remount: 'ok', write: 'ok' });
      expect(fs.readFileSync(sentinel, 'utf8')).toBe('attacked\n');
    } finally {
      fs.rmSync(sentinel, { force: true });
    }
  });
});

// The binds are made inside the sandbox's own user and mount namespaces, where the kernel does
// not lock them; with CAP_SYS_ADMIN kept the library enters one more user and mount namespace
// (lock-mounts) so that they become locked copies. The control is the test above: where the
// mounts are not locked (real root keeping CAP_SYS_ADMIN), remount,rw works and the write lands.
describe('read-only binds with user: true and CAP_SYS_ADMIN kept: locked', () => {
  test('remount,rw, mount_setattr and umount of the read-only /work fail and its host file stays unchanged', async () => {
    const sentinel = path.join(built.work, 'sentinel');
    fs.writeFileSync(sentinel, 'host only\n');
    fs.chmodSync(sentinel, 0o666);
    try {
      // The write right after the remount: after umount, /work is the empty mount point.
      const args = ['remount', WORK, 'write', `${WORK}/sentinel`, 'mount-setattr', WORK, 'umount', WORK];
      const options = { ...without(recommended(built.work, ATTACK, args), 'seccomp'), capabilities: ['CAP_SYS_ADMIN'] as const };
      const r = await runAttack(options);
      expect(fs.readFileSync(sentinel, 'utf8')).toBe('host only\n');
      // Whatever errno a fix gives, none of the four may succeed.
      const failed = expect.stringMatching(/^errno=/);
      expect(r.results).toEqual({ remount: failed, 'mount-setattr': failed, umount: failed, write: failed });
    } finally {
      fs.rmSync(sentinel, { force: true });
    }
  });
});

describe('host sysctls', () => {
  test('/proc/sys is read-only inside: core_pattern is not writable and rewriting a sysctl fails with EROFS; CONTROL: as root without a mount namespace (and in a UTS namespace of its own, so the host keeps its name) the same rewrite of kernel/hostname works', async () => {
    // Only access(W_OK) on core_pattern, never a write: it is the host's, whatever happens.
    const args = ['writable', '/proc/sys/kernel/core_pattern', 'rewrite', '/proc/sys/kernel/hostname'];
    // EROFS from the read-only mount, or EACCES first where the sandbox's root is a host id
    // of its own (not the owner of these files): either way nothing is written.
    const refused = expect.stringMatching(/^errno=(EROFS|EACCES)$/);
    const expected = { writable: refused, rewrite: refused };
    const r = await runAttack(recommended(built.work, ATTACK, args));
    expect(r).toMatchObject({ status: 'ok', stderr: '' });
    expect(r.results).toEqual(expected);
    expect((await runAttack(without(recommended(built.work, ATTACK, args), 'seccomp'))).results).toEqual(expected);

    const control = await runAttack({ command: built.program, args: ['rewrite', '/proc/sys/kernel/hostname'], uts: true });
    expect(control.results).toEqual({ rewrite: 'ok' });
  });

  // /proc/sys is made read-only by a bind inside the sandbox's own namespaces: unlocked, a kept
  // CAP_SYS_ADMIN would remount it read-write, and a sandbox root that is host uid 0 could then
  // write the host's core_pattern (a host-root command on the next core dump). Checked with
  // access(W_OK) only. Control: the read-only /work test above (unlocked mounts can be remounted).
  test('with user: true and CAP_SYS_ADMIN kept, /proc/sys cannot be remounted read-write or unmounted, and the host core_pattern stays unwritable', async () => {
    const args = ['remount', '/proc/sys', 'umount', '/proc/sys', 'writable', '/proc/sys/kernel/core_pattern'];
    const r = await runAttack({ ...without(recommended(built.work, ATTACK, args), 'seccomp'), capabilities: ['CAP_SYS_ADMIN'] });
    // Whatever errno a fix gives, none of the three may succeed.
    expect(r.results).toEqual({ remount: expect.stringMatching(/^errno=/), umount: expect.stringMatching(/^errno=/), writable: expect.stringMatching(/^errno=/) });
  });
});

describe('device nodes', () => {
  test('mknod of a char and a block device fails, in /tmp and in a writable bind of a host dir, which stays empty; CONTROL: as root without a user namespace keeping CAP_MKNOD, both are made there', async () => {
    const scratch = tempDir('nsjail-node-scratch-');
    fs.chmodSync(scratch.dir, 0o777);
    try {
      const withScratch = (args: string[]) => {
        const o = recommended(built.work, ATTACK, args);
        return { ...o, mounts: [...(o.mounts ?? []), { type: 'bind' as const, source: scratch.dir, target: '/scratch' }] };
      };
      const args = ['mknod-char', '/tmp/null', 'mknod-block', '/tmp/loop', 'mknod-char', '/scratch/null', 'mknod-block', '/scratch/loop'];
      const r = await runAttack(withScratch(args));
      expect(r).toMatchObject({ status: 'ok', stderr: '' });
      expect(r.stdout).toBe('mknod-char errno=EPERM\nmknod-block errno=EPERM\n'.repeat(2));
      expect(fs.readdirSync(scratch.dir)).toEqual([]);

      const control = await runAttack({ ...without(withScratch(args.slice(4)), 'user', 'seccomp'), capabilities: ['CAP_MKNOD'] });
      expect(control.stdout).toBe('mknod-char ok\nmknod-block ok\n');
      expect(fs.statSync(path.join(scratch.dir, 'null')).isCharacterDevice()).toBe(true);
      expect(fs.statSync(path.join(scratch.dir, 'loop')).isBlockDevice()).toBe(true);
    } finally {
      scratch.cleanup();
    }
  });
});

describe('setuid binaries', () => {
  test('a setuid-root copy of a program gives no privilege inside (no_new_privs, and the user namespace without it); CONTROL: with noNewPrivs false and no user namespace, uid 65534 runs it with euid 0', async () => {
    expect(fs.statSync(built.setuid)).toMatchObject({ uid: 0, mode: expect.any(Number) });
    expect(fs.statSync(built.setuid).mode & 0o4000).toBe(0o4000);
    const suid = `${WORK}/attack-suid`;
    const r = await runAttack({ ...recommended(built.work, suid, ['euid']), uid: 1000, gid: 1000 });
    expect(r).toMatchObject({ status: 'ok', stderr: '', stdout: 'euid 1000\n' });
    // Without no_new_privs (and so without seccomp, which needs it), the user namespace alone:
    // host root is not the sandbox's root, so a root-owned setuid file makes no one root.
    // (The socket-family filter of net: true is a seccomp filter too: off here.)
    const userOnly = await runAttack({ ...without(recommended(built.work, suid, ['euid']), 'seccomp'), uid: 1000, gid: 1000, noNewPrivs: false, socketFamilyFilter: false });
    expect(userOnly.stdout).not.toBe('euid 0\n');
    expect(userOnly.stdout).toMatch(/^euid \d+\n$/);

    const control = await runAttack({ command: built.setuid, args: ['euid'], uid: 65534, gid: 65534, noNewPrivs: false });
    expect(control).toMatchObject({ stdout: 'euid 0\n' });
  });
});
