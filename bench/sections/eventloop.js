'use strict';
// Section 3: event-loop lag while spawning at full throughput (8 in flight).
//
// The sampler is a 1 ms timer chain timed with hrtime: each firing records how much
// later than 1 ms after the previous one it ran. Same principle as
// perf_hooks.monitorEventLoopDelay({ resolution: 1 }), which we tried first and left:
// its first firing only takes a reference time and its reset() forgets it, so a loop
// that is starved from the start of a measurement records nothing, and the stall in
// progress when it is disabled is lost. Here the sampler starts and stops exactly
// with the load and records the stall in progress at stop. (Not setImmediate: that
// spins the loop and takes a CPU from the spawns on a 2-core machine.)
// The idle row shows what the sampler reads on this machine with no load.
const { createHistogram } = require('perf_hooks');
const { isoOptions, TRUE } = require('../variants');
const { runCp, runIso, runIsoAsync } = require('../children');
const { runInFlight } = require('../rounds');
const { fmtMs, table } = require('../stats');

const INTERVAL_MS = 1;
const INFLIGHT = 8;

function startSampler() {
  const h = createHistogram();
  const intervalNs = BigInt(INTERVAL_MS * 1e6);
  const record = (now) => {
    const lag = now - last - intervalNs;
    h.record(lag > 0n ? lag : 1n); // the histogram takes integers >= 1
    last = now;
  };
  let last = process.hrtime.bigint();
  let timer;
  const tick = () => {
    record(process.hrtime.bigint());
    timer = setTimeout(tick, INTERVAL_MS);
  };
  timer = setTimeout(tick, INTERVAL_MS);
  return () => {
    clearTimeout(timer);
    // The interval in progress counts only if the timer is already late.
    const now = process.hrtime.bigint();
    if (now - last > intervalNs) record(now);
    return h;
  };
}

async function measure(work, durationMs) {
  const stop = startSampler();
  const result = await work(durationMs);
  return { h: stop(), result };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function idle(durationMs) {
  await sleep(durationMs);
  return { done: 0, failed: 0, seconds: durationMs / 1000 };
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
  if (!env.lib.error && typeof env.lib.spawnIsolatedAsync === 'function')
    variants.splice(2, 0, {
      key: 'isoAsync',
      label: 'spawnIsolatedAsync(b)',
      work: (d) => runInFlight(() => runIsoAsync(env.lib.spawnIsolatedAsync, isoOptions('b')), INFLIGHT, d),
    });

  const measured = {};
  for (const v of variants) measured[v.key] = await measure(v.work, durationMs);

  const lagMs = (ns) => (ns <= 1 ? 0 : ns / 1e6);
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

  // An unloaded loop gives about one sample per ms; far fewer means the loop rarely
  // reached its timers phase, and the percentiles rest on few samples.
  const starved = variants
    .filter((v) => v.key !== 'idle' && data[v.key].samples < durationMs / 20)
    .map((v) => `${v.label}: only ${data[v.key].samples} samples in ${durationMs} ms: the loop rarely reached its timers.`);
  const text = [
    `${INTERVAL_MS} ms timer sampler, ${durationMs} ms per row, ${INFLIGHT} spawns in flight; lag = how late each firing was, in ms.`,
    '',
    table(['while', 'lag p50', 'lag p99', 'lag max', 'samples', 'spawns/s', ''], rows),
    ...(starved.length ? ['', ...starved] : []),
  ].join('\n');

  return { text, skipped, data: { intervalMs: INTERVAL_MS, inflight: INFLIGHT, durationMs, ...data } };
}

module.exports = { name: 'eventloop', title: '3. Event-loop lag while spawning (8 in flight)', run };
