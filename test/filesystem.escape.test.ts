/**
 * Mount plans under attack and misuse: escapes from inside, symlinks in target paths, and bad
 * input, which must fail clearly, naming the entry, and leave nothing mounted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostSystemMounts, IsolationError, spawnIsolated, type MountEntry, type SpawnOptions } from '../lib';
import { validateOptions } from '../lib/options';
import { compilePlan } from '../lib/plan';
import { buildRootfs } from '../lib/rootfs';
import { catchError, childCount, expectHostMountsUnchanged, makeTempDir, run } from './helpers';

expectHostMountsUnchanged();

const system = (): MountEntry[] => [...hostSystemMounts(), { type: 'proc' }, { type: 'tmpfs', target: '/tmp' }];

// The classic chroot escape: chroot into a subdirectory while keeping the working directory
// outside it, climb with "..", and chroot to where that leads. Prints whether the host's
// sentinel file is visible from there and what "/" holds.
const CHROOT_ESCAPE = `
  my $sentinel = shift;
  mkdir "/tmp/x";
  chroot "/tmp/x" or die "chroot x: $!";
  chdir ".." for 1 .. 64;
  chroot "." or die "chroot .: $!";
  opendir(my $d, "/") or die "opendir: $!";
  my @entries = sort grep { !/^\\.\\.?$/ } readdir $d;
  print((-e $sentinel ? "FOUND" : "absent"), " ", join(",", @entries), "\\n");
`;

describe('escapes', () => {
  test('the chroot escape (mkdir, chroot, chdir ..) reaches no host file after pivot_root', async () => {
    const host = makeTempDir('nsjail-node-sentinel-');
    const rootfs = makeTempDir();
    try {
      const sentinel = path.join(host.dir, 'sentinel');
      fs.writeFileSync(sentinel, 'host only');
      // Control: in the seed's chroot (no mount namespace) the same escape does reach the
      // host, so this test can tell an escape from none.
      const built = await buildRootfs(rootfs.dir, ['perl']);
      fs.mkdirSync(path.join(rootfs.dir, 'tmp'));
      // perl -e needs /dev/null; a script file does not.
      fs.writeFileSync(path.join(rootfs.dir, 'escape.pl'), CHROOT_ESCAPE);
      const perl = built.programs.perl;
      const caps: SpawnOptions['capabilities'] = ['CAP_SYS_CHROOT', 'CAP_DAC_OVERRIDE'];
      const control = await run({ command: perl, args: ['/escape.pl', sentinel], root: rootfs.dir, capabilities: caps });
      expect(control.stdout).toMatch(/^FOUND /);

      const mounts: MountEntry[] = [...system(), { type: 'file', target: '/escape.pl', content: CHROOT_ESCAPE }];
      const r = await run({ command: perl, args: ['/escape.pl', sentinel], mount: true, pid: true, mounts, capabilities: caps });
      expect(r.stderr).toBe('');
      const preset = hostSystemMounts().map((m) => ((m as { target?: string }).target ?? (m as { source: string }).source).split('/')[1]);
      const top = new Set([...preset, 'proc', 'tmp', 'escape.pl']);
      expect(r.stdout).toBe(`absent ${[...top].sort().join(',')}\n`);
    } finally {
      host.cleanup();
      rootfs.cleanup();
    }
  });

  test('a symlink in a target path never leads a mount or a write outside the new root', async () => {
    const victim = makeTempDir('nsjail-node-victim-');
    const root = makeTempDir();
    try {
      const R = root.dir;
      // Host paths an attacker who controls the root directory's content would aim at: the
      // host's own path, the path the host has during setup (/oldroot/...), and ".." climbs.
      fs.symlinkSync(victim.dir, path.join(R, 'abs'));
      fs.symlinkSync(`/oldroot${victim.dir}`, path.join(R, 'old'));
      fs.symlinkSync('../../../../../../../../../..', path.join(R, 'up'));
      fs.mkdirSync(path.join(R, 'oldroot', victim.dir), { recursive: true });
      const base: Partial<SpawnOptions> = { root: R, mount: true };

      // Dangling inside the root: nothing is created through it, the entry fails by name.
      const dangling = catchError(() => spawnIsolated({ command: '/bin/true', ...base, mounts: [{ type: 'tmpfs', target: '/abs/m' }] }));
      expect(dangling).toMatchObject({ code: 'ENOENT', step: 'mounts[0] tmpfs', path: '/abs/m' });

      // Resolved inside the root: the entries land in R, never in the victim.
      const r = await run({
        command: '/bin/sh',
        args: ['-c', `cat /old/pwned; ls /up${victim.dir}; grep -c " /up${victim.dir}/usr \\| ${victim.dir}/usr " /proc/self/mountinfo`],
        ...base,
        pid: true,
        mounts: [
          ...hostSystemMounts(),
          { type: 'proc' },
          { type: 'file', target: '/old/pwned', content: 'written\n' },
          { type: 'dir', target: `/up${victim.dir}/made` },
          { type: 'bind', source: '/usr', target: `/up${victim.dir}/usr`, readonly: true },
          { type: 'tmpfs', target: '/up/tmpfs-here' },
        ],
      });
      expect(r.stdout).toBe('written\nmade\nusr\n1\n');
      expect(fs.readFileSync(path.join(R, 'oldroot', victim.dir, 'pwned'), 'utf8')).toBe('written\n');
      expect(fs.readdirSync(path.join(R, victim.dir)).sort()).toEqual(['made', 'usr']);
      expect(fs.existsSync(path.join(R, 'tmpfs-here'))).toBe(true);

      // In the tmpfs-root model too: a symlink the plan itself makes towards /oldroot.
      const t = await run({
        command: '/bin/sh',
        args: ['-c', `ls /oldroot${victim.dir}`],
        mount: true,
        mounts: [
          ...hostSystemMounts(),
          { type: 'symlink', target: '/esc', to: `/oldroot${victim.dir}` },
          { type: 'dir', target: `/oldroot${victim.dir}` },
          { type: 'dir', target: '/esc/made' },
          { type: 'file', target: '/esc/pwned', content: 'x' },
        ],
      });
      expect(t.stdout).toBe('made\npwned\n');

      expect(fs.readdirSync(victim.dir)).toEqual([]);
    } finally {
      victim.cleanup();
      root.cleanup();
    }
  });

  test('/proc inside lists only the sandbox\'s processes', async () => {
    const r = await run({
      command: '/bin/sh',
      args: ['-c', `sleep 5 & ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; [ -e /proc/${process.pid} ] && echo host-visible; kill %1`],
      mount: true,
      pid: true,
      mounts: system(),
    });
    // sh (1), sleep, and the pipeline's own processes: all small numbers of the new namespace.
    const pids = r.stdout.trim().split(' ').map(Number);
    expect(pids[0]).toBe(1);
    expect(pids.length).toBeLessThanOrEqual(6);
    expect(Math.max(...pids)).toBeLessThan(10);
    expect(r.stdout).not.toContain('host-visible');
  });
});

describe('bad input', () => {
  const tmp = { type: 'tmpfs', target: '/t' } as const;
  const cases: [string, Partial<SpawnOptions> & Record<string, unknown>, RegExp, ErrorConstructor][] = [
    ['mounts without a mount namespace', { mounts: [tmp] }, /^spawnIsolated: options.mounts needs mount: true/, TypeError],
    ['mounts not an array', { mount: true, mounts: tmp as never }, /options.mounts must be an array/, TypeError],
    ['a relative target', { mount: true, mounts: [tmp, { type: 'tmpfs', target: 'tmp' }] }, /options.mounts\[1\].target must be an absolute path, got 'tmp'/, RangeError],
    ['an empty target', { mount: true, mounts: [{ type: 'dir', target: '' }] }, /options.mounts\[0\].target must not be empty/, RangeError],
    ['a missing target', { mount: true, mounts: [{ type: 'tmpfs' } as never] }, /options.mounts\[0\].target must be a string/, TypeError],
    ['a relative source', { mount: true, mounts: [{ type: 'bind', source: 'usr' }] }, /options.mounts\[0\].source must be an absolute path/, RangeError],
    ['an unknown type', { mount: true, mounts: [{ type: 'nfs' } as never] }, /options.mounts\[0\].type must be one of 'bind', 'tmpfs'/, TypeError],
    ['an entry not an object', { mount: true, mounts: ['/usr' as never] }, /options.mounts\[0\] must be an object/, TypeError],
    ['a misspelt key', { mount: true, mounts: [{ type: 'tmpfs', target: '/t', sise: 1 } as never] }, /unknown option options.mounts\[0\].sise \(did you mean options.mounts\[0\].size\?\)/, TypeError],
    ['a key of another kind', { mount: true, mounts: [{ type: 'dir', target: '/t', readonly: true } as never] }, /unknown option options.mounts\[0\].readonly/, TypeError],
    ['proc without pid', { mount: true, mounts: [{ type: 'proc' }] }, /options.mounts\[0\] \(proc\) needs pid: true/, TypeError],
    ['mqueue without ipc', { mount: true, mounts: [{ type: 'mqueue' }] }, /options.mounts\[0\] \(mqueue\) needs ipc: true/, TypeError],
    ['a mode out of range', { mount: true, mounts: [{ type: 'dir', target: '/d', mode: 0o10000 }] }, /options.mounts\[0\].mode must be an integer from 0 to 0o7777/, RangeError],
    ['a bad size', { mount: true, mounts: [{ type: 'tmpfs', target: '/t', size: '10 MB' }] }, /options.mounts\[0\].size must be bytes/, RangeError],
    ['a file at /', { mount: true, mounts: [{ type: 'file', target: '/', content: '' }] }, /options.mounts\[0\].target must not be '\/' for a file entry/, RangeError],
    ['file content of a wrong type', { mount: true, mounts: [{ type: 'file', target: '/f', content: 3 as never }] }, /options.mounts\[0\].content must be a string or a Buffer/, TypeError],
    ['overlay upper without work', { mount: true, mounts: [{ type: 'overlay', target: '/o', lower: ['/usr'], upper: '/tmp' }] }, /options.mounts\[0\] \(overlay\) needs both upper and work/, TypeError],
    ['overlay without lower', { mount: true, mounts: [{ type: 'overlay', target: '/o', lower: [] }] }, /options.mounts\[0\].lower must be a non-empty array/, TypeError],
    ['read-only overlay of one layer', { mount: true, mounts: [{ type: 'overlay', target: '/o', lower: ['/usr'], readonly: true }] }, /options.mounts\[0\].lower needs at least two layers/, RangeError],
    ['readonlyRoot alone', { mount: true, readonlyRoot: true }, /options.readonlyRoot needs root or mounts/, TypeError],
  ];
  test.each(cases)('%s: thrown before any process starts', (_name, options, message, kind) => {
    const before = childCount();
    const err = catchError(() => spawnIsolated({ command: '/bin/true', ...options } as SpawnOptions));
    expect(err).toBeInstanceOf(kind);
    expect(err.message).toMatch(message);
    expect(childCount()).toBe(before);
  });

  test('every mount-plan step carries the kernel-version hint for ENOSYS (not reachable on this kernel)', () => {
    const plan = compilePlan(validateOptions({ command: '/bin/true', mount: true, pid: true, ipc: true, mounts: [...system(), { type: 'dev' }, { type: 'mqueue' }] }));
    const planSteps = plan.labels.filter((l) => /^(mounts\[\d+\] |stage-root$|root-tmpfs$|pivot-root$)/.test(l.step));
    expect(planSteps.length).toBeGreaterThan(20);
    for (const label of planSteps) expect([label.step, label.hints?.ENOSYS]).toEqual([label.step, expect.stringContaining('Linux 5.12')]);
    expect(plan.labels.find((l) => l.step === 'stage-root')?.hints?.EINVAL).toMatch(/mount point/);
  });

  test('a missing source without try names the entry and the source', () => {
    const err = catchError(() =>
      spawnIsolated({ command: '/bin/true', mount: true, mounts: [tmp, { type: 'bind', source: '/no/such/dir', target: '/data' }] }),
    ) as IsolationError;
    expect(err).toBeInstanceOf(IsolationError);
    expect(err).toMatchObject({ code: 'ENOENT', step: 'mounts[1] bind source', path: '/no/such/dir' });
    expect(err.message).toBe('spawnIsolated: mounts[1] bind source /no/such/dir: ENOENT (no such file or directory) [openat2]');
  });

  test('a target under a read-only mount names the entry and the target', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const cases: [MountEntry, string, string][] = [
        [{ type: 'dir', target: '/ro/sub' }, 'mounts[1] dir', '/ro/sub'],
        [{ type: 'tmpfs', target: '/ro/a/b' }, 'mounts[1] tmpfs', '/ro/a/b'],
        [{ type: 'bind', source: '/etc/hostname', target: '/ro/hostname' }, 'mounts[1] bind', '/ro/hostname'],
        [{ type: 'file', target: '/ro/f', content: 'x' }, 'mounts[1] file', '/ro/f'],
      ];
      for (const [entry, step, target] of cases) {
        const err = catchError(() =>
          spawnIsolated({ command: '/bin/true', mount: true, mounts: [{ type: 'bind', source: dir, target: '/ro', readonly: true }, entry] }),
        );
        expect(err).toMatchObject({ code: 'EROFS', step, path: target });
      }
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      cleanup();
    }
  });

  test('an overlay the kernel refuses names the entry, with a hint', () => {
    const { dir, cleanup } = makeTempDir();
    const work = fs.mkdtempSync('/dev/shm/nsjail-node-work-');
    try {
      fs.mkdirSync(path.join(dir, 'lower'));
      fs.mkdirSync(path.join(dir, 'upper'));
      // upper on the host's disk, work on a tmpfs: two filesystems, which overlayfs refuses.
      const err = catchError(() =>
        spawnIsolated({
          command: '/bin/true',
          mount: true,
          mounts: [{ type: 'overlay', target: '/merged', lower: [path.join(dir, 'lower')], upper: path.join(dir, 'upper'), work }],
        }),
      );
      expect(err).toMatchObject({ code: 'EINVAL', step: 'mounts[0] overlay', path: '/merged' });
      expect(err.message).toMatch(/^spawnIsolated: mounts\[0\] overlay \/merged: EINVAL .*: overlayfs refused these layers/);
      const missing = catchError(() =>
        spawnIsolated({ command: '/bin/true', mount: true, mounts: [{ type: 'overlay', target: '/merged', lower: [path.join(dir, 'lower'), '/no/such/layer'] }] }),
      );
      expect(missing).toMatchObject({ code: 'ENOENT', step: 'mounts[0] overlay lower[1]', path: '/no/such/layer' });
    } finally {
      cleanup();
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
