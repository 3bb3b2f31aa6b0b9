import { randomUUID } from "node:crypto";
import { sql } from "slonik";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { NewPrediction } from "../src/db/predictions.ts";
import { silentLogger } from "../src/logger.ts";
import { createPredictionLog } from "../src/service/prediction-log.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db?.close();
});

const prediction = (userId: string): NewPrediction => ({
  predictionId: randomUUID(),
  modelId: null,
  userId,
  type: "energy_prediction",
  value: { predicted_energy: "low" },
  confidence: 0.5,
});
const count = (userId: string) =>
  db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM model_predictions WHERE user_id = ${userId}`);

describe("prediction log", () => {
  it("writes in batches by size and by time", async () => {
    // Only the log's own timer is faked: the database keeps real time.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const log = createPredictionLog(db.pool, silentLogger, { maxBatch: 10, maxDelayMs: 30 });
      const rows = Array.from({ length: 25 }, () => prediction("batch"));
      for (const row of rows) await log.append(row);
      // Two full batches went at once (waiting for the second waits for both: they are written in order).
      await log.ensureWritten(rows[19]!.predictionId);
      expect(await count("batch")).toBe(20);
      // The other five wait for the timer, and only for it.
      await vi.advanceTimersByTimeAsync(29);
      expect(await count("batch")).toBe(20);
      expect(log.pending).toBe(5);
      await vi.advanceTimersByTimeAsync(1);
      await log.ensureWritten(rows[24]!.predictionId);
      expect(await count("batch")).toBe(25);
      expect(log.pending).toBe(0);
      await log.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it("makes an id readable as soon as someone asks for it", async () => {
    const log = createPredictionLog(db.pool, silentLogger, { maxBatch: 1000, maxDelayMs: 60_000 });
    const p = prediction("ensure");
    await log.append(p);
    expect(await count("ensure")).toBe(0);
    await log.ensureWritten(p.predictionId);
    expect(await count("ensure")).toBe(1);
    await log.close();
  });

  it("flushes everything on close and writes later appends at once", async () => {
    const log = createPredictionLog(db.pool, silentLogger, { maxBatch: 1000, maxDelayMs: 60_000 });
    for (let i = 0; i < 7; i++) await log.append(prediction("close"));
    await log.close();
    expect(await count("close")).toBe(7);
    await log.append(prediction("close"));
    expect(await count("close")).toBe(8);
  });

  it("in durable mode, answers an append only once its row is stored (a group commit of the appends in one window)", async () => {
    const log = createPredictionLog(db.pool, silentLogger, { ack: "durable", maxDelayMs: 5 });
    const rows = Array.from({ length: 5 }, () => prediction("durable"));
    let answered = 0;
    await Promise.all(
      rows.map(async (r) => {
        await log.append(r);
        answered++;
        // By the time this append answers, its row is in the database.
        expect(await db.pool.oneFirst(sql.unsafe`SELECT count(*)::int FROM model_predictions WHERE prediction_id = ${r.predictionId}`)).toBe(1);
      }),
    );
    expect(answered).toBe(5);
    await log.close();
  });

  it("applies backpressure above the high-water mark", async () => {
    const log = createPredictionLog(db.pool, silentLogger, { maxBatch: 5, maxDelayMs: 60_000, highWaterMark: 4 });
    for (let i = 0; i < 5; i++) await log.append(prediction("pressure"));
    // The fifth append filled a batch over the mark, so it waited for the write.
    expect(await count("pressure")).toBe(5);
    await log.close();
  });

  it("writes the rows of a refused batch that the database takes, and reports the one it refuses without retrying it", async () => {
    const errors: string[] = [];
    const log = createPredictionLog(db.pool, { ...silentLogger, error: (m) => errors.push(m) }, { maxBatch: 2, maxDelayMs: 60_000 });
    const bad = { ...prediction("retry"), predictionId: "not-a-uuid" };
    await log.append(bad);
    await log.append(prediction("retry"));
    await log.flush();
    // Refused is not unavailable: no six attempts (that is for an outage, see prediction-spill.test.ts), one report.
    expect(errors).toEqual(["writing predictions failed", "the database refused logged predictions; they are kept apart, not replayed"]);
    // The good row of that batch and a later good batch are written.
    await log.append(prediction("retry"));
    await log.close();
    expect(await count("retry")).toBe(2);
  }, 30_000);
});
