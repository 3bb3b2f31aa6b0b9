import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import type { TrainResult } from "../ml/train-model.ts";
import type { AnyTrainJob } from "../ml/train-worker.ts";

/** The worker threads that fit models. */
export interface TrainPool {
  run(job: AnyTrainJob, signal?: AbortSignal): Promise<TrainResult>;
  /** Jobs queued for a thread, and jobs being fitted (the training-queue metric). */
  queue(): { waiting: number; running: number };
  close(): Promise<void>;
}

/** One thread fewer than the cores, at least one: the default TRAIN_THREADS. */
export function defaultTrainThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

/**
 * Fitting is CPU-bound; it must never run on the event loop. One thread fewer
 * than the cores (at least one) leaves a core for serving.
 */
export function createTrainPool(threads = defaultTrainThreads()): TrainPool {
  const pool = new Piscina<AnyTrainJob, TrainResult>({
    filename: new URL("../ml/train-worker.ts", import.meta.url).href,
    // One thread is kept warm so the first Train after start does not pay for spinning it up.
    minThreads: 1,
    maxThreads: threads,
    idleTimeout: 60_000,
  });
  let submitted = 0;
  return {
    async run(job, signal) {
      submitted++;
      try {
        return await pool.run(job, signal === undefined ? {} : { signal });
      } finally {
        submitted--;
      }
    },
    queue() {
      // Piscina counts what waits for a thread; the rest of what was submitted is being fitted.
      const waiting = pool.queueSize;
      return { waiting, running: Math.max(0, submitted - waiting) };
    },
    close() {
      return pool.destroy();
    },
  };
}
