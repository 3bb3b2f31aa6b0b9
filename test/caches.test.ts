import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateModel, insertModel } from "../src/db/models.ts";
import { mlRandomForest } from "../src/ml/ml-random-forest.ts";
import { createActiveModels } from "../src/service/active-models.ts";
import { createModelCache } from "../src/service/model-cache.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db?.close();
});

const forest = mlRandomForest.fit([[0], [1], [2], [3]], [0, 0, 1, 1], 2, { nEstimators: 3, seed: 1 });
const blob = forest.serialize();
const store = (userId: string) =>
  insertModel(db.pool, {
    userId,
    modelType: "energy_prediction",
    format: forest.kind,
    modelData: blob,
    trainingAccuracy: 0.5,
    evaluation: {},
    trainingSamples: 4,
    trainingDataSeq: 1n,
    trainingSinceSeq: 0n,
    ece: 0,
    brier: 0,
  });
const why = { trigger: "train", reason: "test" };

describe("model cache", () => {
  it("loads each version once, even for concurrent first calls", async () => {
    const cache = createModelCache(db.pool);
    const row = await store("c1");
    const [a, b] = await Promise.all([cache.get(row.model_id), cache.get(row.model_id)]);
    expect(a).toBe(b);
    expect(a.kind === "forest" && a.forest.predictProba([3])).toEqual(forest.predictProba([3]));
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(blob.byteLength);
  });

  it("stays under its memory bound, dropping the least recently used", async () => {
    const cache = createModelCache(db.pool, blob.byteLength * 2);
    const rows = [await store("c2"), await store("c3"), await store("c4")];
    const first = await cache.get(rows[0]!.model_id);
    await cache.get(rows[1]!.model_id);
    await cache.get(rows[0]!.model_id);
    await cache.get(rows[2]!.model_id);
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBeLessThanOrEqual(blob.byteLength * 2);
    // rows[1] was least recently used, so rows[0] is still the same object.
    expect(await cache.get(rows[0]!.model_id)).toBe(first);
    cache.put("00000000-0000-4000-8000-000000000001", { kind: "forest", forest }, blob.byteLength);
    expect(cache.size).toBe(2);
  });

  it("does not keep a failed load", async () => {
    const cache = createModelCache(db.pool);
    await expect(cache.get("00000000-0000-4000-8000-0000000000ff")).rejects.toThrow(/not in ml_models/);
    expect(cache.size).toBe(0);
  });
});

describe("active models", () => {
  it("answers from memory within the TTL and sees changes after invalidate or expiry", async () => {
    let now = 0;
    const active = createActiveModels(db.pool, { ttlMs: 1000, clock: () => now });
    expect(await active.get("a1", "energy_prediction")).toBeNull();
    const row = await store("a1");
    await activateModel(db.pool, row.model_id, why);
    expect(await active.get("a1", "energy_prediction")).toBeNull();
    now = 1001;
    expect((await active.get("a1", "energy_prediction"))?.model_id).toBe(row.model_id);
    const next = await store("a1");
    await activateModel(db.pool, next.model_id, why);
    active.invalidate("a1", "energy_prediction");
    expect((await active.get("a1", "energy_prediction"))?.model_id).toBe(next.model_id);
  });

  it("keeps at most maxEntries users", async () => {
    const active = createActiveModels(db.pool, { maxEntries: 3 });
    const users = ["m1", "m2", "m3", "m4", "m5"];
    for (const u of users) await active.get(u, "energy_prediction");
    // peek answers only from memory: exactly the three most recent users are still there.
    expect(users.filter((u) => active.peek(u, "energy_prediction") !== undefined)).toEqual(["m3", "m4", "m5"]);
  });
});
