/**
 * The examples of README.md, SECURITY.md and docs/*.md as code: every fenced block in
 * TypeScript, JavaScript or shell, with what the text says it prints.
 *
 * A block is followed by HTML comments (invisible on a rendered page) that say how it runs:
 *
 *     <!-- stdout
 *     exactly what the example prints
 *     -->
 *     <!-- stdout-matches ^pid \d+$ -->        (a regular expression over the output, trailing newlines cut)
 *     <!-- example: nobody -->                 (run as uid 65534, as a rootless user would)
 *     <!-- example: not run: REASON -->         (type-checked only; the reason is shown)
 *
 * A block that runs must say what it prints (`<!-- stdout -->` with nothing in it for none).
 */
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One example, where it is, and how to check it. */
export interface DocExample {
  /** `README.md:42`: file and line of the opening fence. */
  where: string;
  lang: 'ts' | 'js' | 'sh';
  code: string;
  /** Exact stdout, or a pattern for it; undefined when the block does not say. */
  stdout?: string | RegExp;
  /** Why the example is not run (it is still type-checked), if it is not. */
  notRun?: string;
  nobody: boolean;
}

const LANGS: Record<string, DocExample['lang']> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js', sh: 'sh', shell: 'sh', bash: 'sh' };

/** The documents whose examples are tests. */
export function documentFiles(root: string): string[] {
  const docs = path.join(root, 'docs');
  return [
    ...['README.md', 'SECURITY.md'].map((f) => path.join(root, f)).filter((f) => fs.existsSync(f)),
    ...fs.readdirSync(docs).filter((f) => f.endsWith('.md')).sort().map((f) => path.join(docs, f)),
  ];
}

/** Every example of one Markdown file. */
export function extractExamples(file: string, root: string): DocExample[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const examples: DocExample[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    let end = i + 1;
    while (end < lines.length && lines[end] !== '```') end++;
    i = end;
    const lang = LANGS[open[1]];
    if (!lang) continue;
    const example: DocExample = { where: `${path.relative(root, file)}:${start + 1}`, lang, code: lines.slice(start + 1, end).join('\n'), nobody: false };
    // The comments right after the fence (blank lines between are allowed).
    let j = end + 1;
    for (;;) {
      while (j < lines.length && lines[j].trim() === '') j++;
      if (j >= lines.length || !lines[j].startsWith('<!--')) break;
      let close = j;
      while (close < lines.length && !lines[close].includes('-->')) close++;
      const body = lines.slice(j, close + 1).join('\n').replace(/^<!--\s?/, '').replace(/\s?-->$/, '');
      const head = body.split('\n')[0].trim();
      if (head === 'stdout') example.stdout = body.split('\n').slice(1).join('\n');
      else if (head.startsWith('stdout-matches ')) example.stdout = new RegExp(head.slice('stdout-matches '.length), 's');
      else if (head === 'example: nobody') example.nobody = true;
      else if (head.startsWith('example: not run: ')) example.notRun = head.slice('example: not run: '.length);
      else throw new Error(`${path.relative(root, file)}:${j + 1}: unknown example comment '${head}'`);
      j = close + 1;
    }
    examples.push(example);
  }
  return examples;
}

/** A fresh project with nsjail-node installed, holding the examples compiled. */
export interface ExampleProject {
  dir: string;
  /** Type errors per example (`where`), from one strict compiler run over all of them. */
  typeErrors: Map<string, string[]>;
  /** Runs example `i` in a directory of its own, as the document says (root or uid 65534). */
  run(i: number): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };
  /** Why example `i` did not print what the document shows, or undefined if it did. */
  mismatch(i: number): string | undefined;
  cleanup(): void;
}

const NOBODY = 65534;
const ROOT = path.join(__dirname, '..');

/**
 * Makes `dir` a project that has installed the package at `packageDir` (this checkout, or a
 * packed tarball installed elsewhere) and @types/node, and compiles the examples there.
 */
export function prepareExampleProject(dir: string, examples: readonly DocExample[], packageDir: string): ExampleProject {
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "name": "docs-examples", "private": true, "type": "module" }\n');
  fs.mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(packageDir, path.join(dir, 'node_modules', 'nsjail-node'));
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(dir, 'node_modules', '@types', 'node'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.symlinkSync(path.join(packageDir, 'bin', 'nsjail-node'), path.join(dir, 'bin', 'nsjail-node'));
  fs.symlinkSync(path.join(packageDir, 'bin', 'nsjail-node-bwrap'), path.join(dir, 'bin', 'nsjail-node-bwrap'));
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: ['node'], outDir: 'out', skipLibCheck: false },
    include: ['*.mts'],
  }));
  const fileOf = (i: number, ext: string): string => path.join(dir, `example-${i}.${ext}`);
  examples.forEach((e, i) => {
    if (e.lang === 'ts') fs.writeFileSync(fileOf(i, 'mts'), e.code);
    if (e.lang === 'js') fs.writeFileSync(fileOf(i, 'mjs'), e.code);
  });
  // One compiler run for all of them; its errors are sorted out per example.
  const typeErrors = new Map<string, string[]>();
  const tsc = child_process.spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', dir], { cwd: dir, encoding: 'utf8' });
  for (const line of tsc.stdout.split('\n')) {
    const m = /^example-(\d+)\.mts\((\d+),\d+\): (.*)$/.exec(line);
    if (!m) continue;
    const where = examples[Number(m[1])].where;
    typeErrors.set(where, [...(typeErrors.get(where) ?? []), `line ${m[2]} of the example: ${m[3]}`]);
  }
  if (tsc.status !== 0 && typeErrors.size === 0) throw new Error(`tsc failed without per-example errors:\n${tsc.stdout}${tsc.stderr}`);
  for (const sub of ['out', '.']) {
    if (!fs.existsSync(path.join(dir, sub))) continue;
    for (const f of fs.readdirSync(path.join(dir, sub))) fs.chmodSync(path.join(dir, sub, f), 0o755);
  }

  const run: ExampleProject['run'] = (i) => {
    const e = examples[i];
    const cwd = fs.mkdtempSync(path.join(dir, 'cwd-'));
    fs.chmodSync(cwd, 0o777);
    const [command, args] =
      e.lang === 'sh' ? ['/bin/sh', ['-e', '-c', e.code]]
      : e.lang === 'js' ? [process.execPath, [fileOf(i, 'mjs')]]
      : [process.execPath, [path.join(dir, 'out', `example-${i}.mjs`)]];
    const [file, argv] = e.nobody ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', command, ...args]] : [command, args];
    const r = child_process.spawnSync(file, argv, {
      cwd,
      encoding: 'utf8',
      timeout: 60_000,
      // A secret in the caller's environment: an example that passed it on would print it.
      env: { PATH: `${path.join(dir, 'bin')}:${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`, HOME: cwd, SECRET_TOKEN: 'host-secret' },
    });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };
  return {
    dir,
    typeErrors,
    run,
    mismatch(i) {
      const e = examples[i];
      const r = run(i);
      const context = `${e.where}: exit ${r.status}${r.signal ? ` (${r.signal})` : ''}\n--- stderr\n${r.stderr}\n--- stdout\n${r.stdout}`;
      if (r.status !== 0) return context;
      const out = r.stdout.trimEnd();
      const ok = e.stdout instanceof RegExp ? e.stdout.test(out) : out === (e.stdout ?? '').trimEnd();
      return ok ? undefined : `${context}\n--- expected\n${String(e.stdout)}`;
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
