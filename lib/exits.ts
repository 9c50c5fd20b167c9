/**
 * Exits reach JavaScript one per event-loop iteration. When several sandboxes exit between
 * two iterations (8 in flight at full speed), libuv reports all their pidfds in one poll
 * phase; delivered there, each `exited` continuation may start the next sandbox, and a
 * synchronous spawn blocks for its set-up (~1-2 ms until exec) every time: one iteration
 * then took as many set-ups as there were exits, and timers and I/O waited for all of them.
 * Queued here and delivered one per check phase instead (setImmediate: the same iteration
 * for the first, the next ones for the others), an iteration does at most one such spawn,
 * in the same total time.
 */
const queue: (() => void)[] = [];
let scheduled = false;

function deliverOne(): void {
  scheduled = false;
  const next = queue.shift();
  // Scheduled before the delivery runs: an immediate queued during the check phase runs in
  // the next iteration, after its timers and I/O.
  if (queue.length > 0) schedule();
  next?.();
}

function schedule(): void {
  scheduled = true;
  setImmediate(deliverOne);
}

/** Runs `deliver` in a check phase of its own, after the exits queued before it. */
export function deliverExit(deliver: () => void): void {
  queue.push(deliver);
  if (!scheduled) schedule();
}
