/** runIsolated: maxBuffer counted to the byte, endless output always ends, input as a stream. */
import { Readable } from 'node:stream';
import { runIsolated } from '../lib';
import { killMarked, marker } from './limits-helpers';

jest.setTimeout(30_000);

const zeros = (n: number): { command: string; args: string[] } => ({ command: 'head', args: ['-c', String(n), '/dev/zero'] });

describe('maxBuffer is exact', () => {
  test.each([65_536, 65_537, 10_000, 1])('endless output past maxBuffer %p: cut at it, reported, never ok', async (maxBuffer) => {
    for (let i = 0; i < 3; i++) {
      const r = await runIsolated({ ...zeros(10_000_000), maxBuffer, encoding: 'buffer' });
      expect(r).toMatchObject({ status: 'signal', killedBy: 'maxBuffer' });
      expect(r.stdout.length).toBe(maxBuffer);
    }
  });

  test('exactly maxBuffer bytes and then the end is fine', async () => {
    for (const n of [65_536, 131_072, 1000]) {
      const r = await runIsolated({ ...zeros(n), maxBuffer: n, encoding: 'buffer' });
      expect(r).toMatchObject({ status: 'ok', killedBy: null, outputIncomplete: false });
      expect(r.stdout.length).toBe(n);
    }
  });

  test('one byte more, read after the program has exited by itself: still maxBuffer', async () => {
    // 65537 bytes: the first 64 KiB fill the pipe, the last byte comes in a later read, and
    // the program may well have exited before the kill.
    const r = await runIsolated({ ...zeros(65_537), maxBuffer: 65_536, encoding: 'buffer' });
    expect(r).toMatchObject({ status: 'signal', killedBy: 'maxBuffer' });
    expect(r.stdout.length).toBe(65_536);
    // Control: the same with room for it is ok.
    const control = await runIsolated({ ...zeros(65_537), maxBuffer: 65_537, encoding: 'buffer' });
    expect(control).toMatchObject({ status: 'ok', killedBy: null });
    expect(control.stdout.length).toBe(65_537);
  });

  test('exactly maxBuffer bytes on a stream destroyed before its end (held by an escaped process) count as more', async () => {
    const mark = marker();
    try {
      const script = `head -c 65536 /dev/zero; setsid sleep 1000 ${mark} &`;
      const r = await runIsolated({ command: 'sh', args: ['-c', script], maxBuffer: 65_536, timeout: 300, forceKillAfter: 200, encoding: 'buffer' });
      expect(r).toMatchObject({ status: 'signal', killedBy: 'maxBuffer', outputIncomplete: true });
      expect(r.stdout.length).toBe(65_536);
      // Control: with room for one byte more, nothing says the limit was passed.
      const control = await runIsolated({ command: 'sh', args: ['-c', script], maxBuffer: 65_537, timeout: 300, forceKillAfter: 200, encoding: 'buffer' });
      expect(control).toMatchObject({ status: 'ok', killedBy: null, outputIncomplete: true });
      expect(control.stdout.length).toBe(65_536);
    } finally {
      killMarked(mark);
    }
  });

  test('stderr is counted on its own', async () => {
    const r = await runIsolated({ command: 'sh', args: ['-c', 'head -c 5000 /dev/zero >&2; echo out'], maxBuffer: 4096 });
    expect(r).toMatchObject({ status: 'signal', killedBy: 'maxBuffer' });
    expect(r.stderr.length).toBe(4096);
  });

  test('`yes` with the default maxBuffer (1 MiB) always ends', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await runIsolated({ command: 'yes' });
      expect(r).toMatchObject({ status: 'signal', killedBy: 'maxBuffer' });
      expect(r.stdout.length).toBe(1024 * 1024);
    }
  });

  test.each([
    [1.5, RangeError],
    [0, RangeError],
    [Number.NaN, RangeError],
    ['1', TypeError],
  ])('maxBuffer %p is refused (%p)', async (maxBuffer, kind) => {
    await expect(runIsolated({ command: '/bin/true', maxBuffer: maxBuffer as number })).rejects.toThrow(kind);
    await expect(runIsolated({ command: '/bin/true', maxBuffer: maxBuffer as number })).rejects.toThrow('options.maxBuffer');
  });
});

describe('input and encoding', () => {
  test('input as a string, a Buffer, a Uint8Array and a Readable', async () => {
    expect((await runIsolated({ command: 'cat', input: 'text' })).stdout).toBe('text');
    expect((await runIsolated({ command: 'cat', input: Buffer.from('buf') })).stdout).toBe('buf');
    expect((await runIsolated({ command: 'cat', input: new Uint8Array([104, 105]) })).stdout).toBe('hi');
    const r = await runIsolated({ command: 'cat', input: Readable.from(['stream ', 'of ', 'chunks']) });
    expect(r).toMatchObject({ status: 'ok', stdout: 'stream of chunks' });
  });

  test('a large Readable input arrives whole', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const input = Readable.from((function* () {
      for (let i = 0; i < 32; i++) yield chunk;
    })());
    const r = await runIsolated({ command: 'wc', args: ['-c'], input });
    expect(r.stdout.trim()).toBe(String(32 * 64 * 1024));
  });

  test('a Readable the program does not read: EPIPE is absorbed, the stream is left alone', async () => {
    const input = new Readable({ read() {} });
    input.push('never read');
    const r = await runIsolated({ command: '/bin/true', input });
    expect(r.status).toBe('ok');
    expect(input.destroyed).toBe(false);
    input.destroy();
  });

  test('an input that is neither is refused', async () => {
    await expect(runIsolated({ command: 'cat', input: 42 as unknown as string })).rejects.toThrow(TypeError);
    await expect(runIsolated({ command: 'cat', input: 42 as unknown as string })).rejects.toThrow('options.input');
  });

  test("encoding 'buffer' gives Buffers, the default utf8 strings", async () => {
    const b = await runIsolated({ command: 'printf', args: ['\\303\\251'], encoding: 'buffer' });
    expect(Buffer.isBuffer(b.stdout)).toBe(true);
    expect([...b.stdout]).toEqual([0xc3, 0xa9]);
    expect((await runIsolated({ command: 'printf', args: ['\\303\\251'] })).stdout).toBe('é');
  });
});
