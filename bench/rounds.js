'use strict';
// Running variants interleaved in rounds, and running one variant with N spawns in flight.

/**
 * Run every variant once per round, for `warmup` untimed rounds and then `rounds`
 * timed ones: A B C D, A B C D, ... so that machine noise (other load, CPU
 * frequency, the kernel's asynchronous network-namespace cleanup) hits all
 * variants alike instead of whichever happened to run during it.
 *
 * The starting variant rotates each round (A B C D, B C D A, ...): a namespace torn
 * down by one variant is partly cleaned up during the next, so a fixed order would
 * charge that cost to the same neighbour every time.
 *
 * A variant that fails during warm-up is dropped with the reason (in `skipped`);
 * failures after that are counted and the first error kept.
 *
 * Returns { samples: { rowKey: ns[] }, failures: { key: { count, first } }, skipped: { key: reason } }.
 */
async function runRounds(variants, { rounds, warmup }) {
  const samples = {};
  const failures = {};
  const skipped = {};
  let active = variants.filter((v) => {
    if (v.skip) skipped[v.key] = v.skip;
    return !v.skip;
  });

  for (let r = 0; r < warmup + rounds; r++) {
    const timed = r >= warmup;
    const order = active.map((_, i) => active[(i + r) % active.length]);
    for (const v of order) {
      try {
        const result = await v.run();
        if (!timed) continue;
        for (const [row, ns] of Object.entries(result)) (samples[row] ||= []).push(...ns);
      } catch (err) {
        if (!timed) {
          skipped[v.key] = `failed during warm-up: ${oneLine(err)}`;
          active = active.filter((x) => x !== v);
          continue;
        }
        const f = (failures[v.key] ||= { count: 0, first: oneLine(err) });
        f.count++;
      }
    }
  }
  return { samples, failures, skipped };
}

/**
 * Keep `inflight` spawns running for `durationMs`: each of `inflight` workers starts
 * a new spawn as soon as its previous one exits. Returns completed spawns per second.
 * Stops early after 100 failures so a broken variant cannot spin.
 */
async function runInFlight(runOne, inflight, durationMs) {
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(durationMs * 1e6));
  let done = 0;
  let failed = 0;
  let firstError = null;
  const worker = async () => {
    while (process.hrtime.bigint() < deadline && failed < 100) {
      try {
        await runOne();
        done++;
      } catch (err) {
        failed++;
        firstError ||= oneLine(err);
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { inflight, done, failed, firstError, seconds, perSec: done / seconds };
}

function oneLine(err) {
  return String((err && err.message) || err).split('\n')[0];
}

module.exports = { runRounds, runInFlight, oneLine };
