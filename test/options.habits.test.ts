/** Habits from child_process and execa get pointed to this library's way, before any process starts. */
import { spawnIsolated, type SpawnOptions } from '../lib';
import { catchError, childCount } from './helpers';

const cases: [string, Record<string, unknown>, RegExp][] = [
  ['input', { input: 'x' }, /options\.input: .*runIsolated\(\{ input \}\).*child\.stdin/],
  ['shell', { shell: true }, /options\.shell: .*command: '\/bin\/sh', args: \['-c', script\]/],
  ['detached', { detached: true }, /options\.detached: .*newSession.*dieWithParent: false/],
  ['encoding', { encoding: 'utf8' }, /options\.encoding: .*setEncoding.*runIsolated\(\{ encoding \}\)/],
  ['maxBuffer', { maxBuffer: 10 }, /options\.maxBuffer: .*runIsolated\(\{ maxBuffer \}\)/],
  ['memory', { memory: 1 << 20 }, /options\.memory: limits are grouped: use limits: \{ memory: \.\.\. \}/],
  ['wallTime', { wallTime: 100 }, /options\.wallTime: limits are grouped: use limits: \{ wallTime: \.\.\. \}/],
];

test.each(cases)('%s points to the library\'s way (TypeError, no process)', async (_name, extra, message) => {
  const before = childCount();
  const err = catchError(() => spawnIsolated({ command: '/bin/true', ...extra } as SpawnOptions));
  expect(err).toBeInstanceOf(TypeError);
  expect(err.message).toMatch(message);
  expect(err.message).not.toContain('did you mean');
  expect(childCount()).toBe(before);
});

test('a relative cwd says the path is inside the sandbox and how to pass a host directory', () => {
  const err = catchError(() => spawnIsolated({ command: '/bin/true', cwd: 'src' }));
  expect(err).toBeInstanceOf(RangeError);
  expect(err.message).toBe("spawnIsolated: options.cwd must be an absolute path inside the sandbox, got 'src' (for a host directory without root, path.resolve() it first)");
});

test('no options at all names what is missing', () => {
  const err = catchError(() => (spawnIsolated as unknown as () => unknown)());
  expect(err).toBeInstanceOf(TypeError);
  expect(err.message).toBe('spawnIsolated: options must be an object, got undefined');
});
