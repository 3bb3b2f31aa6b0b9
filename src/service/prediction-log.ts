import type { DatabasePool } from "slonik";
import { insertPredictions, type NewPrediction } from "../db/predictions.ts";
import type { Logger } from "../logger.ts";

/**
 * Writes predictions to model_predictions in batches, off the request path.
 *
 * Why: one INSERT per Predict costs a database round trip on every call and
 * caps throughput at what the database can take one row at a time. Here a
 * call only appends to a buffer; a flush writes up to `maxBatch` rows in one
 * statement when the buffer is full or `maxDelayMs` after its first row, and
 * on close. Feedback for an id still in the buffer waits for (and forces)
 * its flush, so an id is valid as soon as Predict returns.
 */
export interface PredictionLog {
  /** Buffers a prediction; resolves at once unless the buffer is over its high-water mark. */
  append(prediction: NewPrediction): Promise<void>;
  /** Resolves once the prediction with this id (if it was logged here) is in the database. */
  ensureWritten(predictionId: string): Promise<void>;
  /** Writes everything buffered so far. */
  flush(): Promise<void>;
  /** Flushes and stops the timer; later appends are written at once. */
  close(): Promise<void>;
  /** Rows waiting to be written. */
  readonly pending: number;
}

/** Settings of the prediction log. */
export interface PredictionLogOptions {
  readonly maxBatch?: number;
  readonly maxDelayMs?: number;
  /** Above this many buffered rows, append waits for a flush (backpressure instead of unbounded memory). */
  readonly highWaterMark?: number;
}

interface Batch {
  readonly rows: NewPrediction[];
  readonly ids: Set<string>;
  written: Promise<void> | null;
}

const newBatch = (): Batch => ({ rows: [], ids: new Set(), written: null });

/**
 * Builds the batched log; `log` hears about failed writes. A failed batch is
 * retried five times (backoff from 50 ms, doubling); if it still fails it is
 * dropped and its error reaches whoever waits on it (a Feedback that forced
 * it, flush, close, or an append above the high-water mark).
 */
export function createPredictionLog(db: DatabasePool, log: Logger, options: PredictionLogOptions = {}): PredictionLog {
  const maxBatch = options.maxBatch ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 20;
  const highWaterMark = options.highWaterMark ?? 50_000;
  let current = newBatch();
  const inFlight = new Set<Batch>();
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  let buffered = 0;

  async function write(batch: Batch): Promise<void> {
    // Retry with backoff: losing a logged prediction is worse than a late one.
    for (let attempt = 0; ; attempt++) {
      try {
        for (let i = 0; i < batch.rows.length; i += maxBatch) await insertPredictions(db, batch.rows.slice(i, i + maxBatch));
        return;
      } catch (err) {
        log.error("writing predictions failed", { rows: batch.rows.length, attempt, error: err });
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }

  function flushCurrent(): Promise<void> {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    const batch = current;
    if (batch.rows.length === 0) return chain;
    current = newBatch();
    inFlight.add(batch);
    // Batches are written one after another, so ids become visible in order.
    batch.written = chain.then(() => write(batch)).finally(() => {
      inFlight.delete(batch);
      buffered -= batch.rows.length;
    });
    chain = batch.written.catch(() => undefined);
    return batch.written;
  }

  return {
    append(prediction) {
      current.rows.push(prediction);
      current.ids.add(prediction.predictionId);
      buffered++;
      if (closed || current.rows.length >= maxBatch) {
        const written = flushCurrent();
        return buffered > highWaterMark || closed ? written : Promise.resolve();
      }
      timer ??= setTimeout(() => void flushCurrent().catch(() => undefined), maxDelayMs);
      return Promise.resolve();
    },
    ensureWritten(predictionId) {
      if (current.ids.has(predictionId)) return flushCurrent();
      for (const batch of inFlight) if (batch.ids.has(predictionId)) return batch.written!;
      return Promise.resolve();
    },
    async flush() {
      flushCurrent();
      // Rejects when a batch could not be written even after retries.
      await Promise.all([...inFlight].map((batch) => batch.written));
    },
    async close() {
      closed = true;
      flushCurrent();
      await Promise.all([...inFlight].map((batch) => batch.written));
    },
    get pending() {
      return buffered;
    },
  };
}
