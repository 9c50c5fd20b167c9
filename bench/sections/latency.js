'use strict';
// Section 1: spawn latency of /bin/true, every way side by side, as ratios to the C floor.
const { latencyVariants } = require('../variants');
const { runRounds } = require('../rounds');
const { summarize, fmtMs, fmtRatio, table } = require('../stats');

async function run(ctx) {
  const { quick } = ctx;
  const rounds = quick ? 40 : 400;
  const warmup = quick ? 5 : 30;
  const variants = latencyVariants(ctx.env);
  const { samples, failures, skipped } = await runRounds(variants, { rounds, warmup });

  // One row per variant, plus the extra floor rows right under (h).
  const rows = [];
  const stat = (key) => (samples[key] ? summarize(samples[key]) : null);
  for (const v of variants) {
    rows.push({ key: v.key, label: v.label, stats: stat(v.key), call: stat(`${v.key}.call`) });
    for (const [key, label] of Object.entries(v.extraRows || {}))
      rows.push({ key, label, stats: stat(key), call: stat(`${key}.call`) });
  }
  const byKey = Object.fromEntries(rows.map((r) => [r.key, r.stats]));
  const floor = byKey.h;
  const ownFloor = { a: byKey.h0, c: byKey.hc };

  const tableRows = rows.map((r) => {
    const s = r.stats;
    if (!s) return [r.label, '-', '-', '-', '-', '-', '-', '-', '-', '-', skipped[r.key] ? 'skipped' : ''];
    const own = ownFloor[r.key];
    return [
      r.label,
      s.n,
      fmtMs(s.p50),
      fmtMs(s.p99),
      fmtMs(s.mean),
      floor ? fmtRatio(s.p50 / floor.p50) : '-',
      floor ? fmtRatio(s.mean / floor.mean) : '-',
      own ? fmtRatio(s.p50 / own.p50) : '',
      r.call ? fmtMs(r.call.p50) : '',
      r.call ? fmtMs(r.call.p99) : '',
      failures[r.key] ? `${failures[r.key].count} failed` : '',
    ];
  });

  // The comparisons the project cares about, as "how many times faster is (b)".
  const b = byKey.b;
  const comparisons = {};
  const lines = [];
  const compare = (name, other) => {
    if (!b || !other) return;
    comparisons[name] = { p50: other.p50 / b.p50, mean: other.mean / b.mean };
    lines.push(
      `  ${name}: ${fmtRatio(other.p50 / b.p50)} at p50, ${fmtRatio(other.mean / b.mean)} on the mean ` +
        `(its time / spawnIsolated(b)'s; >1 means spawnIsolated(b) is faster)`,
    );
  };
  compare('bwrap vs spawnIsolated(b)', byKey.f);
  compare('child_process vs spawnIsolated(b)', byKey.d);
  compare('unshare(1) vs spawnIsolated(b)', byKey.e);
  compare('nsjail vs spawnIsolated(b)', byKey.g);
  // The floor doing spawnIsolated's default set-up in C: what is left is the library's own cost.
  const setupFloor = byKey.hp;
  const overhead = b && setupFloor && floor
    ? { p50: b.p50 / setupFloor.p50, mean: b.mean / setupFloor.mean, setupCostMs: setupFloor.p50 - floor.p50 }
    : null;
  const prepared = byKey.i;
  const preparedOverhead = prepared && setupFloor ? { p50: prepared.p50 / setupFloor.p50, mean: prepared.mean / setupFloor.mean, vsIso: b ? prepared.p50 / b.p50 : null } : null;
  if (preparedOverhead) {
    lines.push(
      `  prepareSandbox(b).spawn() vs the floor with its set-up: ${fmtRatio(preparedOverhead.p50)} at p50, ${fmtRatio(preparedOverhead.mean)} on the mean` +
        (preparedOverhead.vsIso !== null ? `; vs spawnIsolated(b): ${fmtRatio(preparedOverhead.vsIso)} at p50` : ''),
    );
  }
  if (overhead) {
    lines.push(
      `  spawnIsolated(b) vs the floor with its set-up: ${fmtRatio(overhead.p50)} at p50, ${fmtRatio(overhead.mean)} on the mean ` +
        `(the library's own cost: JavaScript, N-API, the event loop); the set-up itself costs the kernel ${fmtMs(overhead.setupCostMs)} ms (p50 of floor+set-up minus the floor's)`,
    );
  }

  const text = [
    `${rounds} interleaved rounds after ${warmup} warm-up rounds; times in ms, from the spawn call until the exit is known.`,
    `The floor (h) times itself in C (clone to waitpid); p50/floor and mean/floor divide by (h); "own floor" divides (a) and (c) by the floor with their namespaces.`,
    `"floor + spawnIsolated's set-up" is (h) with the child first doing in C what spawnIsolated's child does by default (signals, death signal, session, stdio, private mounts, lo up, capabilities, no_new_privs, the library's own seccomp programs).`,
    `"in call": how long the spawn call took to return, i.e. blocked the event loop; for the floor, clone's return (the child has exec'd).`,
    '',
    table(['variant', 'n', 'p50', 'p99', 'mean', 'p50/floor', 'mean/floor', 'own floor', 'in call p50', 'in call p99', ''], tableRows),
    '',
    ...(lines.length ? ['Ratios:', ...lines] : ['Ratios: need spawnIsolated(b) and the variants it is compared with.']),
  ].join('\n');

  return {
    text,
    skipped,
    data: {
      rounds,
      warmup,
      unit: 'ms',
      rows: rows.map((r) => ({ key: r.key, label: r.label.trim(), ...(r.stats || {}), inCall: r.call, failures: failures[r.key] || null })),
      ratiosToFloor: Object.fromEntries(
        rows.filter((r) => r.stats && floor).map((r) => [r.key, { p50: r.stats.p50 / floor.p50, mean: r.stats.mean / floor.mean }]),
      ),
      comparisons,
      overSetupFloor: overhead,
      preparedOverSetupFloor: preparedOverhead,
    },
    chartRows: rows.filter((r) => r.stats).map((r) => ({ label: r.label.trim(), p50: r.stats.p50, p99: r.stats.p99 })),
  };
}

module.exports = { name: 'latency', title: '1. Spawn latency of /bin/true', run };
