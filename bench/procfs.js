'use strict';
// What /proc says about this process: open fds, threads, children, zombies.
// Used by the soak section and by the final "nothing left behind" check.
const fs = require('fs');

function countDir(dir) {
  try {
    return fs.readdirSync(dir).length;
  } catch {
    return NaN;
  }
}

/** Open file descriptors of this process (the readdir's own fd included, consistently). */
function openFdCount() {
  return countDir('/proc/self/fd');
}

function threadCount() {
  return countDir('/proc/self/task');
}

/** Parse /proc/<pid>/stat: the comm field may contain spaces and ')' so split after the last ')'. */
function readStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null; // exited between readdir and read
  }
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  return { pid: Number(pid), comm: text.slice(text.indexOf('(') + 1, close), state: rest[0], ppid: Number(rest[1]) };
}

/** Every process whose parent is this process (any state), by scanning /proc. */
function ourChildren() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (st && st.ppid === process.pid) out.push(st);
  }
  return out;
}

/** Children of this process in state Z: exited but never reaped. */
function zombies() {
  return ourChildren().filter((c) => c.state === 'Z');
}

module.exports = { openFdCount, threadCount, ourChildren, zombies };
