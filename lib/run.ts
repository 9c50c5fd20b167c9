/** runIsolated: a sandbox run to its end with its output collected, as execFile does. */
import type { Readable } from 'node:stream';
import { killSandbox } from './limits';
import type { SpawnOptions } from './options';
import type { ExitStatus } from './process';
import { spawnIsolated } from './spawn';
import { describe } from './validate';

/** Options of {@link runIsolated}: those of spawnIsolated without `stdio`, plus these. */
export interface RunOptions extends Omit<SpawnOptions, 'stdio'> {
  /**
   * The most bytes kept of stdout, and of stderr, each. Past it the sandbox is killed (all
   * of it, as by kill()) and the result says `killedBy: 'maxBuffer'`. Default 1 MiB, as
   * execFile; Infinity for no limit.
   */
  maxBuffer?: number;
  /** Written to the program's stdin, which is then closed. Without it, stdin is empty (stdio 'ignore': a pipe with no writer). */
  input?: string | Uint8Array;
  /** How stdout and stderr are decoded: a Buffer encoding (default 'utf8'), or 'buffer' for Buffers. */
  encoding?: BufferEncoding | 'buffer';
}

/** The result of {@link runIsolated}: the ExitStatus with the output. */
export interface RunResult<T extends string | Buffer = string> extends ExitStatus {
  stdout: T;
  stderr: T;
}

function fail(option: string, reason: string, kind: 'type' | 'range' = 'type'): never {
  const message = `runIsolated: options.${option} ${reason}`;
  throw kind === 'range' ? new RangeError(message) : new TypeError(message);
}

function collect(stream: Readable, maxBuffer: number, onOverflow: () => void): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      if (size >= maxBuffer) return;
      const room = maxBuffer - size;
      chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      size += Math.min(chunk.length, room);
      if (chunk.length > room) {
        onOverflow();
        stream.destroy();
      }
    });
    // 'close' follows both the end of the stream and destroy(); an error cannot lose the output.
    stream.on('error', () => undefined);
    stream.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * Runs a sandbox to its end and resolves with its ExitStatus (with accounting and `status`)
 * plus its stdout and stderr. Resolves for every way the program ends (non-zero exit,
 * signal, time or memory limit, abort, maxBuffer); rejects only when the sandbox cannot be
 * started (TypeError/RangeError for bad options, IsolationError, AbortError).
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
  const o = options as RunOptions & { stdio?: unknown };
  if ('stdio' in o) {
    throw new TypeError('runIsolated: options.stdio is not accepted (stdout and stderr are collected, stdin comes from options.input); use spawnIsolated for other stdio');
  }
  const { maxBuffer = 1024 * 1024, input, encoding = 'utf8', ...spawnOptions } = o;
  if (typeof maxBuffer !== 'number' || Number.isNaN(maxBuffer) || maxBuffer <= 0) {
    fail('maxBuffer', `must be a positive number of bytes (or Infinity), got ${describe(maxBuffer)}`, typeof maxBuffer === 'number' ? 'range' : 'type');
  }
  if (input !== undefined && typeof input !== 'string' && !(input instanceof Uint8Array)) {
    fail('input', `must be a string, Buffer or Uint8Array, got ${describe(input)}`);
  }
  if (encoding !== 'buffer' && !Buffer.isEncoding(encoding)) fail('encoding', `must be a Buffer encoding or 'buffer', got ${describe(encoding)}`, 'range');

  const child = spawnIsolated({ ...spawnOptions, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (child.stdin !== null) {
    child.stdin.on('error', () => undefined); // EPIPE: the program did not read it all
    child.stdin.end(input);
  }
  const overflow = (): void => void killSandbox(child.pid, 'maxBuffer');
  const [stdout, stderr, status] = await Promise.all([
    collect(child.stdout!, maxBuffer, overflow),
    collect(child.stderr!, maxBuffer, overflow),
    child.exited,
  ]);
  const decode = (b: Buffer): string | Buffer => (encoding === 'buffer' ? b : b.toString(encoding));
  return { ...status, stdout: decode(stdout), stderr: decode(stderr) };
}
