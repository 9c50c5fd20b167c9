/** runIsolated: a sandbox run to its end with its output collected, as execFile does. */
import type { Readable } from 'node:stream';
import type { SpawnOptions, StdioOption } from './options';
import type { CloseStatus, IsolatedProcess } from './process';
import { spawnIsolated } from './spawn';
import { describe, ownOptions } from './validate';

/** Options of {@link runIsolated}: those of spawnIsolated without `stdio`, plus these. */
export interface RunOptions extends Omit<SpawnOptions, 'stdio'> {
  /**
   * The most bytes kept of stdout, and of stderr, each, counted to the byte. One byte more
   * on either ends the whole sandbox (as kill() does, also when the extra byte arrives in a
   * later read, or after the program's exit) and the result says `killedBy: 'maxBuffer'`,
   * `status: 'signal'`, with the output cut at `maxBuffer`; exactly `maxBuffer` bytes and
   * then the end is fine (but exactly `maxBuffer` bytes on a stream that an escaped process
   * held open until the library destroyed it count as more: its end was never seen).
   * Default 1 MiB, as execFile; a positive integer, or Infinity for no limit.
   */
  maxBuffer?: number;
  /**
   * Written to the program's stdin, which is then closed: a string, a Buffer/Uint8Array, or
   * a Readable piped in (an error of that stream just ends stdin; the stream is unpiped, not
   * destroyed, when the program exits). Without it, stdin is empty (a pipe with no writer, never a host file).
   */
  input?: string | Uint8Array | Readable;
  /** How stdout and stderr are decoded: a Buffer encoding (default 'utf8'), or 'buffer' for Buffers. */
  encoding?: BufferEncoding | 'buffer';
}

/**
 * The result of {@link runIsolated}: the {@link CloseStatus} (ExitStatus and
 * `outputIncomplete`) with the output.
 */
export interface RunResult<T extends string | Buffer = string> extends CloseStatus {
  /** What the program wrote to stdout, at most `maxBuffer` bytes. */
  stdout: T;
  /** What the program wrote to stderr, at most `maxBuffer` bytes. */
  stderr: T;
}

function isReadable(value: unknown): value is Readable {
  const r = value as Readable | null;
  return typeof r === 'object' && r !== null && typeof r.pipe === 'function' && typeof r.on === 'function' && r.readable !== undefined;
}

/**
 * Keeps at most maxBuffer bytes; any byte beyond (in this chunk or a later one) overflows.
 * A stream that holds exactly maxBuffer bytes and is destroyed before its end (an escaped
 * process held it) overflows too: nothing says that no more would have come.
 */
function collect(stream: Readable, maxBuffer: number, onOverflow: () => void): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let overflowed = false;
    let ended = false;
    stream.on('data', (chunk: Buffer) => {
      if (overflowed || chunk.length === 0) return;
      const room = maxBuffer - size;
      if (chunk.length <= room) {
        chunks.push(chunk);
        size += chunk.length;
        return;
      }
      if (room > 0) chunks.push(chunk.subarray(0, room));
      size = maxBuffer;
      overflowed = true;
      stream.destroy();
      onOverflow();
    });
    // 'close' follows both the end of the stream and destroy(); an error cannot lose the output.
    stream.on('error', () => undefined);
    stream.on('end', () => (ended = true));
    stream.on('close', () => {
      if (!ended && !overflowed && size === maxBuffer) onOverflow();
      resolve(Buffer.concat(chunks));
    });
  });
}

/**
 * Runs a sandbox to its end and resolves with its ExitStatus (with accounting and `status`)
 * plus its stdout and stderr, once the program has exited and both streams have ended (as
 * execFile). Resolves for every way the program ends (non-zero exit, signal, time or memory
 * limit, abort, maxBuffer); rejects only when the sandbox cannot be started
 * (TypeError/RangeError for bad options, IsolationError, AbortError for a signal aborted
 * before the call).
 *
 * The wait is bounded by `timeout`, `limits.wallTime` and `signal`: they end the whole
 * sandbox (`killSignal`, then SIGKILL after `forceKillAfter` ms), and streams a process that
 * escaped it still holds are destroyed `forceKillAfter` ms after the program's exit, with
 * `outputIncomplete: true` (docs/limits.md says what can escape, per configuration).
 *
 * @example
 * const r = await runIsolated({ command: '/usr/bin/solution', input: testCase, pid: true,
 *                               limits: { memory: 256 << 20, cpuTime: 2, wallTime: 5000, pids: 64 } });
 * if (r.status !== 'ok') console.log(r.status, r.killedBy, r.cpuTimeMs, r.memoryPeakBytes);
 */
export function runIsolated(options: RunOptions & { encoding: 'buffer' }): Promise<RunResult<Buffer>>;
export function runIsolated(options: RunOptions): Promise<RunResult<string>>;
export async function runIsolated(options: RunOptions): Promise<RunResult<string | Buffer>> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`runIsolated: options must be an object, got ${describe(options)}`);
  }
  const o = ownOptions(options) as RunOptions & { stdio?: unknown };
  if ('stdio' in o) {
    throw new TypeError('runIsolated: options.stdio is not accepted (stdout and stderr are collected, stdin comes from options.input); use spawnIsolated for other stdio');
  }
  const { maxBuffer, input, encoding, ...spawnOptions } = o;
  return runToEnd({ maxBuffer, input, encoding }, (stdio) => spawnIsolated({ ...spawnOptions, stdio }));
}

/** What a run to the end collects: the options of {@link runIsolated} beyond spawnIsolated's. */
export type CollectOptions = Pick<RunOptions, 'maxBuffer' | 'input' | 'encoding'>;

/**
 * runIsolated's work once `spawn` starts the sandbox with the stdio it is given: checks the
 * collecting options, feeds the input, collects the output (a prepared sandbox's run() too).
 */
export async function runToEnd(
  options: CollectOptions,
  spawn: (stdio: [StdioOption, StdioOption, StdioOption]) => IsolatedProcess,
  name = 'runIsolated',
): Promise<RunResult<string | Buffer>> {
  const { maxBuffer = 1024 * 1024, input, encoding = 'utf8' } = options;
  const fail = (option: string, reason: string, kind: 'type' | 'range' = 'type'): never => {
    const message = `${name}: options.${option} ${reason}`;
    throw kind === 'range' ? new RangeError(message) : new TypeError(message);
  };
  if (typeof maxBuffer !== 'number' || !(maxBuffer === Infinity || Number.isSafeInteger(maxBuffer)) || maxBuffer <= 0) {
    fail('maxBuffer', `must be a positive integer number of bytes (or Infinity), got ${describe(maxBuffer)}`, typeof maxBuffer === 'number' ? 'range' : 'type');
  }
  if (input !== undefined && typeof input !== 'string' && !(input instanceof Uint8Array) && !isReadable(input)) {
    fail('input', `must be a string, Buffer, Uint8Array or Readable stream, got ${describe(input)}`);
  }
  if (encoding !== 'buffer' && !Buffer.isEncoding(encoding)) fail('encoding', `must be a Buffer encoding or 'buffer', got ${describe(encoding)}`, 'range');

  const child = spawn([input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']);
  if (child.stdin !== null) {
    const stdin = child.stdin;
    stdin.on('error', () => undefined); // EPIPE: the program did not read it all
    if (isReadable(input)) {
      input.on('error', () => stdin.end());
      input.pipe(stdin);
    } else {
      stdin.end(input);
    }
  }
  let overflowed = false;
  const overflow = (): void => {
    overflowed = true;
    child.terminate('maxBuffer');
  };
  const [stdout, stderr, status] = await Promise.all([
    collect(child.stdout!, maxBuffer, overflow),
    collect(child.stderr!, maxBuffer, overflow),
    child.closed,
  ]);
  const decode = (b: Buffer): string | Buffer => (encoding === 'buffer' ? b : b.toString(encoding));
  // The extra bytes were read after the program had exited by itself: cut all the same.
  const cut = overflowed && status.killedBy === null ? { killedBy: 'maxBuffer' as const, status: 'signal' as const } : {};
  return { ...status, ...cut, stdout: decode(stdout), stderr: decode(stderr) };
}
