import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnergyLevel, ModelType, TaskStatus } from "../gen/ml/v1/ml_pb.ts";
import { sql } from "slonik";
import { codeOf, errorOf } from "./support/calls.ts";
import { clearPatternMessages } from "./support/fixtures.ts";
import { startTestService, type TestService } from "./support/service.ts";

/** Input the database or date arithmetic cannot hold is INVALID_ARGUMENT at the edge, on every RPC, and stores nothing. */
let s: TestService;
const E = ModelType.ENERGY_PREDICTION;
const NOW = Date.UTC(2026, 10, 26, 9);
const activity = { tasksCompletedToday: 1, avgEnergyLast7Days: 2 };
const task = {
  taskId: "6f1c2a9e-3b7d-4c1e-9a2f-0d5e8b7c6a41",
  title: "write",
  category: "deep",
  energyRequired: EnergyLevel.HIGH,
  estimatedMinutes: 30,
  priority: 2,
  status: TaskStatus.OPEN,
};

beforeAll(async () => {
  s = await startTestService({ clock: () => NOW });
});
afterAll(async () => {
  await s?.close();
});

describe("validation at the edge", () => {
  it("refuses a NUL or control character in user_id on every RPC that takes one", async () => {
    const bad = "ali\u0000ce";
    const sample = clearPatternMessages("x", 1)[0]!;
    const calls = [
      s.client.predict({ userId: bad, targetTime: timestampFromMs(NOW), recentActivity: activity }),
      s.client.forecastEnergy({ userId: bad, from: timestampFromMs(NOW), hours: 3 }),
      s.client.suggestTasks({ userId: bad, currentEnergy: EnergyLevel.HIGH }),
      s.client.upsertTasks({ userId: bad, tasks: [task] }),
      s.client.ingestTrainingData({ samples: [{ ...sample, userId: bad }] }),
      s.client.train({ userId: bad, modelType: E }),
      s.client.listModels({ userId: bad, modelType: E }),
      s.client.listActivations({ userId: bad, modelType: E }),
      s.client.predict({ userId: "bob\u001b[31m", targetTime: timestampFromMs(NOW), recentActivity: activity }),
    ];
    expect(await Promise.all(calls.map(codeOf))).toEqual(calls.map(() => Code.InvalidArgument));
    const err = await errorOf(s.client.train({ userId: bad, modelType: E }));
    expect(err.rawMessage).toMatch(/user_id.*U\+0000/);
  });

  it("refuses a NUL in a task's title or category, and stores none of the request", async () => {
    for (const t of [
      { ...task, title: "a\u0000b" },
      { ...task, category: "c\u0000" },
    ]) {
      expect(await codeOf(s.client.upsertTasks({ userId: "tasks-user", tasks: [task, t] }))).toBe(Code.InvalidArgument);
    }
    const stored = await s.db.pool.oneFirst(sql.unsafe`SELECT count(*)::int FROM tasks WHERE user_id = 'tasks-user'`);
    expect(stored).toBe(0);
  });

  it("refuses timestamps outside 1970-2200 before any date arithmetic", async () => {
    const sample = clearPatternMessages("ts", 1)[0]!;
    const tooLate = timestampFromMs(0);
    tooLate.seconds = 10_000_000_000_000n;
    const year10000 = timestampFromMs(Date.UTC(10000, 0, 1));
    const year0 = timestampFromMs(0);
    year0.seconds = -62_167_219_200n;
    const calls = [
      s.client.predict({ userId: "ts", targetTime: tooLate, recentActivity: activity }),
      s.client.predict({ userId: "ts", targetTime: year10000, recentActivity: activity }),
      s.client.forecastEnergy({ userId: "ts", from: tooLate, hours: 3 }),
      s.client.ingestTrainingData({ samples: [{ ...sample, observedAt: year0 }] }),
      s.client.ingestTrainingData({ samples: [{ ...sample, observedAt: year10000 }] }),
      s.client.upsertTasks({ userId: "ts", tasks: [{ ...task, dueAt: year0 }] }),
      s.client.predict({ userId: "ts", targetTime: { ...timestampFromMs(1000), nanos: -1 }, recentActivity: activity }),
    ];
    expect(await Promise.all(calls.map(codeOf))).toEqual(calls.map(() => Code.InvalidArgument));
    expect(await codeOf(s.client.predict({ userId: "ts", targetTime: timestampFromMs(Date.UTC(2199, 11, 31)), recentActivity: activity }))).toBe("ok");
  });

  it("quotes at most a short prefix of what the caller sent", async () => {
    const huge = "Europe/" + "x".repeat(1_000_000);
    const err = await errorOf(s.client.predict({ userId: "q", targetTime: timestampFromMs(NOW), timeZone: huge, recentActivity: activity }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage.length).toBeLessThan(200);
    const id = await errorOf(s.client.feedback({ predictionId: "z".repeat(100_000), wasCorrect: true }));
    expect(id.code).toBe(Code.InvalidArgument);
    expect(id.rawMessage.length).toBeLessThan(200);
  });
});
