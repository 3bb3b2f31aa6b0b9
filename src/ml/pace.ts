/**
 * Keeps a training worker to a share of one core: after each unit of work
 * it sleeps in proportion to how long the work took.
 *
 * Why: a worker fitting flat out takes a whole core, and on a two-core
 * machine the event loop, PostgreSQL and the callers share the other one, so
 * Predict's tail latency rose by two thirds while a large model trained.
 * Training can wait a little; serving should not. Atomics.wait blocks only
 * this worker thread, never the event loop.
 */

/** A function to call after each unit of work; it sleeps as needed. */
export type Pacer = () => void;

/** A pacer for `share` of a core (1 means never sleep). */
export function createPacer(share: number, now: () => number = () => performance.now()): Pacer {
  if (!(share > 0 && share < 1)) return () => undefined;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  let last = now();
  return () => {
    const busy = now() - last;
    const rest = (busy * (1 - share)) / share;
    // Sleep only for a millisecond or more: Atomics.wait's granularity.
    if (rest >= 1) Atomics.wait(cell, 0, 0, rest);
    last = now();
  };
}
