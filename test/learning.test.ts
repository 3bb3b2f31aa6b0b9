import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnergyLevel, ModelSource, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { sampleMessages } from "./support/fixtures.ts";
import { codeOf } from "./support/calls.ts";
import { startTestService, type TestService } from "./support/service.ts";

/** Cold start, the population model, sources, the activation log, drift and the forecast, through a Connect client. */
let s: TestService;
const NOW = Date.UTC(2026, 10, 26, 9);
const E = ModelType.ENERGY_PREDICTION;
const activity = { tasksCompletedToday: 1, avgEnergyLast7Days: 2 };

beforeAll(async () => {
  s = await startTestService({ clock: () => NOW });
});
afterAll(async () => {
  await s?.close();
});

describe("population model and cold start", () => {
  it("needs several users", async () => {
    await s.client.ingestTrainingData({ samples: sampleMessages("pop-0", syntheticSamples(syntheticUsers(1, 9)[0]!, 40, 1)) });
    const err = ConnectError.from(await s.client.train({ population: true, modelType: E }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/from 1 user/);
  });

  it("trains over all users, answers users without a model, and lends to user models", async () => {
    const users = syntheticUsers(4, 9);
    for (const [i, u] of users.entries()) {
      await s.client.ingestTrainingData({ samples: sampleMessages(`pop-${i}`, syntheticSamples(u, 60, 10 + i)) });
    }
    const pop = await s.client.train({ population: true, modelType: E });
    expect(pop.activated).toBe(true);
    expect(pop.model?.population).toBe(true);
    expect(pop.model?.userId).toBe("");
    expect(pop.model?.evaluation).toMatch(/over 4 users, cold start/);
    expect(pop.model?.expectedCalibrationError).toBeGreaterThan(0);
    expect(pop.model?.brierScore).toBeGreaterThan(0);

    const cold = await s.client.predict({ userId: "newcomer", targetTime: timestampFromMs(NOW), recentActivity: activity });
    expect(cold.modelSource).toBe(ModelSource.POPULATION);
    expect(cold.modelId).toBe(pop.model?.modelId);

    const own = await s.client.train({ userId: "pop-1", modelType: E });
    expect(own.activated).toBe(true);
    const warm = await s.client.predict({ userId: "pop-1", targetTime: timestampFromMs(NOW), recentActivity: activity });
    expect(warm.modelSource).toBe(ModelSource.USER);
    expect(warm.modelId).toBe(own.model?.modelId);

    const listed = await s.client.listModels({ population: true, modelType: E });
    expect(listed.models.map((m) => m.version)).toEqual(["v1"]);
    expect(await codeOf(s.client.listModels({ population: true, userId: "x", modelType: E }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client.train({ population: true, modelType: ModelType.TASK_SUGGESTER }))).toBe(Code.InvalidArgument);
  });

  it("keeps an activation log with who, when and why", async () => {
    await s.client.train({ userId: "pop-2", modelType: E });
    await s.client.train({ userId: "pop-2", modelType: E });
    const [v2, v1] = (await s.client.listModels({ userId: "pop-2", modelType: E })).models;
    await s.client.activateModel({ modelId: v1!.modelId });
    const log = (await s.client.listActivations({ userId: "pop-2", modelType: E })).activations;
    expect(log[0]).toMatchObject({ version: "v1", activated: true, trigger: "activate" });
    expect(log[1]).toMatchObject({ version: "v2", trigger: "train" });
    expect(log[1]!.reason).toMatch(/v1/);
    expect(log.at(-1)).toMatchObject({ version: "v1", activated: true, trigger: "train" });
    expect(log.at(-1)!.reason).toMatch(/first/);
    expect(timestampDate(log[0]!.at!).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(v2).toBeDefined();
    expect((await s.client.listActivations({ userId: "pop-2", modelType: E, limit: 1 })).activations).toHaveLength(1);
    expect(await codeOf(s.client.listActivations({ userId: "pop-2", modelType: E, limit: 501 }))).toBe(Code.InvalidArgument);
    const popLog = await s.client.listActivations({ population: true, modelType: E });
    expect(popLog.activations[0]?.trigger).toBe("train");
  });
});

describe("re-blending after a population model activates", () => {
  // A service of its own: no population model may exist before this test's.
  let t: TestService;
  beforeAll(async () => {
    t = await startTestService({ clock: () => NOW });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("refits users who trained before it with it, in the background, and logs each decision", async () => {
    const users = syntheticUsers(4, 21);
    for (const [i, u] of users.entries()) {
      await t.client.ingestTrainingData({ samples: sampleMessages(`early-${i}`, syntheticSamples(u, 40, 30 + i)) });
    }
    // Two users train while no population model exists (a fresh deployment's first arrivals).
    const before = await t.client.train({ userId: "early-0", modelType: E });
    await t.client.train({ userId: "early-1", modelType: E });
    expect((await t.client.listModels({ population: true, modelType: E })).models).toHaveLength(0);
    const pop = await t.client.train({ population: true, modelType: E });
    expect(pop.activated).toBe(true);
    expect(Object.keys(before.model!.blendWeights)).not.toContain("pooled");
    await t.app.trainer.idle();
    for (const userId of ["early-0", "early-1"]) {
      const log = (await t.client.listActivations({ userId, modelType: E })).activations;
      expect(log[0]).toMatchObject({ version: "v2", trigger: "population:reblend" });
      const v2 = (await t.client.listModels({ userId, modelType: E })).models.find((m) => m.version === "v2")!;
      // The new version borrows from the population (it is a candidate of its blend) and was judged on the same rows.
      expect(Object.keys(v2.blendWeights)).toContain("pooled");
      expect(v2.isActive).toBe(log[0]!.activated);
    }
    // A user who trained with the active population already is left alone; users without a model are not trained.
    const again = await t.client.train({ userId: "early-0", modelType: E });
    expect(again.model?.version).toBe("v3");
    expect((await t.client.listModels({ userId: "early-2", modelType: E })).models).toHaveLength(0);
  });
});

describe("drift", () => {
  it("detects a run of wrong answers and retrains on the recent samples", async () => {
    const [user] = syntheticUsers(1, 31, { sharpness: 8, labelNoise: 0 });
    await s.client.ingestTrainingData({ samples: sampleMessages("drifter", syntheticSamples(user!, 80, 3)) });
    const first = await s.client.train({ userId: "drifter", modelType: E });
    expect(first.model?.trainingAccuracy).toBeGreaterThan(0.5);
    let drift = false;
    let answers = 0;
    for (let i = 0; i < 40 && !drift; i++) {
      const p = await s.client.predict({ userId: "drifter", targetTime: timestampFromMs(NOW + i * 3_600_000), recentActivity: activity });
      // The user's day has changed: every prediction is now wrong.
      const actual = p.predictedEnergy === EnergyLevel.LOW ? EnergyLevel.HIGH : EnergyLevel.LOW;
      const fb = await s.client.feedback({ predictionId: p.predictionId, wasCorrect: false, actualEnergy: actual });
      drift = fb.driftDetected;
      answers++;
      if (drift) expect(fb.retrainScheduled).toBe(true);
    }
    expect(drift).toBe(true);
    expect(answers).toBeLessThanOrEqual(20);
    await s.app.trainer.idle();
    const log = (await s.client.listActivations({ userId: "drifter", modelType: E })).activations;
    expect(log[0]?.trigger).toBe("retrain:drift");
    expect(log[0]?.reason).toMatch(/drift in live accuracy; the user's day re-placed from the \d+ most recent samples/);
    const models = (await s.client.listModels({ userId: "drifter", modelType: E })).models;
    expect(models[0]?.trainingSamples).toBeLessThan(first.model!.trainingSamples);
  });
});

describe("ForecastEnergy", () => {
  it("forecasts each hour and picks the best windows for demanding work", async () => {
    const r = await s.client.forecastEnergy({
      userId: "pop-1",
      from: timestampFromMs(NOW + 17 * 60_000),
      hours: 48,
      timeZone: "Europe/Berlin",
      recentActivity: activity,
    });
    expect(r.hours).toHaveLength(48);
    expect(timestampDate(r.hours[0]!.start!).getTime()).toBe(NOW);
    expect(r.modelSource).toBe(ModelSource.USER);
    for (const h of r.hours) expect(h.probabilities.reduce((a, p) => a + p.probability, 0)).toBeCloseTo(1, 9);
    expect(r.bestWindows.length).toBeGreaterThan(0);
    expect(r.bestWindows.length).toBeLessThanOrEqual(3);
    const pHigh = r.hours.map((h) => h.probabilities[2]!.probability);
    const best = r.bestWindows[0]!;
    const startIndex = (timestampDate(best.start!).getTime() - NOW) / 3_600_000;
    const length = (timestampDate(best.end!).getTime() - timestampDate(best.start!).getTime()) / 3_600_000;
    expect(length).toBeGreaterThanOrEqual(1);
    expect(length).toBeLessThanOrEqual(4);
    const mean = pHigh.slice(startIndex, startIndex + length).reduce((a, b) => a + b, 0) / length;
    expect(best.meanHighProbability).toBeCloseTo(mean, 9);
    expect(best.meanHighProbability).toBeGreaterThanOrEqual(Math.max(...pHigh) - 0.1);
  });

  it("answers users without a model and rejects bad ranges", async () => {
    const r = await s.client.forecastEnergy({ userId: "stranger", from: timestampFromMs(NOW), hours: 3 });
    expect(r.modelSource).toBe(ModelSource.POPULATION);
    for (const bad of [
      { userId: "x", from: timestampFromMs(NOW), hours: 0 },
      { userId: "x", from: timestampFromMs(NOW), hours: 169 },
      { userId: "x", hours: 5 },
      { userId: "x", from: timestampFromMs(NOW), hours: 5, timeZone: "Nowhere/Land" },
    ]) {
      expect(await codeOf(s.client.forecastEnergy(bad))).toBe(Code.InvalidArgument);
    }
  });
});
