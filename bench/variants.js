'use strict';
// The ways of spawning /bin/true that the benchmark compares, side by side.
//
// Every variant has the same shape so the sections can treat them alike:
//   { key, label, skip, run() }
// run() does one spawn (the floor: a small batch, timed inside the C program)
// and resolves to an object { [rowKey]: [nanoseconds, ...] }: for a JavaScript
// variant { [key]: [ns], [key.call]: [ns the spawn call blocked the event loop] }.
// skip is null, or a sentence saying why the variant cannot run here.
const { runCp, runIso, runCollect } = require('./children');

const TRUE = '/bin/true';

// Namespace sets, spelled out in full so the library's defaults cannot change what is measured.
const NS = {
  none: { pid: false, net: false, mount: false, uts: false, ipc: false, user: false, cgroup: false },
  b: { pid: true, net: true, mount: true, uts: true, ipc: true, user: false, cgroup: false },
  c: { pid: true, net: true, mount: true, uts: true, ipc: true, user: true, cgroup: true },
};

/** spawnIsolated options for a namespace set, plus extras (args, env, mounts ...). */
function isoOptions(set, extra = {}) {
  return { command: TRUE, stdio: 'ignore', ...NS[set], ...extra };
}

// unshare(1) needs --fork: unshare(CLONE_NEWPID) only moves the *children* of the
// caller into the new PID namespace, so without it /bin/true would not be isolated.
const UNSHARE_ARGS = ['--pid', '--net', '--mount', '--uts', '--ipc', '--fork', TRUE];
const BWRAP_ARGS = ['--unshare-pid', '--unshare-net', '--unshare-uts', '--unshare-ipc', '--dev-bind', '/', '/', TRUE];
// nsjail unshares everything by default; turn user and cgroup off to match (b), keep / as the root.
const NSJAIL_ARGS = [
  '--mode', 'o', '--quiet', '--chroot', '/', '--rw', '--disable_proc',
  '--disable_clone_newuser', '--disable_clone_newcgroup', '--', TRUE,
];

// Floor batches: the C program runs FLOOR_PER_ROUND timed spawns of each set after
// one untimed round, every time the latency section asks it for a round.
const FLOOR_PER_ROUND = 2;
// bp: (b) plus, in C, the set-up spawnIsolated's child makes by default (floor.c); it
// mounts and drops capabilities, so only as root.
const FLOOR_SETS = process.geteuid() === 0 ? 'b,none,c,bp' : 'b,none,c';
const FLOOR_WARMUP = 1;

// Each line: "<set> <total ns> <clone-return ns>"; the clone-return time goes in the
// same ".call" row as a JavaScript variant's in-call time (both: until the child has exec'd).
function parseFloor(out) {
  const rowKey = { b: 'h', none: 'h0', c: 'hc', bp: 'hp' };
  const rows = {};
  for (const line of out.trim().split('\n')) {
    const [set, total, clone] = line.split(' ');
    const key = rowKey[set];
    (rows[key] ||= []).push(Number(total));
    (rows[`${key}.call`] ||= []).push(Number(clone));
  }
  return rows;
}

/**
 * The latency variants (a)..(h). env: { lib, floor, bwrap, nsjail } from setup.js.
 * Rows h0 and hc are extra floors (no namespaces; all + user) that the floor run
 * produces alongside h, so (a) and (c) can also be compared with their own floor.
 */
function latencyVariants(env) {
  const isoSkip = env.lib.error ? `spawnIsolated: ${env.lib.error}` : null;
  const rowsOf = (key, r) => ({ [key]: [r.ns], [`${key}.call`]: [r.callNs] });
  const iso = (key, set) => async () => rowsOf(key, await runIso(env.lib.spawnIsolated, isoOptions(set)));
  // (i): the options of (b) validated and compiled once, before the rounds.
  const prepSkip = isoSkip || (typeof env.lib.exports.prepareSandbox !== 'function' ? 'the library exports no prepareSandbox()' : null);
  const box = prepSkip ? null : env.lib.exports.prepareSandbox(isoOptions('b'));
  const prepared = async () => rowsOf('i', await runIso(() => box.spawn(), null));
  const viaCp = (key, command, args) => async () => rowsOf(key, await runCp(command, args));
  return [
    { key: 'a', label: '(a) spawnIsolated, no namespaces', skip: isoSkip, run: iso('a', 'none') },
    { key: 'b', label: '(b) spawnIsolated, pid+net+mount+uts+ipc', skip: isoSkip, run: iso('b', 'b') },
    { key: 'c', label: '(c) spawnIsolated, (b)+user+cgroup', skip: isoSkip, run: iso('c', 'c') },
    { key: 'i', label: '(i) prepareSandbox(b).spawn()', skip: prepSkip, run: prepared },
    { key: 'd', label: "(d) child_process.spawn('/bin/true')", skip: null, run: viaCp('d', TRUE, []) },
    { key: 'e', label: '(e) child_process.spawn unshare --fork', skip: env.unshare.error || null, run: viaCp('e', env.unshare.path, UNSHARE_ARGS) },
    { key: 'f', label: '(f) child_process.spawn bwrap', skip: env.bwrap.error || null, run: viaCp('f', env.bwrap.path, BWRAP_ARGS) },
    { key: 'g', label: '(g) child_process.spawn nsjail', skip: env.nsjail.error || null, run: viaCp('g', env.nsjail.path, NSJAIL_ARGS) },
    {
      key: 'h',
      label: '(h) floor: C clone+execve+waitpid, as (b)',
      // Extra rows the same floor run produces: each of (a) and (c) also gets its own floor.
      extraRows: {
        h0: '    floor, no namespaces (for a)',
        hc: '    floor, (b)+user+cgroup (for c)',
        hp: "    floor + spawnIsolated's set-up, as (b)",
      },
      skip: env.floor.error ? `floor: ${env.floor.error}` : null,
      run: async () =>
        parseFloor(await runCollect(env.floor.path, [String(FLOOR_PER_ROUND), FLOOR_SETS, String(FLOOR_WARMUP)], { env: env.floor.env })),
    },
  ];
}

/**
 * One round of the floor with the (b) namespaces: { floor: [ns, ns] } (FLOOR_PER_ROUND timed
 * spawns), with `args` arguments and `vars` environment variables as the argv/env rows give.
 */
async function floorRound(env, { args = 0, vars = 0 } = {}) {
  const rows = parseFloor(await runCollect(env.floor.path, [String(FLOOR_PER_ROUND), 'b', String(FLOOR_WARMUP), String(args), String(vars)]));
  return { floor: rows.h };
}

module.exports = { latencyVariants, floorRound, isoOptions, NS, TRUE, UNSHARE_ARGS, BWRAP_ARGS, NSJAIL_ARGS };
