'use strict';
// A hand-written SVG chart of the latency section: one horizontal bar per variant
// (length = p50) with a whisker out to p99, labelled. No dependencies.

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A "nice" tick step (1, 2 or 5 x 10^k) giving about `target` ticks up to max. */
function tickStep(max, target = 6) {
  const raw = max / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function colour(label) {
  if (label.includes('floor')) return '#718096'; // "floor + spawnIsolated's set-up" is a floor
  if (label.includes('spawnIsolated')) return '#2b6cb0';
  return '#dd6b20';
}

/**
 * rows: [{ label, p50, p99 }] in ms. Returns the SVG document as a string.
 */
function latencyChart(rows, { title, subtitle }) {
  const labelW = 330;
  const plotW = 460;
  const valueW = 170;
  const rowH = 26;
  const top = 58;
  const width = labelW + plotW + valueW;
  const height = top + rows.length * rowH + 40;
  const max = Math.max(...rows.map((r) => r.p99), 0.001);
  const step = tickStep(max);
  const axisMax = Math.ceil(max / step) * step;
  const x = (ms) => labelW + (ms / axisMax) * plotW;

  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="38" fill="#4a5568">${esc(subtitle)}</text>`,
  );
  // Grid and axis labels.
  const axisY = top + rows.length * rowH;
  for (let t = 0; t <= axisMax + step / 2; t += step) {
    const tx = x(t).toFixed(1);
    out.push(
      `<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${axisY}" stroke="#e2e8f0"/>`,
      `<text x="${tx}" y="${axisY + 16}" text-anchor="middle" fill="#4a5568">${+t.toFixed(6)}</text>`,
    );
  }
  out.push(`<text x="${labelW + plotW / 2}" y="${axisY + 32}" text-anchor="middle" fill="#4a5568">milliseconds (bar: p50, whisker: p99)</text>`);

  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const mid = y + rowH / 2;
    const barH = rowH - 10;
    out.push(
      `<text x="${labelW - 8}" y="${mid + 4}" text-anchor="end">${esc(r.label)}</text>`,
      `<rect x="${labelW}" y="${y + 5}" width="${(x(r.p50) - labelW).toFixed(1)}" height="${barH}" fill="${colour(r.label)}"/>`,
      `<line x1="${x(r.p50).toFixed(1)}" y1="${mid}" x2="${x(r.p99).toFixed(1)}" y2="${mid}" stroke="#1a202c"/>`,
      `<line x1="${x(r.p99).toFixed(1)}" y1="${mid - 5}" x2="${x(r.p99).toFixed(1)}" y2="${mid + 5}" stroke="#1a202c"/>`,
      `<text x="${labelW + plotW + 8}" y="${mid + 4}" fill="#2d3748">${r.p50.toFixed(3)} / ${r.p99.toFixed(3)}</text>`,
    );
  });
  out.push(`<text x="${labelW + plotW + 8}" y="${top - 8}" fill="#4a5568">p50 / p99 ms</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

module.exports = { latencyChart };
