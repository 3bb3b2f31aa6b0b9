import { randomUUID } from "node:crypto";
import { sql } from "slonik";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateModel, insertModel, listModels, modelBlob } from "../src/db/models.ts";
import { insertPredictions, type NewPrediction } from "../src/db/predictions.ts";
import { dropExpiredPredictions, ensurePredictionPartitions, partitionName, pruneModelVersions, trimTaskChoices, weekStart } from "../src/db/retention.ts";
import { PreconditionFailed } from "../src/errors.ts";
import { silentLogger } from "../src/logger.ts";
import { createMaintenance } from "../src/service/maintenance.ts";
import { freshDatabase, testServerUrl, type TestDatabase } from "./support/database.ts";

/** Predictions live in weekly partitions dropped whole after the retention; answered ones are kept; old model blobs are freed. */
let db: TestDatabase;
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 29, 12);

beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db?.close();
});

const prediction = (createdAt: number): NewPrediction => ({
  predictionId: randomUUID(),
  modelId: null,
  userId: "ret",
  type: "energy_prediction",
  value: {},
  confidence: 0.5,
  createdAt,
});
const count = (table: string) => db.pool.oneFirst(sql.unsafe`SELECT count(*)::int FROM ${sql.identifier([table])}`);

describe("retention", () => {
  it("knows its weeks", () => {
    expect(new Date(weekStart(NOW)).toISOString()).toBe("2026-11-23T00:00:00.000Z");
    expect(weekStart(Date.UTC(2026, 10, 23))).toBe(Date.UTC(2026, 10, 23));
    expect(partitionName(weekStart(NOW))).toBe("model_predictions_w20261123");
  });

  it("creates partitions ahead (moving rows out of the default partition), drops expired weeks and keeps answered rows", async () => {
    const old = [prediction(NOW - 120 * DAY), prediction(NOW - 118 * DAY)];
    const current = [prediction(NOW - DAY), prediction(NOW)];
    // Written before any weekly partition exists: all land in the default partition.
    await insertPredictions(db.pool, [...old, ...current]);
    const maintenance = createMaintenance(
      db.pool,
      { predictionRetentionDays: 90, weeksAhead: 2, keepVersions: 5, keepActiveDays: 30, intervalMs: 3_600_000 },
      silentLogger,
    );
    // A pass 120 days ago made that week's partition; the current weeks come with today's pass.
    expect(await maintenance.runOnce(NOW - 119 * DAY)).toBe(true);
    await db.pool.query(sql.unsafe`UPDATE model_predictions SET was_correct = true WHERE prediction_id = ${old[0]!.predictionId}`);
    expect(await maintenance.runOnce(NOW)).toBe(true);
    expect(await count(partitionName(weekStart(NOW)))).toBe(current.filter((p) => weekStart(p.createdAt!) === weekStart(NOW)).length);
    expect(await count(partitionName(weekStart(NOW) + 14 * DAY))).toBe(0);
    // The 120-day-old week is gone; its answered row was kept apart first; today's rows are untouched.
    const left = await db.pool.anyFirst(sql.unsafe`SELECT prediction_id FROM model_predictions WHERE user_id = 'ret'`);
    expect(new Set(left)).toEqual(new Set(current.map((p) => p.predictionId)));
    expect(await db.pool.anyFirst(sql.unsafe`SELECT prediction_id FROM model_predictions_answered`)).toEqual([old[0]!.predictionId]);
    const names = await db.pool.anyFirst(sql.unsafe`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid`);
    expect(names).not.toContain(partitionName(weekStart(NOW - 120 * DAY)));
    // A retried batch (same ids, same stamp) stores nothing twice.
    await insertPredictions(db.pool, current);
    expect(await db.pool.oneFirst(sql.unsafe`SELECT count(*)::int FROM model_predictions WHERE user_id = 'ret'`)).toBe(2);
  });

  it("frees the blobs of versions nobody will serve, and refuses to activate one", async () => {
    const version = (userId: string) => ({
      userId,
      modelType: "energy_prediction" as const,
      format: "test",
      modelData: new Uint8Array([1, 2, 3]),
      trainingAccuracy: 0.5,
      evaluation: { method: "test", population_model_id: null },
      trainingSamples: 10,
      trainingDataSeq: 1n,
      trainingSinceSeq: 0n,
      ece: 0.05,
      brier: 0.5,
    });
    const stored = [];
    for (let i = 0; i < 8; i++) stored.push(await insertModel(db.pool, version("pruned")));
    // v2 is active: it keeps its data however old.
    await activateModel(db.pool, stored[1]!.model_id, { trigger: "train", reason: "test" });
    await db.pool.query(sql.unsafe`UPDATE model_activations SET created_at = now() - interval '60 days'`);
    expect(await pruneModelVersions(db.pool, 3, 30)).toBe(4);
    const withData = (await listModels(db.pool, "pruned", "energy_prediction")).filter((m) => m.model_format === "test").map((m) => m.version_number);
    const kept = [];
    for (const n of withData) if ((await modelBlob(db.pool, stored[n - 1]!.model_id))?.model_data != null) kept.push(n);
    expect(kept.sort((a, b) => a - b)).toEqual([2, 6, 7, 8]);
    await expect(activateModel(db.pool, stored[0]!.model_id, { trigger: "activate", reason: "rollback" })).rejects.toBeInstanceOf(PreconditionFailed);
    expect(await pruneModelVersions(db.pool, 3, 30)).toBe(0);
  });

  it("keeps each user's newest picks only", async () => {
    for (const user of ["a", "b"]) {
      for (let i = 0; i < (user === "a" ? 7 : 3); i++) {
        await db.pool.query(sql.unsafe`
          INSERT INTO task_choices (user_id, suggestion_id, chosen_task_id, shown, context, open_tasks, chosen_index)
          VALUES (${user}, ${randomUUID()}, ${randomUUID()}, true, '{}'::jsonb, '[]'::jsonb, 0)`);
      }
    }
    const newestOfA = await db.pool.anyFirst(sql.unsafe`SELECT choice_id FROM task_choices WHERE user_id = 'a' ORDER BY choice_id DESC LIMIT 5`);
    expect(await trimTaskChoices(db.pool, 5)).toBe(2);
    expect(await db.pool.anyFirst(sql.unsafe`SELECT choice_id FROM task_choices WHERE user_id = 'a' ORDER BY choice_id DESC`)).toEqual(newestOfA);
    expect(await db.pool.oneFirst(sql.unsafe`SELECT count(*)::int FROM task_choices WHERE user_id = 'b'`)).toBe(3);
  });
});

/** Another session's lock on model_predictions: the embedded database has one connection, so only on the real server. */
describe.skipIf(testServerUrl === undefined)("retention beside a session that holds model_predictions", () => {
  it("defers the partition whose DETACH cannot get its lock (instead of queueing inserts behind it) and drops it on the next pass", async () => {
    const week = weekStart(NOW - 140 * DAY);
    await db.pool.connect((conn) => ensurePredictionPartitions(conn, week, 0));
    const answered = prediction(week + DAY);
    await insertPredictions(db.pool, [answered, prediction(week + 2 * DAY)]);
    await db.pool.query(sql.unsafe`UPDATE model_predictions SET was_correct = true WHERE prediction_id = ${answered.predictionId}`);
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked: () => void = () => undefined;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    // A long reader of the parent, as a slow query or a Feedback waiting on its own lock would be.
    const holder = db.pool.transaction(async (tx) => {
      await tx.query(sql.unsafe`LOCK TABLE model_predictions IN ACCESS SHARE MODE`);
      locked();
      await held;
    });
    await lockTaken;
    const policy = { copyAhead: true, lockTimeoutMs: 20, attempts: 2, pauseMs: 1 };
    const blocked = await db.pool.connect((conn) => dropExpiredPredictions(conn, NOW, 90, policy));
    expect(blocked.deferredPartitions).toEqual([partitionName(week)]);
    expect(blocked.droppedPartitions).toEqual([]);
    expect(await count(partitionName(week))).toBe(2);
    // Copied ahead, before any lock: kept even though the week stays for the next pass.
    expect(await db.pool.anyFirst(sql.unsafe`SELECT prediction_id FROM model_predictions_answered WHERE prediction_id = ${answered.predictionId}`)).toEqual([
      answered.predictionId,
    ]);
    release();
    await holder;
    const free = await db.pool.connect((conn) => dropExpiredPredictions(conn, NOW, 90, policy));
    expect(free.droppedPartitions).toEqual([partitionName(week)]);
    expect(free.deferredPartitions).toEqual([]);
    expect(await db.pool.anyFirst(sql.unsafe`SELECT prediction_id FROM model_predictions_answered WHERE prediction_id = ${answered.predictionId}`)).toEqual([
      answered.predictionId,
    ]);
  });
});
