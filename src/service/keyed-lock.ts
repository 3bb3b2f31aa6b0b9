/** Runs tasks one after another per key; tasks under different keys run concurrently. */
export interface KeyedLock {
  run<T>(key: string, task: () => Promise<T>): Promise<T>;
  /** True while a task for the key runs or waits. */
  busy(key: string): boolean;
}

/**
 * Why a lock: two Train calls for the same user and model type must not
 * interleave (both would number their version "next" and race to activate).
 * Chaining promises per key serialises them without blocking other users.
 */
export function createKeyedLock(): KeyedLock {
  const tails = new Map<string, Promise<unknown>>();
  return {
    run(key, task) {
      const previous = tails.get(key) ?? Promise.resolve();
      const current = previous.then(task, task);
      const tail = current.catch(() => undefined);
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return current;
    },
    busy(key) {
      return tails.has(key);
    },
  };
}
