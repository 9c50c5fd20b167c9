/** Shared checks for user options: each failure names the option and the reason. */

/** Throws TypeError (wrong kind of value) or RangeError (right kind, bad value) for `options.<option>`. */
export function fail(option: string, reason: string, kind: 'type' | 'range' = 'type'): never {
  const message = `spawnIsolated: options.${option} ${reason}`;
  throw kind === 'range' ? new RangeError(message) : new TypeError(message);
}

/** A short description of a bad value for an error message. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string '${value}'`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

/** Keys whose values {@link ownOptions} keeps as given: read only through their own keys (env: Object.keys) or as a list of strings (args). */
const KEPT_AS_GIVEN: ReadonlySet<string> = new Set(['env', 'args']);

function ownCopy(value: unknown, key: string | undefined): unknown {
  if (value === null || typeof value !== 'object' || (key !== undefined && KEPT_AS_GIVEN.has(key))) return value;
  if (Array.isArray(value)) {
    // Holes stay holes (checkArray names them).
    const copy: unknown[] = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) if (Object.hasOwn(value, i)) copy[i] = ownCopy(value[i], undefined);
    return copy;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // a Buffer, an AbortSignal, a class instance
  const copy = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(value)) copy[k] = ownCopy((value as Record<string, unknown>)[k], k);
  return copy;
}

/**
 * Options as the caller wrote them, with nothing else: plain objects copied as objects
 * without a prototype and arrays copied element by element, so that an option the caller
 * left out is never read from a polluted Object.prototype (or a hole from Array.prototype).
 * Such a gadget could otherwise add a host mount to every sandbox, or drop `net: true`'s
 * seccomp filter. Other objects (Buffers, AbortSignals) are kept as they are, as are `env`
 * and `args` (read through their own keys, or as strings).
 */
export function ownOptions<T extends object>(options: T): T {
  return ownCopy(options, undefined) as T;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The known name closest to a misspelt one, if it is close enough to be a typo. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * Rejects keys that are not options: a typo must not silently drop isolation. `habits` maps
 * names that other APIs use (child_process, execa) to this library's way of saying it.
 */
export function rejectUnknownKeys(options: object, known: readonly string[], where: string, habits: Readonly<Record<string, string>> = {}): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    if (Object.prototype.hasOwnProperty.call(habits, key)) throw new TypeError(`spawnIsolated: unknown option ${where}${key}: ${habits[key]}`);
    const guess = didYouMean(key, known);
    throw new TypeError(`spawnIsolated: unknown option ${where}${key}${guess ? ` (did you mean ${where}${guess}?)` : ''}`);
  }
}

/**
 * Whether {@link checkCString} accepts `value`: for loops over thousands of arguments or
 * variables, which then build the option's name (a template string) only for a bad one.
 */
export function isCString(value: unknown, allowEmpty = false): value is string {
  return typeof value === 'string' && (allowEmpty || value.length > 0) && !value.includes('\0');
}

/** A string without NUL bytes (the kernel would cut it there). */
export function checkCString(option: string, value: unknown, { allowEmpty = false } = {}): string {
  if (typeof value !== 'string') fail(option, `must be a string, got ${describe(value)}`);
  if (!allowEmpty && value.length === 0) fail(option, 'must not be empty', 'range');
  if (value.includes('\0')) fail(option, 'must not contain NUL bytes', 'range');
  return value;
}

/** An absolute path without NUL bytes. */
export function checkAbsolutePath(option: string, value: unknown): string {
  const s = checkCString(option, value);
  if (!s.startsWith('/')) fail(option, `must be an absolute path, got '${s}'`, 'range');
  return s;
}

/** An optional boolean with its default. */
export function checkBoolean(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(option, `must be a boolean, got ${describe(value)}`);
  return value;
}

/**
 * The entries of an array option, each through `check` (given its index; build the entry's
 * name from it only for a bad one). A hole of a sparse array (`['a', , 'b']`) is refused by
 * name: Array.prototype.map and forEach skip holes, so unchecked they would reach the plan.
 * Array-likes that are not arrays (`{ length: 1, 0: 'a' }`, typed arrays) are refused too.
 */
export function checkArray<T>(option: string, value: unknown, expected: string, check: (item: unknown, i: number) => T): T[] {
  if (!Array.isArray(value)) fail(option, `must be ${expected}, got ${describe(value)}`);
  const out = new Array<T>(value.length);
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (item === undefined && !(i in value)) fail(`${option}[${i}]`, 'is missing: holes in sparse arrays are not accepted');
    out[i] = check(item, i);
  }
  return out;
}

/** A plain object (not null, not an array). */
export function checkObject(option: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(option, `must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}
