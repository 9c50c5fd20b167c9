'use strict';
// Section 4: how spawn latency scales with the parent's memory, with argv/env size,
// and (once the library supports it) with the number of bind mounts.
//
// Memory is the one that separates the approaches: fork() (child_process) copies the
// parent's page tables, so its cost grows with resident memory; clone(CLONE_VM|
// CLONE_VFORK) shares them, so spawnIsolated should stay flat.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { isoOptions, TRUE } = require('../variants');
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

/** One step: both variants interleaved; returns { iso, cp } summaries (null when skipped) and failures. */
async function step(variants, rounds, warmup) {
  const { samples, failures, skipped } = await runRounds(variants, { rounds, warmup });
  return {
    iso: samples.iso ? summarize(samples.iso) : null,
    cp: samples.cp ? summarize(samples.cp) : null,
    failures,
    skipped,
  };
}

function stepRow(label, r, base) {
  const cell = (s) => (s ? fmtMs(s.p50) : '-');
  const p99 = (s) => (s ? fmtMs(s.p99) : '-');
  const growth = (s, b) => (s && b ? fmtRatio(s.p50 / b.p50) : '-');
  const fails = Object.entries(r.failures)
    .map(([k, f]) => `${k}: ${f.count} failed (${f.first})`)
    .join('; ');
  return [
    label,
    cell(r.iso),
    p99(r.iso),
    growth(r.iso, base && base.iso),
    cell(r.cp),
    p99(r.cp),
    growth(r.cp, base && base.cp),
    r.iso && r.cp ? fmtRatio(r.cp.p50 / r.iso.p50) : '-',
    fails,
  ];
}

const HEADER = ['', 'iso p50', 'iso p99', 'iso vs 1st', 'cp p50', 'cp p99', 'cp vs 1st', 'cp/iso', ''];

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
    const r = await step(pair(ctx.env), rounds, warmup);
    ballast.length = 0; // drop the only references, then collect so the memory goes back to the kernel
    await fullGc();
    base ||= r;
    rows.push(stepRow(`+${fmtBytes(bytes)} (rss ${fmtBytes(rss)})`, r, base));
    data.push({ ballastBytes: bytes, rssBytes: rss, iso: r.iso, cp: r.cp, failures: r.failures });
    Object.assign(out.skipped, r.skipped);
  }
  out.data.memory = { rounds, warmup, steps: data };
  out.text.push(`Parent memory (ballast allocated and touched; ${rounds} interleaved rounds per step, ms):`, table(HEADER, rows), '');
}

async function argvScale(ctx, out) {
  const rounds = ctx.quick ? 15 : 100;
  const warmup = ctx.quick ? 2 : 5;
  const counts = [0, 1000, 10000];
  const rows = [];
  const data = { args: [], env: [] };
  // argv: N arguments of 12 bytes; env: N variables of about 20 bytes (replacing the
  // inherited environment, identically for both variants).
  for (const [kind, make] of [
    ['args', (n) => ({ args: Array.from({ length: n }, (_, i) => `arg-${String(i).padStart(8, '0')}`) })],
    ['env', (n) => ({ vars: Object.fromEntries(Array.from({ length: n }, (_, i) => [`BENCH_VAR_${i}`, `value-${i}`])) })],
  ]) {
    let base = null;
    for (const n of counts) {
      const r = await step(pair(ctx.env, make(n)), rounds, warmup);
      base ||= r;
      rows.push(stepRow(`${kind} = ${n}`, r, base));
      data[kind].push({ count: n, iso: r.iso, cp: r.cp, failures: r.failures });
      Object.assign(out.skipped, r.skipped);
    }
  }
  out.data.argv = { rounds, warmup, ...data };
  out.text.push(`argv / env size (${rounds} interleaved rounds per step, ms):`, table(HEADER, rows), '');
}

// The library's future bind-mount option. Its shape is not settled yet: this is a
// guess in bubblewrap's terms ({ type: 'bind', source, target, readonly }). Adjust it
// here when the option lands; until then the library's TypeError (unknown option, or
// a shape it rejects) is printed as the reason the sub-section is skipped.
function bindMounts(dir, n) {
  return Array.from({ length: n }, (_, i) => ({ type: 'bind', source: path.join(dir, 'src'), target: path.join(dir, 'mnt', String(i)), readonly: true }));
}

/**
 * Is the `mounts` option supported? Accepting it is not enough (an unknown option
 * may be ignored): a shell in the child must see a file through the bind mount.
 * Returns null when supported, else the reason to skip.
 */
async function mountsSupport(spawnIsolated, dir) {
  const [m] = bindMounts(dir, 1);
  const probe = { ...isoOptions('b'), command: '/bin/sh', args: ['-c', `test -e ${m.target}/marker`], mounts: [m] };
  try {
    await runIso(spawnIsolated, probe);
    return null;
  } catch (err) {
    if (err instanceof TypeError) return `spawnIsolated does not support the \`mounts\` option (TypeError: ${oneLine(err)})`;
    return `a spawn with one bind mount did not see the mounted file (${oneLine(err)})`;
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
    for (let i = 0; i < Math.max(...counts); i++) fs.mkdirSync(path.join(dir, 'mnt', String(i)), { recursive: true });
    const unsupported = await mountsSupport(env.lib.spawnIsolated, dir);
    if (unsupported) {
      out.skipped.mounts = unsupported;
      return;
    }
    const rounds = ctx.quick ? 15 : 100;
    const warmup = ctx.quick ? 2 : 5;
    const rows = [];
    const data = [];
    let base = null;
    for (const n of counts) {
      const variants = pair(env, { extraIso: { mounts: bindMounts(dir, n) } }).filter((v) => v.key === 'iso');
      const r = await step(variants, rounds, warmup);
      base ||= r;
      rows.push([`mounts = ${n}`, r.iso ? fmtMs(r.iso.p50) : '-', r.iso ? fmtMs(r.iso.p99) : '-', r.iso && base.iso ? fmtRatio(r.iso.p50 / base.iso.p50) : '-']);
      data.push({ count: n, iso: r.iso, failures: r.failures });
      Object.assign(out.skipped, r.skipped);
    }
    out.data.mounts = { rounds, warmup, steps: data };
    out.text.push(`Bind mounts, spawnIsolated(b) only (${rounds} rounds per step, ms):`, table(['', 'iso p50', 'iso p99', 'iso vs 1st'], rows), '');
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
