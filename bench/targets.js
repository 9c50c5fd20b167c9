'use strict';
// The project's performance targets, checked against one run's results.
// A target whose inputs were not measured (section skipped or not selected) says so
// instead of passing or failing.
const { fmtRatio, fmtBytes, fmtMs } = require('./stats');

function row(results, section, key) {
  const s = results[section];
  return s && s.rows ? s.rows.find((r) => r.key === key && Number.isFinite(r.p50)) : undefined;
}

function evaluateTargets(results) {
  const targets = [];
  const add = (name, measured, value, pass, shown) => targets.push(measured ? { name, value, pass, shown } : { name, value: null, pass: null, shown: 'not measured' });

  const b = row(results, 'latency', 'b');
  const floor = row(results, 'latency', 'h');
  const bwrap = row(results, 'latency', 'f');
  const prepared = row(results, 'latency', 'i');
  const setupFloor = row(results, 'latency', 'hp');
  add('spawnIsolated(b) p50 within 1.15x of the floor', b && floor, b && floor && b.p50 / floor.p50, b && floor && b.p50 / floor.p50 <= 1.15, b && floor && fmtRatio(b.p50 / floor.p50));
  add(
    "prepareSandbox(b).spawn() p50 within 1.05x of the floor with spawnIsolated's set-up",
    prepared && setupFloor,
    prepared && setupFloor && prepared.p50 / setupFloor.p50,
    prepared && setupFloor && prepared.p50 / setupFloor.p50 <= 1.05,
    prepared && setupFloor && fmtRatio(prepared.p50 / setupFloor.p50),
  );
  add('spawnIsolated(b) >= 2.5x faster than bwrap (p50)', b && bwrap, b && bwrap && bwrap.p50 / b.p50, b && bwrap && bwrap.p50 / b.p50 >= 2.5, b && bwrap && fmtRatio(bwrap.p50 / b.p50));

  // Judged on spawnIsolated's growth over the C floor's (a separate process) at the same
  // steps: what this machine does to every spawn while 2 GB are held is not the parent's size.
  const mem = results.scale && results.scale.memory && results.scale.memory.steps.filter((s) => s.iso);
  const first = mem && mem[0];
  const last = mem && mem[mem.length - 1];
  const raw = first && last && mem.length > 1 ? last.iso.p50 / first.iso.p50 : undefined;
  const floorGrowth = raw !== undefined && first.floor && last.floor ? last.floor.p50 / first.floor.p50 : undefined;
  const flat = floorGrowth !== undefined ? raw / floorGrowth : raw;
  add(
    `spawnIsolated(b) flat within 1.2x from 50 MB to ${last ? fmtBytes(last.ballastBytes) : '2 GB'} (p50, over the C floor's own change)`,
    flat !== undefined,
    flat,
    flat <= 1.2,
    flat !== undefined && (floorGrowth !== undefined ? `${fmtRatio(flat)} (raw ${fmtRatio(raw)}; the floor ${fmtRatio(floorGrowth)})` : `${fmtRatio(flat)} (no floor to compare)`),
  );

  // argv and env: spawnIsolated's growth from 0 to 10,000 over the C floor's with the same strings.
  for (const kind of ['args', 'env']) {
    const steps = results.scale && results.scale.argv && results.scale.argv[kind];
    const first = steps && steps[0];
    const last = steps && steps[steps.length - 1];
    const ok = first && last && steps.length > 1 && first.iso && last.iso && first.floor && last.floor;
    const isoGrowth = ok ? last.iso.p50 / first.iso.p50 : undefined;
    const floorGrowth = ok ? last.floor.p50 / first.floor.p50 : undefined;
    const prepGrowth = ok && first.prep && last.prep ? last.prep.p50 / first.prep.p50 : undefined;
    add(
      `spawnIsolated(b) growth from 0 to ${last ? last.count : 10000} ${kind} <= the floor's growth + 10% (p50)`,
      ok,
      ok && isoGrowth / floorGrowth,
      ok && isoGrowth <= floorGrowth * 1.1,
      ok && `${fmtRatio(isoGrowth)} vs the floor's ${fmtRatio(floorGrowth)}${prepGrowth !== undefined ? ` (prepareSandbox: ${fmtRatio(prepGrowth)})` : ''}`,
    );
  }

  // Each extra read-only bind: spawnIsolated's cost over bwrap's (same system binds, 0 and 100 extra).
  const perBind = results.scale && results.scale.mounts && results.scale.mounts.perBindUs;
  const bindsMeasured = perBind && perBind.iso !== null && perBind.bwrap !== null;
  add(
    'each extra read-only bind costs spawnIsolated(b) no more than bwrap (p50 over 100 binds)',
    bindsMeasured,
    bindsMeasured && perBind.iso / perBind.bwrap,
    bindsMeasured && perBind.iso <= perBind.bwrap,
    bindsMeasured && `${perBind.iso.toFixed(1)} us vs bwrap's ${perBind.bwrap.toFixed(1)} us`,
  );

  // The synchronous call's lag beside the asynchronous one's (and the prepared sandbox's two).
  const lag = (d) => `${fmtMs(d.p99)} ms (own lag p50 ${fmtMs(d.ownP50)} / p99 ${fmtMs(d.ownP99)} ms)`;
  const loop = results.eventloop || {};
  const el = loop.iso;
  const ela = loop.isoAsync;
  const beside = (d) => (d ? `; async: ${lag(d)}` : '');
  add('event-loop lag p99 < 2 ms while spawning (spawnIsolated(b), 8 in flight)', el, el && el.p99, el && el.p99 < 2, el && `${lag(el)}${beside(ela)}`);
  add('event-loop lag p99 < 2 ms while spawning (spawnIsolatedAsync(b), 8 in flight)', ela, ela && ela.p99, ela && ela.p99 < 2, ela && lag(ela));
  const elp = loop.prep;
  const elpa = loop.prepAsync;
  add('event-loop lag p99 < 2 ms while spawning (prepareSandbox(b).spawn(), 8 in flight)', elp, elp && elp.p99, elp && elp.p99 < 2, elp && `${lag(elp)}${beside(elpa)}`);
  add('event-loop lag p99 < 2 ms while spawning (prepareSandbox(b).spawnAsync(), 8 in flight)', elpa, elpa && elpa.p99, elpa && elpa.p99 < 2, elpa && lag(elpa));

  const soak = results.soak && results.soak.before ? results.soak : null;
  const rss = soak && soak.after.rss - soak.before.rss;
  const control = soak && soak.control ? soak.control.after.rss - soak.control.before.rss : NaN;
  add(`RSS growth < 10 MB over the soak`, soak, rss, rss < 10 * 1048576, soak && `${fmtBytes(rss)} over ${soak.total} spawns (child_process control: ${fmtBytes(control)})`);
  const fds = soak && soak.after.fds - soak.before.fds;
  add('no fd growth over the soak', soak, fds, fds <= 0, soak && `${fds >= 0 ? '+' : ''}${fds} fds`);
  add('no zombies after the soak', soak, soak && soak.after.zombies, soak && soak.after.zombies === 0, soak && `${soak.after.zombies} zombies`);
  return targets;
}

function formatTargets(targets) {
  return targets.map((t) => `${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'MISS'}  ${t.name}: ${t.shown}`).join('\n');
}

module.exports = { evaluateTargets, formatTargets };
