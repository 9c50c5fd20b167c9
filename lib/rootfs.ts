/**
 * Rootfs builder: copies host programs plus every shared library they load into a directory,
 * the `ldd` + `cp` chroot chore done statically (binaries are parsed, never executed).
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { elfAbi, readElf, readLdCache, type ElfAbi, type ElfInfo, type LdCacheEntry } from './elf';
import { IsolationError } from './errors';
import { ownOptions } from './validate';

/** Options for {@link buildRootfs}. */
export interface RootfsOptions {
  /**
   * Absolute host paths of extra files copied as they are (not scanned for dependencies), e.g.
   * `/etc/ld.so.cache` when libraries live outside the loader's default directories.
   */
  extraFiles?: string[];
  /**
   * Absolute extra library directories, searched where ld.so would search LD_LIBRARY_PATH
   * (after DT_RPATH, before DT_RUNPATH). Use the same list as LD_LIBRARY_PATH when running.
   */
  libraryPath?: string[];
}

/** What {@link buildRootfs} put in the rootfs. All paths are absolute as seen from inside it (chroot view). */
export interface RootfsManifest {
  /** The rootfs directory on the host, as given. */
  root: string;
  /** Each requested program (as given) mapped to its path inside the rootfs, e.g. `ls` -> `/usr/bin/ls`. */
  programs: Record<string, string>;
  /** Every path the build created or ensured (directories, symlinks and files), sorted. */
  files: string[];
}

/**
 * Copies `programs` and their shared-library closure (plus ELF interpreters) into `dir`,
 * at the same paths as on the host, recreating host symlinks met on the way (e.g. `/lib -> usr/lib`)
 * so both the path the loader asks for and the real file exist. Libraries are found like
 * glibc's ld.so does: DT_RPATH (only without DT_RUNPATH), `libraryPath`, DT_RUNPATH,
 * /etc/ld.so.cache, then the default directories. Everything is resolved before anything is
 * written, and a write that fails (e.g. ENOSPC) undoes the build's earlier writes: a failing
 * build leaves `dir` as it was (files it would replace are put back).
 * @param dir Absolute path of an existing directory (not `/`).
 * @param programs Absolute paths, or names looked up on `process.env.PATH`.
 * @throws TypeError or RangeError naming the bad argument; Error naming the binary and soname of a missing library;
 * IsolationError naming the step (`copy`, `mkdir`, ...), errno and rootfs path of a write that failed.
 */
export async function buildRootfs(dir: string, programs: string[], given: RootfsOptions = {}): Promise<RootfsManifest> {
  // Its own properties only: a polluted Object.prototype.extraFiles must not copy host files in.
  const options = given !== null && typeof given === 'object' ? ownOptions(given) : given;
  await validate(dir, programs, options);
  const resolver = new Resolver(options.libraryPath ?? []);
  const hostPaths = new Set<string>();
  const found: Record<string, string> = {};
  try {
    for (const program of programs) {
      found[program] = await findProgram(program);
      for (const p of await resolver.closure(found[program])) hostPaths.add(p);
    }
    for (const f of options.extraFiles ?? []) {
      const st = await fs.promises.stat(f).catch(() => undefined);
      if (!st?.isFile()) throw new Error(`buildRootfs: extra file '${f}' is not an existing regular file`);
      hostPaths.add(f);
    }
  } catch (e) {
    // A host file that could not be read (EMFILE, EACCES, ...): a Node fs error, made typed.
    const err = e as NodeJS.ErrnoException;
    if (!(e instanceof IsolationError) && err.code !== undefined && err.syscall !== undefined) throw fsError('read', err.path ?? '', e);
    throw e;
  }
  const writer = new RootfsWriter(dir);
  try {
    for (const p of hostPaths) await writer.place(p);
  } catch (e) {
    // ENOSPC, EMFILE, a host file gone: what this build wrote goes, what was there stays.
    await writer.rollback();
    throw e;
  }
  await writer.commit();
  return { root: dir, programs: found, files: [...writer.created].sort() };
}

async function validate(dir: unknown, programs: unknown, options: unknown): Promise<void> {
  if (typeof dir !== 'string') throw new TypeError(`buildRootfs: dir must be a string, got ${typeof dir}`);
  if (!path.isAbsolute(dir)) throw new RangeError(`buildRootfs: dir must be an absolute path, got '${dir}'`);
  if (!Array.isArray(programs)) throw new TypeError('buildRootfs: programs must be an array of strings');
  if (programs.length === 0) throw new RangeError('buildRootfs: programs must not be empty');
  // Index loops, not forEach: a hole of a sparse array must be refused, not skipped.
  for (let i = 0; i < programs.length; i++) {
    const p: unknown = programs[i];
    if (typeof p !== 'string') throw new TypeError(`buildRootfs: programs[${i}] must be a string, got ${i in programs ? typeof p : 'a hole (sparse array)'}`);
    if (p === '') throw new RangeError(`buildRootfs: programs[${i}] must not be empty`);
  }
  if (typeof options !== 'object' || options === null) throw new TypeError('buildRootfs: options must be an object');
  const opts = options as Record<string, unknown>;
  for (const key of ['extraFiles', 'libraryPath']) {
    const list = opts[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new TypeError(`buildRootfs: options.${key} must be an array of strings`);
    for (let i = 0; i < list.length; i++) {
      const p: unknown = list[i];
      if (typeof p !== 'string') throw new TypeError(`buildRootfs: options.${key}[${i}] must be a string, got ${i in list ? typeof p : 'a hole (sparse array)'}`);
      if (!path.isAbsolute(p)) throw new RangeError(`buildRootfs: options.${key}[${i}] must be an absolute path, got '${p}'`);
    }
  }
  const st = await fs.promises.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new RangeError(`buildRootfs: dir '${dir}' is not an existing directory`);
  // Copying the host onto itself would clobber it (and is never what anyone means).
  if ((await fs.promises.realpath(dir)) === '/') throw new RangeError('buildRootfs: dir must not be the host root');
}

async function isExecutableFile(p: string): Promise<boolean> {
  const st = await fs.promises.stat(p).catch(() => undefined);
  if (!st?.isFile()) return false;
  return fs.promises.access(p, fs.constants.X_OK).then(() => true, () => false);
}

/** Resolves a program like execvp: a path (with a slash) as is, a bare name along PATH. */
async function findProgram(name: string): Promise<string> {
  if (name.includes('/')) {
    const p = path.resolve(name);
    if (!(await isExecutableFile(p))) throw new Error(`buildRootfs: program '${name}' is not an executable file`);
    return p;
  }
  // Empty PATH entries (meaning cwd) are skipped: picking binaries from wherever we happen to run is a trap.
  for (const d of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    const p = path.resolve(d, name);
    if (await isExecutableFile(p)) return p;
  }
  throw new Error(`buildRootfs: program '${name}' not found on PATH`);
}

/** An object in a program's link map, with the object that caused it to be loaded (ld.so's l_loader). */
interface Loaded { elf: ElfInfo; origin: string; loader?: Loaded }

/** Computes dependency closures the way glibc's ld.so maps objects; memoizes ELF reads across programs. */
class Resolver {
  private readonly elfs = new Map<string, Promise<ElfInfo>>();
  private cache?: Promise<LdCacheEntry[]>;

  constructor(private readonly libraryPath: string[]) {}

  private elf(p: string): Promise<ElfInfo> {
    let e = this.elfs.get(p);
    if (!e) this.elfs.set(p, (e = readElf(p)));
    return e;
  }

  /** Host paths of `program`, its interpreter and every library it loads, in load order. */
  async closure(program: string): Promise<string[]> {
    const exe = await this.elf(program);
    const files = [program];
    const names = new Set<string>(); // sonames already in the link map: ld.so never loads a name twice
    const paths = new Set<string>();
    if (exe.interpreter) {
      const interp = await this.elf(exe.interpreter).catch((err: Error) => {
        throw new Error(`buildRootfs: ${program}: cannot read ELF interpreter ${exe.interpreter}: ${err.message}`);
      });
      files.push(exe.interpreter);
      // ld.so is itself in the link map, so libc's DT_NEEDED on it is satisfied without a search.
      names.add(path.basename(exe.interpreter));
      if (interp.soname) names.add(interp.soname);
    }
    // The executable's $ORIGIN comes from /proc/self/exe, i.e. its real path.
    const queue: Loaded[] = [{ elf: exe, origin: path.dirname(await fs.promises.realpath(program)) }];
    for (let i = 0; i < queue.length; i++) { // breadth first, like ld.so's load order
      for (const name of queue[i].elf.needed) {
        if (names.has(name)) continue;
        const lib = await this.find(name, queue[i], program);
        names.add(name).add(lib.soname ?? name);
        if (paths.has(lib.path)) continue;
        paths.add(lib.path);
        files.push(lib.path);
        // A library's $ORIGIN is the directory of the path it was opened under, symlinks unresolved.
        queue.push({ elf: lib, origin: path.dirname(lib.path), loader: queue[i] });
      }
    }
    return files;
  }

  /** ld.so's search for `name` needed by `obj`; LD_LIBRARY_PATH is deliberately ignored. */
  private async find(name: string, obj: Loaded, program: string): Promise<ElfInfo> {
    const abi = elfAbi(obj.elf);
    const tried: string[] = [];
    const attempt = async (p: string): Promise<ElfInfo | undefined> => {
      tried.push(p);
      // Like ld.so, skip files that are missing, not ELF, or built for another machine/class;
      // but running out of fds is not a missing library.
      const e = await this.elf(p).catch((err: NodeJS.ErrnoException) => {
        if (RESOURCE_CODES.has(err.code ?? '')) throw fsError('read', p, err);
        return undefined;
      });
      return e && e.machine === obj.elf.machine && e.elfClass === obj.elf.elfClass ? e : undefined;
    };
    if (name.includes('/')) {
      const p = await this.expand(name, obj, abi); // ld.so opens such names as they are (relative to cwd)
      const found = p === undefined ? undefined : await attempt(path.resolve(p));
      if (found) return found;
    } else {
      const dirs: string[] = [];
      if (!obj.elf.runpath) {
        for (let o: Loaded | undefined = obj; o; o = o.loader) dirs.push(...(await this.searchPath(o.elf.rpath, o, abi)));
      }
      dirs.push(...this.libraryPath);
      dirs.push(...(await this.searchPath(obj.elf.runpath, obj, abi)));
      for (const d of dirs) {
        const found = await attempt(path.join(d, name));
        if (found) return found;
      }
      // Baseline entries first: glibc-hwcaps variants depend on the CPU the rootfs will run on.
      const entries = (await (this.cache ??= readLdCache()))
        .filter((e) => e.name === name && (e.flags === 1 || (abi?.cacheFlags.includes(e.flags) ?? true)))
        .sort((a, b) => Number(a.hwcap !== 0n) - Number(b.hwcap !== 0n));
      for (const e of entries) {
        const found = await attempt(e.path);
        if (found) return found;
      }
      for (const d of defaultDirs(abi, obj.elf)) {
        const found = await attempt(path.join(d, name));
        if (found) return found;
      }
    }
    throw new Error(`buildRootfs: ${program}: cannot find shared library ${name} needed by ${obj.elf.path} (tried ${tried.join(', ') || 'nothing'})`);
  }

  /** Splits a DT_RPATH/DT_RUNPATH value into absolute dirs, expanding dynamic string tokens. */
  private async searchPath(raw: string | undefined, obj: Loaded, abi: ElfAbi | undefined): Promise<string[]> {
    const dirs: string[] = [];
    for (const entry of (raw ?? '').split(':').filter(Boolean)) {
      const d = await this.expand(entry, obj, abi);
      if (d !== undefined) dirs.push(path.resolve(d));
    }
    return dirs;
  }

  /** Expands $ORIGIN, $LIB, $PLATFORM (and ${...} forms); undefined when a token has no known value, as ld.so drops such entries. */
  private async expand(s: string, obj: Loaded, abi: ElfAbi | undefined): Promise<string | undefined> {
    const lib = s.includes('LIB') ? await libToken(abi, obj.elf) : 'lib';
    let unknown = false;
    const out = s.replace(/\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))/g, (_m, a?: string, b?: string) => {
      const token = a ?? b;
      if (token === 'ORIGIN') return obj.origin;
      if (token === 'LIB') return lib;
      if (abi?.platform === undefined) unknown = true;
      return abi?.platform ?? '';
    });
    return unknown ? undefined : out;
  }
}

async function isRealDir(p: string): Promise<boolean> {
  const st = await fs.promises.lstat(p).catch(() => undefined);
  return st?.isDirectory() ?? false;
}

/**
 * What $LIB expands to is a glibc build setting, not stored in binaries: multiarch distros
 * (Debian, Ubuntu) use `lib/<triplet>`, lib64 distros (Fedora, SUSE) `lib64`, others `lib`.
 */
async function libToken(abi: ElfAbi | undefined, elf: ElfInfo): Promise<string> {
  if (abi && (await isRealDir(`/lib/${abi.triplet}`) || await isRealDir(`/usr/lib/${abi.triplet}`))) return `lib/${abi.triplet}`;
  const libDir = abi?.libDir ?? (elf.elfClass === 64 ? 'lib64' : 'lib');
  return libDir !== 'lib' && (await isRealDir(`/usr/${libDir}`)) ? libDir : 'lib';
}

/** ld.so's built-in system directories: the multiarch ones, the lib64-style ones, then /lib and /usr/lib. */
function defaultDirs(abi: ElfAbi | undefined, elf: ElfInfo): string[] {
  const dirs = abi ? [`/lib/${abi.triplet}`, `/usr/lib/${abi.triplet}`] : [];
  const libDir = abi?.libDir ?? (elf.elfClass === 64 ? 'lib64' : 'lib');
  if (libDir !== 'lib') dirs.push(`/${libDir}`, `/usr/${libDir}`);
  return [...dirs, '/lib', '/usr/lib'];
}

/** Maximum symlinks followed while resolving one path, as the kernel's ELOOP limit. */
const MAX_SYMLINKS = 40;

/** A Node fs error as an IsolationError naming the build's step and the path. */
function fsError(step: string, file: string, e: unknown, hint?: string): IsolationError {
  const err = e as NodeJS.ErrnoException;
  const errno = (err.code !== undefined ? (os.constants.errno as Record<string, number | undefined>)[err.code] : undefined) ?? os.constants.errno.EIO;
  return new IsolationError({ errno, step, syscall: err.syscall ?? step, path: file, hint }, 'buildRootfs');
}

/** A failed write into the rootfs (the build then undoes its writes). */
function writeError(step: string, dest: string, e: unknown): IsolationError {
  return fsError(step, dest, e, 'what this build had written was removed again');
}

/** Errors that are about this process, not the file: never to be taken for "no such library here". */
const RESOURCE_CODES = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EIO']);

/** Runs one write into the rootfs; its failure becomes {@link writeError}. */
async function writing<T>(step: string, dest: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    throw writeError(step, dest, e);
  }
}

let backupSequence = 0;

/**
 * Mirrors host paths into the rootfs. Only ever writes at symlink-free rootfs paths it has
 * checked itself, so a symlink already in `root` (say `usr -> /usr`) cannot redirect a copy onto the host.
 * Keeps a journal of what it made and replaced, so that a failed build ({@link rollback})
 * leaves `root` as it was.
 */
class RootfsWriter {
  /** Inside-rootfs paths created or ensured so far. */
  readonly created = new Set<string>();
  /** Host paths (in `root`) this build made, in order: undone in reverse. */
  private readonly made: { path: string; dir: boolean }[] = [];
  /** Files that were there before, renamed aside until the build succeeds. */
  private readonly replaced: { dest: string; backup: string }[] = [];

  constructor(private readonly root: string) {}

  /** After a failure: removes what was made, puts back what was replaced. Never throws. */
  async rollback(): Promise<void> {
    for (const m of this.made.splice(0).reverse()) {
      await (m.dir ? fs.promises.rmdir(m.path) : fs.promises.unlink(m.path)).catch(() => undefined);
    }
    for (const r of this.replaced.splice(0).reverse()) {
      await fs.promises.rename(r.backup, r.dest).catch(() => undefined);
    }
  }

  /** After success: the replaced files' old copies go. */
  async commit(): Promise<void> {
    for (const r of this.replaced.splice(0)) await fs.promises.unlink(r.backup).catch(() => undefined);
    this.made.length = 0;
  }

  /** Walks `hostPath` component by component like the kernel, recreating each symlink met, then the file. */
  async place(hostPath: string): Promise<void> {
    const todo = hostPath.split('/');
    let real = '/'; // symlink-free host path resolved so far
    let links = 0;
    for (let c = todo.shift(); c !== undefined; c = todo.shift()) {
      if (c === '' || c === '.') continue;
      if (c === '..') { real = path.dirname(real); continue; }
      const host = path.join(real, c);
      const st = await fs.promises.lstat(host);
      if (st.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) throw new Error(`buildRootfs: ${hostPath}: too many levels of symbolic links`);
        const target = await fs.promises.readlink(host);
        await this.symlink(host, target);
        todo.unshift(...target.split('/'));
        if (target.startsWith('/')) real = '/';
      } else if (st.isDirectory()) {
        await this.dir(host, st.mode);
        real = host;
      } else if (todo.some((t) => t !== '')) {
        throw new Error(`buildRootfs: ${hostPath}: ${host} is not a directory`);
      } else {
        await this.file(host, st.mode);
        real = host;
      }
    }
  }

  private async existing(inside: string): Promise<fs.Stats | undefined> {
    return fs.promises.lstat(path.join(this.root, inside)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw writeError('lstat', path.join(this.root, inside), err);
    });
  }

  private async dir(inside: string, mode: number): Promise<void> {
    if (this.created.has(inside)) return;
    const dest = path.join(this.root, inside);
    const st = await this.existing(inside);
    if (!st) {
      await writing('mkdir', dest, () => fs.promises.mkdir(dest));
      this.made.push({ path: dest, dir: true });
      await writing('chmod', dest, () => fs.promises.chmod(dest, mode & 0o7777)); // mkdir's mode is masked by umask
    } else if (!st.isDirectory()) {
      throw new Error(`buildRootfs: ${dest} exists and is not a directory`);
    }
    this.created.add(inside);
  }

  private async symlink(inside: string, target: string): Promise<void> {
    if (this.created.has(inside)) return;
    const dest = path.join(this.root, inside);
    const st = await this.existing(inside);
    if (!st) {
      await writing('symlink', dest, () => fs.promises.symlink(target, dest));
      this.made.push({ path: dest, dir: false });
    } else if (!st.isSymbolicLink() || (await fs.promises.readlink(dest)) !== target) {
      throw new Error(`buildRootfs: ${dest} exists and is not a symlink to ${target}`);
    }
    this.created.add(inside);
  }

  private async file(inside: string, mode: number): Promise<void> {
    if (this.created.has(inside)) return;
    const dest = path.join(this.root, inside);
    const st = await this.existing(inside);
    // copyFile follows a symlink at the destination; refuse rather than write outside the rootfs.
    if (st && !st.isFile()) throw new Error(`buildRootfs: ${dest} exists and is not a regular file`);
    // Moved aside, not truncated in place (that would also clobber any hard link the file
    // shares with the host), and kept until the build succeeds.
    if (st) {
      const backup = `${dest}.nsjail-node-old-${process.pid}-${++backupSequence}`;
      await writing('rename', dest, () => fs.promises.rename(dest, backup));
      this.replaced.push({ dest, backup });
    }
    // The file counts as made before the copy: a copy cut short (ENOSPC) is removed too.
    this.made.push({ path: dest, dir: false });
    await writing('copy', dest, () => fs.promises.copyFile(inside, dest, fs.constants.COPYFILE_EXCL));
    await writing('chmod', dest, () => fs.promises.chmod(dest, mode & 0o7777));
    this.created.add(inside);
  }
}
