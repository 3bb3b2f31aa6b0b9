/** Runs `task` for 0..count-1 with at most `concurrency` at once (a bounded work queue). */
export async function forEachLimited(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let nextIndex = 0;
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (nextIndex < count) await task(nextIndex++);
  });
  await Promise.all(lanes);
}
