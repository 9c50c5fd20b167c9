'use strict';
// Section 1b: where a spawn's time goes, the library beside the floor with its set-up.
//
// The program is bench/stamp.c instead of /bin/true: it appends when its main began and
// when it is about to exit (CLOCK_MONOTONIC, the clock of process.hrtime) to a file. With
// the spawner's own readings that splits each spawn in the same way for every variant:
//   call       the spawn call, until the program is exec'd (the floor: clone's return);
//              for the library split into the JavaScript before the addon, the addon's
//              call (the plan's run, pipes, clone, the child's set-up, exec, the handle's
//              native part) and the JavaScript after it (the IsolatedProcess)
//   to main    from the call until the program's main: the kernel's exec and the loader
//   program    the program itself
//   exit       from the program's last reading until the spawner knows of the exit: the
//              kernel's exit and namespace teardown, then (the library) the pidfd's wake-up,
//              wait4, the exit's way through N-API and the event loop to `exited`
// The library's readings around the addon come from wrapping its binding's spawn functions
// for the duration of this section.
const fs = require('fs');
const path = require('path');
const { isoOptions } = require('../variants');
const { runCollect, track } = require('../children');
const { runRounds } = require('../rounds');
const { summarize, fmtMs, table } = require('../stats');

const SEGMENTS = ['before', 'addon', 'after', 'call', 'toMain', 'program', 'exit', 'total'];
const HEADER = ['', 'JS before', 'addon', 'JS after', 'call', 'to main', 'program', 'exit', 'total'];
const FLOOR_SPAWNS = 2;

/** The [main began, about to exit] pairs the program appended, in order. */
function readStamps(file) {
  const buf = fs.readFileSync(file);
  const pairs = [];
  for (let off = 0; off + 16 <= buf.length; off += 16) pairs.push([Number(buf.readBigInt64LE(off)), Number(buf.readBigInt64LE(off + 8))]);
  return pairs;
}

/** Rows of segment samples (ns) for one spawn, keyed `<variant>.<segment>`. */
function segments(key, t, stamp) {
  const [main, end] = stamp;
  const rows = {
    call: t.returned - t.start, toMain: main - t.returned, program: end - main, exit: t.known - end, total: t.known - t.start,
  };
  if (t.addonIn !== undefined) Object.assign(rows, { before: t.addonIn - t.start, addon: t.addonOut - t.addonIn, after: t.returned - t.addonOut });
  return Object.fromEntries(Object.entries(rows).map(([seg, ns]) => [`${key}.${seg}`, [ns]]));
}

/** Wraps the binding's spawn functions to note when the addon was entered and left. */
function instrument(binding, names) {
  const clock = { addonIn: 0, addonOut: 0 };
  const saved = names.map((name) => [name, binding[name]]);
  for (const [name, fn] of saved) {
    binding[name] = (...args) => {
      clock.addonIn = Number(process.hrtime.bigint());
      try {
        return fn(...args);
      } finally {
        clock.addonOut = Number(process.hrtime.bigint());
      }
    };
  }
  return { clock, restore: () => saved.forEach(([name, fn]) => (binding[name] = fn)) };
}

async function run(ctx) {
  const { quick, env } = ctx;
  const rounds = quick ? 30 : 200;
  const warmup = quick ? 5 : 20;
  const skipped = {};
  if (env.stamp.error) return { text: '', skipped: { breakdown: `bench/stamp.c: ${env.stamp.error}` }, data: null };
  const program = env.stamp.path;
  const stampFile = `${program}.stamps`;
  const fresh = () => fs.writeFileSync(stampFile, '');
  fresh();

  const variants = [];
  let probe = null;
  let box = null;
  if (env.floor.error) skipped.hp = `floor: ${env.floor.error}`;
  else if (process.geteuid() !== 0) skipped.hp = 'the floor with the set-up mounts and drops capabilities: root only';
  else {
    variants.push({
      key: 'hp',
      label: "floor + spawnIsolated's set-up",
      run: async () => {
        fresh();
        const out = await runCollect(env.floor.path, [String(FLOOR_SPAWNS), 'bp', '1'], { env: { ...env.floor.env, FLOOR_PROGRAM: program } });
        const stamps = readStamps(stampFile).slice(-FLOOR_SPAWNS);
        const rows = {};
        out.trim().split('\n').forEach((line, i) => {
          const [, total, clone, start] = line.split(' ').map(Number);
          const one = segments('hp', { start, returned: start + clone, known: start + total }, stamps[i]);
          for (const [k, v] of Object.entries(one)) (rows[k] ||= []).push(...v);
        });
        return rows;
      },
    });
  }
  if (env.lib.error) skipped.lib = `spawnIsolated: ${env.lib.error}`;
  else {
    const { binding } = require(path.join(__dirname, '..', '..', 'dist', 'binding.js'));
    probe = instrument(binding, ['spawn', 'spawnPrepared']);
    const options = isoOptions('b', { command: program });
    box = env.lib.exports.prepareSandbox(options);
    const timed = (key, spawn) => async () => {
      fresh();
      const start = Number(process.hrtime.bigint());
      const handle = spawn();
      const returned = Number(process.hrtime.bigint());
      const { addonIn, addonOut } = probe.clock;
      const done = handle.exited;
      const untrack = track(key, (sig) => handle.kill(sig), done);
      const status = await done.finally(untrack);
      const known = Number(process.hrtime.bigint());
      if (status.exitCode !== 0) throw new Error(`${key}: the program exited with ${status.signal || status.exitCode}`);
      return segments(key, { start, addonIn, addonOut, returned, known }, readStamps(stampFile)[0]);
    };
    variants.push({ key: 'i', label: 'prepareSandbox(b).spawn()', run: timed('i', () => box.spawn()) });
    variants.push({ key: 'b', label: 'spawnIsolated(b)', run: timed('b', () => env.lib.spawnIsolated(options)) });
  }

  let samples;
  let failures;
  try {
    ({ samples, failures } = await runRounds(variants, { rounds, warmup }));
  } finally {
    probe?.restore();
    box?.close();
    fs.rmSync(stampFile, { force: true });
  }

  const medians = {};
  for (const v of variants) {
    medians[v.key] = Object.fromEntries(SEGMENTS.map((seg) => [seg, samples[`${v.key}.${seg}`] ? summarize(samples[`${v.key}.${seg}`]).p50 : null]));
  }
  const floor = medians.hp;
  const cell = (x) => (x === null || x === undefined ? '-' : fmtMs(x));
  const rows = [];
  for (const v of variants) {
    rows.push([v.label, ...SEGMENTS.map((seg) => cell(medians[v.key][seg]))]);
    if (v.key !== 'hp' && floor) {
      rows.push(['  over the floor', ...SEGMENTS.map((seg) => (floor[seg] === null || medians[v.key][seg] === null ? '' : cell(medians[v.key][seg] - floor[seg])))]);
    }
  }
  const failed = Object.entries(failures).map(([k, f]) => `${k}: ${f.count} failed (${f.first})`);
  const text = [
    `${rounds} interleaved rounds after ${warmup} warm-up rounds; p50 of each part in ms (parts are medians of their own, so they need not add up to the total).`,
    "The program is bench/stamp.c (it notes when its main began and ended). call: until the program is exec'd (JS before + addon + JS after, for the library);",
    "to main: the kernel's exec and the loader; exit: from the program's end until the spawner knows (the floor: waitpid; the library: `exited`).",
    '',
    table(HEADER, rows),
    ...failed,
  ].join('\n');
  return { text, skipped, data: { rounds, warmup, medians, failures } };
}

module.exports = { name: 'breakdown', title: "1b. Where a spawn's time goes (p50 of each part, against the floor with the set-up)", run };
