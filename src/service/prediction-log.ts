import type { DatabasePool } from "slonik";
import { insertPredictions, type NewPrediction } from "../db/predictions.ts";
import { DatabaseUnavailable } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { isDatabaseUnavailable } from "../db/unavailable.ts";
import { createPredictionSpill, type PredictionSpill } from "./prediction-spill.ts";

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
  /**
   * "durable": append resolves only once its row is in the database (or fsynced in the spill file): a
   * group commit, so a crash loses no answered prediction, at the cost of the batch window in Predict's
   * latency (`maxDelayMs` then defaults to 2). "memory" (default): append resolves at once.
   */
  readonly ack?: "memory" | "durable";
  /** Told of each batch written (or given up after its retries), with its duration: the flush-latency metric. */
  readonly onWrite?: (rows: number, outcome: "ok" | "error", seconds: number) => void;
  /** Where batches the database would not take go, to be replayed later; without it they are given up after the retries. */
  readonly spill?: PredictionSpill;
}

interface Batch {
  readonly rows: NewPrediction[];
  readonly ids: Set<string>;
  written: Promise<void> | null;
  /** Settles with `written` (durable mode: what each append of this batch waits for). */
  readonly durable: PromiseWithResolvers<void>;
}

/** First retry of a replay after a spill, and the longest wait between retries. */
const REPLAY_FIRST_MS = 1_000;
const REPLAY_MAX_MS = 30_000;

const newBatch = (): Batch => {
  const durable = Promise.withResolvers<void>();
  // Nobody may wait (memory mode): a failure is still reported through `written`.
  durable.promise.catch(() => undefined);
  return { rows: [], ids: new Set(), written: null, durable };
};

/**
 * Builds the batched log; `log` hears about failed writes. A failed batch is
 * retried five times (backoff from 50 ms, doubling); if it still fails it is
 * dropped and its error reaches whoever waits on it (a Feedback that forced
 * it, flush, close, or an append above the high-water mark).
 */
export function createPredictionLog(db: DatabasePool, log: Logger, options: PredictionLogOptions = {}): PredictionLog {
  const maxBatch = options.maxBatch ?? 500;
  const durable = options.ack === "durable";
  const maxDelayMs = options.maxDelayMs ?? (durable ? 2 : 20);
  const highWaterMark = options.highWaterMark ?? 50_000;
  let current = newBatch();
  const inFlight = new Set<Batch>();
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  let buffered = 0;
  const spill = options.spill;
  // Ids in the spill file: Feedback on one of them replays first, so it never answers NOT_FOUND for an id we returned.
  const spilled = new Set<string>();
  let spillChain: Promise<unknown> = Promise.resolve();
  let replayTimer: NodeJS.Timeout | null = null;
  let replayDelay = REPLAY_FIRST_MS;

  /** Appending and replaying never interleave: a row spilled during a replay must not be cleared unread. */
  function exclusive<T>(run: () => Promise<T>): Promise<T> {
    const next = spillChain.then(run);
    spillChain = next.catch(() => undefined);
    return next;
  }

  /** Moves the spill file's rows into the database; false when the database still will not take them. */
  function replay(): Promise<boolean> {
    if (spill === undefined) return Promise.resolve(true);
    return exclusive(async () => {
      const rows = await spill.read();
      try {
        for (let i = 0; i < rows.length; i += maxBatch) {
          const chunk = rows.slice(i, i + maxBatch);
          await insertPredictions(db, chunk).catch((err: unknown) => {
            // A row the database refuses for good must not hold every other spilled row back.
            if (isDatabaseUnavailable(err)) throw err;
            return writeOneByOne(chunk, err);
          });
        }
      } catch (err) {
        for (const row of rows) spilled.add(row.predictionId);
        log.error("replaying spilled predictions failed; will retry", { rows: rows.length, error: err instanceof Error ? err.message : String(err) });
        return false;
      }
      await spill.clear();
      spilled.clear();
      if (rows.length > 0) log.info("replayed spilled predictions", { rows: rows.length, file: spill.file });
      return true;
    });
  }

  function scheduleReplay(delay: number): void {
    if (replayTimer !== null || closed) return;
    replayTimer = setTimeout(() => {
      replayTimer = null;
      void replay().then((ok) => {
        replayDelay = ok ? REPLAY_FIRST_MS : Math.min(replayDelay * 2, REPLAY_MAX_MS);
        if (!ok) scheduleReplay(replayDelay);
      });
    }, delay);
    replayTimer.unref();
  }
  // Rows a previous run spilled (and could not replay before it stopped) go in first.
  if (spill !== undefined) scheduleReplay(0);

  /**
   * Inserts rows one at a time after a batch was refused; a refused row is
   * logged and kept in a `.rejected` file beside the spill file, never
   * replayed (retrying does not fix it). Call inside `exclusive`.
   */
  async function writeOneByOne(rows: readonly NewPrediction[], cause: unknown): Promise<void> {
    const refused: NewPrediction[] = [];
    for (const row of rows) {
      try {
        await insertPredictions(db, [row]);
      } catch (err) {
        if (isDatabaseUnavailable(err)) throw err;
        refused.push(row);
      }
    }
    if (refused.length === 0) return;
    log.error("the database refused logged predictions; they are kept apart, not replayed", {
      rows: refused.length,
      ids: refused.slice(0, 10).map((r) => r.predictionId),
      error: cause,
      ...(spill === undefined ? {} : { file: `${spill.file}.rejected` }),
    });
    if (spill !== undefined) await createPredictionSpill(`${spill.file}.rejected`).append(refused);
  }

  async function write(batch: Batch): Promise<void> {
    const started = performance.now();
    // Stamped once: a retry (or a replay) of this batch names the same rows, so it cannot store one twice.
    const at = Date.now();
    const rows = batch.rows.map((r) => (r.createdAt === undefined ? { ...r, createdAt: at } : r));
    // Retry with backoff: losing a logged prediction is worse than a late one.
    for (let attempt = 0; ; attempt++) {
      try {
        for (let i = 0; i < rows.length; i += maxBatch) await insertPredictions(db, rows.slice(i, i + maxBatch));
        options.onWrite?.(batch.rows.length, "ok", (performance.now() - started) / 1000);
        return;
      } catch (err) {
        log.error("writing predictions failed", { rows: batch.rows.length, attempt, error: err });
        if (attempt >= 5 || !isDatabaseUnavailable(err)) {
          options.onWrite?.(batch.rows.length, "error", (performance.now() - started) / 1000);
          // A batch the database refuses (not one it cannot take now): write what it takes, row by row, and keep the rest apart.
          if (!isDatabaseUnavailable(err)) return exclusive(() => writeOneByOne(rows, err));
          if (spill === undefined) throw err;
          // Durable on local disk before the batch counts as written; replayed when the database is back.
          await exclusive(() => spill.append(rows));
          for (const row of batch.rows) spilled.add(row.predictionId);
          log.error("predictions spilled to disk; they will be replayed", { rows: batch.rows.length, file: spill.file });
          scheduleReplay(REPLAY_FIRST_MS);
          return;
        }
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
    batch.written = chain
      .then(() => write(batch))
      .finally(() => {
        inFlight.delete(batch);
        buffered -= batch.rows.length;
      });
    batch.written.then(batch.durable.resolve, batch.durable.reject);
    chain = batch.written.catch(() => undefined);
    return batch.written;
  }

  return {
    append(prediction) {
      const batch = current;
      batch.rows.push(prediction);
      batch.ids.add(prediction.predictionId);
      buffered++;
      if (closed || batch.rows.length >= maxBatch) {
        const written = flushCurrent();
        return buffered > highWaterMark || closed || durable ? written : Promise.resolve();
      }
      timer ??= setTimeout(() => void flushCurrent().catch(() => undefined), maxDelayMs);
      return durable ? batch.durable.promise : Promise.resolve();
    },
    async ensureWritten(predictionId) {
      if (current.ids.has(predictionId)) await flushCurrent();
      else for (const batch of inFlight) if (batch.ids.has(predictionId)) await batch.written;
      if (spilled.has(predictionId) && !(await replay())) {
        throw new DatabaseUnavailable(`prediction ${predictionId} is safe on disk, and the database is not taking it yet`);
      }
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
      if (replayTimer !== null) clearTimeout(replayTimer);
      // One last try; what stays in the file is replayed on the next start.
      if (spilled.size > 0) await replay();
    },
    get pending() {
      return buffered;
    },
  };
}
