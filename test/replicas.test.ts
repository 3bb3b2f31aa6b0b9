import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { silentLogger } from "../src/logger.ts";
import { startService, type Service } from "../src/start.ts";
import { freshDatabase, testServerUrl, type TestDatabase } from "./support/database.ts";
import { clearPatternMessages } from "./support/fixtures.ts";

/**
 * Two replicas of the service on one PostgreSQL. The embedded database serves
 * one process with one connection, so these run on the real server only.
 */
describe.skipIf(testServerUrl === undefined)("two replicas on one database", () => {
  let database: TestDatabase;
  let a: Service;
  let b: Service;
  const spill = mkdtempSync(join(tmpdir(), "ml-replicas-"));
  const E = ModelType.ENERGY_PREDICTION;
  const client = (s: Service) => createClient(MlService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${s.port}` }));

  beforeAll(async () => {
    database = await freshDatabase({ migrate: false });
    // Active versions cached for an hour: only the notification can make B see A's activation in time.
    const env = { DATABASE_URL: database.url, PORT: "0", TRAIN_THREADS: "1", N_ESTIMATORS: "20", ACTIVE_MODEL_TTL_SECONDS: "3600", POPULATION_AUTO_TRAIN: "0" };
    // Each replica keeps its own spill file.
    a = await startService(readConfig({ ...env, PREDICTION_SPILL_DIR: join(spill, "a") }), silentLogger);
    b = await startService(readConfig({ ...env, PREDICTION_SPILL_DIR: join(spill, "b") }), silentLogger);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await database?.close();
    rmSync(spill, { recursive: true, force: true });
  });

  it("serves an activation made on one replica from the other within a second", async () => {
    const onA = client(a);
    const onB = client(b);
    await onA.ingestTrainingData({ samples: clearPatternMessages("replica-user", 40) });
    const v1 = (await onA.train({ userId: "replica-user", modelType: E })).model!;
    await onA.ingestTrainingData({ samples: clearPatternMessages("replica-user", 40, 9) });
    const predictOnB = () =>
      onB.predict({ userId: "replica-user", targetTime: timestampFromMs(Date.UTC(2026, 10, 26, 9)), recentActivity: { avgEnergyLast7Days: 2 } });
    // B caches whichever version is active now.
    const before = (await predictOnB()).modelId;
    const latencies: number[] = [];
    for (let round = 0; round < 5; round++) {
      const listed = (await onA.listModels({ userId: "replica-user", modelType: E })).models;
      const target = listed.find((m) => !m.isActive) ?? (await onA.train({ userId: "replica-user", modelType: E })).model!;
      const activated = await onA.activateModel({ modelId: target.modelId });
      const started = performance.now();
      while ((await predictOnB()).modelId !== activated.model!.modelId) {
        expect(performance.now() - started).toBeLessThan(1_000);
        await new Promise((r) => setTimeout(r, 5));
      }
      latencies.push(performance.now() - started);
    }
    expect(before).toBe(v1.modelId);
    expect(Math.max(...latencies)).toBeLessThan(1_000);
  });

  it("runs one job at a time when both replicas train one user at once: callers join the waiting job, versions have no gaps", async () => {
    await client(a).ingestTrainingData({ samples: clearPatternMessages("both", 40) });
    const results = await Promise.all([a, b, a, b].map((s) => client(s).train({ userId: "both", modelType: E })));
    const numbers = [...new Set(results.map((r) => Number(r.model!.version.slice(1))))].sort((x, y) => x - y);
    // The first call's job runs; the later calls join the one job queued behind it (usually: v1 and v2).
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    expect(numbers.length).toBeLessThan(4);
    const listed = (await client(b).listModels({ userId: "both", modelType: E })).models;
    expect(listed.map((m) => Number(m.version.slice(1))).sort((x, y) => x - y)).toEqual(numbers);
    expect(listed.filter((m) => m.isActive)).toHaveLength(1);
  });
});
