import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import type { TrainResult } from "../ml/train-model.ts";
import type { AnyTrainJob } from "../ml/train-worker.ts";

/** The worker threads that fit models. */
export interface TrainPool {
  run(job: AnyTrainJob, signal?: AbortSignal): Promise<TrainResult>;
  close(): Promise<void>;
}

/**
 * Fitting is CPU-bound; it must never run on the event loop. One thread fewer
 * than the cores (at least one) leaves a core for serving.
 */
export function createTrainPool(threads = Math.max(1, availableParallelism() - 1)): TrainPool {
  const pool = new Piscina<AnyTrainJob, TrainResult>({
    filename: new URL("../ml/train-worker.ts", import.meta.url).href,
    // One thread is kept warm so the first Train after start does not pay for spinning it up.
    minThreads: 1,
    maxThreads: threads,
    idleTimeout: 60_000,
  });
  return {
    run(job, signal) {
      return pool.run(job, signal === undefined ? {} : { signal });
    },
    close() {
      return pool.destroy();
    },
  };
}
