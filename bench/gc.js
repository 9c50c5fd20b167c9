'use strict';
// A way to force garbage collection without asking users to pass --expose-gc:
// `npm run bench` starts plain `node bench/run.js`. Setting the flag at run time
// makes V8 install gc() in contexts created afterwards, so a fresh vm context has it.
// Used to free the memory ballast between scale steps and to measure RSS after
// the soak without garbage that is merely not yet collected.
const v8 = require('v8');
const vm = require('vm');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** Collect a few times: the first pass may only queue finalizers for external memory. */
async function fullGc() {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

module.exports = { fullGc };
