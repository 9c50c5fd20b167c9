/** execve failures name what to fix: every PATH entry tried, the missing interpreter, the root a path is looked up in. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IsolationError, spawnIsolated } from '../lib';
import { catchError, makeTempDir } from './helpers';

/** The ELF interpreter the host's /bin/true needs (PT_INTERP), read with the library's own reader. */
async function hostInterpreter(): Promise<string> {
  const { readElf } = await import('../lib/elf');
  const elf = await readElf(fs.realpathSync('/bin/true'));
  if (!elf.interpreter) throw new Error('/bin/true has no PT_INTERP on this host: the test needs a dynamic /bin/true');
  return elf.interpreter;
}

test('a bare name on no PATH entry names the command, the PATH and every candidate tried', () => {
  const err = catchError(() => spawnIsolated({ command: 'nosuchcmd', env: { PATH: '/opt/a:/opt/b' } })) as IsolationError;
  expect(err).toBeInstanceOf(IsolationError);
  expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: 'nosuchcmd' });
  expect(err.message).toContain('PATH=/opt/a:/opt/b');
  expect(err.message).toContain('/opt/a/nosuchcmd');
  expect(err.message).toContain('/opt/b/nosuchcmd');
});

test('with root, a bare name not found says it was looked up inside the root', () => {
  const { dir, cleanup } = makeTempDir();
  try {
    const err = catchError(() => spawnIsolated({ command: 'nosuchcmd', root: dir, mount: true, env: { PATH: '/bin' } })) as IsolationError;
    expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: 'nosuchcmd' });
    expect(err.message).toContain(`inside the root ${dir}`);
  } finally {
    cleanup();
  }
});

test('with root, an absolute command that is missing says the path is inside the root', () => {
  const { dir, cleanup } = makeTempDir();
  try {
    const err = catchError(() => spawnIsolated({ command: '/bin/bash', root: dir })) as IsolationError;
    expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: '/bin/bash' });
    expect(err.message).toContain(`looked up inside the root ${dir}`);
  } finally {
    cleanup();
  }
});

test.each([true, false])('an ELF program whose interpreter is missing in the root names the interpreter (mount: %s)', async (mount) => {
  const interp = await hostInterpreter();
  const { dir, cleanup } = makeTempDir();
  try {
    // The program alone, without its loader: execve fails with ENOENT although the file is there.
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync(fs.realpathSync('/bin/true'), path.join(dir, 'bin', 'true'));
    fs.chmodSync(path.join(dir, 'bin', 'true'), 0o755);
    const err = catchError(() => spawnIsolated({ command: '/bin/true', root: dir, mount })) as IsolationError;
    expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: '/bin/true' });
    expect(err.message).toContain(`ELF interpreter ${interp} is missing inside the root ${dir}`);
  } finally {
    cleanup();
  }
});

test('a script whose #! interpreter is missing names the interpreter', () => {
  const { dir, cleanup } = makeTempDir();
  try {
    const script = path.join(dir, 'script');
    fs.writeFileSync(script, '#!/no/such/interpreter -x\necho hi\n', { mode: 0o755 });
    const err = catchError(() => spawnIsolated({ command: script })) as IsolationError;
    expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: script });
    expect(err.message).toContain('#! /no/such/interpreter is missing');
  } finally {
    cleanup();
  }
});

test('with a mount plan, a program bound in without its loader names the loader missing inside the sandbox', async () => {
  const interp = await hostInterpreter();
  const err = catchError(() =>
    spawnIsolated({ command: '/x/true', mount: true, user: true, mounts: [{ type: 'bind', source: fs.realpathSync('/bin/true'), target: '/x/true' }] }),
  ) as IsolationError;
  expect(err).toMatchObject({ code: 'ENOENT', step: 'execve', path: '/x/true' });
  expect(err.message).toContain(`ELF interpreter ${interp} is missing inside the sandbox`);
});

test('a missing cwd with root says the path is inside the root', () => {
  const { dir, cleanup } = makeTempDir();
  try {
    fs.mkdirSync(path.join(dir, 'bin'));
    const err = catchError(() => spawnIsolated({ command: '/bin/true', root: dir, cwd: '/no/such/dir' })) as IsolationError;
    expect(err).toMatchObject({ code: 'ENOENT', step: 'chdir', path: '/no/such/dir' });
    expect(err.message).toContain(`inside the root ${dir}`);
  } finally {
    cleanup();
  }
});
