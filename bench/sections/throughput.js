'use strict';
// Section 2: throughput (completed spawns per second) with 1, 2, 8 and 32 spawns in flight.
const { isoOptions, TRUE } = require('../variants');
const { runCp, runIso } = require('../children');
const { runInFlight } = require('../rounds');
const { fmtRatio, table } = require('../stats');

const LEVELS = [1, 2, 8, 32];

async function run(ctx) {
  const { quick, env } = ctx;
  const durationMs = quick ? 300 : 1500;
  const reps = quick ? 1 : 2;
  const skipped = {};

  const variants = [{ key: 'cp', label: "child_process.spawn('/bin/true')", runOne: () => runCp(TRUE) }];
  if (env.lib.error) skipped.iso = `spawnIsolated: ${env.lib.error}`;
  else variants.unshift({ key: 'iso', label: 'spawnIsolated(b)', runOne: () => runIso(env.lib.spawnIsolated, isoOptions('b')) });

  // Short warm-up so the first measured level does not pay for cold caches.
  for (const v of variants) await runInFlight(v.runOne, 2, quick ? 100 : 300);

  // Interleaved: for each repetition, every level, every variant; sums across repetitions.
  const totals = {};
  for (let rep = 0; rep < reps; rep++) {
    for (const inflight of LEVELS) {
      for (const v of variants) {
        const r = await runInFlight(v.runOne, inflight, durationMs);
        const t = (totals[`${v.key}/${inflight}`] ||= { done: 0, failed: 0, seconds: 0, firstError: null });
        t.done += r.done;
        t.failed += r.failed;
        t.seconds += r.seconds;
        t.firstError ||= r.firstError;
      }
    }
  }

  const total = (key, inflight) => totals[`${key}/${inflight}`];
  const perSec = (key, inflight) => total(key, inflight).done / total(key, inflight).seconds;
  const failuresText = (inflight) =>
    variants
      .filter((v) => total(v.key, inflight).failed)
      .map((v) => `${v.key}: ${total(v.key, inflight).failed} failed (${total(v.key, inflight).firstError})`)
      .join('; ');
  const rows = LEVELS.map((inflight) => [
    String(inflight),
    ...variants.map((v) => perSec(v.key, inflight).toFixed(0)),
    ...(variants.length === 2 ? [fmtRatio(perSec('iso', inflight) / perSec('cp', inflight))] : []),
    failuresText(inflight),
  ]);
  const header = ['in flight', ...variants.map((v) => `${v.label} /s`), ...(variants.length === 2 ? ['iso/cp'] : []), ''];

  const text = [
    `Each cell: ${reps} x ${durationMs} ms, interleaved; completed spawns per second. iso/cp > 1 means spawnIsolated(b) is faster.`,
    '',
    table(header, rows),
  ].join('\n');

  return {
    text,
    skipped,
    data: {
      durationMs,
      reps,
      levels: LEVELS.map((inflight) => ({
        inflight,
        ...Object.fromEntries(variants.map((v) => [v.key, { perSec: perSec(v.key, inflight), ...total(v.key, inflight) }])),
      })),
    },
  };
}

module.exports = { name: 'throughput', title: '2. Throughput (spawns/s) by spawns in flight', run };
