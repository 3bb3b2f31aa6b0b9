import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { sql, type DatabasePool } from "slonik";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../src/db/migrate.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import type { NewPrediction } from "../src/db/predictions.ts";
import { DatabaseUnavailable } from "../src/errors.ts";
import { silentLogger } from "../src/logger.ts";
import { createPredictionLog } from "../src/service/prediction-log.ts";
import { createPredictionSpill } from "../src/service/prediction-spill.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";

/** No acknowledged prediction is lost when the database goes away: it waits on disk and goes in when the database is back. */
let db: TestDatabase;
let proxy: TcpProxy;
// Every query goes through the proxy (the embedded database takes one connection at a time).
let pool: DatabasePool;
const dir = mkdtempSync(join(tmpdir(), "ml-spill-"));

beforeAll(async () => {
  db = await freshDatabase({ migrate: false });
  const target = new URL(db.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
  target.host = `127.0.0.1:${proxy.port}`;
  pool = await createDatabasePool(target.toString(), { maximumPoolSize: 1 });
  await migrate(pool);
});
afterAll(async () => {
  await pool?.end();
  await proxy?.close();
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

const prediction = (): NewPrediction => ({
  predictionId: randomUUID(),
  modelId: null,
  userId: "spill-user",
  type: "energy_prediction",
  value: { predicted_energy: "high" },
  confidence: 0.5,
});
const stored = (ids: readonly string[]) =>
  pool.oneFirst(sql.unsafe`SELECT count(*)::int FROM model_predictions WHERE prediction_id = ANY(${sql.array(ids, "uuid")})`);

describe("the prediction spill", () => {
  it("keeps rows the database would not take on disk, answers UNAVAILABLE for them, and replays them on recovery", async () => {
    const spill = createPredictionSpill(join(dir, "a", "predictions.jsonl"));
    const log = createPredictionLog(pool, silentLogger, { spill, maxDelayMs: 5 });
    const before = prediction();
    await log.append(before);
    await log.ensureWritten(before.predictionId);
    proxy.cut();
    const during = Array.from({ length: 30 }, prediction);
    for (const p of during) await log.append(p);
    // Six attempts with backoff (about 1.5 s), then the batch is on disk, not lost.
    await log.flush();
    expect(existsSync(spill.file)).toBe(true);
    expect((await spill.read()).map((r) => r.predictionId)).toEqual(during.map((p) => p.predictionId));
    await expect(log.ensureWritten(during[0]!.predictionId)).rejects.toBeInstanceOf(DatabaseUnavailable);
    proxy.restore();
    // Feedback on a spilled id replays first, so the id is found.
    await log.ensureWritten(during[0]!.predictionId);
    expect(await stored(during.map((p) => p.predictionId))).toBe(30);
    expect(existsSync(spill.file)).toBe(false);
    await log.close();
  }, 30_000);

  it("replays what a previous run left in the file when it starts, skipping rows already stored and lines cut short", async () => {
    const file = join(dir, "b", "predictions.jsonl");
    const spill = createPredictionSpill(file);
    // Rows as the log writes them: stamped once, so the attempt that was stored and the spilled copy name the same row.
    const rows = Array.from({ length: 5 }, () => ({ ...prediction(), createdAt: Date.now() }));
    await spill.append(rows);
    // A crash mid-append leaves half a line; a later spill must not glue its first row onto it.
    writeFileSync(file, '{"predictionId":"', { flag: "a" });
    const later = [{ ...prediction(), createdAt: Date.now() }];
    await spill.append(later);
    expect((await spill.read()).map((r) => r.predictionId)).toEqual([...rows, ...later].map((r) => r.predictionId));
    rows.push(...later);
    const early = createPredictionLog(pool, silentLogger, { maxDelayMs: 5 });
    await early.append(rows[0]!);
    await early.close();
    const log = createPredictionLog(pool, silentLogger, { spill });
    for (let i = 0; i < 50 && existsSync(file); i++) await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(file)).toBe(false);
    expect(await stored(rows.map((p) => p.predictionId))).toBe(6);
    await log.close();
  });

  it("stores what it can of a batch the database refuses, and keeps the refused rows apart instead of retrying them forever", async () => {
    const spill = createPredictionSpill(join(dir, "c", "predictions.jsonl"));
    const log = createPredictionLog(pool, silentLogger, { spill, maxDelayMs: 5 });
    const good = [prediction(), prediction()];
    // A model id that is not in ml_models: the foreign key refuses this row, whatever the retries.
    const bad = { ...prediction(), modelId: randomUUID() };
    for (const p of [good[0]!, bad, good[1]!]) await log.append(p);
    await log.flush();
    expect(await stored(good.map((p) => p.predictionId))).toBe(2);
    expect(await stored([bad.predictionId])).toBe(0);
    expect(existsSync(spill.file)).toBe(false);
    expect((await createPredictionSpill(`${spill.file}.rejected`).read()).map((r) => r.predictionId)).toEqual([bad.predictionId]);
    await log.ensureWritten(bad.predictionId);
    await log.close();
  });
});
