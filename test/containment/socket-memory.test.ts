/**
 * Containment: `limits.memory` holds socket buffers too. cgroup v1 charges TCP buffers to a
 * memory cgroup only once its memory.kmem.tcp.limit_in_bytes has been written; the library
 * writes it with the memory limit, and memoryPeakBytes adds their peak. (cgroup v2 counts
 * socket memory in memory.current by itself; this machine has v1 controllers only.)
 *
 * The attack: inside net: true, loopback TCP connections the program never reads, written
 * to until they take no more. The data volume is bounded (192 MiB at most).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { limitWrites, readAccounting, V1_TCP_LIMIT_FILE } from '../../lib/cgroups';
import { buildProbe, MiB, recommended, runProbe, type Outcome } from './handedin-helpers';

const LIMIT = 64 * MiB;
const MAX = 3 * LIMIT;
const V1_MEMORY = '/sys/fs/cgroup/memory';
const HAS_V1_TCP = fs.existsSync(path.join(V1_MEMORY, V1_TCP_LIMIT_FILE));
const tcpTest = HAS_V1_TCP ? test : test.skip;

let probe: { dir: string; cleanup: () => void };
beforeAll(() => {
  probe = buildProbe();
});
afterAll(() => probe?.cleanup());

/** The bytes the probe queued: its last `queued N` or `done N` line (it may have been killed). */
function queued(r: Outcome): number {
  const lines = (r.stdout ?? '').trim().split('\n').filter((l) => /^(queued|done) \d+$/.test(l));
  if (lines.length === 0) throw new Error(`the probe queued nothing: ${JSON.stringify(r)}`);
  return Number(lines[lines.length - 1].split(' ')[1]);
}

describe('socket buffers count against limits.memory (cgroup v1: memory.kmem.tcp)', () => {
  tcpTest(HAS_V1_TCP ? `as root, in the recommended sandbox with memory ${LIMIT / MiB} MiB: unread loopback TCP buffers stay within the limit, and memoryPeakBytes shows them` : `SKIPPED: no cgroup v1 ${V1_TCP_LIMIT_FILE} at ${V1_MEMORY} (cgroup v2 counts socket memory by itself)`, async () => {
    const options = recommended(probe.dir);
    options.limits = { ...options.limits, memory: LIMIT };
    const r = await runProbe({ args: ['tcpqueue', String(MAX)], options });
    const bytes = queued(r);
    // Blocked (writes take no more) or OOM-killed: either way no more than the limit is queued.
    expect(bytes).toBeLessThanOrEqual(LIMIT);
    expect(bytes).toBeGreaterThan(LIMIT / 4); // the attack did run
    const peak = r.memoryPeakBytes;
    expect(peak).toBeGreaterThanOrEqual(bytes / 2);
  });

  tcpTest(HAS_V1_TCP ? 'control: the same attack under the same 64 MiB memory limit, set by hand on a parent cgroup without the TCP limit, queues far more than the limit, unseen by memoryPeakBytes' : `SKIPPED: no cgroup v1 ${V1_TCP_LIMIT_FILE} at ${V1_MEMORY}`, async () => {
    const name = `nsjail-node-test-sockmem-${process.pid}`;
    const parent = path.join(V1_MEMORY, name);
    fs.mkdirSync(parent);
    try {
      fs.writeFileSync(path.join(parent, 'memory.limit_in_bytes'), String(LIMIT));
      const options = recommended(probe.dir);
      // No limits.memory: the sandbox's cgroup is made below `parent`, which holds the limit.
      options.limits = { pids: 64, wallTime: 30000 };
      options.cgroupParent = name;
      const r = await runProbe({ args: ['tcpqueue', String(MAX)], options });
      const bytes = queued(r);
      expect(bytes).toBeGreaterThan(2 * LIMIT);
      expect(r.memoryPeakBytes).toBeLessThan(LIMIT);
    } finally {
      for (const ctl of fs.readdirSync('/sys/fs/cgroup')) {
        const dir = path.join('/sys/fs/cgroup', ctl, name);
        if (fs.existsSync(dir)) fs.rmdirSync(dir); // our parent, and those the library made beside it
      }
    }
  });
});

describe('the limit files and the accounting', () => {
  test('v1: memory.kmem.tcp.limit_in_bytes follows memory.limit_in_bytes when the kernel has it; v2 writes no such file', () => {
    const files = (version: 1 | 2, tcp: boolean): string[][] =>
      limitWrites(version, { version, memory: LIMIT, pids: 8, parent: 'x', defaultParent: true, cpuAccounting: false }, true, tcp).map((w) => [w.file, w.data]);
    expect(files(1, true).slice(0, 2)).toEqual([['memory.limit_in_bytes', String(LIMIT)], ['memory.kmem.tcp.limit_in_bytes', String(LIMIT)]]);
    expect(files(1, false).map(([f]) => f)).not.toContain('memory.kmem.tcp.limit_in_bytes');
    expect(files(2, true).map(([f]) => f)).not.toContain('memory.kmem.tcp.limit_in_bytes');
  });

  test('v1 memoryPeakBytes adds the TCP buffers\' peak to the memory peak', () => {
    const dir = fs.mkdtempSync('/tmp/nsjail-node-acct-');
    try {
      fs.writeFileSync(path.join(dir, 'memory.max_usage_in_bytes'), '1000\n');
      expect(readAccounting(1, { memory: dir }).memoryPeakBytes).toBe(1000);
      fs.writeFileSync(path.join(dir, 'memory.kmem.tcp.max_usage_in_bytes'), '234\n');
      expect(readAccounting(1, { memory: dir }).memoryPeakBytes).toBe(1234);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
