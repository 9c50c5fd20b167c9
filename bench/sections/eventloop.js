'use strict';
// Section 3: event-loop lag while spawning at full throughput (8 in flight).
//
// monitorEventLoopDelay arms a 1 ms libuv timer and records the interval between
// firings, so each sample is 1 ms plus the lag: we subtract the resolution. The
// idle row shows what the measurement itself reads on this machine with no load.
const { monitorEventLoopDelay } = require('perf_hooks');
const { isoOptions, TRUE } = require('../variants');
const { runCp, runIso } = require('../children');
const { runInFlight } = require('../rounds');
const { fmtMs, table } = require('../stats');

const RESOLUTION_MS = 1;
const INFLIGHT = 8;

async function measure(work, durationMs) {
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  const result = await work(durationMs);
  h.disable();
  return { h, result };
}

function idle(durationMs) {
  return new Promise((resolve) => setTimeout(() => resolve({ done: 0, failed: 0, seconds: durationMs / 1000 }), durationMs));
}

async function run(ctx) {
  const { quick, env } = ctx;
  // One long run per row: an ELD histogram cannot be paused and merged (re-enabling
  // records the paused gap as a delay, and histogram.add() rejects ELD histograms).
  const durationMs = quick ? 500 : 4000;
  const skipped = {};

  const variants = [
    { key: 'idle', label: 'idle (no spawning)', work: idle },
    { key: 'cp', label: "child_process.spawn('/bin/true')", work: (d) => runInFlight(() => runCp(TRUE), INFLIGHT, d) },
  ];
  if (env.lib.error) skipped.iso = `spawnIsolated: ${env.lib.error}`;
  else
    variants.splice(1, 0, {
      key: 'iso',
      label: 'spawnIsolated(b)',
      work: (d) => runInFlight(() => runIso(env.lib.spawnIsolated, isoOptions('b')), INFLIGHT, d),
    });

  const measured = {};
  for (const v of variants) measured[v.key] = await measure(v.work, durationMs);

  const lagMs = (ns) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  const data = {};
  const rows = variants.map((v) => {
    const { h, result } = measured[v.key];
    const { done, failed, seconds } = result;
    const d = {
      p50: lagMs(h.percentile(50)),
      p99: lagMs(h.percentile(99)),
      max: lagMs(h.max),
      samples: h.count,
      spawnsPerSec: done / seconds,
      failed,
    };
    data[v.key] = d;
    return [v.label, fmtMs(d.p50), fmtMs(d.p99), fmtMs(d.max), String(d.samples), v.key === 'idle' ? '-' : d.spawnsPerSec.toFixed(0), failed ? `${failed} failed` : ''];
  });

  const text = [
    `monitorEventLoopDelay(resolution ${RESOLUTION_MS} ms), ${durationMs} ms per row, ${INFLIGHT} spawns in flight; lag in ms (the resolution subtracted).`,
    '',
    table(['while', 'lag p50', 'lag p99', 'lag max', 'samples', 'spawns/s', ''], rows),
  ].join('\n');

  return { text, skipped, data: { resolutionMs: RESOLUTION_MS, inflight: INFLIGHT, durationMs, ...data } };
}

module.exports = { name: 'eventloop', title: '3. Event-loop lag while spawning (8 in flight)', run };
