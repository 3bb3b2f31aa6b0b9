import { sql, type CommonQueryMethods, type DatabaseConnection } from "slonik";
import { z } from "zod";

/**
 * Bounded data: model_predictions lives in weekly partitions, created ahead
 * of time and dropped whole once older than the retention (answered rows are
 * copied to model_predictions_answered first: they are training data and the
 * record of live accuracy); model versions keep their blobs only while they
 * may still be served or rolled back to.
 */

const WEEK_MS = 7 * 86_400_000;
const DAY_MS = 86_400_000;

/** Monday 00:00 UTC of the week holding `ms`. */
export function weekStart(ms: number): number {
  const day = Math.floor(ms / DAY_MS);
  // 1970-01-01 was a Thursday: days since the Monday before it.
  const sinceMonday = (day + 3) % 7;
  return (day - sinceMonday) * DAY_MS;
}

/** The partition of the week starting at `start`: model_predictions_w20261123. */
export function partitionName(start: number): string {
  return `model_predictions_w${new Date(start).toISOString().slice(0, 10).replaceAll("-", "")}`;
}

const Partition = z.object({ name: z.string() });

async function partitions(db: CommonQueryMethods): Promise<string[]> {
  const rows = await db.any(sql.type(Partition)`
    SELECT c.relname AS name FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname = 'model_predictions' AND c.relname LIKE 'model_predictions_w%'`);
  return rows.map((r) => r.name);
}

/**
 * Creates the weekly partitions from this week to `weeksAhead` weeks on. Rows
 * already sitting in the default partition for such a week (the old table's,
 * or written before the partition existed) move into it in the same
 * transaction, as PostgreSQL requires.
 */
export async function ensurePredictionPartitions(db: DatabaseConnection, now: number, weeksAhead: number): Promise<string[]> {
  const existing = new Set(await partitions(db));
  const created: string[] = [];
  for (let w = 0; w <= weeksAhead; w++) {
    const start = weekStart(now) + w * WEEK_MS;
    const name = partitionName(start);
    if (existing.has(name)) continue;
    const from = new Date(start).toISOString();
    const to = new Date(start + WEEK_MS).toISOString();
    await db.transaction(async (tx) => {
      // Rows written between the move and the CREATE would land in the default partition and fail the CREATE:
      // inserts wait (briefly) until the partition exists; a long wait gives up and the next pass tries again.
      await tx.query(sql.unsafe`SET LOCAL lock_timeout = '2s'`);
      await tx.query(sql.unsafe`LOCK TABLE model_predictions_default IN EXCLUSIVE MODE`);
      await tx.query(sql.unsafe`CREATE TEMP TABLE moving (LIKE model_predictions) ON COMMIT DROP`);
      await tx.query(sql.unsafe`
        WITH moved AS (DELETE FROM model_predictions_default WHERE created_at >= ${from}::timestamptz AND created_at < ${to}::timestamptz RETURNING *)
        INSERT INTO moving SELECT * FROM moved`);
      await tx.query(sql.unsafe`
        CREATE TABLE ${sql.identifier([name])} PARTITION OF model_predictions
        FOR VALUES FROM (${sql.literalValue(from)}) TO (${sql.literalValue(to)})`);
      await tx.query(sql.unsafe`INSERT INTO model_predictions SELECT * FROM moving`);
    });
    created.push(name);
  }
  return created;
}

/** What a retention pass removed. */
export interface RetentionResult {
  readonly droppedPartitions: readonly string[];
  /** Expired partitions whose DETACH could not get its lock in time: the next pass tries again. */
  readonly deferredPartitions: readonly string[];
  /** Answered predictions copied out before their partition went. */
  readonly keptAnswered: number;
  /** Old rows deleted from the default partition (no weekly partition held them). */
  readonly deletedFromDefault: number;
}

/** How an expired partition is detached: its answered rows copied ahead or not, and how the DETACH waits for its lock on model_predictions. */
export interface DetachPolicy {
  /** Copy the answered rows a day at a time before taking the partition's lock (copyAnsweredAhead). */
  readonly copyAhead: boolean;
  /** Pause between the days of the copy ahead, so its WAL reaches the disk between other commits rather than ahead of them. */
  readonly copyPauseMs?: number;
  /** Longest wait for the lock per attempt. */
  readonly lockTimeoutMs: number;
  /** Attempts per partition and pass (each one copies the answered rows again). */
  readonly attempts: number;
  /** Pause between attempts, with no lock held. */
  readonly pauseMs: number;
}

/**
 * A waiting DETACH queues every later statement on model_predictions (the
 * prediction log's inserts, Feedback) behind it, so it waits briefly: under
 * load the measured wait reached 184 ms, which a Predict with
 * PREDICTION_ACK=durable waits out in full. 100 ms is also below PostgreSQL's
 * deadlock_timeout (1 s): a Feedback that holds the parent while waiting for
 * the partition this pass locked is let through instead of one of the two
 * being aborted as a deadlock.
 */
export const DETACH_POLICY: DetachPolicy = { copyAhead: true, copyPauseMs: 200, lockTimeoutMs: 100, attempts: 3, pauseMs: 1_000 };

/** How long a Feedback's transaction may run: rows it answers carry its start time, so the copy under the lock looks back this far. */
const ANSWER_MARGIN = "5 minutes";

const LOCK_NOT_AVAILABLE = "55P03";

function isLockTimeout(err: unknown): boolean {
  const code = (e: unknown) => (e as { code?: unknown } | null)?.code;
  return code(err) === LOCK_NOT_AVAILABLE || code((err as { cause?: unknown } | null)?.cause) === LOCK_NOT_AVAILABLE;
}

/**
 * Copies a week's answered rows to model_predictions_answered a day at a
 * time, each day its own statement and commit, before the partition is
 * locked: the lock, which every Feedback waits behind (its lookup by id
 * alone touches every partition), then covers only the rows answered since,
 * and the WAL of the copy is flushed in seven parts rather than one, with a
 * pause between them. Returns the rows copied and the database time the copy
 * began, less ANSWER_MARGIN: rows answered after it are the ones left for the
 * copy under the lock.
 */
async function copyAnsweredAhead(db: CommonQueryMethods, name: string, start: number, pauseMs: number): Promise<{ copied: number; since: string }> {
  const since = await db.oneFirst(sql.unsafe`SELECT (clock_timestamp() - ${ANSWER_MARGIN}::interval)::text`);
  let copied = 0;
  for (let day = 0; day < 7; day++) {
    if (day > 0 && pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    const from = new Date(start + day * DAY_MS).toISOString();
    const to = new Date(start + (day + 1) * DAY_MS).toISOString();
    const result = await db.query(sql.unsafe`
      INSERT INTO model_predictions_answered SELECT * FROM ${sql.identifier([name])}
      WHERE was_correct IS NOT NULL AND created_at >= ${from}::timestamptz AND created_at < ${to}::timestamptz
      ON CONFLICT DO NOTHING`);
    copied += result.rowCount;
  }
  return { copied, since: String(since) };
}

/** Drops every weekly partition wholly older than `retentionDays`, keeping its answered rows; trims the default partition likewise. */
export async function dropExpiredPredictions(
  db: DatabaseConnection,
  now: number,
  retentionDays: number,
  detach: DetachPolicy = DETACH_POLICY,
): Promise<RetentionResult> {
  const cutoff = now - retentionDays * DAY_MS;
  const dropped: string[] = [];
  const deferred: string[] = [];
  let kept = 0;
  for (const name of (await partitions(db)).sort()) {
    const start = Date.parse(`${name.slice(-8, -4)}-${name.slice(-4, -2)}-${name.slice(-2)}T00:00:00Z`);
    if (!(start + WEEK_MS <= cutoff)) continue;
    for (let attempt = 1; ; attempt++) {
      try {
        const ahead = detach.copyAhead ? await copyAnsweredAhead(db, name, start, detach.copyPauseMs ?? 0) : null;
        kept += ahead?.copied ?? 0;
        // After a copy ahead, only rows answered since it began are left to copy under the lock.
        const answeredSince = ahead === null ? sql.fragment`TRUE` : sql.fragment`(feedback_at IS NULL OR feedback_at >= ${ahead.since}::timestamptz)`;
        kept += await db.transaction(async (tx) => {
          await tx.query(sql.unsafe`SET LOCAL lock_timeout = '2s'`);
          // Locked first, so no Feedback can answer a row of this week after its answered rows were copied
          // (the copy ahead took most of them; this one finds the rest, answered since).
          await tx.query(sql.unsafe`LOCK TABLE ${sql.identifier([name])} IN EXCLUSIVE MODE`);
          const copied = await tx.query(sql.unsafe`
            INSERT INTO model_predictions_answered SELECT * FROM ${sql.identifier([name])} WHERE was_correct IS NOT NULL AND ${answeredSince}
            ON CONFLICT DO NOTHING`);
          // DETACH takes an ACCESS EXCLUSIVE lock on the parent, which every insert of the prediction log queues behind.
          await tx.query(sql.unsafe`SELECT set_config('lock_timeout', ${`${detach.lockTimeoutMs}ms`}, true)`);
          await tx.query(sql.unsafe`ALTER TABLE model_predictions DETACH PARTITION ${sql.identifier([name])}`);
          await tx.query(sql.unsafe`DROP TABLE ${sql.identifier([name])}`);
          return copied.rowCount;
        });
        dropped.push(name);
        break;
      } catch (err) {
        if (!isLockTimeout(err)) throw err;
        if (attempt >= detach.attempts) {
          deferred.push(name);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, detach.pauseMs));
      }
    }
  }
  const cutoffIso = new Date(cutoff).toISOString();
  // One statement: the rows deleted are exactly the rows whose answered ones are kept (no answer slips in between).
  const trimmed = await db.oneFirst(sql.unsafe`
    WITH gone AS (DELETE FROM model_predictions_default WHERE created_at < ${cutoffIso}::timestamptz RETURNING *),
    saved AS (INSERT INTO model_predictions_answered SELECT * FROM gone WHERE was_correct IS NOT NULL ON CONFLICT DO NOTHING RETURNING 1)
    SELECT json_build_object('deleted', (SELECT count(*) FROM gone), 'kept', (SELECT count(*) FROM saved))`);
  const counts = trimmed as { deleted: number; kept: number };
  kept += counts.kept;
  return { droppedPartitions: dropped, deferredPartitions: deferred, keptAnswered: kept, deletedFromDefault: counts.deleted };
}

/**
 * Frees the blobs of model versions nobody will serve: every version keeps
 * its row (ListModels, the activation log), but only the active one, the
 * newest `keepLast` of each user and type, and those active within
 * `activeWithinDays` keep their model_data. Returns how many were freed.
 */
export async function pruneModelVersions(db: CommonQueryMethods, keepLast: number, activeWithinDays: number): Promise<number> {
  const result = await db.query(sql.unsafe`
    WITH ranked AS (
      SELECT model_id, is_active,
        row_number() OVER (PARTITION BY user_id, model_type ORDER BY version_number DESC) AS newest
      FROM ml_models WHERE model_data IS NOT NULL
    ),
    recent AS (
      SELECT DISTINCT model_id FROM model_activations
      WHERE activated AND created_at > now() - make_interval(days => ${activeWithinDays})
    )
    UPDATE ml_models m SET model_data = NULL
    FROM ranked r
    WHERE m.model_id = r.model_id AND NOT m.is_active AND r.newest > ${keepLast}
      AND m.model_id NOT IN (SELECT model_id FROM recent)
      -- A population version stays while a kept user blend borrows from it (and all of them while a blend does not say which).
      AND NOT (m.user_id = '' AND (
        m.model_id::text IN (SELECT evaluation->>'population_model_id' FROM ml_models WHERE model_data IS NOT NULL AND evaluation ? 'population_model_id')
        OR EXISTS (SELECT 1 FROM ml_models WHERE user_id <> '' AND model_type = 'energy_prediction' AND model_data IS NOT NULL
                   AND NOT (evaluation ? 'population_model_id'))
      ))`);
  return result.rowCount;
}

/**
 * Keeps each user's newest `keepPerUser` picks (the ranker reads at most the
 * last 40 of a user, and 100 a user for the population): older picks only
 * take space. Returns how many were deleted.
 */
export async function trimTaskChoices(db: CommonQueryMethods, keepPerUser: number): Promise<number> {
  const result = await db.query(sql.unsafe`
    DELETE FROM task_choices t USING (
      SELECT choice_id, row_number() OVER (PARTITION BY user_id ORDER BY choice_id DESC) AS newest FROM task_choices
    ) r
    WHERE t.choice_id = r.choice_id AND r.newest > ${keepPerUser}`);
  return result.rowCount;
}
