/**
 * Containment against prototype pollution in the calling program: a property put on
 * Object.prototype (say by a JSON merge bug elsewhere in the application) must not become an
 * option of a sandbox that left it out. Each test pollutes, spawns, and checks from the host;
 * the CONTROL gives the same value as a real option and shows it does what the gadget wants.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildRootfs, hostSystemMounts, prepareSandbox, runIsolated, spawnIsolated, type SpawnOptions } from '../../lib';
import { collect, expectHostMountsUnchanged, makeTempDir } from '../helpers';

jest.setTimeout(30_000);
expectHostMountsUnchanged();

const SH = '/bin/sh';

/** Runs `body` with Object.prototype[key] = value, removed again whatever happens. */
async function polluted<T>(key: string, value: unknown, body: () => Promise<T>): Promise<T> {
  Object.defineProperty(Object.prototype, key, { configurable: true, writable: true, enumerable: false, value });
  try {
    // The pollution is real: a plain object sees it.
    expect(({} as Record<string, unknown>)[key]).toBe(value);
    return await body();
  } finally {
    delete (Object.prototype as Record<string, unknown>)[key];
  }
}

async function stdoutOf(options: SpawnOptions): Promise<string> {
  const child = spawnIsolated({ ...options, stdio: ['ignore', 'pipe', 'ignore'] });
  const [out] = await Promise.all([collect(child.stdout), child.exited]);
  return out;
}

/** A host directory holding a sentinel file. */
function sentinel(): { dir: string; file: string; cleanup: () => void } {
  const t = makeTempDir('nsjail-node-pollution-');
  const file = path.join(t.dir, 'secret');
  fs.writeFileSync(file, 'host only\n');
  return { ...t, file };
}

const LOOK = 'if [ -e /leak/secret ]; then echo leaked; else echo none; fi';

test('Object.prototype.mounts does not give a sandbox a host directory; CONTROL: the same mounts as an option do', async () => {
  const host = sentinel();
  try {
    const gadget = [...hostSystemMounts(), { type: 'bind', source: host.dir, target: '/leak' }];
    const base: SpawnOptions = { command: SH, args: ['-c', LOOK], mount: true, pid: true };
    expect(await polluted('mounts', gadget, () => stdoutOf(base))).toBe('none\n');
    expect(await stdoutOf({ ...base, mounts: gadget as SpawnOptions['mounts'] })).toBe('leaked\n');
  } finally {
    host.cleanup();
  }
});

test('Object.prototype.nodev = false does not drop nodev from a tmpfs entry (nodev by default); CONTROL: nodev: false on the entry does', async () => {
  const show = 'grep " /scratch " /proc/self/mountinfo';
  const options = (entry: object): SpawnOptions => ({ command: SH, args: ['-c', show], mount: true, pid: true, mounts: [...hostSystemMounts(), { type: 'proc' }, entry as never] });
  const tmpfs = { type: 'tmpfs', target: '/scratch' };
  expect(await polluted('nodev', false, () => stdoutOf(options(tmpfs)))).toMatch(/\bnodev\b/);
  expect(await stdoutOf(options({ ...tmpfs, nodev: false }))).not.toMatch(/\bnodev\b/);
});

test('Object.prototype.socketFamilyFilter = false does not take net: true\'s seccomp filter away; CONTROL: the option does', async () => {
  const seccomp = 'grep "^Seccomp:" /proc/self/status';
  const base: SpawnOptions = { command: SH, args: ['-c', seccomp], net: true, pid: true };
  expect(await polluted('socketFamilyFilter', false, () => stdoutOf(base))).toMatch(/^Seccomp:\s+2$/m);
  expect(await stdoutOf({ ...base, socketFamilyFilter: false })).toMatch(/^Seccomp:\s+0$/m);
});

test('a prepared run and runIsolated read their own options only; CONTROL: given as options they apply', async () => {
  const box = prepareSandbox({ command: SH, args: ['-c', 'echo prepared'], pid: true });
  try {
    const gadget = ['-c', 'echo gadget'];
    const viaBox = await polluted('args', gadget, async () => {
      const child = box.spawn({ stdio: ['ignore', 'pipe', 'ignore'] });
      const [out] = await Promise.all([collect(child.stdout), child.exited]);
      return out;
    });
    expect(viaBox).toBe('prepared\n');
    const viaRun = await polluted('input', 'from the prototype', () => runIsolated({ command: '/bin/cat', pid: true }));
    expect(viaRun.stdout).toBe('');
    expect((await runIsolated({ command: '/bin/cat', pid: true, input: 'from the prototype' })).stdout).toBe('from the prototype');
    const child = box.spawn({ args: gadget, stdio: ['ignore', 'pipe', 'ignore'] });
    expect((await Promise.all([collect(child.stdout), child.exited]))[0]).toBe('gadget\n');
  } finally {
    box.close();
  }
});

test('Object.prototype.extraFiles does not copy a host file into a rootfs buildRootfs makes; CONTROL: the option does', async () => {
  const host = sentinel();
  const out = makeTempDir('nsjail-node-pollution-root-');
  const control = makeTempDir('nsjail-node-pollution-root-');
  try {
    const built = await polluted('extraFiles', [host.file], () => buildRootfs(out.dir, ['/bin/true']));
    expect(built.files).not.toContain(host.file);
    expect(fs.existsSync(path.join(out.dir, host.file))).toBe(false);
    const given = await buildRootfs(control.dir, ['/bin/true'], { extraFiles: [host.file] });
    expect(given.files).toContain(host.file);
    expect(fs.readFileSync(path.join(control.dir, host.file), 'utf8')).toBe('host only\n');
  } finally {
    out.cleanup();
    control.cleanup();
    host.cleanup();
  }
});
