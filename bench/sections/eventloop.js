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
//
// Each firing's lag has two parts: the loop busy with work (the spawn calls, exit
// handling: the library's share) and the loop's thread ready to run but waiting for a
// CPU that the sandboxes, their namespaces' teardown in kernel threads and the spawner thread
// keep busy. The second is read from the thread's run-queue wait in
// /proc/thread-self/schedstat (needs schedstats, as every distribution kernel has) and
// reported beside the lag; "own lag" is the lag minus that wait.
const fs = require('fs');
const { createHistogram } = require('perf_hooks');
const { isoOptions, TRUE } = require('../variants');
const { runCp, runIso, runIsoAsync } = require('../children');
const { runInFlight } = require('../rounds');
const { fmtMs, table } = require('../stats');

const INTERVAL_MS = 1;
const INFLIGHT = 8;

/** Nanoseconds the calling thread has spent runnable but not running, or null. */
function runQueueWaitReader() {
  let fd;
  try {
    fd = fs.openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    return null;
  }
  const buf = Buffer.alloc(128);
  const read = () => {
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return BigInt(buf.toString('latin1', 0, n).split(' ')[1]);
  };
  return { read, close: () => fs.closeSync(fd) };
}

function startSampler() {
  const h = createHistogram();
  const hWait = createHistogram();
  const hOwn = createHistogram();
  const intervalNs = BigInt(INTERVAL_MS * 1e6);
  const rq = runQueueWaitReader();
  let lastWait = rq ? rq.read() : 0n;
  const record = (now) => {
    const lag = now - last - intervalNs;
    h.record(lag > 0n ? lag : 1n); // the histogram takes integers >= 1
    if (rq) {
      const total = rq.read();
      const wait = total - lastWait;
      lastWait = total;
      hWait.record(wait > 0n ? wait : 1n);
      hOwn.record(lag - wait > 0n ? lag - wait : 1n);
    }
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
    if (rq) rq.close();
    return { h, hWait: rq ? hWait : null, hOwn: rq ? hOwn : null };
  };
}

async function measure(work, durationMs) {
  const stop = startSampler();
  const result = await work(durationMs);
  return { ...stop(), result };
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
  // The same two through a prepared sandbox: the synchronous one beside the asynchronous one.
  if (!env.lib.error && typeof env.lib.exports.prepareSandbox === 'function') {
    const box = env.lib.exports.prepareSandbox(isoOptions('b'));
    const at = variants.findIndex((v) => v.key === 'cp');
    variants.splice(at, 0,
      { key: 'prep', label: 'prepareSandbox(b).spawn()', work: (d) => runInFlight(() => runIso(() => box.spawn(), null), INFLIGHT, d) },
      { key: 'prepAsync', label: 'prepareSandbox(b).spawnAsync()', work: (d) => runInFlight(() => runIsoAsync(() => box.spawnAsync(), null), INFLIGHT, d) },
    );
  }

  const measured = {};
  for (const v of variants) measured[v.key] = await measure(v.work, durationMs);

  const lagMs = (ns) => (ns <= 1 ? 0 : ns / 1e6);
  const data = {};
  const rows = variants.map((v) => {
    const { h, hWait, hOwn, result } = measured[v.key];
    const { done, failed, seconds } = result;
    const d = {
      p50: lagMs(h.percentile(50)),
      p99: lagMs(h.percentile(99)),
      max: lagMs(h.max),
      cpuWaitP99: hWait ? lagMs(hWait.percentile(99)) : null,
      ownP50: hOwn ? lagMs(hOwn.percentile(50)) : null,
      ownP99: hOwn ? lagMs(hOwn.percentile(99)) : null,
      samples: h.count,
      spawnsPerSec: done / seconds,
      failed,
    };
    data[v.key] = d;
    const orDash = (x) => (x === null ? '-' : fmtMs(x));
    return [
      v.label, fmtMs(d.p50), fmtMs(d.p99), fmtMs(d.max), orDash(d.cpuWaitP99), orDash(d.ownP50), orDash(d.ownP99),
      String(d.samples), v.key === 'idle' ? '-' : d.spawnsPerSec.toFixed(0), failed ? `${failed} failed` : '',
    ];
  });

  // An unloaded loop gives about one sample per ms; far fewer means the loop rarely
  // reached its timers phase, and the percentiles rest on few samples.
  const starved = variants
    .filter((v) => v.key !== 'idle' && data[v.key].samples < durationMs / 20)
    .map((v) => `${v.label}: only ${data[v.key].samples} samples in ${durationMs} ms: the loop rarely reached its timers.`);
  const text = [
    `${INTERVAL_MS} ms timer sampler, ${durationMs} ms per row, ${INFLIGHT} spawns in flight; lag = how late each firing was, in ms.`,
    '"CPU wait": of a firing\'s lag, the time the loop\'s thread was ready but had no CPU; "own lag" = lag minus CPU wait: the loop busy.',
    '',
    table(['while', 'lag p50', 'lag p99', 'lag max', 'CPU wait p99', 'own lag p50', 'own lag p99', 'samples', 'spawns/s', ''], rows),
    ...(starved.length ? ['', ...starved] : []),
  ].join('\n');

  return { text, skipped, data: { intervalMs: INTERVAL_MS, inflight: INFLIGHT, durationMs, ...data } };
}

module.exports = { name: 'eventloop', title: '3. Event-loop lag while spawning (8 in flight)', run };
