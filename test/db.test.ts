import { SchemaValidationError, sql } from "slonik";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../src/db/migrate.ts";
import { migrations } from "../src/db/migrations.ts";
import {
  activateModel,
  activeModel,
  insertModel,
  storeVersion,
  listActivations,
  listModels,
  logDecision,
  modelBlob,
  recordModelFeedback,
  TRAINING_ACCURACY_WEIGHT,
} from "../src/db/models.ts";
import { insertPredictions, lockPrediction, recordPredictionFeedback } from "../src/db/predictions.ts";
import { insertTaskChoice, recentChoices, recentPopulationChoices, type StoredChoiceTask } from "../src/db/task-choices.ts";
import { rankersFor, saveRanker } from "../src/db/task-rankers.ts";
import { openTasks, upsertTasks } from "../src/db/tasks.ts";
import { countTrainingSamplesAfter, insertTrainingSamples, trainingSamplesFor } from "../src/db/training-data.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";

/** Database code against a real PostgreSQL (or the embedded one), in a database of its own. */
let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase({ migrate: false });
});
afterAll(async () => {
  await db?.close();
});

const Column = z.object({ table_name: z.string(), column_name: z.string(), data_type: z.string() });

describe("migrations", () => {
  it("create the seed's tables and columns once, and are idempotent", async () => {
    expect(await migrate(db.pool)).toEqual(migrations.map((m) => m.version));
    expect(await migrate(db.pool)).toEqual([]);
    await Promise.all([migrate(db.pool), migrate(db.pool)]);
    const columns = await db.pool.any(sql.type(Column)`
      SELECT table_name, column_name, data_type FROM information_schema.columns
      WHERE table_schema = 'public' ORDER BY table_name, column_name`);
    const has = (table: string, column: string, type: string) => expect(columns).toContainEqual({ table_name: table, column_name: column, data_type: type });
    has("ml_models", "model_id", "uuid");
    has("ml_models", "model_type", "character varying");
    has("ml_models", "version", "character varying");
    has("ml_models", "model_data", "bytea");
    has("ml_models", "accuracy_score", "numeric");
    has("ml_models", "training_samples", "integer");
    has("ml_models", "is_active", "boolean");
    has("ml_models", "user_id", "character varying");
    has("training_data", "feature_vector", "jsonb");
    has("training_data", "label", "character varying");
    has("training_data", "model_type", "character varying");
    has("model_predictions", "prediction_value", "jsonb");
    has("model_predictions", "confidence_score", "numeric");
    has("model_predictions", "was_correct", "boolean");
    has("tasks", "energy_required", "character varying");
  });
});

const model = (userId: string, accuracy = 0.5) => ({
  userId,
  modelType: "energy_prediction" as const,
  format: "test",
  modelData: new Uint8Array([1, 2, 3]),
  trainingAccuracy: accuracy,
  evaluation: { method: "test" },
  trainingSamples: 10,
  trainingDataSeq: 7n,
  trainingSinceSeq: 0n,
  ece: 0.05,
  brier: 0.5,
});
const why = { trigger: "train", reason: "test" };

describe("models", () => {
  it("numbers versions per user and keeps exactly one active", async () => {
    const a = await insertModel(db.pool, model("m1"));
    const b = await insertModel(db.pool, model("m1"));
    const other = await insertModel(db.pool, model("m2"));
    expect([a.version, b.version, other.version]).toEqual(["v1", "v2", "v1"]);
    expect(await activeModel(db.pool, "m1", "energy_prediction")).toBeNull();
    await activateModel(db.pool, a.model_id, why);
    await activateModel(db.pool, b.model_id, why);
    await activateModel(db.pool, other.model_id, why);
    expect((await activeModel(db.pool, "m1", "energy_prediction"))?.model_id).toBe(b.model_id);
    expect((await listModels(db.pool, "m1", "energy_prediction")).map((r) => [r.version, r.is_active])).toEqual([
      ["v2", true],
      ["v1", false],
    ]);
    expect(await activateModel(db.pool, "00000000-0000-4000-8000-000000000000", why)).toBeNull();
    const log = await listActivations(db.pool, "m1", "energy_prediction", 10);
    expect(log.map((r) => [r.version, r.activated, r.trigger])).toEqual([
      ["v2", true, "train"],
      ["v1", true, "train"],
    ]);
    await logDecision(db.pool, a, false, { trigger: "retrain:drift", reason: "declined" });
    expect((await listActivations(db.pool, "m1", "energy_prediction", 1))[0]).toMatchObject({ activated: false, reason: "declined" });
    // The partial unique index refuses a second active version even from outside the service.
    await expect(db.pool.query(sql.unsafe`UPDATE ml_models SET is_active = true WHERE model_id = ${a.model_id}`)).rejects.toThrow();
    expect((await modelBlob(db.pool, a.model_id))?.model_data).toEqual(Buffer.from([1, 2, 3]));
  });

  it("serializes concurrent new versions and activations of one user: distinct numbers, one active, every version logged", async () => {
    const first = await storeVersion(db.pool, model("race"), () => ({ activate: true, ...why }));
    const work = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        i % 2 === 0
          ? storeVersion(db.pool, model("race"), (activeNow) => ({ activate: i % 4 === 0, trigger: "train", reason: `over ${activeNow?.version}` }))
          : activateModel(db.pool, first.model.model_id, { trigger: "activate", reason: "race" }),
      ),
    );
    expect(work.every((w) => w !== null)).toBe(true);
    const versions = await listModels(db.pool, "race", "energy_prediction");
    expect(versions.map((v) => v.version_number).sort((a, b) => a - b)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
    expect(versions.filter((v) => v.is_active)).toHaveLength(1);
    const log = await listActivations(db.pool, "race", "energy_prediction", 500);
    for (const v of versions)
      expect(
        log.some((entry) => entry.model_id === v.model_id),
        v.version,
      ).toBe(true);
    // The log's newest activation is the version active now.
    expect(log.find((entry) => entry.activated)?.model_id).toBe(versions.find((v) => v.is_active)?.model_id);
  });

  it("moves the live accuracy with feedback, weighted against the training accuracy", async () => {
    const row = await insertModel(db.pool, model("m3", 0.6));
    const after = await recordModelFeedback(db.pool, row.model_id, true);
    expect(after.accuracy_score).toBeCloseTo((0.6 * TRAINING_ACCURACY_WEIGHT + 1) / (TRAINING_ACCURACY_WEIGHT + 1), 4);
    expect(after.training_accuracy).toBe(0.6);
    expect(after.feedback_count).toBe(1);
  });
});

describe("training data", () => {
  it("stores batches and reads the newest samples oldest first", async () => {
    const sample = (i: number) => ({
      userId: "t1",
      modelType: "energy_prediction" as const,
      features: { hour_of_day: i, sleep_quality: null },
      label: "low",
      source: "ingest" as const,
      predictionId: null,
      observedAt: Date.UTC(2026, 0, 1, i),
    });
    expect(await insertTrainingSamples(db.pool, [])).toBe(0);
    expect(await insertTrainingSamples(db.pool, [0, 1, 2, 3, 4].map(sample))).toBe(5);
    expect(await countTrainingSamplesAfter(db.pool, "t1", "energy_prediction", 0n)).toBe(5);
    const newest = await trainingSamplesFor(db.pool, "t1", "energy_prediction", 3);
    expect(newest.map((s) => s.feature_vector["hour_of_day"])).toEqual([2, 3, 4]);
    expect(await countTrainingSamplesAfter(db.pool, "t1", "energy_prediction", newest[0]!.seq)).toBe(2);
    expect(await countTrainingSamplesAfter(db.pool, "nobody", "energy_prediction", 0n)).toBe(0);
  });
});

describe("predictions and tasks", () => {
  it("logs a prediction and its feedback", async () => {
    const id = "11111111-1111-4111-8111-111111111111";
    await insertPredictions(db.pool, [{ predictionId: id, modelId: null, userId: "p1", type: "energy_prediction", value: { x: 1 }, confidence: 0.123456 }]);
    await db.pool.transaction(async (tx) => {
      const row = await lockPrediction(tx, id);
      expect(row?.was_correct).toBeNull();
      await recordPredictionFeedback(tx, id, true, { was_correct: true });
    });
    expect((await lockPrediction(db.pool, id))?.was_correct).toBe(true);
    expect(await lockPrediction(db.pool, "22222222-2222-4222-8222-222222222222")).toBeNull();
  });

  it("upserts tasks and lists open ones by urgency", async () => {
    const task = (taskId: string, priority: number, status: "open" | "done" = "open") => ({
      taskId,
      title: `t${priority}`,
      category: "c",
      energyRequired: "low" as const,
      estimatedMinutes: 10,
      priority,
      dueAt: null,
      status,
    });
    expect(await upsertTasks(db.pool, "u", [])).toBe(0);
    await upsertTasks(db.pool, "u", [task("aaaaaaaa-0000-4000-8000-000000000001", 3), task("aaaaaaaa-0000-4000-8000-000000000002", 1)]);
    expect((await openTasks(db.pool, "u")).map((t) => t.priority)).toEqual([1, 3]);
    await upsertTasks(db.pool, "u", [task("aaaaaaaa-0000-4000-8000-000000000002", 1, "done")]);
    expect((await openTasks(db.pool, "u")).map((t) => t.priority)).toEqual([3]);
    // Feedback's pick may already be done: asked for by id, it comes along.
    expect((await openTasks(db.pool, "u", "aaaaaaaa-0000-4000-8000-000000000002")).map((t) => t.priority)).toEqual([1, 3]);
  });
});

describe("task picks and rankers", () => {
  const choice = (userId: string, n: number) => ({
    userId,
    suggestionId: `bbbbbbbb-0000-4000-8000-${String(n).padStart(12, "0")}`,
    chosenTaskId: "aaaaaaaa-0000-4000-8000-000000000001",
    shownRank: n % 2 === 0 ? null : 2,
    propensity: 0.8,
    context: { energy: "low" as const, hour: 9, weekend: false, now: Date.UTC(2026, 10, 30, 9) + n },
    openTasks: [
      ["c", "low", 10, 3, null],
      ["d", "high", 60, 1, Date.UTC(2026, 11, 1)],
    ] satisfies StoredChoiceTask[],
    chosenIndex: n % 2,
  });

  it("stores picks and reads a user's newest oldest first, and at most some per user for the population", async () => {
    for (let n = 0; n < 5; n++) await insertTaskChoice(db.pool, choice("picker", n));
    for (let n = 5; n < 8; n++) await insertTaskChoice(db.pool, choice("other", n));
    const mine = await recentChoices(db.pool, "picker", 3);
    expect(mine.map((c) => c.context.now - Date.UTC(2026, 10, 30, 9))).toEqual([2, 3, 4]);
    expect(mine[0]!.open_tasks[1]).toEqual(["d", "high", 60, 1, Date.UTC(2026, 11, 1)]);
    const all = await recentPopulationChoices(db.pool, 100, 2);
    expect(all.map((c) => c.user_id).sort()).toEqual(["other", "other", "picker", "picker"]);
    // One answer per suggestion.
    await expect(insertTaskChoice(db.pool, choice("picker", 0))).rejects.toThrow();
  });

  it("refuses a stored pick that no longer parses", async () => {
    await insertTaskChoice(db.pool, choice("broken", 100));
    await db.pool.query(sql.unsafe`UPDATE task_choices SET open_tasks = '[["c", "sleepy", 10, 3, null]]'::jsonb WHERE user_id = 'broken'`);
    // The row schema runs in slonik's result parser now: the row is refused before any code reads it.
    await expect(recentChoices(db.pool, "broken", 10)).rejects.toBeInstanceOf(SchemaValidationError);
  });

  it("saves and replaces rankers' weights", async () => {
    await saveRanker(db.pool, "", [1, 2], 10);
    await saveRanker(db.pool, "u1", [0.5], 1);
    await saveRanker(db.pool, "u1", [0.25], 2);
    const rows = await rankersFor(db.pool, ["u1", "", "nobody"]);
    expect(rows.map((r) => [r.user_id, r.weights, r.picks]).sort()).toEqual([
      ["", [1, 2], 10],
      ["u1", [0.25], 2],
    ]);
  });
});
