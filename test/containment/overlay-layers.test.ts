/**
 * Overlay layers reach overlayfs as directories opened once in the child, never as a string
 * the kernel parses (splitting at ':' and ',') and resolves again. A layer path whose
 * resolved name holds ':' cannot smuggle another host directory in as a layer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostSystemMounts, spawnIsolated, type MountEntry, type SpawnOptions } from '../../lib';
import { validateOptions } from '../../lib/options';
import { catchError, childCount, hostMountinfo, lingeringZombies, makeTempDir, sh } from '../helpers';

let mountinfoBefore = '';
let temp: ReturnType<typeof makeTempDir>;
let sentinel: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  mountinfoBefore = hostMountinfo();
  temp = makeTempDir('nsjail-node-layers-');
  sentinel = makeTempDir('nsjail-node-sentinel-');
  fs.writeFileSync(path.join(sentinel.dir, 'secret'), 'host only');
});
afterEach(async () => {
  temp.cleanup();
  sentinel.cleanup();
  expect(hostMountinfo()).toBe(mountinfoBefore);
  expect(await lingeringZombies()).toEqual([]);
});

const sandbox = (...entries: MountEntry[]): Omit<SpawnOptions, 'command'> => ({
  mount: true, pid: true, mounts: [...hostSystemMounts(), { type: 'proc' }, ...entries],
});

/**
 * The attack: `link` -> `x:/oldroot/<sentinel>`, with that path made real under the layer
 * dir so that resolving it succeeds. Resolved and then given to overlayfs as a string, the
 * name splits at ':' into `<layers>/x` and `/oldroot/<sentinel>`: the host's sentinel dir.
 */
function colonLink(): { link: string; resolved: string; decoy: string } {
  const layers = path.join(temp.dir, 'layers');
  const decoy = path.join(layers, 'x');
  fs.mkdirSync(decoy, { recursive: true });
  fs.writeFileSync(path.join(decoy, 'decoy'), '');
  const resolved = path.join(layers, `x:/oldroot${sentinel.dir}`);
  fs.mkdirSync(resolved, { recursive: true });
  fs.writeFileSync(path.join(resolved, 'inside'), '');
  const link = path.join(layers, 'link');
  fs.symlinkSync(`x:/oldroot${sentinel.dir}`, link);
  return { link, resolved, decoy };
}

test('a layer that resolves to a name with ":" is that one directory, not a host directory spliced in', async () => {
  const { link, resolved, decoy } = colonLink();
  // Control, at the validation level: the layer path as given has no ':' (a check on it
  // passes), and only its resolution has, where a check done before resolving cannot see it.
  expect(() => validateOptions({ command: '/bin/true', ...sandbox({ type: 'overlay', target: '/o', lower: [link] }) })).not.toThrow();
  expect(fs.realpathSync(link)).toBe(resolved);
  expect(`/oldroot${resolved}`.split(':')).toEqual([`/oldroot${decoy}`, `/oldroot${sentinel.dir}`]);
  // Control, in a sandbox: those two layers are what the string named, and they do show the
  // host's sentinel.
  const spliced = await sh('ls /o', sandbox({ type: 'overlay', target: '/o', lower: [decoy, sentinel.dir] }));
  expect(spliced.stdout.split('\n')).toContain('secret');

  const r = await sh('ls /o', sandbox({ type: 'overlay', target: '/o', lower: [link] }));
  expect(r).toMatchObject({ exitCode: 0, stderr: '' });
  expect(r.stdout).toBe('inside\n');
});

test('layers named with ":" and "," are fine: nothing parses them', async () => {
  const top = path.join(temp.dir, 'a:b');
  const bottom = path.join(temp.dir, 'c,d');
  fs.mkdirSync(top);
  fs.mkdirSync(bottom);
  fs.writeFileSync(path.join(top, 'from-top'), '');
  fs.writeFileSync(path.join(bottom, 'from-bottom'), '');
  const r = await sh('ls /o', sandbox({ type: 'overlay', target: '/o', lower: [top, bottom], readonly: true }));
  expect(r).toMatchObject({ exitCode: 0, stderr: '', stdout: 'from-bottom\nfrom-top\n' });
});

test('the kernel got the layers as descriptors: the overlay\'s options list lowerdir+ (by fd) or /proc fd links, never the host paths', async () => {
  // A rename race between resolving a layer and mounting it cannot be staged deterministically;
  // what closes it is that no layer is given as a path string, which this checks.
  const lower = path.join(temp.dir, 'lower');
  const upper = path.join(temp.dir, 'upper');
  const work = path.join(temp.dir, 'work');
  for (const d of [lower, upper, work]) fs.mkdirSync(d);
  const r = await sh("grep ' /o ' /proc/self/mountinfo", sandbox({ type: 'overlay', target: '/o', lower: [lower], upper, work }));
  expect(r).toMatchObject({ exitCode: 0, stderr: '' });
  const options = r.stdout.split(' - ')[1];
  expect(options).toMatch(/^overlay /);
  // Linux 6.8+: each layer appended on its own (lowerdir+, by fd since 6.13); before: one
  // lowerdir of /proc/self/fd links.
  expect(options).toMatch(/lowerdir\+=|lowerdir=\/oldroot\/proc\/self\/fd\//);
  expect(options).not.toMatch(/lowerdir=\/oldroot\/tmp/);
});

test('a layer that is not a directory, or is missing, is refused naming that layer', async () => {
  const file = path.join(temp.dir, 'file');
  fs.writeFileSync(file, '');
  const good = path.join(temp.dir, 'good');
  fs.mkdirSync(good);
  const notDir = await sh('true', sandbox({ type: 'overlay', target: '/o', lower: [good, file] })).catch((e: unknown) => e);
  expect(notDir).toMatchObject({ code: 'ENOTDIR', step: `mounts[${hostSystemMounts().length + 1}] overlay lower[1]`, path: file });
  const missingUpper = await sh('true', sandbox({ type: 'overlay', target: '/o', lower: [good], upper: path.join(temp.dir, 'nope'), work: good })).catch((e: unknown) => e);
  expect(missingUpper).toMatchObject({ code: 'ENOENT', step: `mounts[${hostSystemMounts().length + 1}] overlay upper`, path: path.join(temp.dir, 'nope') });
});

test('more than 500 lower layers (overlayfs\'s limit) are refused before any process starts', () => {
  const before = childCount();
  const err = catchError(() => spawnIsolated({ command: '/bin/true', mount: true, mounts: [{ type: 'overlay', target: '/o', lower: new Array<string>(501).fill('/usr') }] }));
  expect(err).toBeInstanceOf(RangeError);
  expect(err.message).toMatch(/options\.mounts\[0\]\.lower may have at most 500 layers/);
  expect(childCount()).toBe(before);
});
