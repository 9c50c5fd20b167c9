'use strict';
// Summary statistics and number formatting shared by every section.

/** Nearest-rank percentile of an ascending-sorted array (p in 0..100). */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * Summarise samples given in nanoseconds; the result is in milliseconds,
 * the unit every table and the JSON use.
 */
function summarize(samplesNs) {
  const ms = samplesNs.map((ns) => Number(ns) / 1e6).sort((a, b) => a - b);
  const n = ms.length;
  if (n === 0) return { n: 0, p50: NaN, p99: NaN, mean: NaN, min: NaN, max: NaN };
  const mean = ms.reduce((s, x) => s + x, 0) / n;
  return {
    n,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    mean,
    min: ms[0],
    max: ms[n - 1],
  };
}

function fmtMs(x, digits = 3) {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function fmtRatio(x) {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-';
}

/** Bytes as MB (or GB from 1 GB up), signed when negative. */
function fmtBytes(bytes) {
  if (!Number.isFinite(bytes)) return '-';
  return Math.abs(bytes) >= 1073741824 ? `${(bytes / 1073741824).toFixed(1)} GB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

/** Plain-text table: columns padded to their widest cell; numbers right-aligned. */
function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] || '').length)));
  const line = (r) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  ').trimEnd(), ...all.slice(1).map(line)].join('\n');
}

module.exports = { percentile, summarize, fmtMs, fmtRatio, fmtBytes, table };
