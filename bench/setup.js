'use strict';
// Getting the things the benchmark compares ready: the library, the C floor, bwrap, nsjail.
// Each function returns what it found or a reason to skip; none of them throws.
const cp = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const BUILD_DIR = path.join(__dirname, 'build');

/** { spawnIsolated, exports } or { error } when dist/ is missing or fails to load (e.g. addon not built). */
function loadLibrary() {
  const entry = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(entry)) return { error: 'not built (dist/index.js missing: run `npm run build`)' };
  try {
    const lib = require(entry);
    if (typeof lib.spawnIsolated !== 'function') return { error: 'dist/index.js does not export spawnIsolated' };
    return { spawnIsolated: lib.spawnIsolated, spawnIsolatedAsync: lib.spawnIsolatedAsync, exports: lib };
  } catch (err) {
    return { error: `not built (loading dist/index.js failed: ${err.message.split('\n')[0]})` };
  }
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = path.join(dir || '.', cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Compile bench/<name>.c into bench/build/<name> unless the binary is newer than the source. */
function buildC(name) {
  const src = path.join(__dirname, `${name}.c`);
  const bin = path.join(BUILD_DIR, name);
  try {
    if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs) return { path: bin };
    fs.mkdirSync(BUILD_DIR, { recursive: true });
    const r = cp.spawnSync('cc', ['-O2', '-Wall', '-o', bin, src], { encoding: 'utf8' });
    if (r.error) return { error: `cc not available (${r.error.message})` };
    if (r.status !== 0) return { error: `cc failed: ${r.stderr.trim()}` };
    return { path: bin };
  } catch (err) {
    return { error: err.message };
  }
}

/** The C floor (bench/floor.c). */
const buildFloor = () => buildC('floor');

/** The breakdown section's program (bench/stamp.c). */
const buildStamp = () => buildC('stamp');

/**
 * The seccomp programs spawnIsolated's child installs for `options` (net: true's
 * socket-family filter), taken from the library's own compiled plan and written to
 * bench/build/, so that the floor's set-up row installs the very same ones. Returns the
 * environment for the floor ({ FLOOR_SECCOMP: 'file:file' }, empty when the plan has none),
 * or { error }.
 */
function floorFilters(options) {
  try {
    const { validateOptions } = require(path.join(ROOT, 'dist', 'options.js'));
    const { compilePlan } = require(path.join(ROOT, 'dist', 'plan.js'));
    const programs = compilePlan(validateOptions(options)).native.steps.filter((s) => s.op === 'seccomp').map((s) => s.data);
    fs.mkdirSync(BUILD_DIR, { recursive: true });
    const files = programs.map((program, i) => {
      const file = path.join(BUILD_DIR, `floor-seccomp-${i}.bin`);
      fs.writeFileSync(file, program);
      return file;
    });
    return { env: files.length ? { FLOOR_SECCOMP: files.join(':') } : {} };
  } catch (err) {
    return { error: `the library's seccomp programs for the floor's set-up: ${err.message.split('\n')[0]}` };
  }
}

/**
 * bwrap on PATH, or installed by scripts/install-bubblewrap.sh (apt-get).
 * Returns { path } or { error } with the reason to skip.
 */
function ensureBwrap(log) {
  const found = which('bwrap');
  if (found) return { path: found };
  const script = path.join(ROOT, 'scripts', 'install-bubblewrap.sh');
  log(`bwrap not found: running ${path.relative(ROOT, script)}`);
  // Bounded: a stuck apt lock or network must not hang the benchmark.
  const r = cp.spawnSync('sh', [script], { encoding: 'utf8', timeout: 180000, stdio: ['ignore', 'pipe', 'pipe'] });
  const again = which('bwrap');
  if (again) return { path: again };
  const why = r.error ? r.error.message : `exit ${r.status}: ${(r.stderr || r.stdout || '').trim().split('\n').pop()}`;
  return { error: `bwrap missing and install-bubblewrap.sh failed (${why})` };
}

function findNsjail() {
  const p = which('nsjail');
  return p ? { path: p } : { error: 'nsjail not on PATH (not packaged for this distribution; install it to include it)' };
}

module.exports = { loadLibrary, buildFloor, buildStamp, floorFilters, ensureBwrap, findNsjail, which, ROOT };
