'use strict';
// Section 4: how spawn latency scales with the parent's memory, with argv/env size,
// and (once the library supports it) with the number of bind mounts.
//
// Memory is the one that separates the approaches: fork() (child_process) copies the
// parent's page tables, so its cost grows with resident memory; clone(CLONE_VM|
// CLONE_VFORK) shares them, so spawnIsolated should stay flat. The C floor runs beside
// them at every step, as a separate small process: on this VM it too gets slower while
// this process holds 2 GB (4.1 -> 5.4 ms with an idle Node process holding 2 GB touched),
// so the machine's share of any growth is visible, and the flatness target is judged on
// spawnIsolated's growth over the floor's.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { floorRound, isoOptions, TRUE } = require('../variants');
const { runCp, runIso } = require('../children');
const { runRounds, oneLine } = require('../rounds');
const { summarize, fmtMs, fmtRatio, fmtBytes, table } = require('../stats');
const { fullGc } = require('../gc');

const MB = 1024 * 1024;
const CHUNK = 64 * MB;

/** Allocate `bytes` in 64 MB Buffers and write every byte, so the pages are really resident. */
function allocateResident(bytes) {
  const chunks = [];
  for (let left = bytes; left > 0; left -= CHUNK) {
    // allocUnsafeSlow: malloc'd (mmap'd) memory outside the pool; fill() touches every page.
    chunks.push(Buffer.allocUnsafeSlow(Math.min(CHUNK, left)).fill(0xa5));
  }
  return chunks;
}

/** The pair compared at every step: spawnIsolated(b) and child_process.spawn, with the same argv/env. */
function pair(env, { args, vars, extraIso } = {}) {
  const isoExtra = { ...(args ? { args } : {}), ...(vars ? { env: vars } : {}), ...extraIso };
  return [
    {
      key: 'iso',
      skip: env.lib.error ? `spawnIsolated: ${env.lib.error}` : null,
      run: async () => ({ iso: [(await runIso(env.lib.spawnIsolated, isoOptions('b', isoExtra))).ns] }),
    },
    {
      key: 'cp',
      skip: null,
      run: async () => ({ cp: [(await runCp(TRUE, args || [], vars ? { env: vars } : {})).ns] }),
    },
  ];
}

/** The C floor as a third variant (memory steps). */
function floorVariant(env) {
  return { key: 'floor', skip: env.floor.error ? `floor: ${env.floor.error}` : null, run: () => floorRound(env) };
}

/** One step: the variants interleaved; returns { iso, cp, floor } summaries (null when skipped or absent) and failures. */
async function step(variants, rounds, warmup) {
  const { samples, failures, skipped } = await runRounds(variants, { rounds, warmup });
  return {
    iso: samples.iso ? summarize(samples.iso) : null,
    cp: samples.cp ? summarize(samples.cp) : null,
    floor: samples.floor ? summarize(samples.floor) : null,
    failures,
    skipped,
  };
}

const cell = (s) => (s ? fmtMs(s.p50) : '-');
const p99 = (s) => (s ? fmtMs(s.p99) : '-');
const growth = (s, b) => (s && b ? fmtRatio(s.p50 / b.p50) : '-');

function failuresText(r) {
  return Object.entries(r.failures)
    .map(([k, f]) => `${k}: ${f.count} failed (${f.first})`)
    .join('; ');
}

function stepRow(label, r, base) {
  return [
    label,
    cell(r.iso),
    p99(r.iso),
    growth(r.iso, base && base.iso),
    cell(r.cp),
    p99(r.cp),
    growth(r.cp, base && base.cp),
    r.iso && r.cp ? fmtRatio(r.cp.p50 / r.iso.p50) : '-',
    failuresText(r),
  ];
}

const HEADER = ['', 'iso p50', 'iso p99', 'iso vs 1st', 'cp p50', 'cp p99', 'cp vs 1st', 'cp/iso', ''];

/** iso's growth since the first step over the floor's: what the parent's size itself adds. */
function isoOverFloorGrowth(r, base) {
  return r.iso && r.floor && base && base.iso && base.floor ? r.iso.p50 / base.iso.p50 / (r.floor.p50 / base.floor.p50) : null;
}

function memoryRow(label, r, base) {
  const relative = isoOverFloorGrowth(r, base);
  return [
    label,
    cell(r.iso),
    growth(r.iso, base && base.iso),
    cell(r.floor),
    growth(r.floor, base && base.floor),
    relative === null ? '-' : fmtRatio(relative),
    cell(r.cp),
    p99(r.cp),
    growth(r.cp, base && base.cp),
    r.iso && r.cp ? fmtRatio(r.cp.p50 / r.iso.p50) : '-',
    failuresText(r),
  ];
}

const MEMORY_HEADER = ['', 'iso p50', 'iso vs 1st', 'floor p50', 'floor vs 1st', 'iso/floor growth', 'cp p50', 'cp p99', 'cp vs 1st', 'cp/iso', ''];

async function memoryScale(ctx, out) {
  const rounds = ctx.quick ? 10 : 100;
  const warmup = ctx.quick ? 2 : 5;
  const steps = [50 * MB, 500 * MB, 2048 * MB];
  const rows = [];
  const data = [];
  let base = null;
  for (const bytes of steps) {
    // Writing 2 GB through page faults takes about 10 s in this VM: too slow for a smoke run.
    if (ctx.quick && bytes > 1024 * MB) {
      out.skipped[`memory ${fmtBytes(bytes)}`] = 'not in --quick (allocating and touching it takes ~10 s here)';
      continue;
    }
    // Room for the ballast plus 1 GB for everything else on the machine.
    if (os.freemem() < bytes + 1024 * MB) {
      out.skipped[`memory ${fmtBytes(bytes)}`] = `needs ${fmtBytes(bytes + 1024 * MB)} free, os.freemem() is ${fmtBytes(os.freemem())}`;
      continue;
    }
    const ballast = allocateResident(bytes);
    const rss = process.memoryUsage().rss;
    const r = await step([...pair(ctx.env), floorVariant(ctx.env)], rounds, warmup);
    ballast.length = 0; // drop the only references, then collect so the memory goes back to the kernel
    await fullGc();
    base ||= r;
    rows.push(memoryRow(`+${fmtBytes(bytes)} (rss ${fmtBytes(rss)})`, r, base));
    data.push({ ballastBytes: bytes, rssBytes: rss, iso: r.iso, cp: r.cp, floor: r.floor, isoOverFloorGrowth: isoOverFloorGrowth(r, base), failures: r.failures });
    Object.assign(out.skipped, r.skipped);
  }
  out.data.memory = { rounds, warmup, steps: data };
  out.text.push(
    `Parent memory (ballast allocated and touched; ${rounds} interleaved rounds per step, ms; the floor is a separate process: its growth is the machine's):`,
    table(MEMORY_HEADER, rows),
    '',
  );
}

/**
 * The argv/env step's variants: spawnIsolated, a prepared sandbox, child_process and the C
 * floor, all with the same arguments or variables. The prepared sandbox gets the arguments per
 * run (what varies between a judge's runs) and the variables at prepare (what does not).
 */
function argvVariants(env, kind, n, strings) {
  const variants = pair(env, kind === 'args' ? { args: strings } : { vars: strings });
  const prepSkip = env.lib.error ? `spawnIsolated: ${env.lib.error}` : typeof env.lib.exports.prepareSandbox !== 'function' ? 'no prepareSandbox()' : null;
  const box = prepSkip ? null : env.lib.exports.prepareSandbox(isoOptions('b', kind === 'env' ? { env: strings } : {}));
  const run = kind === 'args' ? () => box.spawn({ args: strings }) : () => box.spawn();
  variants.push(
    { key: 'prep', skip: prepSkip, run: async () => ({ prep: [(await runIso(run, null)).ns] }) },
    { key: 'floor', skip: env.floor.error ? `floor: ${env.floor.error}` : null, run: () => floorRound(env, kind === 'args' ? { args: n } : { vars: n }) },
  );
  return variants;
}

const ARGV_HEADER = ['', 'iso p50', 'iso vs 1st', 'prep p50', 'prep vs 1st', 'floor p50', 'floor vs 1st', 'iso/floor growth', 'cp p50', 'cp vs 1st', 'cp/iso', ''];

async function argvScale(ctx, out) {
  const rounds = ctx.quick ? 15 : 100;
  const warmup = ctx.quick ? 2 : 5;
  const counts = [0, 1000, 10000];
  const rows = [];
  const data = { args: [], env: [] };
  // argv: N arguments of 12 bytes; env: N variables of about 20 bytes (replacing the
  // inherited environment, identically for every variant; the floor's are the same strings).
  const makers = {
    args: (n) => Array.from({ length: n }, (_, i) => `arg-${String(i).padStart(8, '0')}`),
    env: (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`BENCH_VAR_${i}`, `value-${i}`])),
  };
  for (const kind of ['args', 'env']) {
    let base = null;
    for (const n of counts) {
      const variants = argvVariants(ctx.env, kind, n, makers[kind](n));
      const { samples, failures, skipped } = await runRounds(variants, { rounds, warmup });
      const r = Object.fromEntries(['iso', 'prep', 'cp', 'floor'].map((k) => [k, samples[k] ? summarize(samples[k]) : null]));
      base ||= r;
      const relative = r.iso && r.floor && base.iso && base.floor ? r.iso.p50 / base.iso.p50 / (r.floor.p50 / base.floor.p50) : null;
      rows.push([
        `${kind} = ${n}`, cell(r.iso), growth(r.iso, base.iso), cell(r.prep), growth(r.prep, base.prep), cell(r.floor), growth(r.floor, base.floor),
        relative === null ? '-' : fmtRatio(relative), cell(r.cp), growth(r.cp, base.cp), r.iso && r.cp ? fmtRatio(r.cp.p50 / r.iso.p50) : '-',
        failuresText({ failures }),
      ]);
      data[kind].push({ count: n, ...r, isoOverFloorGrowth: relative, failures });
      Object.assign(out.skipped, skipped);
    }
  }
  out.data.argv = { rounds, warmup, ...data };
  out.text.push(
    `argv / env size (${rounds} interleaved rounds per step, ms); prep = prepareSandbox(b) (args per run, env at prepare); floor = the C floor with the same strings;`,
    '"iso/floor growth" = iso\'s growth since 0 over the floor\'s (1.00: spawnIsolated grows as the kernel\'s copy does):',
    table(ARGV_HEADER, rows),
    '',
  );
}

// Extra bind mounts: n read-only binds of one host directory at n places.
function bindMounts(dir, n) {
  return Array.from({ length: n }, (_, i) => ({ type: 'bind', source: path.join(dir, 'src'), target: path.join(dir, 'mnt', String(i)), readonly: true }));
}

/**
 * Does the library support `mounts`? With it, the sandbox's root is an empty tmpfs
 * populated by the entries (bubblewrap's model), so /bin/true needs the host's system
 * directories bound in: the library's hostSystemMounts() gives those. Accepting the
 * option is not enough (it could be ignored): a shell in the child must see a file
 * through one extra bind mount. Returns { base } (the entries every step starts from)
 * or { skip } with the reason.
 */
async function mountsSupport(lib, dir) {
  if (typeof lib.exports.hostSystemMounts !== 'function')
    return { skip: 'the library exports no hostSystemMounts(), needed to run /bin/true on a mounts-built root' };
  const base = lib.exports.hostSystemMounts();
  const [m] = bindMounts(dir, 1);
  const probe = { ...isoOptions('b'), command: '/bin/sh', args: ['-c', `test -e ${m.target}/marker`], mounts: [...base, m] };
  try {
    await runIso(lib.spawnIsolated, probe);
    return { base };
  } catch (err) {
    if (err instanceof TypeError) return { skip: `spawnIsolated does not support the \`mounts\` option (TypeError: ${oneLine(err)})` };
    return { skip: `a spawn with one bind mount did not see the mounted file (${oneLine(err)})` };
  }
}

async function mountScale(ctx, out) {
  const { env } = ctx;
  if (env.lib.error) {
    out.skipped.mounts = `spawnIsolated: ${env.lib.error}`;
    return;
  }
  const counts = [0, 10, 100];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsjail-bench-mounts-'));
  try {
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(path.join(dir, 'src', 'marker'), '');
    const support = await mountsSupport(env.lib, dir);
    if (support.skip) {
      out.skipped.mounts = support.skip;
      return;
    }
    const rounds = ctx.quick ? 15 : 100;
    const warmup = ctx.quick ? 2 : 5;
    // Interleaved like every other comparison: plain (b) on the host's / as the
    // reference, then the tmpfs root with the system binds plus 0, 10, 100 more.
    const steps = [
      { key: 'host', label: '(b), no mounts option (host /)', extra: {} },
      ...counts.map((n) => ({
        key: `m${n}`,
        label: `hostSystemMounts() (${support.base.length}) + ${n} binds`,
        extra: { mounts: [...support.base, ...bindMounts(dir, n)] },
      })),
    ];
    const variants = steps.map((st) => ({
      key: st.key,
      skip: null,
      run: async () => ({ [st.key]: [(await runIso(env.lib.spawnIsolated, isoOptions('b', st.extra))).ns] }),
    }));
    // bwrap with the same namespaces, the same system binds and the same extra read-only binds.
    const bwrapSystem = support.base.flatMap((m) =>
      m.type === 'bind' ? ['--ro-bind-try', m.source, m.target ?? m.source] : m.type === 'symlink' ? ['--symlink', m.to, m.target] : []);
    for (const n of counts) {
      const binds = bindMounts(dir, n).flatMap((m) => ['--ro-bind', m.source, m.target]);
      const args = ['--unshare-pid', '--unshare-net', '--unshare-uts', '--unshare-ipc', ...bwrapSystem, ...binds, TRUE];
      const key = `bw${n}`;
      steps.push({ key, label: `bwrap, the same system binds + ${n} binds`, extra: null });
      variants.push({ key, skip: env.bwrap.error ? `bwrap: ${env.bwrap.error}` : null, run: async () => ({ [key]: [(await runCp(env.bwrap.path, args)).ns] }) });
    }
    const { samples, failures, skipped } = await runRounds(variants, { rounds, warmup });
    const stats = Object.fromEntries(steps.map((st) => [st.key, samples[st.key] ? summarize(samples[st.key]) : null]));
    const rows = steps.map((st) => {
      const x = stats[st.key];
      const ref = st.key.startsWith('bw') ? stats.bw0 : stats.m0;
      const f = failures[st.key] || (skipped[st.key] && { count: 'all', first: skipped[st.key] });
      return [st.label, x ? fmtMs(x.p50) : '-', x ? fmtMs(x.p99) : '-', x && ref ? fmtRatio(x.p50 / ref.p50) : '-', f ? `${f.count} failed (${f.first})` : ''];
    });
    // Each extra bind's cost: (p50 with 100 - p50 with 0) / 100, in microseconds.
    const perBind = (a, b) => (stats[a] && stats[b] ? ((stats[b].p50 - stats[a].p50) / 100) * 1000 : null);
    const perBindUs = { iso: perBind('m0', 'm100'), bwrap: perBind('bw0', 'bw100') };
    out.data.mounts = { rounds, warmup, systemMounts: support.base.length, perBindUs, steps: steps.map((st) => ({ key: st.key, label: st.label, ...stats[st.key], failures: failures[st.key] || null })) };
    const us = (x) => (x === null ? '-' : `${x.toFixed(1)} us`);
    out.text.push(
      `Mounts (${rounds} interleaved rounds, ms); "vs +0" = p50 / the same tool's p50 with the system binds alone:`,
      table(['', 'p50', 'p99', 'vs +0', ''], rows),
      `Each extra read-only bind (p50 with 100 minus with 0, / 100): spawnIsolated ${us(perBindUs.iso)}, bwrap ${us(perBindUs.bwrap)}`,
      '',
    );
  } finally {
    // The mounts lived in the children's own mount namespaces, so plain removal suffices.
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function run(ctx) {
  const out = { text: [], skipped: {}, data: {} };
  out.text.push('iso = spawnIsolated(b), cp = child_process.spawn; "vs 1st" = p50 / the first step\'s p50; cp/iso > 1 means spawnIsolated is faster.', '');
  await memoryScale(ctx, out);
  await argvScale(ctx, out);
  await mountScale(ctx, out);
  return { text: out.text.join('\n').trimEnd(), skipped: out.skipped, data: out.data };
}

module.exports = { name: 'scale', title: '4. Scale: parent memory, argv/env size, bind mounts', run };
