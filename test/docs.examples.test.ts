/**
 * Every example in README.md, SECURITY.md and docs/*.md runs as written: TypeScript examples
 * are type-checked in strict mode (module nodenext, as a new project would), then they and the
 * JavaScript and shell ones run against the built package, each in a directory of its own, as
 * root or (marked so) as uid 65534, and print what the text says. See test/docs-examples.ts
 * for how a document marks an example.
 */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { documentFiles, extractExamples, type DocExample } from './docs-examples';

const ROOT = path.join(__dirname, '..');
const examples: DocExample[] = documentFiles(ROOT).flatMap((file) => extractExamples(file, ROOT));
const NOBODY = 65534;

let project: string;
let typeErrors: Map<string, string[]>;

const fileOf = (i: number, ext: string): string => path.join(project, `example-${i}.${ext}`);

beforeAll(() => {
  // A fresh project that has installed nsjail-node (this checkout, built) and @types/node.
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-docs-'));
  fs.chmodSync(project, 0o755);
  fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "docs-examples", "private": true, "type": "module" }\n');
  fs.mkdirSync(path.join(project, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(project, 'node_modules', 'nsjail-node'));
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(project, 'node_modules', '@types', 'node'));
  fs.mkdirSync(path.join(project, 'bin'));
  fs.symlinkSync(path.join(ROOT, 'bin', 'nsjail-node'), path.join(project, 'bin', 'nsjail-node'));
  fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: ['node'], outDir: 'out', skipLibCheck: false },
    include: ['*.mts'],
  }));
  examples.forEach((e, i) => {
    if (e.lang === 'ts') fs.writeFileSync(fileOf(i, 'mts'), e.code);
    if (e.lang === 'js') fs.writeFileSync(fileOf(i, 'mjs'), e.code);
  });
  // One compiler run for all of them; its errors are sorted out per example.
  typeErrors = new Map();
  const tsc = child_process.spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', project], { cwd: project, encoding: 'utf8' });
  for (const line of tsc.stdout.split('\n')) {
    const m = /^example-(\d+)\.mts\((\d+),\d+\): (.*)$/.exec(line);
    if (!m) continue;
    const where = examples[Number(m[1])].where;
    typeErrors.set(where, [...(typeErrors.get(where) ?? []), `line ${m[2]} of the example: ${m[3]}`]);
  }
  if (tsc.status !== 0 && typeErrors.size === 0) throw new Error(`tsc failed without per-example errors:\n${tsc.stdout}${tsc.stderr}`);
  for (const dir of ['out', '.']) {
    for (const f of fs.readdirSync(path.join(project, dir))) fs.chmodSync(path.join(project, dir, f), 0o755);
  }
}, 120_000);

afterAll(() => {
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

test('the documents have examples, and each says how it is checked', () => {
  expect(examples.length).toBeGreaterThan(10);
  const unchecked = examples.filter((e) => e.notRun === undefined && e.stdout === undefined).map((e) => e.where);
  expect(unchecked).toEqual([]);
});

const typed = examples.filter((e) => e.lang === 'ts');
test.each(typed.map((e) => [e.where, e] as const))('%s type-checks (strict, nodenext)', (where) => {
  expect(typeErrors.get(where) ?? []).toEqual([]);
});

const runnable = examples.map((e, i) => [e.where, e, i] as const).filter(([, e]) => e.notRun === undefined);
test.each(runnable)('%s runs and prints what the text shows', (where, e, i) => {
  const cwd = fs.mkdtempSync(path.join(project, 'cwd-'));
  fs.chmodSync(cwd, 0o777);
  const [command, args] =
    e.lang === 'sh' ? ['/bin/sh', ['-e', '-c', e.code]]
    : e.lang === 'js' ? [process.execPath, [fileOf(i, 'mjs')]]
    : [process.execPath, [path.join(project, 'out', `example-${i}.mjs`)]];
  const asUser = e.nobody ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', command, ...args]] as const : [command, args] as const;
  const r = child_process.spawnSync(asUser[0], [...asUser[1]], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    // A secret in the caller's environment: an example that passed it on would print it.
    env: { PATH: `${path.join(project, 'bin')}:${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`, HOME: cwd, SECRET_TOKEN: 'host-secret' },
  });
  const context = `${where}: exit ${r.status}${r.signal ? ` (${r.signal})` : ''}\n--- stderr\n${r.stderr}\n--- stdout\n${r.stdout}`;
  if (r.status !== 0) throw new Error(context);
  if (e.stdout instanceof RegExp) expect(r.stdout.trimEnd()).toMatch(e.stdout);
  else expect(r.stdout.trimEnd()).toBe((e.stdout ?? '').trimEnd());
}, 90_000);
