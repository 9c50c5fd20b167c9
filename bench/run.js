#!/usr/bin/env node
'use strict';
// `npm run bench`: spawnIsolated side by side with child_process, unshare(1), bwrap,
// nsjail and a C floor, in one run. See bench/README.md.
//
//   node bench/run.js [--quick] [--save] [--only=latency,throughput,eventloop,scale,soak]
//
// Prints a table per section, then the project's targets; writes latest.json and latency.svg
// to bench/results/run/ (not tracked), or with --save to bench/results/ (the tracked copy the
// README quotes).
const fs = require('fs');
const os = require('os');
const path = require('path');
const setup = require('./setup');
const children = require('./children');
const { ourChildren } = require('./procfs');
const { latencyChart } = require('./svg');
const { evaluateTargets, formatTargets } = require('./targets');
const { isoOptions } = require('./variants');

const SECTIONS = [
  require('./sections/latency'),
  require('./sections/breakdown'),
  require('./sections/throughput'),
  require('./sections/eventloop'),
  require('./sections/scale'),
  require('./sections/soak'),
];
const RESULTS_DIR = path.join(__dirname, 'results');
const UNSAVED_DIR = path.join(RESULTS_DIR, 'run');
let stopping = false; // set on SIGINT/SIGTERM while the children are being killed

function parseArgs(argv) {
  const opts = { quick: false, save: false, only: null };
  for (const arg of argv) {
    if (arg === '--quick') opts.quick = true;
    else if (arg === '--save') opts.save = true;
    else if (arg.startsWith('--only=')) opts.only = arg.slice('--only='.length).split(',').filter(Boolean);
    else if (arg === '--help' || arg === '-h') {
      console.log(`usage: node bench/run.js [--quick] [--save] [--only=${SECTIONS.map((s) => s.name).join(',')}]`);
      process.exit(0);
    } else {
      console.error(`unknown argument: ${arg} (try --help)`);
      process.exit(2);
    }
  }
  const unknown = (opts.only || []).filter((n) => !SECTIONS.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`unknown section(s): ${unknown.join(', ')}; known: ${SECTIONS.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  return opts;
}

const log = (msg) => console.log(msg);

/** Find or build everything the variants need; each missing piece becomes a skip reason. */
function prepare(needsBwrap) {
  const lib = setup.loadLibrary();
  const floor = setup.buildFloor();
  // The floor's set-up row installs the seccomp programs spawnIsolated(b) installs.
  if (!floor.error && !lib.error) {
    const filters = setup.floorFilters(isoOptions('b'));
    if (filters.error) floor.error = filters.error;
    else floor.env = filters.env;
  }
  const stamp = setup.buildStamp();
  const unshare = setup.which('unshare') ? { path: setup.which('unshare') } : { error: 'unshare(1) not on PATH' };
  // Installing bwrap (apt-get) only makes sense when the latency or scale section will use it.
  const bwrap = needsBwrap ? setup.ensureBwrap(log) : { error: 'not needed by the selected sections' };
  const nsjail = setup.findNsjail();
  return { lib, floor, stamp, unshare, bwrap, nsjail };
}

function machineInfo(opts) {
  let libVersion = null;
  try {
    libVersion = JSON.parse(fs.readFileSync(path.join(setup.ROOT, 'package.json'), 'utf8')).version;
  } catch {
    // not fatal
  }
  return {
    date: new Date().toISOString(),
    quick: opts.quick,
    only: opts.only,
    node: process.version,
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: (os.cpus()[0] || {}).model,
    totalMemBytes: os.totalmem(),
    uid: process.getuid(),
    library: libVersion,
    loadavgAtStart: os.loadavg(),
  };
}

/** Write via a temporary file and rename, so a reader never sees half a file. */
function writeAtomic(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/**
 * Kill and reap everything we started; report anything the tracker did not know about
 * (a child of this process that is still there would be a leak in a spawner).
 */
async function cleanup() {
  const killed = await children.killAll();
  const left = ourChildren();
  for (const c of left) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  return { killedTracked: killed, untrackedLeft: left.map((c) => ({ pid: c.pid, comm: c.comm, state: c.state })) };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const selected = SECTIONS.filter((s) => !opts.only || opts.only.includes(s.name));
  const started = Date.now();

  // The run must end by itself: kill hung children, and give up entirely past a hard limit.
  const stopWatchdog = children.startWatchdog(10000);
  const hardLimitMs = (opts.quick ? 3 : 15) * 60 * 1000;
  const hardLimit = setTimeout(async () => {
    console.error(`bench: still running after ${hardLimitMs / 60000} min; killing children and giving up`);
    await cleanup();
    process.exit(1);
  }, hardLimitMs);
  hardLimit.unref();
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, async () => {
      stopping = true; // main() must not go on to the next section or write results
      console.error(`bench: ${sig}; killing children`);
      await cleanup();
      process.exit(130);
    });
  }

  const info = machineInfo(opts);
  log(`nsjail-node bench${opts.quick ? ' (--quick: small counts, numbers are indicative only)' : ''}`);
  log(`node ${info.node}, kernel ${info.kernel}, ${info.cpus} x ${info.cpuModel}, uid ${info.uid}`);
  // Other work on the machine slows every variant, and not all alike: say so up front.
  const load = info.loadavgAtStart[0];
  log(`load average ${load.toFixed(2)}${load > info.cpus / 2 ? ': the machine has been busy, expect noisier numbers' : ''}`);
  const env = prepare(selected.some((s) => s.name === 'latency' || s.name === 'scale'));
  log('setup:');
  log(`  spawnIsolated: ${env.lib.error || 'loaded from dist/index.js'}`);
  log(`  floor:         ${env.floor.error || path.relative(setup.ROOT, env.floor.path)}`);
  log(`  unshare:       ${env.unshare.error || env.unshare.path}`);
  log(`  bwrap:         ${env.bwrap.error || env.bwrap.path}`);
  log(`  nsjail:        ${env.nsjail.error || env.nsjail.path}`);

  const results = {};
  let failedSections = 0;
  for (const section of selected) {
    if (stopping) return;
    log(`\n=== ${section.title} ===`);
    const t0 = Date.now();
    try {
      const r = await section.run({ quick: opts.quick, env });
      if (r.text) log(r.text);
      const skips = Object.entries(r.skipped || {});
      for (const [what, why] of skips) log(`skipped ${what}: ${why}`);
      results[section.name] = { seconds: (Date.now() - t0) / 1000, skipped: r.skipped || {}, ...r.data, chartRows: r.chartRows };
    } catch (err) {
      if (stopping) return; // killed by the signal handler, which exits
      failedSections++;
      log(`section ${section.name} FAILED: ${err.stack || err}`);
      results[section.name] = { error: String(err.stack || err) };
      // Whatever the failed section left running must not distort the next one.
      await children.killAll();
    }
    log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }

  if (stopping) return;
  const targets = evaluateTargets(results);
  log('\n=== Targets ===');
  log(formatTargets(targets));

  stopWatchdog();
  const cleaned = await cleanup();
  if (cleaned.killedTracked || cleaned.untrackedLeft.length) {
    log(`\ncleanup: killed ${cleaned.killedTracked} tracked child(ren); untracked children left: ${JSON.stringify(cleaned.untrackedLeft)}`);
  }

  const latency = results.latency;
  const chartRows = latency && latency.chartRows;
  if (latency) delete latency.chartRows;
  const json = { meta: { ...info, loadavgAtEnd: os.loadavg(), seconds: (Date.now() - started) / 1000 }, setup: summarizeEnv(env), results, targets, cleanup: cleaned };
  const outDir = opts.save ? RESULTS_DIR : UNSAVED_DIR;
  const shown = path.relative(path.join(__dirname, '..'), outDir);
  writeAtomic(path.join(outDir, 'latest.json'), JSON.stringify(json, null, 2) + '\n');
  if (chartRows && chartRows.length) {
    const subtitle = `${info.date.slice(0, 10)}, node ${info.node}, kernel ${info.kernel}, ${info.cpus} CPUs` + (opts.quick ? ' (--quick)' : '');
    writeAtomic(path.join(outDir, 'latency.svg'), latencyChart(chartRows, { title: 'Spawn latency of /bin/true', subtitle }));
  }
  const loadEnd = os.loadavg()[0];
  if (loadEnd > info.cpus / 2) log(`\nload average at the end: ${loadEnd.toFixed(2)}: other work ran alongside; compare ratios, not times`);
  log(`\nwrote ${shown}/latest.json${chartRows && chartRows.length ? ` and ${shown}/latency.svg` : ''}${opts.save ? '' : ' (--save writes the tracked bench/results/)'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // Exit explicitly: a library handle still referenced must not keep the run alive.
  process.exit(failedSections ? 1 : 0);
}

function summarizeEnv(env) {
  const show = (p) => (p.startsWith(setup.ROOT + path.sep) ? path.relative(setup.ROOT, p) : p);
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.error ? { skipped: v.error } : { path: v.path ? show(v.path) : 'dist/index.js' }]));
}

main().catch(async (err) => {
  console.error(err.stack || err);
  await cleanup();
  process.exit(1);
});
