/**
 * Why execve failed, in words a user can act on. The child reports only an errno and which
 * candidate it was; this file looks at the sandbox's file system from the host afterwards, on
 * the error path only: a bare name not found on PATH names the PATH (and the root it was
 * searched in); ENOENT for a file that exists names the missing ELF or `#!` interpreter.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ValidatedFilesystem } from './filesystem';

/** How the sandbox's paths map onto host paths, as far as the parent can tell. */
export type SandboxView = Pick<ValidatedFilesystem, 'root' | 'mounts'>;

type Located = { host: string } | { madeDir: true } | { missing: true } | { unknown: true };

const MAX_SYMLINKS = 40; // as the kernel's path walk

function under(p: string, dir: string): string | undefined {
  if (p === dir) return '';
  if (dir === '/') return p.slice(1);
  return p.startsWith(`${dir}/`) ? p.slice(dir.length + 1) : undefined;
}

/** The host path behind one sandbox path, without following symlinks in it. */
function mapToHost(view: SandboxView, p: string): Located {
  const mounts = view.mounts ?? [];
  // Later entries are mounted over earlier ones: the last whose target covers p decides.
  for (let i = mounts.length - 1; i >= 0; i--) {
    const m = mounts[i];
    const rest = under(p, m.target);
    if (rest === undefined) continue;
    if (m.type === 'bind') return { host: path.join(m.source, rest) };
    if (m.type === 'overlay') {
      for (const layer of [...(m.upper ? [m.upper] : []), ...m.lower]) {
        const host = path.join(layer, rest);
        if (fs.existsSync(host)) return { host };
      }
      return { missing: true };
    }
    return { unknown: true }; // tmpfs, proc, dev, files made by the plan: not on the host
  }
  if (view.root !== undefined) return { host: path.join(view.root, p) };
  if (view.mounts === undefined) return { host: p };
  // A mount plan without `root` starts from an empty tmpfs, with the directories its targets need.
  return mounts.some((m) => under(m.target, p) !== undefined) ? { madeDir: true } : { missing: true };
}

/** Resolves a sandbox path as the kernel would inside the sandbox, following its symlinks in its own view. */
function locate(view: SandboxView, sandboxPath: string): Located {
  let pending = sandboxPath.split('/').filter(Boolean);
  let current = '/';
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      current = path.posix.dirname(current);
      continue;
    }
    const next = path.posix.join(current, name);
    const at = mapToHost(view, next);
    if ('madeDir' in at) {
      current = next;
      continue;
    }
    if (!('host' in at)) return at;
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(at.host);
    } catch {
      return { missing: true };
    }
    if (stat.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return { unknown: true };
      const target = fs.readlinkSync(at.host);
      pending = [...target.split('/').filter(Boolean), ...pending];
      if (target.startsWith('/')) current = '/';
      continue;
    }
    current = next;
  }
  return mapToHost(view, current);
}

/** The interpreter execve needs for a file: the `#!` line's program or the ELF PT_INTERP. */
function interpreterOf(hostPath: string): { kind: '#!' | 'ELF interpreter'; path: string } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(hostPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return undefined;
    const head = Buffer.alloc(256);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    if (n >= 2 && head[0] === 0x23 && head[1] === 0x21) {
      const line = head.subarray(2, n).toString('latin1').split('\n')[0].trim();
      const program = line.split(/[ \t]/)[0];
      return program ? { kind: '#!', path: program } : undefined;
    }
    if (n < 52 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
    const is64 = head[4] === 2;
    const le = head[5] === 1;
    const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const word = (b: Buffer, o: number): number => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
    const phoff = word(head, is64 ? 32 : 28);
    const phentsize = u16(head, is64 ? 54 : 42);
    const phnum = Math.min(u16(head, is64 ? 56 : 44), 256);
    const table = Buffer.alloc(phentsize * phnum);
    fs.readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const ph = table.subarray(i * phentsize, (i + 1) * phentsize);
      if (ph.length < (is64 ? 56 : 32) || u32(ph, 0) !== 3 /* PT_INTERP */) continue;
      const offset = word(ph, is64 ? 8 : 4);
      const size = Math.min(word(ph, is64 ? 32 : 16), 4096);
      const name = Buffer.alloc(size);
      fs.readSync(fd, name, 0, size, offset);
      const interp = name.toString('latin1').replace(/\0.*$/s, '');
      return interp ? { kind: 'ELF interpreter', path: interp } : undefined;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

function where(view: SandboxView): string {
  if (view.root !== undefined) return ` inside the root ${view.root}`;
  return view.mounts !== undefined ? ' inside the sandbox' : '';
}

/**
 * The path to name and the words to add for an execve failure of `command`, after the child
 * tried `candidates` in turn; `failed` is the candidate the errno belongs to.
 */
export function explainExecFailure(
  view: SandboxView,
  command: string,
  candidates: readonly string[],
  pathVar: string,
  failed: string,
  code: string,
): { path: string; hint?: string } {
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    const found = locate(view, failed);
    if ('host' in found) {
      // The file is there, so what execve did not find is its interpreter.
      const interp = interpreterOf(found.host);
      if (interp && 'missing' in locate(view, interp.path)) {
        return { path: failed, hint: `the file exists but its ${interp.kind} ${interp.path} is missing${where(view)}` };
      }
      return { path: failed, hint: `the file exists${where(view)}; its interpreter (ELF PT_INTERP or #! line) could not be found` };
    }
    if (!command.includes('/')) {
      const tried = candidates.length > 8 ? `${candidates.slice(0, 8).join(', ')}, …` : candidates.join(', ');
      return { path: command, hint: `not found on PATH=${pathVar}${where(view)} (tried ${tried})` };
    }
    if (where(view) !== '') return { path: failed, hint: `the path is looked up${where(view)}` };
  }
  if (code === 'EACCES' && where(view) !== '') return { path: failed, hint: `the path is looked up${where(view)}: is it executable there?` };
  return { path: failed };
}
