import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { sql } from "slonik";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnergyLevel, ModelSource, ModelType, TaskStatus } from "../gen/ml/v1/ml_pb.ts";
import { clearPatternMessages } from "./support/fixtures.ts";
import { codeOf, errorOf } from "./support/calls.ts";
import { startTestService, type TestService } from "./support/service.ts";

const NOW = Date.UTC(2026, 10, 26, 9, 0, 0);
let s: TestService;

beforeAll(async () => {
  s = await startTestService({ clock: () => NOW });
});
afterAll(async () => {
  await s?.close();
});

const E = ModelType.ENERGY_PREDICTION;
const activity = { tasksCompletedToday: 2, avgEnergyLast7Days: 2.1 };

async function trainedUser(userId: string, count = 60): Promise<void> {
  await s.client.ingestTrainingData({ samples: clearPatternMessages(userId, count) });
  const r = await s.client.train({ userId, modelType: E });
  expect(r.activated).toBe(true);
}

describe("IngestTrainingData", () => {
  it("stores a batch and counts it", async () => {
    const r = await s.client.ingestTrainingData({ samples: clearPatternMessages("ingest-1", 30) });
    expect(r.stored).toBe(30);
  });

  it("stores nothing when one sample is bad, and names it", async () => {
    const samples = clearPatternMessages("ingest-2", 10);
    samples[7]!.features!.hourOfDay = 24;
    const err = await errorOf(s.client.ingestTrainingData({ samples }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("samples[7].features.hour_of_day");
    const count = await s.db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM training_data WHERE user_id = 'ingest-2'`);
    expect(count).toBe(0);
  });

  it("rejects empty and oversized batches and unset fields", async () => {
    expect(await codeOf(s.client.ingestTrainingData({ samples: [] }))).toBe(Code.InvalidArgument);
    const one = clearPatternMessages("ingest-3", 1)[0]!;
    expect(await codeOf(s.client.ingestTrainingData({ samples: new Array(10_001).fill(one) }))).toBe(Code.InvalidArgument);
    for (const mutate of [
      (x: typeof one) => (x.energy = EnergyLevel.UNSPECIFIED),
      (x: typeof one) => (x.userId = " "),
      (x: typeof one) => delete x.observedAt,
      (x: typeof one) => delete x.features,
      (x: typeof one) => (x.features!.avgEnergyLast7Days = 3.5),
      (x: typeof one) => (x.features!.sleepQuality = 1.5),
      (x: typeof one) => (x.features!.dayOfWeek = 7),
    ]) {
      const bad = clearPatternMessages("ingest-3", 1)[0]!;
      mutate(bad);
      expect(await codeOf(s.client.ingestTrainingData({ samples: [bad] }))).toBe(Code.InvalidArgument);
    }
  });
});

describe("Train", () => {
  it("says how many samples exist and how many are needed", async () => {
    await s.client.ingestTrainingData({ samples: clearPatternMessages("few", 7) });
    const err = await errorOf(s.client.train({ userId: "few", modelType: E }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("has 7");
    expect(err.rawMessage).toContain("at least 10");
  });

  it("rejects a missing user or model type", async () => {
    expect(await codeOf(s.client.train({ userId: "", modelType: E }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client.train({ userId: "x", modelType: ModelType.UNSPECIFIED }))).toBe(Code.InvalidArgument);
  });

  it("activates the first version and explains a later decision", async () => {
    await s.client.ingestTrainingData({ samples: clearPatternMessages("trainer", 60) });
    const first = await s.client.train({ userId: "trainer", modelType: E });
    expect(first.activated).toBe(true);
    expect(first.reason).toMatch(/first/);
    expect(first.model?.version).toBe("v1");
    expect(first.model?.trainingSamples).toBe(60);
    expect(first.model?.evaluation).toMatch(/stratified 5-fold/);
    expect(first.model?.trainingAccuracy).toBeGreaterThan(0.4);

    await s.client.ingestTrainingData({ samples: clearPatternMessages("trainer", 30, 99) });
    const second = await s.client.train({ userId: "trainer", modelType: E });
    expect(second.model?.version).toBe("v2");
    expect(second.reason).toMatch(/30 most recent samples, which v1 never saw/);
    const models = await s.client.listModels({ userId: "trainer", modelType: E });
    expect(models.models.map((m) => m.version)).toEqual(["v2", "v1"]);
    expect(models.models.filter((m) => m.isActive)).toHaveLength(1);
    expect(models.models.find((m) => m.isActive)?.version).toBe(second.activated ? "v2" : "v1");
  });

  it("runs concurrent calls for one user one after another", async () => {
    await s.client.ingestTrainingData({ samples: clearPatternMessages("concurrent", 40) });
    const results = await Promise.all([1, 2, 3].map(() => s.client.train({ userId: "concurrent", modelType: E })));
    expect(results.map((r) => r.model?.version).sort()).toEqual(["v1", "v2", "v3"]);
    const models = await s.client.listModels({ userId: "concurrent", modelType: E });
    expect(models.models.filter((m) => m.isActive)).toHaveLength(1);
  });
});

describe("Predict", () => {
  beforeAll(async () => {
    await trainedUser("predictor");
  });

  it("answers a valid level with probabilities that sum to 1", async () => {
    const r = await s.client.predict({ userId: "predictor", targetTime: timestampFromMs(NOW), recentActivity: activity });
    expect([EnergyLevel.LOW, EnergyLevel.MEDIUM, EnergyLevel.HIGH]).toContain(r.predictedEnergy);
    expect(r.confidence).toBeGreaterThanOrEqual(0);
    expect(r.confidence).toBeLessThanOrEqual(1);
    expect(r.probabilities.map((p) => p.level)).toEqual([EnergyLevel.LOW, EnergyLevel.MEDIUM, EnergyLevel.HIGH]);
    const sum = r.probabilities.reduce((a, p) => a + p.probability, 0);
    expect(sum).toBeCloseTo(1, 9);
    expect(r.confidence).toBeCloseTo(Math.max(...r.probabilities.map((p) => p.probability)), 9);
    expect(r.recommendedTaskTypes.length).toBeGreaterThan(0);
    expect(r.modelVersion).toBe("v1");
    expect(r.modelSource).toBe(ModelSource.USER);
    await s.app.predictionLog.flush();
    const logged = await s.db.pool.one(
      sql.type(z.object({ prediction_type: z.string(), user_id: z.string() }))`
        SELECT prediction_type, user_id FROM model_predictions WHERE prediction_id = ${r.predictionId}`,
    );
    expect(logged).toEqual({ prediction_type: "energy_prediction", user_id: "predictor" });
  });

  it("reads hour and weekday in the caller's time zone", async () => {
    const r = await s.client.predict({
      userId: "predictor",
      targetTime: timestampFromMs(Date.UTC(2026, 10, 26, 23, 30)),
      timeZone: "Asia/Tokyo",
      recentActivity: activity,
    });
    await s.app.predictionLog.flush();
    const features = await s.db.pool.oneFirst(
      sql.type(z.object({ f: z.record(z.string(), z.unknown()) }))`
        SELECT prediction_value->'features' AS f FROM model_predictions WHERE prediction_id = ${r.predictionId}`,
    );
    // 23:30 UTC on Thursday is 08:30 on Friday in Tokyo.
    expect(features).toMatchObject({ hour_of_day: 8, day_of_week: 4 });
  });

  it("rejects bad input with the field's name", async () => {
    const base = { userId: "predictor", targetTime: timestampFromMs(NOW), recentActivity: activity };
    const cases = [
      { ...base, timeZone: "Mars/Olympus" },
      { ...base, targetTime: undefined },
      { ...base, recentActivity: undefined },
      { ...base, recentActivity: { ...activity, avgEnergyLast7Days: 0 } },
      { ...base, userId: "" },
    ];
    for (const c of cases) expect(await codeOf(s.client.predict(c))).toBe(Code.InvalidArgument);
    expect((await errorOf(s.client.predict(cases[0]!))).rawMessage).toContain("time_zone");
  });

  it("answers a user with no model from the circadian prior while no population model exists", async () => {
    const r = await s.client.predict({ userId: "nobody", targetTime: timestampFromMs(NOW), recentActivity: activity });
    expect(r.modelSource).toBe(ModelSource.PRIOR);
    expect(r.modelId).toBe("");
    expect(r.probabilities.reduce((a, p) => a + p.probability, 0)).toBeCloseTo(1, 9);
  });

  it("names a model that cannot be loaded, and keeps serving others", async () => {
    await trainedUser("corrupt", 30);
    const [model] = (await s.client.listModels({ userId: "corrupt", modelType: E })).models;
    await s.db.pool.query(sql.unsafe`UPDATE ml_models SET model_data = '\\x00ff'::bytea WHERE model_id = ${model!.modelId}`);
    // A fresh app has an empty cache, so it must read the corrupt blob.
    const fresh = await startTestServiceOn();
    const err = await errorOf(fresh.predict({ userId: "corrupt", targetTime: timestampFromMs(NOW), recentActivity: activity }));
    expect(err.code).toBe(Code.DataLoss);
    expect(err.rawMessage).toContain(model!.modelId);
    expect(await codeOf(fresh.predict({ userId: "predictor", targetTime: timestampFromMs(NOW), recentActivity: activity }))).toBe("ok");
  });
});

const others: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const app of others) await app.close();
});

async function startTestServiceOn() {
  const { createApp } = await import("../src/app.ts");
  const { createClient, createRouterTransport } = await import("@connectrpc/connect");
  const { MlService } = await import("../gen/ml/v1/ml_pb.ts");
  const { createErrorInterceptor } = await import("../src/server/errors.ts");
  const { silentLogger } = await import("../src/logger.ts");
  const { TEST_SETTINGS } = await import("./support/service.ts");
  const app = createApp({ db: s.db.pool, runJob: (job) => s.pool.run(job), log: silentLogger, settings: TEST_SETTINGS });
  others.push(app);
  return createClient(MlService, createRouterTransport(app.routes, { router: { interceptors: [createErrorInterceptor(silentLogger)] } }));
}

const DEEP = randomUUID();
const ADMIN = randomUUID();

/** The planner's admin task, open or done. */
function expenses(status: TaskStatus) {
  return { taskId: ADMIN, title: "File expenses", category: "admin", energyRequired: EnergyLevel.LOW, estimatedMinutes: 15, priority: 2, status };
}
const MEETING = randomUUID();

describe("UpsertTasks and SuggestTasks", () => {
  beforeAll(async () => {
    await s.client.upsertTasks({
      userId: "planner",
      tasks: [
        {
          taskId: DEEP,
          title: "Write the design doc",
          category: "deep work",
          energyRequired: EnergyLevel.HIGH,
          estimatedMinutes: 120,
          priority: 2,
          status: TaskStatus.OPEN,
        },
        expenses(TaskStatus.OPEN),
        {
          taskId: MEETING,
          title: "Plan the sprint",
          category: "planning",
          energyRequired: EnergyLevel.MEDIUM,
          estimatedMinutes: 45,
          priority: 2,
          status: TaskStatus.OPEN,
          dueAt: timestampFromMs(NOW + 20 * 3_600_000),
        },
      ],
    });
  });

  it("puts demanding work first at high energy and light work first at low energy", async () => {
    const high = await s.client.suggestTasks({ userId: "planner", currentEnergy: EnergyLevel.HIGH });
    const low = await s.client.suggestTasks({ userId: "planner", currentEnergy: EnergyLevel.LOW });
    expect(high.suggestions[0]?.taskId).toBe(DEEP);
    expect(low.suggestions[0]?.taskId).toBe(ADMIN);
    const rank = (r: typeof high, id: string) => r.suggestions.findIndex((x) => x.taskId === id);
    expect(rank(high, DEEP)).toBeLessThan(rank(low, DEEP));
    expect(rank(low, ADMIN)).toBeLessThan(rank(high, ADMIN));
    for (const x of [...high.suggestions, ...low.suggestions]) {
      expect(x.matchScore).toBeGreaterThanOrEqual(0);
      expect(x.matchScore).toBeLessThanOrEqual(1);
      expect(x.reasoning).toMatch(/^[A-Z].*energy.*\.$/);
    }
    expect(low.suggestions.find((x) => x.taskId === DEEP)?.reasoning).toMatch(/hard going/);
    expect(high.suggestions.find((x) => x.taskId === MEETING)?.reasoning).toMatch(/due within a day/);
  });

  it("honours limit, rejects more than 50, and leaves done tasks out", async () => {
    expect((await s.client.suggestTasks({ userId: "planner", currentEnergy: EnergyLevel.HIGH, limit: 1 })).suggestions).toHaveLength(1);
    expect(await codeOf(s.client.suggestTasks({ userId: "planner", currentEnergy: EnergyLevel.HIGH, limit: 51 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client.suggestTasks({ userId: "planner", currentEnergy: EnergyLevel.UNSPECIFIED }))).toBe(Code.InvalidArgument);
    await s.client.upsertTasks({ userId: "planner", tasks: [expenses(TaskStatus.DONE)] });
    const r = await s.client.suggestTasks({ userId: "planner", currentEnergy: EnergyLevel.LOW });
    expect(r.suggestions.map((x) => x.taskId)).not.toContain(ADMIN);
    await s.client.upsertTasks({ userId: "planner", tasks: [expenses(TaskStatus.OPEN)] });
  });

  it("predicts the energy when none is given", async () => {
    await trainedUser("planner", 40);
    const r = await s.client.suggestTasks({ userId: "planner", timeZone: "Europe/Berlin" });
    expect(r.energyPredicted).toBe(true);
    expect(r.energy).not.toBe(EnergyLevel.UNSPECIFIED);
    expect(r.suggestions).toHaveLength(3);
  });

  it("rejects bad tasks", async () => {
    const good = {
      taskId: randomUUID(),
      title: "t",
      category: "c",
      energyRequired: EnergyLevel.LOW,
      estimatedMinutes: 5,
      priority: 1,
      status: TaskStatus.OPEN,
    };
    for (const bad of [
      { ...good, taskId: "not-a-uuid" },
      { ...good, priority: 5 },
      { ...good, title: "  " },
      { ...good, category: "" },
      { ...good, estimatedMinutes: 0 },
      { ...good, status: TaskStatus.UNSPECIFIED },
      { ...good, energyRequired: EnergyLevel.UNSPECIFIED },
    ]) {
      expect(await codeOf(s.client.upsertTasks({ userId: "planner", tasks: [bad] }))).toBe(Code.InvalidArgument);
    }
    expect(await codeOf(s.client.upsertTasks({ userId: "planner", tasks: [good, good] }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client.upsertTasks({ userId: "planner", tasks: [] }))).toBe(Code.InvalidArgument);
  });
});

describe("Feedback", () => {
  beforeAll(async () => {
    await trainedUser("fb", 40);
  });
  const predict = () => s.client.predict({ userId: "fb", targetTime: timestampFromMs(NOW), recentActivity: activity });

  it("updates the model's live accuracy in the direction of the answer", async () => {
    const before = (await s.client.listModels({ userId: "fb", modelType: E })).models[0]!;
    const right = await s.client.feedback({ predictionId: (await predict()).predictionId, wasCorrect: true });
    expect(right.recorded).toBe(true);
    expect(right.trainingSampleAdded).toBe(true);
    expect(right.modelAccuracy).toBeGreaterThan(before.accuracyScore);
    const p = await predict();
    const wrongLevel = p.predictedEnergy === EnergyLevel.LOW ? EnergyLevel.HIGH : EnergyLevel.LOW;
    const wrong = await s.client.feedback({ predictionId: p.predictionId, wasCorrect: false, actualEnergy: wrongLevel });
    expect(wrong.modelAccuracy).toBeLessThan(right.modelAccuracy);
    const after = (await s.client.listModels({ userId: "fb", modelType: E })).models[0]!;
    expect(after.feedbackCount).toBe(2);
    expect(after.feedbackCorrect).toBe(1);
    expect(after.trainingAccuracy).toBe(before.trainingAccuracy);
  });

  it("treats the same answer twice as a no-op and a different one as FAILED_PRECONDITION", async () => {
    const { predictionId } = await predict();
    expect((await s.client.feedback({ predictionId, wasCorrect: true })).recorded).toBe(true);
    const again = await s.client.feedback({ predictionId, wasCorrect: true });
    expect(again.recorded).toBe(false);
    expect(again.trainingSampleAdded).toBe(false);
    expect(await codeOf(s.client.feedback({ predictionId, wasCorrect: false }))).toBe(Code.FailedPrecondition);
    const model = (await s.client.listModels({ userId: "fb", modelType: E })).models[0]!;
    expect(model.feedbackCount).toBe(3);
  });

  it("rejects unknown ids and contradictions", async () => {
    expect(await codeOf(s.client.feedback({ predictionId: randomUUID(), wasCorrect: true }))).toBe(Code.NotFound);
    expect(await codeOf(s.client.feedback({ predictionId: "nope", wasCorrect: true }))).toBe(Code.InvalidArgument);
    const p = await predict();
    expect(await codeOf(s.client.feedback({ predictionId: p.predictionId, wasCorrect: false, actualEnergy: p.predictedEnergy }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client.feedback({ predictionId: p.predictionId, wasCorrect: true, chosenTaskId: randomUUID() }))).toBe(Code.InvalidArgument);
  });

  it("retrains in the background after enough new samples", async () => {
    let scheduled = false;
    for (let i = 0; i < 25 && !scheduled; i++) {
      const p = await s.client.predict({
        userId: "fb",
        targetTime: timestampFromMs(NOW + i * 3_600_000),
        recentActivity: activity,
      });
      scheduled = (await s.client.feedback({ predictionId: p.predictionId, wasCorrect: true })).retrainScheduled;
    }
    expect(scheduled).toBe(true);
    await s.app.trainer.idle();
    const models = (await s.client.listModels({ userId: "fb", modelType: E })).models;
    expect(models[0]?.version).toBe("v2");
    expect(models[0]?.trainingSamples).toBeGreaterThan(40);
  });

  it("learns task preferences from chosen suggestions", async () => {
    const ids = Array.from({ length: 6 }, () => randomUUID());
    await s.client.upsertTasks({
      userId: "chooser",
      tasks: ids.map((taskId, i) => ({
        taskId,
        title: `Task ${i}`,
        category: i % 2 === 0 ? "writing" : "email",
        energyRequired: [EnergyLevel.LOW, EnergyLevel.MEDIUM, EnergyLevel.HIGH][i % 3]!,
        estimatedMinutes: 30,
        priority: 2,
        status: TaskStatus.OPEN,
      })),
    });
    const first = await s.client.suggestTasks({ userId: "chooser", currentEnergy: EnergyLevel.MEDIUM, limit: 6 });
    expect(await codeOf(s.client.feedback({ predictionId: first.suggestionId, wasCorrect: true, chosenTaskId: randomUUID() }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client.feedback({ predictionId: first.suggestionId, wasCorrect: true, actualEnergy: EnergyLevel.LOW }))).toBe(Code.InvalidArgument);
    // Picks feed the learned ranker (task_choices), not the forest suggester's training samples.
    expect(await codeOf(s.client.train({ userId: "chooser", modelType: ModelType.TASK_SUGGESTER }))).toBe(Code.FailedPrecondition);
    // The user always picks the same writing task, shown or not.
    for (let i = 0; i < 6; i++) {
      const r = i === 0 ? first : await s.client.suggestTasks({ userId: "chooser", currentEnergy: EnergyLevel.MEDIUM, limit: 2 });
      const shownAt = r.suggestions.findIndex((x) => x.taskId === ids[0]);
      const fb = await s.client.feedback({ predictionId: r.suggestionId, wasCorrect: true, chosenTaskId: ids[0]! });
      expect(fb.recorded).toBe(true);
      expect(fb.trainingSampleAdded).toBe(true);
      expect(fb.chosenRank).toBe(shownAt < 0 ? undefined : shownAt + 1);
    }
    const after = await s.client.suggestTasks({ userId: "chooser", currentEnergy: EnergyLevel.MEDIUM, limit: 6 });
    expect(after.suggestions[0]?.taskId).toBe(ids[0]);
    expect(after.suggestions[0]?.reasoning).toMatch(/Ranked up by .*(writing|low demand)/);
    const total = after.suggestions.reduce((a, x) => a + x.matchScore, 0);
    expect(total).toBeCloseTo(1, 2);
  });
});

describe("ListModels and ActivateModel", () => {
  it("rolls back and forward with exactly one active version", async () => {
    await trainedUser("roller", 30);
    await s.client.train({ userId: "roller", modelType: E });
    const [v2, v1] = (await s.client.listModels({ userId: "roller", modelType: E })).models;
    const back = await s.client.activateModel({ modelId: v1!.modelId });
    expect(back.model?.isActive).toBe(true);
    const listed = (await s.client.listModels({ userId: "roller", modelType: E })).models;
    expect(listed.filter((m) => m.isActive).map((m) => m.version)).toEqual(["v1"]);
    const p = await s.client.predict({ userId: "roller", targetTime: timestampFromMs(NOW), recentActivity: activity });
    expect(p.modelVersion).toBe("v1");
    await s.client.activateModel({ modelId: v2!.modelId });
    expect((await s.client.listModels({ userId: "roller", modelType: E })).models.filter((m) => m.isActive).map((m) => m.version)).toEqual(["v2"]);
  });

  it("answers NOT_FOUND and INVALID_ARGUMENT", async () => {
    expect(await codeOf(s.client.activateModel({ modelId: randomUUID() }))).toBe(Code.NotFound);
    expect(await codeOf(s.client.activateModel({ modelId: "x" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client.listModels({ userId: "roller", modelType: ModelType.UNSPECIFIED }))).toBe(Code.InvalidArgument);
    expect((await s.client.listModels({ userId: "no-such-user", modelType: E })).models).toEqual([]);
  });
});
