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
