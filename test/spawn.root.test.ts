/** A root of one's own: the seed's copied rootfs, switched to by pivot_root or chroot. */
import * as fs from 'node:fs';
import { buildRootfs } from '../lib/rootfs';
import { run, makeTempDir } from './helpers';

describe('root', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let programs: Record<string, string>;
  beforeAll(async () => {
    tmp = makeTempDir('nsjail-node-rootfs-');
    programs = (await buildRootfs(tmp.dir, ['/bin/sh', 'ls', 'cat'])).programs;
    fs.mkdirSync(`${tmp.dir}/work`);
    fs.writeFileSync(`${tmp.dir}/work/hello.txt`, 'hello from the rootfs\n');
  });
  afterAll(() => tmp.cleanup());

  test.each([
    ['pivot_root (mount: true)', true],
    ['chroot (mount: false)', false],
  ])('under %s, `ls /` lists exactly the rootfs', async (_name, mount) => {
    const r = await run({ command: 'ls', args: ['-1a', '/'], root: tmp.dir, mount, pid: true, net: true });
    expect(r.exitCode).toBe(0);
    const expected = ['.', '..', ...fs.readdirSync(tmp.dir)].sort();
    expect(r.stdout.trim().split('\n').sort()).toEqual(expected);
  });

  test('the command is found on PATH inside the new root, and cwd is resolved inside it', async () => {
    const r = await run({ command: 'cat', args: ['hello.txt'], root: tmp.dir, mount: true, cwd: '/work' });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'hello from the rootfs\n' });
    expect(programs.cat.startsWith('/')).toBe(true);
  });

  test('the seed in one call: pid 1, parent 0, only lo, the rootfs as /', async () => {
    const r = await run({
      command: '/bin/sh',
      args: ['-c', 'echo $$ $PPID; ls /'],
      root: tmp.dir, pid: true, net: true, mount: true, uts: true, ipc: true, hostname: 'seed',
    });
    const [ids, ...listing] = r.stdout.trim().split('\n');
    expect(ids).toBe('1 0');
    expect(listing.sort()).toEqual(fs.readdirSync(tmp.dir).sort());
  });

  test('the old root is gone after pivot_root: host paths are unreachable', async () => {
    const r = await run({ command: '/bin/sh', args: ['-c', `ls ${tmp.dir} /etc /proc 2>&1; echo done`], root: tmp.dir, mount: true });
    expect(r.stdout).toMatch(/No such file or directory[\s\S]*No such file or directory[\s\S]*No such file or directory[\s\S]*done/);
  });
});
