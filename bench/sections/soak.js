'use strict';
// Section 5: soak. Many spawnIsolated(b) spawns in a row; does anything accumulate?
// RSS (after a full GC, so uncollected garbage does not count), open fds, threads,
// and children left as zombies or still alive. The spawning runs in a fresh Node
// process (soak-worker.js, see why there) that reports one line of JSON; then the
// same with child_process.spawn as the control.
const path = require('path');
const { runCollect } = require('../children');
const { fmtBytes, table } = require('../stats');

const INFLIGHT = 4;
// V8 grows its young generation (up to 2 x 16 MB of semi-space in Node 20) whenever enough
// bytes have survived scavenges since the last growth, which any long allocating loop
// reaches: that growth showed up as 13 to 26 MB of "RSS growth" with heap used flat to the
// kilobyte. The workers run with the young generation held at one size, so that RSS growth
// is what spawning retains (native memory, fds, heap), not V8's sizing policy.
const WORKER_FLAGS = ['--max-semi-space-size=1'];

async function soakIn(mode, total, warmup) {
  const worker = path.join(__dirname, 'soak-worker.js');
  const args = [...WORKER_FLAGS, worker, mode, String(total), String(INFLIGHT), String(warmup)];
  // Its own children are watched by its own watchdog; this bound is for the worker itself.
  const out = await runCollect(process.execPath, args, { maxAgeMs: 5 * 60 * 1000 });
  return JSON.parse(out.trim().split('\n').pop());
}

async function run(ctx) {
  const { quick, env } = ctx;
  if (env.lib.error) return { text: '', skipped: { soak: `spawnIsolated: ${env.lib.error}` }, data: null };
  const total = quick ? 500 : 10000;
  // Code, caches and malloc arenas settle over the first ~2 000 spawns (+5 MB), then RSS is flat.
  const warmup = quick ? 50 : 2000;

  const iso = await soakIn('iso', total, warmup);
  // The same loop with child_process: RSS growth that both show is Node's, not the library's.
  const cp = await soakIn('cp', total, warmup);

  const diff = (d, k) => d.after[k] - d.before[k];
  const rows = [
    ['RSS (after GC)', fmtBytes(iso.before.rss), fmtBytes(iso.after.rss), fmtBytes(diff(iso, 'rss')), fmtBytes(diff(cp, 'rss'))],
    ['heap used', fmtBytes(iso.before.heapUsed), fmtBytes(iso.after.heapUsed), fmtBytes(diff(iso, 'heapUsed')), fmtBytes(diff(cp, 'heapUsed'))],
    ['heap reserved', fmtBytes(iso.before.heapTotal), fmtBytes(iso.after.heapTotal), fmtBytes(diff(iso, 'heapTotal')), fmtBytes(diff(cp, 'heapTotal'))],
    ['external', fmtBytes(iso.before.external), fmtBytes(iso.after.external), fmtBytes(diff(iso, 'external')), fmtBytes(diff(cp, 'external'))],
    ['open fds', iso.before.fds, iso.after.fds, diff(iso, 'fds'), diff(cp, 'fds')],
    ['threads', iso.before.threads, iso.after.threads, diff(iso, 'threads'), diff(cp, 'threads')],
    ['zombie children', iso.before.zombies, iso.after.zombies, diff(iso, 'zombies'), diff(cp, 'zombies')],
    ['live children', iso.before.children, iso.after.children, diff(iso, 'children'), diff(cp, 'children')],
  ];
  const line = (name, d) =>
    `${name}: ${d.seconds.toFixed(1)} s (${(d.total / d.seconds).toFixed(0)}/s), ` +
    (d.failed ? `${d.failed} FAILED (first: ${d.firstError})` : 'none failed') +
    `; max zombies between batches ${Math.max(...d.trend.map((t) => t.zombies))}; RSS (no GC) every ${d.total / d.trend.length}: ` +
    d.trend.map((t) => (t.rss / 1048576).toFixed(1)).join(' ') +
    ' MB';
  const text = [
    `${total} spawns each in a fresh Node process (${WORKER_FLAGS.join(' ')}: V8's young generation at a fixed size), ` +
      `${INFLIGHT} in flight, after ${warmup} warm-up spawns.`,
    line('spawnIsolated(b)', iso),
    line('child_process   ', cp),
    '',
    table(['spawnIsolated(b)', 'before', 'after', 'growth', 'child_process growth'], rows),
  ].join('\n');

  // Top-level fields are spawnIsolated's (what the targets read); the control sits beside.
  return { text, skipped: {}, data: { ...iso, workerFlags: WORKER_FLAGS, control: cp } };
}

module.exports = { name: 'soak', title: '5. Soak: spawnIsolated(b) many times, what accumulates', run };
