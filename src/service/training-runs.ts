import type { ModelTypeName } from "../domain.ts";
import type { KeyedLock } from "./keyed-lock.ts";
import type { TrainOutcome, Trigger } from "./trainer.ts";

/** One training run: whose model, which type, why. Plain data, so it can travel through a job queue. */
export interface TrainRequest {
  readonly userId: string;
  readonly modelType: ModelTypeName;
  readonly trigger: Trigger;
  /** After drift: train on the samples from this sequence number on (a decimal string, so it survives JSON). */
  readonly sinceSeq?: string;
  /** A re-blend: the population model whose activation asked for it (skipped once the user borrows from it, or a newer one is active). */
  readonly reblendOf?: string;
  /** The request id of the call that asked for it, carried into the job's log lines. */
  readonly requestId?: string;
}

/** Fits, stores and activates one request in this process; null when the request was no longer needed (a re-blend overtaken). */
export type ExecuteTrain = (request: TrainRequest, signal?: AbortSignal) => Promise<TrainOutcome | null>;

/**
 * Where training runs happen. Two implementations behind this one interface:
 * in this process (`createInProcessRuns`, the embedded PGlite: one process,
 * one connection) and through the PostgreSQL job queue
 * (`createQueuedRuns` in training-queue.ts: any replica with a free worker).
 */
export interface TrainingRuns {
  /** Runs the request and waits for its outcome; the signal stops this caller's wait. */
  run(request: TrainRequest, signal?: AbortSignal): Promise<TrainOutcome | null>;
  /** Starts the requests in the background, one at a time per user and type; resolves with how many were taken (a run already waiting for the same user and type absorbs one). */
  submit(requests: readonly TrainRequest[]): Promise<number>;
  /** True when this process knows a run for the user and type is waiting or running (lets callers skip needless database reads). */
  busy(userId: string, modelType: ModelTypeName): boolean;
  /** Resolves when every background run this process started has finished (for shutdown and tests). */
  idle(): Promise<void>;
}

/** The key under which runs for one user and model type never overlap. */
export function runKey(userId: string, modelType: ModelTypeName): string {
  return `${modelType}:${userId}`;
}

/** Dependencies of the in-process runs. */
export interface InProcessRunsDeps {
  readonly execute: ExecuteTrain;
  readonly lock: KeyedLock;
  readonly onBackgroundError: (err: unknown, userId: string, modelType: ModelTypeName) => void;
}

/**
 * Today's path, kept for the embedded database: a keyed lock serialises runs
 * per user and type inside this one process, background runs are promises
 * tracked until idle. A caller's signal reaches the worker thread (each Train
 * call runs its own fit, so no other caller waits on it).
 */
export function createInProcessRuns({ execute, lock, onBackgroundError }: InProcessRunsDeps): TrainingRuns {
  const background = new Set<Promise<unknown>>();
  const runOne = (request: TrainRequest, signal?: AbortSignal) => lock.run(runKey(request.userId, request.modelType), () => execute(request, signal));
  return {
    run: runOne,
    async submit(requests) {
      // One after another: a re-blend of many users must not occupy every worker at once.
      const task = (async () => {
        for (const request of requests) {
          await runOne(request).catch((err: unknown) => onBackgroundError(err, request.userId, request.modelType));
        }
      })();
      background.add(task);
      void task.finally(() => background.delete(task));
      return requests.length;
    },
    busy: (userId, modelType) => lock.busy(runKey(userId, modelType)),
    async idle() {
      while (background.size > 0) await Promise.all([...background]);
    },
  };
}
