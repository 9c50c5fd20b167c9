'use strict';
// Section 5: soak. Many spawnIsolated(b) spawns in a row; does anything accumulate?
// RSS (after a full GC, so uncollected garbage does not count), open fds, threads,
// and children left as zombies or still alive. The spawning runs in a fresh Node
// process (soak-worker.js, see why there) that reports one line of JSON.
const path = require('path');
const { runCollect } = require('../children');
const { fmtBytes, table } = require('../stats');

const INFLIGHT = 4;

async function run(ctx) {
  const { quick, env } = ctx;
  if (env.lib.error) return { text: '', skipped: { soak: `spawnIsolated: ${env.lib.error}` }, data: null };
  const total = quick ? 500 : 10000;
  const warmup = quick ? 50 : 500;

  const worker = path.join(__dirname, 'soak-worker.js');
  // Its own children are watched by its own watchdog; this bound is for the worker itself.
  const out = await runCollect(process.execPath, [worker, String(total), String(INFLIGHT), String(warmup)], { maxAgeMs: 5 * 60 * 1000 });
  const data = JSON.parse(out.trim().split('\n').pop());
  const { before, after, trend, seconds, failed, firstError } = data;

  const rows = [
    ['RSS (after GC)', fmtBytes(before.rss), fmtBytes(after.rss), fmtBytes(after.rss - before.rss)],
    ['heap used', fmtBytes(before.heapUsed), fmtBytes(after.heapUsed), fmtBytes(after.heapUsed - before.heapUsed)],
    ['external', fmtBytes(before.external), fmtBytes(after.external), fmtBytes(after.external - before.external)],
    ['open fds', before.fds, after.fds, after.fds - before.fds],
    ['threads', before.threads, after.threads, after.threads - before.threads],
    ['zombie children', before.zombies, after.zombies, after.zombies - before.zombies],
    ['live children', before.children, after.children, after.children - before.children],
  ];
  const text = [
    `${total} spawns of spawnIsolated(b) in a fresh Node process, ${INFLIGHT} in flight, after ${warmup} warm-up spawns; ` +
      `${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)}/s); ` +
      (failed ? `${failed} FAILED, first: ${firstError}.` : 'none failed.'),
    `Max zombies seen between batches: ${Math.max(...trend.map((t) => t.zombies))}; RSS trend (no GC) every ${total / trend.length}: ` +
      trend.map((t) => fmtBytes(t.rss).replace(' MB', '')).join(' ') +
      ' MB',
    '',
    table(['', 'before', 'after', 'growth'], rows),
  ].join('\n');

  return { text, skipped: {}, data };
}

module.exports = { name: 'soak', title: '5. Soak: spawnIsolated(b) many times, what accumulates', run };
