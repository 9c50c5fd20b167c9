'use strict';
// Section 5: soak. Many spawnIsolated(b) spawns in a row; does anything accumulate?
// RSS (after a full GC, so uncollected garbage does not count), open fds, threads,
// and children left as zombies or still alive.
const { isoOptions } = require('../variants');
const { runIso } = require('../children');
const { oneLine } = require('../rounds');
const { fullGc } = require('../gc');
const { openFdCount, threadCount, ourChildren, zombies } = require('../procfs');
const { fmtMB, table } = require('../stats');

const INFLIGHT = 4;

async function snapshot() {
  await fullGc();
  const mem = process.memoryUsage();
  const children = ourChildren();
  return {
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    external: mem.external,
    fds: openFdCount(),
    threads: threadCount(),
    zombies: children.filter((c) => c.state === 'Z').length,
    children: children.length,
  };
}

async function run(ctx) {
  const { quick, env } = ctx;
  if (env.lib.error) return { text: '', skipped: { soak: `spawnIsolated: ${env.lib.error}` }, data: null };
  const total = quick ? 500 : 10000;
  const batches = 10;
  const spawnOne = () => runIso(env.lib.spawnIsolated, isoOptions('b'));

  // Warm up first so one-time allocations (code, caches, the addon's own pools)
  // are in the baseline and not counted as growth.
  await runCount(spawnOne, quick ? 50 : 500);
  const before = await snapshot();
  const trend = [];
  let failed = 0;
  let firstError = null;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < batches; i++) {
    const r = await runCount(spawnOne, total / batches);
    failed += r.failed;
    firstError ||= r.firstError;
    // RSS without a GC: the trend shows steady growth, the before/after shows what stays.
    trend.push({ spawns: ((i + 1) * total) / batches, rss: process.memoryUsage().rss, fds: openFdCount(), zombies: zombies().length });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = await snapshot();

  const rows = [
    ['RSS (after GC)', fmtMB(before.rss), fmtMB(after.rss), fmtMB(after.rss - before.rss)],
    ['heap used', fmtMB(before.heapUsed), fmtMB(after.heapUsed), fmtMB(after.heapUsed - before.heapUsed)],
    ['external', fmtMB(before.external), fmtMB(after.external), fmtMB(after.external - before.external)],
    ['open fds', before.fds, after.fds, after.fds - before.fds],
    ['threads', before.threads, after.threads, after.threads - before.threads],
    ['zombie children', before.zombies, after.zombies, after.zombies - before.zombies],
    ['live children', before.children, after.children, after.children - before.children],
  ];
  const text = [
    `${total} spawns of spawnIsolated(b), ${INFLIGHT} in flight, in ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)}/s)` +
      (failed ? `; ${failed} FAILED, first: ${firstError}` : '; none failed') +
      '.',
    `Max zombies seen between batches: ${Math.max(...trend.map((t) => t.zombies))}; RSS trend (no GC) every ${total / batches}: ` +
      trend.map((t) => fmtMB(t.rss).replace(' MB', '')).join(' ') +
      ' MB',
    '',
    table(['', 'before', 'after', 'growth'], rows),
  ].join('\n');

  return { text, skipped: {}, data: { total, inflight: INFLIGHT, seconds, failed, firstError, before, after, trend } };
}

/** Run exactly `count` spawns with INFLIGHT in flight. */
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
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  return { failed, firstError };
}

module.exports = { name: 'soak', title: '5. Soak: spawnIsolated(b) many times, what accumulates', run };
