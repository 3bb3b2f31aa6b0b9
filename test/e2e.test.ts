import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, Health } from "../gen/grpc/health/v1/health_pb.ts";
import { EnergyLevel, MlService, ModelSource, ModelType, TaskStatus } from "../gen/ml/v1/ml_pb.ts";
import { freshDatabase, testServerUrl, type TestDatabase } from "./support/database.ts";
import { clearPatternMessages } from "./support/fixtures.ts";
import { grpcJsClient } from "./support/grpc-client.ts";
import { startServiceProcess, type ServiceProcess } from "./support/process.ts";

/**
 * The whole service end to end: started as its own process the way `npm start`
 * runs it, called through @grpc/grpc-js, stopped with SIGTERM and started again.
 */

let env: Record<string, string>;
let database: TestDatabase | undefined;
let dataDir: string | undefined;
let service: ServiceProcess;

beforeAll(async () => {
  if (testServerUrl !== undefined) {
    database = await freshDatabase({ migrate: false });
    await database.pool.end();
    env = { DATABASE_URL: database.url, N_ESTIMATORS: "30" };
  } else {
    dataDir = mkdtempSync(join(tmpdir(), "ml-e2e-"));
    env = { DATA_DIR: dataDir, N_ESTIMATORS: "30" };
  }
  service = await startServiceProcess(env);
});

afterAll(async () => {
  await service?.stop();
  if (database !== undefined) await database.close().catch(() => undefined);
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

const m = MlService.method;
const NOW = Date.UTC(2026, 10, 26, 10, 0);

describe("the service over gRPC (grpc-js client)", () => {
  it("trains, predicts, suggests, takes feedback and survives a restart", async () => {
    let grpc = grpcJsClient(MlService, `127.0.0.1:${service.port}`);
    const health = grpcJsClient(Health, `127.0.0.1:${service.port}`);
    expect((await health.call(Health.method.check, {})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    health.close();

    expect((await grpc.call(m.ingestTrainingData, { samples: clearPatternMessages("e2e", 80) })).stored).toBe(80);
    const trained = await grpc.call(m.train, { userId: "e2e", modelType: ModelType.ENERGY_PREDICTION });
    expect(trained.activated).toBe(true);

    const prediction = await grpc.call(m.predict, {
      userId: "e2e",
      targetTime: timestampFromMs(NOW),
      timeZone: "Europe/Berlin",
      recentActivity: { tasksCompletedToday: 1, avgEnergyLast7Days: 2 },
    });
    expect(prediction.modelId).toBe(trained.model?.modelId);

    const taskId = randomUUID();
    await grpc.call(m.upsertTasks, {
      userId: "e2e",
      tasks: [
        { taskId, title: "Review PR", category: "review", energyRequired: EnergyLevel.MEDIUM, estimatedMinutes: 30, priority: 1, status: TaskStatus.OPEN },
      ],
    });
    const suggestions = await grpc.call(m.suggestTasks, { userId: "e2e", currentEnergy: EnergyLevel.MEDIUM });
    expect(suggestions.suggestions[0]?.taskId).toBe(taskId);

    const fb = await grpc.call(m.feedback, { predictionId: prediction.predictionId, wasCorrect: true });
    expect(fb.recorded).toBe(true);

    await expect(grpc.call(m.feedback, { predictionId: randomUUID(), wasCorrect: true })).rejects.toMatchObject({ code: GrpcStatus.NOT_FOUND });
    const ghost = await grpc.call(m.predict, { userId: "ghost", targetTime: timestampFromMs(NOW), recentActivity: { avgEnergyLast7Days: 2 } });
    expect(ghost.modelSource).toBe(ModelSource.PRIOR);
    await expect(grpc.call(m.train, { population: true, modelType: ModelType.ENERGY_PREDICTION })).rejects.toMatchObject({
      code: GrpcStatus.FAILED_PRECONDITION,
    });
    await expect(grpc.call(m.train, { userId: "", modelType: ModelType.ENERGY_PREDICTION })).rejects.toMatchObject({
      code: GrpcStatus.INVALID_ARGUMENT,
    });

    // Median Predict latency over gRPC, reported, never asserted on.
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      await grpc.call(m.predict, { userId: "e2e", targetTime: timestampFromMs(NOW + i * 60_000), recentActivity: { avgEnergyLast7Days: 2 } });
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    console.info(`Predict over gRPC: median ${times[100]!.toFixed(2)} ms over 200 calls`);

    grpc.close();
    expect(await service.stop()).toBe(0);
    service = await startServiceProcess(env);
    grpc = grpcJsClient(MlService, `127.0.0.1:${service.port}`);
    const again = await grpc.call(m.predict, {
      userId: "e2e",
      targetTime: timestampFromMs(NOW),
      timeZone: "Europe/Berlin",
      recentActivity: { tasksCompletedToday: 1, avgEnergyLast7Days: 2 },
    });
    expect(again.modelId).toBe(trained.model?.modelId);
    expect(again.probabilities.map((p) => p.probability)).toEqual(prediction.probabilities.map((p) => p.probability));
    const models = await grpc.call(m.listModels, { userId: "e2e", modelType: ModelType.ENERGY_PREDICTION });
    expect(models.models[0]?.feedbackCount).toBe(1);
    grpc.close();
  });

  it("answers Connect JSON over HTTP/1.1 on the same port", async () => {
    const res = await fetch(`http://127.0.0.1:${service.port}/ml.v1.MlService/ListModels`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: "e2e", modelType: "MODEL_TYPE_ENERGY_PREDICTION" }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { models: { version: string }[] };
    expect(body.models[0]?.version).toBe("v1");
    const bad = await fetch(`http://127.0.0.1:${service.port}/ml.v1.MlService/ActivateModel`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ modelId: "nope" }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe("invalid_argument");
  });
});
