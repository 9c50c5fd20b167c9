'use strict';
// The soak's spawning side, run in a fresh Node process by sections/soak.js so that
// RSS before/after measures only what spawning does: in the main benchmark process
// the earlier sections (2 GB of ballast, 10 000-entry env arrays) leave memory that
// the allocator returns to the kernel at unpredictable times, which once showed up
// as a 27 MB RSS *drop* in the middle of the soak and would equally hide a leak.
//
//   node soak-worker.js <iso|cp> <total> <inflight> <warmup>   -> one line of JSON on stdout
//
// iso: spawnIsolated(b); cp: child_process.spawn('/bin/true'), the control that shows
// how much RSS Node itself puts on under the same loop (allocator and V8 settling).
const { loadLibrary } = require('../setup');
const { runCp, runIso, startWatchdog } = require('../children');
const { isoOptions, TRUE } = require('../variants');
const { fullGc } = require('../gc');
const { oneLine } = require('../rounds');
const { openFdCount, threadCount, ourChildren, zombies } = require('../procfs');

const mode = process.argv[2];
const [total, inflight, warmup] = process.argv.slice(3).map(Number);
const BATCHES = 10;

async function snapshot() {
  await fullGc();
  const mem = process.memoryUsage();
  const children = ourChildren();
  return {
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    heapTotal: mem.heapTotal,
    external: mem.external,
    fds: openFdCount(),
    threads: threadCount(),
    zombies: children.filter((c) => c.state === 'Z').length,
    children: children.length,
  };
}

/** Run exactly `count` spawns with `inflight` in flight. */
async function runCount(spawnOne, count) {
  let started = 0;
  let failed = 0;
  let firstError = null;
  const worker = async () => {
    while (started < count) {
      started++;
      try {
        await spawnOne();
      } catch (err) {
        failed++;
        firstError ||= oneLine(err);
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return { failed, firstError };
}

async function main() {
  let spawnOne;
  if (mode === 'cp') {
    spawnOne = () => runCp(TRUE);
  } else {
    const lib = loadLibrary();
    if (lib.error) throw new Error(`spawnIsolated: ${lib.error}`);
    spawnOne = () => runIso(lib.spawnIsolated, isoOptions('b'));
  }
  const stopWatchdog = startWatchdog(10000);

  // Warm up first so one-time allocations (code, caches, the addon's own pools)
  // are in the baseline and not counted as growth.
  await runCount(spawnOne, warmup);
  const before = await snapshot();
  const trend = [];
  let failed = 0;
  let firstError = null;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < BATCHES; i++) {
    const r = await runCount(spawnOne, Math.round(total / BATCHES));
    failed += r.failed;
    firstError ||= r.firstError;
    // RSS without a GC: the trend shows steady growth, the before/after shows what stays.
    trend.push({ spawns: Math.round(((i + 1) * total) / BATCHES), rss: process.memoryUsage().rss, fds: openFdCount(), zombies: zombies().length });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = await snapshot();
  stopWatchdog();
  process.stdout.write(JSON.stringify({ mode, total, inflight, warmup, seconds, failed, firstError, before, after, trend }) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  },
);
