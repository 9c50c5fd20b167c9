/**
 * The package as users meet it: the packed tarball installs without a compiler (prebuilds for
 * linux-x64 and linux-arm64), ESM and CommonJS load the same module, every example of the
 * docs type-checks and runs against it as written, the public types hold,
 * and the cmake-js build of the same sources still compiles and runs.
 */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readElf, EM } from '../lib/elf';
import { documentFiles, extractExamples, prepareExampleProject } from './docs-examples';
import { makeTempDir } from './helpers';

const project = path.join(__dirname, '..');
const exec = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string =>
  childProcess.execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const SPAWN_CHECK = `
  const { spawnIsolated, IsolationError } = require('nsjail-node');
  spawnIsolated({ command: '/bin/sh', args: ['-c', 'echo $$'], pid: true, net: true, stdio: ['ignore', 'pipe', 'inherit'] })
    .stdout.on('data', (d) => process.stdout.write('cjs:' + d));
  if (typeof IsolationError !== 'function') process.exit(3);
  spawnIsolated({ command: '/bin/sh', args: ['-c', 'exit 9'], pid: true, init: true, stdio: 'ignore' })
    .then((s) => process.stdout.write('init:' + s.exitCode + String.fromCharCode(10)));`;
const ESM_CHECK = `
  import { spawnIsolated } from 'nsjail-node';
  import cjs from 'nsjail-node';
  import { unshare } from 'nsjail-node/syscalls';
  const { createRequire } = await import('node:module');
  const required = createRequire(process.cwd() + '/')('nsjail-node');
  if (required.spawnIsolated !== spawnIsolated || cjs.spawnIsolated !== spawnIsolated || typeof unshare !== 'function') process.exit(4);
  const { exitCode } = await spawnIsolated({ command: '/bin/true', pid: true, stdio: 'ignore' });
  console.log('esm:' + exitCode);`;

describe('packaging', () => {
  test('npm pack (prepack builds both prebuilds) gives a tarball that, installed with scripts disabled, runs a sandbox (CJS and ESM)', async () => {
    const tmp = makeTempDir('nsjail-node-pack-');
    try {
      // The release path exactly: `npm pack` with its lifecycle scripts, in a copy of the
      // project's files (what a clean clone has), so this test never rewrites the tree.
      const stage = path.join(tmp.dir, 'stage');
      const files = exec('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], project).split('\0').filter(Boolean);
      for (const file of files) {
        if (!fs.existsSync(path.join(project, file))) continue; // deleted in the work tree
        fs.mkdirSync(path.dirname(path.join(stage, file)), { recursive: true });
        fs.copyFileSync(path.join(project, file), path.join(stage, file));
      }
      fs.symlinkSync(path.join(project, 'node_modules'), path.join(stage, 'node_modules'));
      const tarball = exec('npm', ['pack', '--silent', '--pack-destination', tmp.dir], stage).trim().split('\n').pop()!;
      expect((await readElf(path.join(stage, 'prebuilds', 'linux-x64', 'nsjail-node.node'))).machine).toBe(EM.X86_64);
      expect((await readElf(path.join(stage, 'prebuilds', 'linux-arm64', 'nsjail-node.node'))).machine).toBe(EM.AARCH64);
      const listing = exec('tar', ['-tzf', path.join(tmp.dir, tarball)], tmp.dir);
      expect(listing).toContain('package/prebuilds/linux-x64/nsjail-node.node');
      expect(listing).toContain('package/prebuilds/linux-arm64/nsjail-node.node');
      expect(listing).toContain('package/prebuilds/linux-x64/nsjail_node_init');
      expect(listing).toContain('package/prebuilds/linux-arm64/nsjail_node_init');
      expect(listing).toContain('package/dist/index.mjs');
      expect(listing).not.toContain('package/build/');

      const app = path.join(tmp.dir, 'app');
      fs.mkdirSync(app);
      fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","version":"1.0.0","private":true}');
      exec('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(tmp.dir, tarball)], app);
      expect(fs.existsSync(path.join(app, 'node_modules', 'nsjail-node', 'build'))).toBe(false);
      expect(exec(process.execPath, ['-e', SPAWN_CHECK], app).split('\n').sort()).toEqual(['', 'cjs:1', 'init:9']);
      expect(exec(process.execPath, ['--input-type=module', '-e', ESM_CHECK], app)).toBe('esm:0\n');

      // Every example of the docs, against this installed tarball, as a new user would copy it.
      const examples = documentFiles(project).flatMap((file) => extractExamples(file, project));
      // Reachable by uid 65534 (the rootless examples) and by a sandbox's host id (binds).
      fs.chmodSync(tmp.dir, 0o755);
      const docs = prepareExampleProject(path.join(tmp.dir, 'docs'), examples, path.join(app, 'node_modules', 'nsjail-node'));
      expect([...docs.typeErrors.entries()]).toEqual([]);
      const failed = examples.map((e, i) => (e.notRun === undefined ? docs.mismatch(i) : undefined)).filter((m) => m !== undefined);
      expect(failed).toEqual([]);
    } finally {
      tmp.cleanup();
    }
  }, 480_000);

  test('the public types hold (tsc over test/types/usage.ts, with @ts-expect-error lines)', () => {
    exec(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(project, 'test', 'types', 'tsconfig.json')], project);
  }, 60_000);

  test('cmake-js builds the same addon, and it runs a sandbox', () => {
    const tmp = makeTempDir('nsjail-node-cmake-');
    try {
      exec(path.join(project, 'node_modules', '.bin', 'cmake-js'), ['build', '--out', tmp.dir, '--parallel', '2', '--log-level', 'error'], project);
      const addon = path.join(tmp.dir, 'Release', 'nsjail_node.node');
      const script = `
        const b = require(${JSON.stringify(addon)});
        const c = b.constants;
        const r = b.spawn({ cloneFlags: c.CLONE_VM | c.CLONE_VFORK | c.CLONE_NEWPID, engine: 'auto', execCandidates: ['/bin/sh'],
          argv: Buffer.from('sh\\0-c\\0exit 7\\0'), envp: Buffer.alloc(0), stdio: ['null', 'null', 'null'], steps: [], dieWithParent: true, newSession: true },
          (status) => console.log(status.exitCode));
        if (!r.pid) process.exit(9);`;
      expect(exec(process.execPath, ['-e', script], tmp.dir)).toBe('7\n');
    } finally {
      tmp.cleanup();
    }
  }, 180_000);
});
