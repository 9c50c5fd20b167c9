/**
 * A minimal, read-only ELF and ld.so.cache reader: just enough to compute a dynamic
 * executable's shared-library closure without running it (no ldd, no ld.so).
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

/** Word size of an ELF file (EI_CLASS). */
export type ElfClass = 32 | 64;

/** What the dynamic loader needs to know about one ELF file. */
export interface ElfInfo {
  /** Path the file was read from. */
  path: string;
  /** 32- or 64-bit. */
  elfClass: ElfClass;
  /** Byte order (EI_DATA). */
  littleEndian: boolean;
  /** e_type: 2 = ET_EXEC, 3 = ET_DYN. */
  type: number;
  /** e_machine, e.g. 62 = x86-64, 3 = i386, 183 = aarch64 (see {@link EM}). */
  machine: number;
  /** e_flags (processor specific; on ARM it carries the float ABI). */
  flags: number;
  /** PT_INTERP: the program interpreter (ELF loader), absent for static files and most libraries. */
  interpreter?: string;
  /** DT_NEEDED entries, in load order. */
  needed: string[];
  /** DT_SONAME. */
  soname?: string;
  /** DT_RPATH, raw (colon separated, dynamic string tokens unexpanded). */
  rpath?: string;
  /** DT_RUNPATH, raw (colon separated, dynamic string tokens unexpanded). */
  runpath?: string;
}

/** e_machine values this module knows an ABI for. */
export const EM = { I386: 3, ARM: 40, PPC64: 21, S390: 22, X86_64: 62, AARCH64: 183, RISCV: 243 } as const;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
/** e_phnum escape: the real count lives in section header 0's sh_info. */
const PN_XNUM = 0xffff;

/** Bounds-checked positional reads, so a short file becomes a clear error instead of garbage. */
class FileReader {
  constructor(readonly path: string, private readonly fd: fs.promises.FileHandle, readonly size: number) {}

  async at(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new Error(`${this.path}: truncated ELF file (needs ${length} bytes at offset ${offset}, file has ${this.size})`);
    }
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.fd.read(buf, 0, length, offset);
    if (bytesRead !== length) throw new Error(`${this.path}: truncated ELF file (short read at offset ${offset})`);
    return buf;
  }
}

/** Endian- and class-aware field access on one buffer. */
class Fields {
  constructor(private readonly buf: Buffer, private readonly le: boolean, private readonly is64: boolean, private readonly path: string) {}
  u16(off: number): number { return this.le ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off); }
  u32(off: number): number { return this.le ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off); }
  /** A signed d_tag; precision loss on huge (OS/processor specific) tags is harmless, we only compare small ones. */
  tag(off: number): number {
    if (!this.is64) return this.le ? this.buf.readInt32LE(off) : this.buf.readInt32BE(off);
    return Number(this.le ? this.buf.readBigInt64LE(off) : this.buf.readBigInt64BE(off));
  }
  /** A word (Elf32_Addr/Off or Elf64_Addr/Off/Xword); 64-bit values beyond 2^53 cannot be file offsets. */
  word(off: number): number {
    if (!this.is64) return this.u32(off);
    const v = this.le ? this.buf.readBigUInt64LE(off) : this.buf.readBigUInt64BE(off);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${this.path}: malformed ELF file (64-bit value out of range)`);
    return Number(v);
  }
}

interface Phdr { type: number; offset: number; vaddr: number; filesz: number }

/** Reads a NUL-terminated string starting at `off`; a missing terminator means a truncated table. */
function cString(buf: Buffer, off: number, path: string): string {
  const end = buf.indexOf(0, off);
  if (off >= buf.length || end < 0) throw new Error(`${path}: truncated ELF file (unterminated string at ${off})`);
  return buf.toString('utf8', off, end);
}

/**
 * Reads the ELF header, program headers and dynamic section of `path`.
 * Only the needed byte ranges are read, so large libraries are cheap.
 * @throws Error naming the path when the file is not ELF, truncated, or malformed.
 */
export async function readElf(path: string): Promise<ElfInfo> {
  const fd = await fs.promises.open(path, 'r');
  try {
    const r = new FileReader(path, fd, (await fd.stat()).size);
    const ident = await r.at(0, Math.min(16, r.size));
    if (ident.length < 4 || ident.readUInt32BE(0) !== 0x7f454c46) {
      const script = ident.subarray(0, 2).toString('latin1') === '#!';
      throw new Error(`${path}: not an ELF file (${script ? 'a #! script' : 'bad magic'})`);
    }
    if (ident.length < 16) throw new Error(`${path}: truncated ELF file (${r.size} bytes)`);
    if (ident[4] !== 1 && ident[4] !== 2) throw new Error(`${path}: unsupported ELF class ${ident[4]}`);
    if (ident[5] !== 1 && ident[5] !== 2) throw new Error(`${path}: unsupported ELF byte order ${ident[5]}`);
    const is64 = ident[4] === 2;
    const le = ident[5] === 1;
    const f = new Fields(await r.at(0, is64 ? 64 : 52), le, is64, path);

    const info: ElfInfo = {
      path, elfClass: is64 ? 64 : 32, littleEndian: le,
      type: f.u16(16), machine: f.u16(18), flags: f.u32(is64 ? 48 : 36), needed: [],
    };
    const phoff = f.word(is64 ? 32 : 28);
    const phentsize = f.u16(is64 ? 54 : 42);
    let phnum = f.u16(is64 ? 56 : 44);
    if (phnum === PN_XNUM) {
      const sh = new Fields(await r.at(f.word(is64 ? 40 : 32), is64 ? 64 : 40), le, is64, path);
      phnum = sh.u32(is64 ? 44 : 28);
    }
    if (phnum === 0) return info;
    if (phentsize < (is64 ? 56 : 32)) throw new Error(`${path}: malformed ELF file (e_phentsize ${phentsize})`);

    const phdrs: Phdr[] = [];
    const table = await r.at(phoff, phnum * phentsize);
    for (let i = 0; i < phnum; i++) {
      const p = new Fields(table.subarray(i * phentsize), le, is64, path);
      phdrs.push(is64
        ? { type: p.u32(0), offset: p.word(8), vaddr: p.word(16), filesz: p.word(32) }
        : { type: p.u32(0), offset: p.u32(4), vaddr: p.u32(8), filesz: p.u32(16) });
    }

    const interp = phdrs.find((p) => p.type === PT_INTERP);
    if (interp) info.interpreter = cString(await r.at(interp.offset, interp.filesz), 0, path);

    const dyn = phdrs.find((p) => p.type === PT_DYNAMIC);
    if (!dyn) return info;
    const entSize = is64 ? 16 : 8;
    const d = new Fields(await r.at(dyn.offset, dyn.filesz - (dyn.filesz % entSize)), le, is64, path);
    const tags: Array<[number, number]> = [];
    for (let off = 0; off + entSize <= dyn.filesz; off += entSize) {
      const tag = d.tag(off);
      if (tag === DT_NULL) break;
      // Only decode values we use: other tags may hold addresses too large for a JS number.
      if ([DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH].includes(tag)) tags.push([tag, d.word(off + entSize / 2)]);
    }
    const strtabAddr = tags.find(([t]) => t === DT_STRTAB)?.[1];
    const strsz = tags.find(([t]) => t === DT_STRSZ)?.[1];
    if (strtabAddr === undefined || strsz === undefined) {
      if (tags.some(([t]) => t === DT_NEEDED)) throw new Error(`${path}: malformed ELF file (DT_NEEDED without DT_STRTAB/DT_STRSZ)`);
      return info;
    }
    // DT_STRTAB is a virtual address: map it back to a file offset through the PT_LOAD that covers it.
    const load = phdrs.find((p) => p.type === PT_LOAD && strtabAddr >= p.vaddr && strtabAddr < p.vaddr + p.filesz);
    if (!load) throw new Error(`${path}: malformed ELF file (DT_STRTAB 0x${strtabAddr.toString(16)} is not in any PT_LOAD segment)`);
    const strtab = await r.at(load.offset + (strtabAddr - load.vaddr), strsz);
    for (const [tag, val] of tags) {
      if (tag === DT_NEEDED) info.needed.push(cString(strtab, val, path));
      else if (tag === DT_SONAME) info.soname = cString(strtab, val, path);
      else if (tag === DT_RPATH) info.rpath = cString(strtab, val, path);
      else if (tag === DT_RUNPATH) info.runpath = cString(strtab, val, path);
    }
    return info;
  } finally {
    await fd.close();
  }
}

/** Per-architecture facts ld.so hard-codes: where libraries live and how ldconfig tags them. */
export interface ElfAbi {
  /** Debian multiarch triplet, e.g. `x86_64-linux-gnu`. */
  triplet: string;
  /** ld.so.cache entry flags this ABI accepts (besides the generic FLAG_ELF = 1). */
  cacheFlags: number[];
  /** Non-multiarch library directory name: `lib64`, `libx32` or `lib`. */
  libDir: string;
  /** Best guess for AT_PLATFORM ($PLATFORM); undefined when it depends on the CPU model. */
  platform?: string;
}

/**
 * The ABI of an ELF file, or undefined for machines this module has no table entry for
 * (callers then rely on matching e_machine/class of candidate libraries alone).
 */
export function elfAbi(elf: Pick<ElfInfo, 'machine' | 'elfClass' | 'flags' | 'littleEndian'>): ElfAbi | undefined {
  const is64 = elf.elfClass === 64;
  switch (elf.machine) {
    case EM.X86_64:
      return is64 ? { triplet: 'x86_64-linux-gnu', cacheFlags: [0x0303], libDir: 'lib64', platform: 'x86_64' }
        : { triplet: 'x86_64-linux-gnux32', cacheFlags: [0x0803], libDir: 'libx32', platform: 'x86_64' };
    case EM.I386: return { triplet: 'i386-linux-gnu', cacheFlags: [0x0003], libDir: 'lib', platform: 'i686' };
    case EM.AARCH64: return is64 ? { triplet: 'aarch64-linux-gnu', cacheFlags: [0x0a03], libDir: 'lib64', platform: 'aarch64' } : undefined;
    case EM.ARM: // EF_ARM_ABI_FLOAT_HARD picks hard- vs soft-float, which ldconfig tags differently.
      return (elf.flags & 0x400) !== 0 ? { triplet: 'arm-linux-gnueabihf', cacheFlags: [0x0903], libDir: 'lib' }
        : { triplet: 'arm-linux-gnueabi', cacheFlags: [0x0b03, 0x0003], libDir: 'lib' };
    case EM.RISCV: return is64 ? { triplet: 'riscv64-linux-gnu', cacheFlags: [0x1003], libDir: 'lib64' } : undefined;
    case EM.PPC64: return is64 && elf.littleEndian ? { triplet: 'powerpc64le-linux-gnu', cacheFlags: [0x0503], libDir: 'lib64' } : undefined;
    case EM.S390: return is64 ? { triplet: 's390x-linux-gnu', cacheFlags: [0x0403], libDir: 'lib64' } : undefined;
    default: return undefined;
  }
}

/** One ld.so.cache entry: a soname and the file ldconfig found for it. */
export interface LdCacheEntry {
  /** The soname, e.g. `libc.so.6`. */
  name: string;
  /** Absolute path of the library. */
  path: string;
  /** ldconfig flags: low byte = library type (3 = ELF libc6), high byte = ABI (0x03 = x86-64, 0x0a = aarch64; 0 = i386). */
  flags: number;
  /** Hardware capability bits; non-zero for glibc-hwcaps / legacy hwcap subdirectory variants. */
  hwcap: bigint;
}

const OLD_MAGIC = 'ld.so-1.7.0';
const NEW_MAGIC = 'glibc-ld.so.cache1.1';

/**
 * Parses an /etc/ld.so.cache image: the new "glibc-ld.so.cache1.1" format, alone or after an
 * old "ld.so-1.7.0" table (whose entries are then superseded), or an old-format-only cache.
 * @param source Name used in error messages.
 * @throws Error naming `source` on an unknown magic or out-of-bounds table.
 */
export function parseLdCache(buf: Buffer, source = 'ld.so.cache'): LdCacheEntry[] {
  const bad = (why: string): Error => new Error(`${source}: invalid ld.so.cache (${why})`);
  const str = (base: number, off: number): string => {
    const end = buf.indexOf(0, base + off);
    if (base + off >= buf.length || end < 0) throw bad(`string offset ${off} out of bounds`);
    return buf.toString('utf8', base + off, end);
  };
  const le = os.endianness() === 'LE'; // ldconfig writes the cache in host byte order
  const u32 = (off: number): number => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));

  let newStart = 0;
  if (buf.toString('latin1', 0, OLD_MAGIC.length) === OLD_MAGIC) {
    // struct cache_file { char magic[11]; (pad) uint32 nlibs; } then 12-byte entries.
    if (buf.length < 16) throw bad('truncated old header');
    const nlibs = u32(12);
    const entriesEnd = 16 + nlibs * 12;
    if (entriesEnd > buf.length) throw bad('truncated old table');
    // The new header follows, aligned like struct cache_file_new: 8 bytes, but 4 on i386.
    const isNew = (at: number): boolean => buf.toString('latin1', at, at + NEW_MAGIC.length) === NEW_MAGIC;
    newStart = [(entriesEnd + 7) & ~7, entriesEnd].find(isNew) ?? -1;
    if (newStart < 0) {
      const entries: LdCacheEntry[] = [];
      for (let i = 0; i < nlibs; i++) {
        const e = 16 + i * 12;
        // Old-format string offsets are relative to the end of the entry table.
        entries.push({ flags: u32(e) | 0, name: str(entriesEnd, u32(e + 4)), path: str(entriesEnd, u32(e + 8)), hwcap: 0n });
      }
      return entries;
    }
  } else if (buf.toString('latin1', 0, NEW_MAGIC.length) !== NEW_MAGIC) {
    throw bad('unknown magic');
  }
  // struct cache_file_new: magic+version[20], nlibs, len_strings, flags(u8)+pad[3], extension_offset, unused[3]; 48 bytes.
  if (newStart + 48 > buf.length) throw bad('truncated header');
  const nlibs = u32(newStart + 20);
  if (newStart + 48 + nlibs * 24 > buf.length) throw bad('truncated table');
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const e = newStart + 48 + i * 24; // flags, key, value, osversion, uint64 hwcap
    const hwcap = le ? buf.readBigUInt64LE(e + 16) : buf.readBigUInt64BE(e + 16);
    // New-format string offsets are relative to the start of the new header.
    entries.push({ flags: u32(e) | 0, name: str(newStart, u32(e + 4)), path: str(newStart, u32(e + 8)), hwcap });
  }
  return entries;
}

/**
 * Reads and parses the loader cache; a missing file yields no entries (ld.so then uses its default dirs).
 * @param path Defaults to `/etc/ld.so.cache`.
 */
export async function readLdCache(path = '/etc/ld.so.cache'): Promise<LdCacheEntry[]> {
  try {
    return parseLdCache(await fs.promises.readFile(path), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
