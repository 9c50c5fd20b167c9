/**
 * Every example in README.md, SECURITY.md and docs/*.md runs as written: TypeScript examples
 * are type-checked in strict mode (module nodenext, as a new project would), then they and the
 * JavaScript and shell ones run against the built package, each in a directory of its own, as
 * root or (marked so) as uid 65534, and print what the text says. See test/docs-examples.ts
 * for how a document marks an example.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { documentFiles, extractExamples, prepareExampleProject, type DocExample, type ExampleProject } from './docs-examples';

const ROOT = path.join(__dirname, '..');
const examples: DocExample[] = documentFiles(ROOT).flatMap((file) => extractExamples(file, ROOT));

let project: ExampleProject;

beforeAll(() => {
  // A fresh project that has installed nsjail-node (this checkout, built) and @types/node;
  // test/packaging.test.ts runs the same examples against the packed tarball installed.
  project = prepareExampleProject(fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-node-docs-')), examples, ROOT);
}, 120_000);

afterAll(() => project?.cleanup());

test('the documents have examples, and each says how it is checked', () => {
  expect(examples.length).toBeGreaterThan(10);
  const unchecked = examples.filter((e) => e.notRun === undefined && e.stdout === undefined).map((e) => e.where);
  expect(unchecked).toEqual([]);
});

const typed = examples.filter((e) => e.lang === 'ts');
test.each(typed.map((e) => [e.where, e] as const))('%s type-checks (strict, nodenext)', (where) => {
  expect(project.typeErrors.get(where) ?? []).toEqual([]);
});

const runnable = examples.map((e, i) => [e.where, e, i] as const).filter(([, e]) => e.notRun === undefined);
test.each(runnable)('%s runs and prints what the text shows', (_where, _e, i) => {
  expect(project.mismatch(i)).toBeUndefined();
}, 90_000);
