import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { elfAbi, parseLdCache, readElf, readLdCache, type ElfInfo } from '../lib/elf';
import { buildRootfs } from '../lib/rootfs';

/** Fresh temp dirs, removed after every test whatever its outcome. */
const temps: string[] = [];
async function tempDir(): Promise<string> {
  const d = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'nsjail-rootfs-'));
  temps.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => fs.promises.rm(d, { recursive: true, force: true })));
});

interface ElfSpec {
  is64: boolean; le: boolean; machine: number;
  interp?: string; needed?: string[]; soname?: string; rpath?: string; runpath?: string;
}

/**
 * Builds a minimal ELF: header, PT_LOAD (at a vaddr != file offset, so DT_STRTAB must be mapped),
 * PT_DYNAMIC, optional PT_INTERP, then interpreter string, string table and dynamic array.
 */
function makeElf(s: ElfSpec): Buffer {
  const base = 0x400000;
  const [ehsize, phentsize, dynent] = s.is64 ? [64, 56, 16] : [52, 32, 8];
  const phnum = s.interp ? 3 : 2;
  const strings = [''];
  const str = (v: string): number => {
    const at = strings.join('\0').length + 1; // offset just past the NUL ending the table so far
    strings.push(v);
    return at;
  };
  const dyn: Array<[number, number]> = [];
  for (const n of s.needed ?? []) dyn.push([1, str(n)]);
  if (s.soname) dyn.push([14, str(s.soname)]);
  if (s.rpath) dyn.push([15, str(s.rpath)]);
  if (s.runpath) dyn.push([29, str(s.runpath)]);
  const strtab = Buffer.from(strings.join('\0') + '\0');
  const interp = Buffer.from(s.interp ? s.interp + '\0' : '');
  const interpOff = ehsize + phnum * phentsize;
  const strOff = interpOff + interp.length;
  const dynOff = (strOff + strtab.length + 7) & ~7;
  dyn.push([5, base + strOff], [10, strtab.length], [0, 0]);
  const buf = Buffer.alloc(dynOff + dyn.length * dynent);

  const u16 = (o: number, v: number): number => (s.le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o));
  const u32 = (o: number, v: number): number => (s.le ? buf.writeUInt32LE(v, o) : buf.writeUInt32BE(v, o));
  const word = (o: number, v: number): number => {
    if (!s.is64) return u32(o, v);
    return s.le ? buf.writeBigUInt64LE(BigInt(v), o) : buf.writeBigUInt64BE(BigInt(v), o);
  };
  buf.write('\x7fELF', 0, 'latin1');
  buf[4] = s.is64 ? 2 : 1;
  buf[5] = s.le ? 1 : 2;
  buf[6] = 1;
  u16(16, 3); u16(18, s.machine); u32(20, 1);
  word(s.is64 ? 32 : 28, ehsize);
  u16(s.is64 ? 52 : 40, ehsize); u16(s.is64 ? 54 : 42, phentsize); u16(s.is64 ? 56 : 44, phnum);
  const phdr = (i: number, type: number, offset: number, vaddr: number, size: number): void => {
    const o = ehsize + i * phentsize;
    u32(o, type);
    if (s.is64) { word(o + 8, offset); word(o + 16, vaddr); word(o + 32, size); word(o + 40, size); }
    else { u32(o + 4, offset); u32(o + 8, vaddr); u32(o + 16, size); u32(o + 20, size); }
  };
  phdr(0, 1, 0, base, buf.length);
  phdr(1, 2, dynOff, base + dynOff, dyn.length * dynent);
  if (s.interp) phdr(2, 3, interpOff, base + interpOff, interp.length);
  interp.copy(buf, interpOff);
  strtab.copy(buf, strOff);
  dyn.forEach(([tag, val], i) => { word(dynOff + i * dynent, tag); word(dynOff + i * dynent + dynent / 2, val); });
  return buf;
}

interface CacheSpec { name: string; path: string; flags: number; hwcap?: bigint }

/** Builds an ld.so.cache image in host byte order: new format, old format, or old followed by new. */
function makeLdCache(format: 'new' | 'old' | 'both', entries: CacheSpec[]): Buffer {
  const le = os.endianness() === 'LE';
  const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); if (le) b.writeUInt32LE(v >>> 0); else b.writeUInt32BE(v >>> 0); return b; };
  const u64 = (v: bigint): Buffer => { const b = Buffer.alloc(8); if (le) b.writeBigUInt64LE(v); else b.writeBigUInt64BE(v); return b; };
  const table = (strBase: number): { offs: Array<[number, number]>; strs: Buffer } => {
    const parts: string[] = [];
    let at = strBase;
    const offs = entries.map((e): [number, number] => {
      const k = at; at += e.name.length + 1; const v = at; at += e.path.length + 1;
      parts.push(e.name, e.path);
      return [k, v];
    });
    return { offs, strs: Buffer.from(parts.join('\0') + '\0') };
  };
  const newPart = (): Buffer => {
    const head = 48 + entries.length * 24;
    const { offs, strs } = table(head);
    const header = Buffer.concat([Buffer.from('glibc-ld.so.cache1.1'), u32(entries.length), u32(strs.length), Buffer.alloc(20)]);
    const ents = entries.map((e, i) => Buffer.concat([u32(e.flags), u32(offs[i][0]), u32(offs[i][1]), u32(0), u64(e.hwcap ?? 0n)]));
    return Buffer.concat([header, ...ents, strs]);
  };
  const oldHeader = (withStrings: boolean): Buffer => {
    const { offs, strs } = table(0);
    const ents = entries.map((e, i) => Buffer.concat([u32(e.flags), u32(offs[i][0]), u32(offs[i][1])]));
    const head = Buffer.concat([Buffer.from('ld.so-1.7.0\0'), u32(entries.length), ...ents]);
    // In the combined format the old string table starts where the new header does, so its offsets would be wrong here:
    // the parser must ignore the old table whenever a new one follows.
    return withStrings ? Buffer.concat([head, strs]) : Buffer.concat([head, Buffer.alloc(((head.length + 7) & ~7) - head.length)]);
  };
  if (format === 'new') return newPart();
  if (format === 'old') return oldHeader(true);
  return Buffer.concat([oldHeader(false), newPart()]);
}

const hostSh = (): Promise<ElfInfo> => readElf('/bin/sh');

describe('ELF reader', () => {
  test('parses /bin/sh and /bin/ls: interpreter and DT_NEEDED', async () => {
    for (const p of ['/bin/sh', '/bin/ls']) {
      const elf = await readElf(p);
      expect(elf.interpreter).toMatch(/^\/.*ld-linux.*\.so\.\d$/);
      expect(elf.needed).toContain('libc.so.6');
      expect(elf.type === 2 || elf.type === 3).toBe(true);
      expect(elfAbi(elf)).toBeDefined();
    }
    const sh = await hostSh();
    expect(sh.elfClass).toBe(process.arch === 'x64' || process.arch === 'arm64' ? 64 : 32);
    if (process.arch === 'x64') expect(sh.machine).toBe(62);
  });

  test('reads libc: SONAME, and DT_NEEDED on the loader', async () => {
    const libc = (await readLdCache()).find((e) => e.name === 'libc.so.6' && e.flags !== 1);
    expect(libc).toBeDefined();
    const elf = await readElf(libc?.path ?? '');
    expect(elf.soname).toBe('libc.so.6');
    expect(elf.needed.some((n) => /^ld-linux/.test(n))).toBe(true);
  });

  test.each([
    ['ELF64 little endian', true, true],
    ['ELF64 big endian', true, false],
    ['ELF32 little endian', false, true],
    ['ELF32 big endian', false, false],
  ])('parses a synthetic %s file', async (_name, is64, le) => {
    const dir = await tempDir();
    const file = path.join(dir, 'synthetic');
    const spec = { is64, le, machine: 183, interp: '/lib/ld-test.so.1', needed: ['liba.so.1', 'libb.so.2'], soname: 'libself.so.3', rpath: '$ORIGIN/r', runpath: '/x:/y' };
    await fs.promises.writeFile(file, makeElf(spec));
    expect(await readElf(file)).toEqual({
      path: file, elfClass: is64 ? 64 : 32, littleEndian: le, type: 3, machine: 183, flags: 0,
      interpreter: '/lib/ld-test.so.1', needed: ['liba.so.1', 'libb.so.2'], soname: 'libself.so.3', rpath: '$ORIGIN/r', runpath: '/x:/y',
    });
  });

  test('non-ELF and truncated files give errors naming the path and reason', async () => {
    const dir = await tempDir();
    const text = path.join(dir, 'script.sh');
    await fs.promises.writeFile(text, '#!/bin/sh\necho hi\n');
    await expect(readElf(text)).rejects.toThrow(`${text}: not an ELF file (a #! script)`);
    const empty = path.join(dir, 'empty');
    await fs.promises.writeFile(empty, '');
    await expect(readElf(empty)).rejects.toThrow(`${empty}: not an ELF file (bad magic)`);
    const sh = await fs.promises.readFile('/bin/sh');
    for (const size of [10, 100, 2000]) {
      const cut = path.join(dir, `cut${size}`);
      await fs.promises.writeFile(cut, sh.subarray(0, size));
      await expect(readElf(cut)).rejects.toThrow(`${cut}: truncated ELF file`);
    }
  });
});

describe('ld.so.cache parser', () => {
  test('finds libc.so.6 for the host architecture in /etc/ld.so.cache', async () => {
    const abi = elfAbi(await hostSh());
    const entries = await readLdCache();
    const libc = entries.filter((e) => e.name === 'libc.so.6' && abi?.cacheFlags.includes(e.flags));
    expect(libc.length).toBeGreaterThan(0);
    expect(fs.existsSync(libc[0].path)).toBe(true);
    expect((await readElf(libc[0].path)).soname).toBe('libc.so.6');
  });

  test.each(['new', 'old', 'both'] as const)('parses the %s format', (format) => {
    const entries = [
      { name: 'libc.so.6', path: '/lib/x86_64-linux-gnu/libc.so.6', flags: 0x0303, hwcap: 0n },
      { name: 'libc.so.6', path: '/lib/i386-linux-gnu/libc.so.6', flags: 0x0003, hwcap: 0n },
      { name: 'libz.so.1', path: '/lib/aarch64-linux-gnu/libz.so.1', flags: 0x0a03, hwcap: format === 'old' ? 0n : 1n << 62n },
    ];
    expect(parseLdCache(makeLdCache(format, entries))).toEqual(entries);
  });

  test('rejects an unknown magic and a truncated table', () => {
    expect(() => parseLdCache(Buffer.from('not a cache at all, really'), '/x/cache')).toThrow('/x/cache: invalid ld.so.cache (unknown magic)');
    const good = makeLdCache('new', [{ name: 'libc.so.6', path: '/lib/libc.so.6', flags: 3 }]);
    expect(() => parseLdCache(good.subarray(0, 60))).toThrow(/invalid ld\.so\.cache \(truncated table\)/);
  });
});

describe('buildRootfs', () => {
  test('builds a rootfs from /bin/sh and ls that runs under chroot', async () => {
    const dir = await tempDir();
    const manifest = await buildRootfs(dir, ['/bin/sh', 'ls']);
    expect(manifest.root).toBe(dir);
    expect(manifest.programs['/bin/sh']).toBe('/bin/sh');
    expect(manifest.programs.ls).toMatch(/^\/.*\/ls$/);
    const sh = await hostSh();
    // Host symlinks met on the way (e.g. /bin -> usr/bin) are mirrored as symlinks, not flattened.
    const kind = (st: fs.Stats): string => (st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : 'file');
    for (const f of manifest.files) {
      expect([f, kind(fs.lstatSync(path.join(dir, f)))]).toEqual([f, kind(fs.lstatSync(f))]);
      if (fs.lstatSync(f).isSymbolicLink()) expect(fs.readlinkSync(path.join(dir, f))).toBe(fs.readlinkSync(f));
    }
    // The real files sit at their host real paths, mode preserved. (Not stat(dir + p): absolute links would escape to the host.)
    for (const p of ['/bin/sh', manifest.programs.ls, sh.interpreter ?? '']) {
      const real = fs.realpathSync(p);
      expect(manifest.files).toContain(real);
      expect(fs.lstatSync(path.join(dir, real)).mode).toBe(fs.statSync(real).mode);
    }

    const out = child_process.execFileSync('chroot', [dir, '/bin/sh', '-c', 'ls /'], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    const top = fs.readdirSync(dir).sort();
    expect(out.split('\n').filter(Boolean).sort()).toEqual(top);
    expect(top).toEqual([...new Set(manifest.files.map((f) => f.split('/')[1]))].sort());
  });

  test('follows DT_RPATH, DT_RUNPATH ($ORIGIN) and libraryPath in ld.so order', async () => {
    const host = fs.realpathSync(await tempDir()); // libraries are reported under the executable's real $ORIGIN
    const { machine, elfClass, littleEndian: le } = await hostSh();
    const is64 = elfClass === 64;
    const write = async (p: string, spec: Partial<ElfSpec>): Promise<void> => {
      await fs.promises.mkdir(path.dirname(p), { recursive: true });
      await fs.promises.writeFile(p, makeElf({ is64, le, machine, ...spec }), { mode: 0o755 });
    };
    // The same soname in three places; the first in search order must win.
    await write(`${host}/rpath/libdemo.so.1`, { soname: 'libdemo.so.1', needed: ['libdeep.so.1'] });
    await write(`${host}/runpath/libdemo.so.1`, { soname: 'libdemo.so.1' });
    await write(`${host}/extra/libdemo.so.1`, { soname: 'libdemo.so.1' });
    // Found through the executable's DT_RPATH: ld.so walks the loader chain for RPATH.
    await write(`${host}/rpath/libdeep.so.1`, { soname: 'libdeep.so.1' });
    // A wrong-class library earlier in the path is skipped, as ld.so does.
    await write(`${host}/bad/libdemo.so.1`, { soname: 'libdemo.so.1', is64: !is64 });
    await write(`${host}/bin/both`, { needed: ['libdemo.so.1'], rpath: '$ORIGIN/../rpath', runpath: '${ORIGIN}/../bad:$ORIGIN/../runpath' });
    await write(`${host}/bin/rpath`, { needed: ['libdemo.so.1'], rpath: '$ORIGIN/../bad:$ORIGIN/../rpath' });
    await write(`${host}/bin/plain`, { needed: ['libdemo.so.1'] });

    const libs = (files: string[]): string[] => files.filter((f) => f.includes('.so'));
    const cases: Array<[string, string[], string[]]> = [
      ['both', [], [`${host}/runpath/libdemo.so.1`]], // DT_RUNPATH present: DT_RPATH ignored
      ['rpath', [`${host}/extra`], [`${host}/rpath/libdemo.so.1`, `${host}/rpath/libdeep.so.1`]], // RPATH before libraryPath
      ['plain', [`${host}/extra`], [`${host}/extra/libdemo.so.1`]],
    ];
    for (const [bin, libraryPath, expected] of cases) {
      const dir = await tempDir();
      const m = await buildRootfs(dir, [`${host}/bin/${bin}`], { libraryPath });
      expect(libs(m.files)).toEqual([...expected].sort());
      for (const f of expected) expect(fs.readFileSync(path.join(dir, f))).toEqual(fs.readFileSync(f));
    }
  });

  test('rebuilding into the same dir works; a planted symlink is never written through', async () => {
    const dir = await tempDir();
    const first = await buildRootfs(dir, ['/bin/sh']);
    expect((await buildRootfs(dir, ['/bin/sh'])).files).toEqual(first.files);
    // dir/usr -> /usr would make a naive copier overwrite the host's own /usr/bin/dash.
    const evil = await tempDir();
    await fs.promises.symlink('/usr', path.join(evil, 'usr'));
    await expect(buildRootfs(evil, ['/bin/sh'])).rejects.toThrow(`${path.join(evil, 'usr')} exists and is not a directory`);
  });

  test('extraFiles are copied as they are, mode included', async () => {
    const host = await tempDir();
    const extra = path.join(host, 'conf', 'data.txt');
    await fs.promises.mkdir(path.dirname(extra));
    await fs.promises.writeFile(extra, 'hello\n', { mode: 0o640 });
    await fs.promises.chmod(extra, 0o640);
    const dir = await tempDir();
    const m = await buildRootfs(dir, ['/bin/sh'], { extraFiles: [extra] });
    expect(m.files).toContain(extra);
    expect(fs.readFileSync(path.join(dir, extra), 'utf8')).toBe('hello\n');
    expect(fs.statSync(path.join(dir, extra)).mode & 0o7777).toBe(0o640);
  });

  test('a missing library names the binary and the soname, and nothing is copied', async () => {
    const host = await tempDir();
    const dir = await tempDir();
    // /bin/sh with its DT_NEEDED string libc.so.6 renamed in place to a soname that exists nowhere.
    const sh = await fs.promises.readFile('/bin/sh');
    const patched = Buffer.from(sh.toString('latin1').split('libc.so.6\0').join('libq.so.9\0'), 'latin1');
    const bin = path.join(host, 'patched-sh');
    await fs.promises.writeFile(bin, patched, { mode: 0o755 });
    const err = await buildRootfs(dir, [bin]).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err)).toContain(bin);
    expect(String(err)).toContain('libq.so.9');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('a non-ELF program gives a clear error', async () => {
    const host = await tempDir();
    const dir = await tempDir();
    const script = path.join(host, 'hello.sh');
    await fs.promises.writeFile(script, '#!/bin/sh\necho hello\n', { mode: 0o755 });
    await expect(buildRootfs(dir, [script])).rejects.toThrow(`${script}: not an ELF file (a #! script)`);
    await expect(buildRootfs(dir, ['no-such-program-anywhere'])).rejects.toThrow("program 'no-such-program-anywhere' not found on PATH");
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('bad arguments throw TypeError/RangeError naming the option before anything is copied', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'file');
    await fs.promises.writeFile(file, '');
    const bad: Array<[unknown, unknown, unknown, ErrorConstructor, string]> = [
      [42, ['/bin/sh'], undefined, TypeError, 'dir must be a string'],
      ['relative/dir', ['/bin/sh'], undefined, RangeError, 'dir must be an absolute path'],
      [path.join(dir, 'missing'), ['/bin/sh'], undefined, RangeError, 'is not an existing directory'],
      [file, ['/bin/sh'], undefined, RangeError, 'is not an existing directory'],
      ['/', ['/bin/sh'], undefined, RangeError, 'dir must not be the host root'],
      [dir, '/bin/sh', undefined, TypeError, 'programs must be an array'],
      [dir, [], undefined, RangeError, 'programs must not be empty'],
      [dir, ['/bin/sh', 7], undefined, TypeError, 'programs[1] must be a string'],
      [dir, [''], undefined, RangeError, 'programs[0] must not be empty'],
      [dir, ['/bin/sh'], null, TypeError, 'options must be an object'],
      [dir, ['/bin/sh'], { extraFiles: 'x' }, TypeError, 'options.extraFiles must be an array'],
      [dir, ['/bin/sh'], { libraryPath: ['lib'] }, RangeError, 'options.libraryPath[0] must be an absolute path'],
    ];
    const call = buildRootfs as (d: unknown, p: unknown, o?: unknown) => Promise<unknown>;
    for (const [d, p, o, type, message] of bad) {
      const err = await call(d, p, o).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(type);
      expect(String(err)).toContain(message);
    }
    expect(fs.readdirSync(dir)).toEqual(['file']);
  });

  test('holes in programs, extraFiles and libraryPath are TypeErrors naming the entry', async () => {
    const dir = await tempDir();
    const sparse = (a: string[]): string[] => {
      const out = [...a, 'x'];
      delete out[a.length - 1];
      return out;
    };
    const call = buildRootfs as (d: unknown, p: unknown, o?: unknown) => Promise<unknown>;
    const cases: Array<[unknown, unknown, string]> = [
      [sparse(['/bin/sh', '/bin/ls']), undefined, 'programs[1] must be a string, got a hole (sparse array)'],
      [['/bin/sh'], { extraFiles: sparse(['/etc/hostname']) }, 'options.extraFiles[0] must be a string, got a hole'],
      [['/bin/sh'], { libraryPath: sparse(['/usr/lib', '/lib']) }, 'options.libraryPath[1] must be a string, got a hole'],
    ];
    for (const [programs, options, message] of cases) {
      const err = await call(dir, programs, options).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(TypeError);
      expect(String(err)).toContain(message);
    }
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('a build that fails part way removes what it wrote and keeps (or puts back) what was there', async () => {
    const dir = await tempDir();
    const sh = fs.realpathSync('/bin/sh');
    const interpreter = (await readElf(sh)).interpreter;
    if (!interpreter) throw new Error('/bin/sh has no ELF interpreter: this test needs a dynamically linked /bin/sh');
    // The program is placed first; then the interpreter's first directory is in the way.
    const blocker = interpreter.split('/')[1];
    await fs.promises.writeFile(path.join(dir, blocker), 'in the way');
    await fs.promises.mkdir(path.join(dir, path.dirname(sh)), { recursive: true });
    await fs.promises.writeFile(path.join(dir, sh), 'there before');
    const tree = (): string[] => {
      const out: string[] = [];
      const walk = (p: string): void => {
        for (const e of fs.readdirSync(p, { withFileTypes: true })) {
          const f = path.join(p, e.name);
          out.push(`${path.relative(dir, f)} ${e.isDirectory() ? 'dir' : e.isSymbolicLink() ? `-> ${fs.readlinkSync(f)}` : fs.readFileSync(f, 'utf8').slice(0, 20)}`);
          if (e.isDirectory()) walk(f);
        }
      };
      walk(dir);
      return out.sort();
    };
    const before = tree();
    await expect(buildRootfs(dir, [sh])).rejects.toThrow(`${path.join(dir, blocker)} exists and is not a`);
    expect(tree()).toEqual(before);
    expect(fs.readFileSync(path.join(dir, sh), 'utf8')).toBe('there before');
    // Control: without the blocker the same build succeeds, replacing the old file.
    await fs.promises.unlink(path.join(dir, blocker));
    await buildRootfs(dir, [sh]);
    expect(fs.readFileSync(path.join(dir, sh))).toEqual(fs.readFileSync(sh));
    expect(fs.readdirSync(path.dirname(path.join(dir, sh))).filter((f) => f.includes('nsjail-node-old'))).toEqual([]);
  });
});
