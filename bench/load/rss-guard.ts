import { processRssMiB } from "./proc.ts";

/** A running RSS watch: `tripped` says whether the limit was crossed, and at what size. */
export interface RssGuard {
  readonly signal: AbortSignal;
  tripped(): number | null;
  stop(): void;
}

/**
 * Checks a process's RSS every second and aborts `signal` once it passes
 * `limitMiB`, so a load that makes the service grow (a model per user) stops
 * before it takes the machine's memory.
 */
export function guardRss(pid: number, limitMiB: number): RssGuard {
  const controller = new AbortController();
  let peak: number | null = null;
  const timer = setInterval(() => {
    const rss = processRssMiB(pid);
    if (rss !== null && rss > limitMiB && peak === null) {
      peak = rss;
      controller.abort();
    }
  }, 1_000);
  return {
    signal: controller.signal,
    tripped: () => peak,
    stop: () => clearInterval(timer),
  };
}
