'use strict';
// Starting, timing and tracking every child the benchmark creates.
//
// Every spawn goes through here so that (1) all variants are timed the same way:
// from just before the spawn call to the moment JavaScript learns of the exit (ns),
// plus how long the spawn call itself blocked the event loop (callNs), and
// (2) the run can always kill and reap whatever is still alive: on a hung child
// (watchdog), on Ctrl-C, on a crash, and at the end.
const cp = require('child_process');

const live = new Map(); // id -> { label, started, maxAgeMs, kill(signal), done: Promise }
let nextId = 0;

// maxAgeMs: how long the watchdog lets it live; undefined = the watchdog's default.
function track(label, kill, done, maxAgeMs) {
  const id = ++nextId;
  live.set(id, { label, started: Date.now(), maxAgeMs, kill, done });
  return () => live.delete(id);
}

/**
 * Kill (SIGKILL) anything that has been alive longer than its maxAgeMs (default
 * defaultMaxAgeMs): /bin/true exits in milliseconds, so a child this old is hung and
 * would stall the run. The timer is unref'd so it never keeps the process alive by itself.
 */
function startWatchdog(defaultMaxAgeMs) {
  const timer = setInterval(() => {
    const now = Date.now();
    for (const entry of live.values()) {
      if (now - entry.started > (entry.maxAgeMs ?? defaultMaxAgeMs)) {
        process.stderr.write(`watchdog: killing ${entry.label}, alive for ${now - entry.started} ms\n`);
        try {
          entry.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}

/** SIGKILL every tracked child and wait (bounded) until each has been reaped. */
async function killAll(timeoutMs = 5000) {
  const entries = [...live.values()];
  for (const e of entries) {
    try {
      e.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([Promise.allSettled(entries.map((e) => e.done)), timeout]);
  clearTimeout(timer);
  return entries.length;
}

function exitError(label, code, signal) {
  return new Error(`${label} exited with ${signal ? `signal ${signal}` : `code ${code}`}`);
}

/**
 * child_process.spawn(command, args) and wait for 'exit'.
 * Resolves to { ns, callNs }; rejects if it did not exit 0.
 */
function runCp(command, args = [], options = {}) {
  const t0 = process.hrtime.bigint();
  const child = cp.spawn(command, args, { stdio: 'ignore', ...options });
  const callNs = Number(process.hrtime.bigint() - t0);
  let untrack = () => {};
  const done = new Promise((resolve, reject) => {
    child.once('error', (err) => {
      untrack();
      reject(err);
    });
    child.once('exit', (code, signal) => {
      const t1 = process.hrtime.bigint();
      untrack();
      if (code === 0) resolve({ ns: Number(t1 - t0), callNs });
      else reject(exitError(command, code, signal));
    });
  });
  untrack = track(command, (sig) => child.kill(sig), done);
  return done;
}

/**
 * spawnIsolated(options) and wait for its `exited` promise.
 * Resolves to { ns, callNs }; rejects (or throws synchronously, as the library
 * does on bad options) if it did not exit 0.
 */
function runIso(spawnIsolated, options) {
  const t0 = process.hrtime.bigint();
  const handle = spawnIsolated(options);
  const callNs = Number(process.hrtime.bigint() - t0);
  const done = handle.exited.then((r) => {
    const t1 = process.hrtime.bigint();
    if (r.exitCode !== 0) throw exitError('spawnIsolated', r.exitCode, r.signal);
    return { ns: Number(t1 - t0), callNs };
  });
  const untrack = track('spawnIsolated', (sig) => handle.kill(sig), done);
  done.then(untrack, untrack);
  return done;
}

/**
 * spawnIsolatedAsync(options) (clone on a spawner thread of the library) and wait for the exit.
 * Resolves to { ns, callNs } like runIso; callNs is the synchronous part of the call.
 */
function runIsoAsync(spawnIsolatedAsync, options) {
  const t0 = process.hrtime.bigint();
  const started = spawnIsolatedAsync(options);
  const callNs = Number(process.hrtime.bigint() - t0);
  let handle = null;
  const done = started.then(({ child }) => {
    handle = child;
    return child.exited;
  }).then((r) => {
    const t1 = process.hrtime.bigint();
    if (r.exitCode !== 0) throw exitError('spawnIsolatedAsync', r.exitCode, r.signal);
    return { ns: Number(t1 - t0), callNs };
  });
  const untrack = track('spawnIsolatedAsync', (sig) => handle && handle.kill(sig), done);
  done.then(untrack, untrack);
  return done;
}

/**
 * Run a program to completion and collect its stdout: bench/build/floor, which times
 * itself and prints its timings, and the soak worker, which prints JSON (and runs for
 * longer than the watchdog's default allows, hence maxAgeMs).
 */
function runCollect(command, args, { maxAgeMs, env } = {}) {
  const child = cp.spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env && { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  let untrack = () => {};
  const done = new Promise((resolve, reject) => {
    child.once('error', (e) => {
      untrack();
      reject(e);
    });
    // 'close', not 'exit': we need all of stdout.
    child.once('close', (code, signal) => {
      untrack();
      if (code === 0) resolve(out);
      if (err.includes('FLOORSPLIT')) require('fs').appendFileSync('/tmp/prof/splits.txt', err);
      if (code === 0) {} else reject(new Error(`${command} failed (${signal || `code ${code}`}): ${err.trim()}`));
    });
  });
  untrack = track(command, (sig) => child.kill(sig), done, maxAgeMs);
  return done;
}

module.exports = {
  runIsoAsync,
  runCp, runIso, runCollect, killAll, startWatchdog, track };
