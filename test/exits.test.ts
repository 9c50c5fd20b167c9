/**
 * Exits reach JavaScript one per event-loop iteration (lib/exits.ts): two sandboxes that have
 * both exited by the time the loop polls are delivered in two iterations, so that a
 * synchronous spawn started from each `exited` continuation does not run back to back with
 * the other in one iteration while timers and I/O wait.
 */
import * as fs from 'node:fs';
import { prepareSandbox, spawnIsolated } from '../lib';

jest.setTimeout(30_000);

/** The state letter of a process (Z for a zombie), or null once it is gone. */
function state(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return null;
  }
}

/** Blocks this thread (the event loop with it) until every pid is a zombie: all exited, none reaped yet. */
function blockUntilExited(pids: number[]): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 10_000;
  while (!pids.every((pid) => state(pid) === 'Z')) {
    if (Date.now() > deadline) throw new Error(`not all of ${pids.join(', ')} exited within 10 s`);
    Atomics.wait(sleeper, 0, 0, 5);
  }
}

describe('exits are delivered one per event-loop iteration', () => {
  test.each([
    ['spawnIsolated', (): ReturnType<typeof spawnIsolated> => spawnIsolated({ command: '/bin/true', pid: true, stdio: 'ignore' })],
    ['a prepared sandbox', ((box) => () => box.spawn())(prepareSandbox({ command: '/bin/true', pid: true, stdio: 'ignore' }))],
  ])('%s: three exits ready in the same poll reach their continuations in three iterations', async (_, spawn) => {
    // An iteration counter: a setImmediate chain advances once per check phase.
    let iteration = 0;
    let ticker: NodeJS.Immediate | undefined;
    const tick = (): void => {
      iteration++;
      ticker = setImmediate(tick);
    };
    tick();
    try {
      const children = [spawn(), spawn(), spawn()];
      const seen: number[] = [];
      const done = children.map((child) => child.exited.then((status) => {
        expect(status.exitCode).toBe(0);
        seen.push(iteration);
      }));
      // Every pidfd becomes readable before the loop polls again.
      blockUntilExited(children.map((c) => c.pid));
      await Promise.all(done);
      expect(seen).toHaveLength(3);
      expect(new Set(seen).size).toBe(3);
    } finally {
      if (ticker) clearImmediate(ticker);
    }
  });
});
