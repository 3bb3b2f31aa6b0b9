import { POPULATION } from "../src/domain.ts";
import type { DatabasePool } from "slonik";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelType } from "../gen/ml/v1/ml_pb.ts";
import { populationSamples, trainingSamplesFor } from "../src/db/training-data.ts";
import { silentLogger, type Logger } from "../src/logger.ts";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import {
  createPopulationScheduler,
  FIT_COST_FACTOR,
  decidePopulationFit,
  type PopulationPolicySettings,
  type PopulationState,
  type SetTimer,
} from "../src/service/population-schedule.ts";
import type { Trainer } from "../src/service/trainer.ts";
import { sampleMessages } from "./support/fixtures.ts";
import { startTestService, TEST_SETTINGS, type TestService } from "./support/service.ts";

/** The population model trains itself: the policy, the scheduler, and the app's wiring. */

const E = ModelType.ENERGY_PREDICTION;
const MINUTE = 60_000;
const POLICY: PopulationPolicySettings = { minPopulationUsers: 3, populationGrowthFraction: 0.2, populationMinIntervalMs: MINUTE };

function state(over: Partial<PopulationState>): PopulationState {
  return {
    current: { users: 3, samples: 300 },
    lastFit: null,
    lastFailure: null,
    scheduled: false,
    now: 10 * MINUTE,
    ...over,
  };
}

describe("decidePopulationFit", () => {
  it("fits the first model only once enough users have enough samples", () => {
    expect(decidePopulationFit(state({ current: { users: 2, samples: 5_000 } }), POLICY)).toMatchObject({ due: false, retryAt: null });
    expect(decidePopulationFit(state({ current: { users: 2, samples: 5_000 }, scheduled: true }), POLICY).due).toBe(false);
    expect(decidePopulationFit(state({ current: { users: 3, samples: 60 } }), POLICY)).toMatchObject({ due: true, trigger: "population:first" });
    // The first fit does not wait for the interval: there is nothing to wait after.
    expect(decidePopulationFit(state({ now: 0 }), POLICY)).toMatchObject({ due: true, trigger: "population:first" });
  });

  it("refits when users or samples grew by the fraction since the last fit", () => {
    const lastFit = { users: 5, samples: 1_000, at: 0 };
    const at = (users: number, samples: number) => decidePopulationFit(state({ current: { users, samples }, lastFit }), POLICY);
    expect(at(5, 1_199)).toMatchObject({ due: false, retryAt: null });
    expect(at(5, 1_200)).toMatchObject({ due: true, trigger: "population:growth" });
    expect(at(6, 1_000)).toMatchObject({ due: true, trigger: "population:growth" });
    expect(at(5, 1_000)).toMatchObject({ due: false });
    // Fewer qualifying users than before is no growth, whatever the fraction.
    expect(at(4, 1_000).due).toBe(false);
    expect(decidePopulationFit(state({ current: { users: 5, samples: 1_001 }, lastFit }), { ...POLICY, populationGrowthFraction: 0 }).due).toBe(true);
  });

  it("waits the minimum interval after a fit, and says when to look again", () => {
    const lastFit = { users: 3, samples: 300, at: 10 * MINUTE };
    const grown = { users: 5, samples: 500 };
    const early = decidePopulationFit(state({ current: grown, lastFit, now: 10 * MINUTE + 59_999 }), POLICY);
    expect(early).toMatchObject({ due: false, retryAt: 11 * MINUTE });
    const onTime = decidePopulationFit(state({ current: grown, lastFit, now: 11 * MINUTE }), POLICY);
    expect(onTime).toMatchObject({ due: true, trigger: "population:growth" });
    expect(decidePopulationFit(state({ current: grown, lastFit, now: 10 * MINUTE }), { ...POLICY, populationMinIntervalMs: 0 }).due).toBe(true);
  });

  it("has nothing due when nothing changed, even on the schedule", () => {
    const lastFit = { users: 4, samples: 400, at: 0 };
    const same = { current: { users: 4, samples: 400 }, lastFit, now: 48 * 60 * MINUTE };
    expect(decidePopulationFit(state(same), POLICY)).toMatchObject({ due: false, retryAt: null });
    expect(decidePopulationFit(state({ ...same, scheduled: true }), POLICY)).toMatchObject({ due: false, retryAt: null });
    // The schedule refits after any change; new data alone waits for the fraction.
    const oneMore = { ...same, current: { users: 4, samples: 401 } };
    expect(decidePopulationFit(state(oneMore), POLICY).due).toBe(false);
    expect(decidePopulationFit(state({ ...oneMore, scheduled: true }), POLICY)).toMatchObject({ due: true, trigger: "schedule" });
    expect(decidePopulationFit(state({ ...oneMore, scheduled: true, now: 30_000 }), POLICY).due).toBe(false);
  });

  it("does not repeat a failed fit until the data grows, but the schedule retries it", () => {
    const failed = { current: { users: 3, samples: 300 }, lastFailure: { users: 3, samples: 300, at: 0 } };
    expect(decidePopulationFit(state(failed), POLICY)).toMatchObject({ due: false, retryAt: null });
    expect(decidePopulationFit(state({ ...failed, current: { users: 4, samples: 400 } }), POLICY)).toMatchObject({
      due: true,
      trigger: "population:first",
    });
    expect(decidePopulationFit(state({ ...failed, scheduled: true }), POLICY)).toMatchObject({ due: true, trigger: "schedule" });
  });

  it("waits for growth after a stored version whether or not it became active", () => {
    // The trainer may keep the prior when the first version does not beat it: refitting the same rows would not either.
    const declined = { lastFit: { users: 3, samples: 300, at: 0 } };
    expect(decidePopulationFit(state({ ...declined, current: { users: 3, samples: 300 } }), POLICY).due).toBe(false);
    expect(decidePopulationFit(state({ ...declined, current: { users: 4, samples: 400 } }), POLICY)).toMatchObject({
      due: true,
      trigger: "population:growth",
    });
  });
});

// Counts follow the configured minimum, so the tests hold whatever its default.
const MIN = TEST_SETTINGS.minSamples.energy_prediction;
const PER_USER = 2 * MIN;
const users = syntheticUsers(8, 77);
const samplesOf = (i: number, count = PER_USER, seed = 500) => sampleMessages(`member-${i}`, syntheticSamples(users[i]!, count, seed + i));

async function populationTriggers(s: TestService): Promise<string[]> {
  const log = await s.client.listActivations({ population: true, modelType: E });
  return log.activations.map((a) => a.trigger).reverse();
}

describe("the app: a population model without any Train call", () => {
  let s: TestService;
  beforeAll(async () => {
    s = await startTestService({ settings: { populationAutoTrain: true, populationMinIntervalMs: 0, populationFitCostFactor: 0 } });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("appears once three users have enough samples, and refits when two more arrive", async () => {
    for (const i of [0, 1]) {
      await s.client.ingestTrainingData({ samples: samplesOf(i) });
      await s.app.population.idle();
    }
    // Below the minimum a user does not count.
    await s.client.ingestTrainingData({ samples: samplesOf(2, MIN - 1) });
    await s.app.population.idle();
    expect((await s.client.listModels({ population: true, modelType: E })).models).toEqual([]);

    await s.client.ingestTrainingData({ samples: samplesOf(3) });
    await s.app.population.idle();
    const first = (await s.client.listModels({ population: true, modelType: E })).models;
    expect(first.map((m) => m.version)).toEqual(["v1"]);
    expect(first[0]!.trainingSamples).toBeGreaterThanOrEqual(3 * PER_USER);
    expect(await populationTriggers(s)).toEqual(["population:first"]);

    // Nothing changed: a poke does not refit.
    s.app.population.poke();
    await s.app.population.idle();
    expect((await s.client.listModels({ population: true, modelType: E })).models).toHaveLength(1);

    await s.client.ingestTrainingData({ samples: [...samplesOf(4), ...samplesOf(5)] });
    await s.app.population.idle();
    const second = (await s.client.listModels({ population: true, modelType: E })).models;
    expect(second.map((m) => m.version)).toEqual(["v2", "v1"]);
    expect(await populationTriggers(s)).toEqual(["population:first", "population:growth"]);
  });
});

/** A service with three users who have enough samples, and the app's own scheduler off (TEST_SETTINGS): each test builds one it can watch. */
function serviceWithThreeUsers(): () => TestService {
  let s: TestService;
  beforeAll(async () => {
    s = await startTestService();
    for (const i of [0, 1, 2]) await s.client.ingestTrainingData({ samples: samplesOf(i) });
  });
  afterAll(async () => {
    await s?.close();
  });
  return () => s;
}

/** A clock the test moves by hand, with one-shot timers that fire() runs once due. */
function fakeTime(start: number) {
  const time = {
    now: start,
    timers: [] as { at: number; run: () => void }[],
    setTimer: ((run, delayMs) => {
      const timer = { at: time.now + delayMs, run };
      time.timers.push(timer);
      return () => {
        const i = time.timers.indexOf(timer);
        if (i >= 0) time.timers.splice(i, 1);
      };
    }) as SetTimer,
    fire(): void {
      const due = time.timers.filter((t) => t.at <= time.now);
      for (const t of due) time.timers.splice(time.timers.indexOf(t), 1);
      for (const t of due) t.run();
    },
  };
  return time;
}

describe("the scheduler", () => {
  const service = serviceWithThreeUsers();
  let s: TestService;
  beforeAll(() => {
    s = service();
  });

  function recordingLog(): Logger & { errors: string[] } {
    const errors: string[] = [];
    return { ...silentLogger, errors, error: (message, fields) => errors.push(`${message}: ${String(fields?.["error"])}`) };
  }

  it("logs a failed check or fit, never throws, and does not repeat the fit until the data grows", async () => {
    let attempts = 0;
    const failing: Pick<Trainer, "train"> = {
      train: async () => {
        attempts++;
        throw new Error("worker crashed");
      },
    };
    const log = recordingLog();
    const settings = { ...TEST_SETTINGS, populationAutoTrain: true, populationMinIntervalMs: 0 };
    const scheduler = createPopulationScheduler({ db: s.db.pool, trainer: failing, settings, clock: () => 0, log });
    expect(() => scheduler.poke()).not.toThrow();
    await scheduler.idle();
    expect(attempts).toBe(1);
    expect(log.errors).toEqual(["population fit failed: worker crashed"]);
    for (let i = 0; i < 3; i++) scheduler.poke();
    await scheduler.idle();
    expect(attempts).toBe(1);
    await scheduler.close();

    const down = { one: () => Promise.reject(new Error("connection refused")) } as unknown as DatabasePool;
    const broken = createPopulationScheduler({ db: down, trainer: failing, settings, clock: () => 0, log });
    broken.poke();
    await broken.idle();
    expect(log.errors.at(-1)).toBe("population check failed: connection refused");
    expect(attempts).toBe(1);
  });

  it("runs one fit at a time, turns pokes during a fit into one re-check, and waits out the interval", async () => {
    const time = fakeTime(1_000 * MINUTE);
    const { timers, setTimer } = time;
    let checks = 0;
    const db = new Proxy(s.db.pool, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key);
        if (key === "one") checks++;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const triggers: string[] = [];
    let running = 0;
    let most = 0;
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    let firstFitted!: () => void;
    const fitted = new Promise<void>((resolve) => (firstFitted = resolve));
    const trainer: Pick<Trainer, "train"> = {
      async train(userId, modelType, trigger) {
        expect(userId).toBe(POPULATION);
        triggers.push(trigger ?? "?");
        running++;
        most = Math.max(most, running);
        try {
          const outcome = await s.app.trainer.train(userId, modelType, trigger);
          if (triggers.length === 1) {
            // The fit is stored; hold the scheduler here while new data arrives.
            firstFitted();
            await hold;
          }
          return outcome;
        } finally {
          running--;
        }
      },
    };
    const scheduler = createPopulationScheduler({
      db,
      trainer,
      settings: { ...TEST_SETTINGS, populationAutoTrain: true, populationMinIntervalMs: MINUTE },
      clock: () => time.now,
      log: recordingLog(),
      setTimer,
    });

    for (let i = 0; i < 10; i++) scheduler.poke();
    await fitted;
    expect(checks).toBe(1);
    await s.client.ingestTrainingData({ samples: [...samplesOf(3), ...samplesOf(4)] });
    for (let i = 0; i < 10; i++) scheduler.poke();
    release();
    await scheduler.idle();
    // One re-check after the fit: 3 -> 5 users is growth, but the fit was 0 s ago.
    expect(checks).toBe(2);
    expect(triggers).toEqual(["population:first"]);
    expect(timers.map((t) => t.at)).toEqual([time.now + MINUTE]);

    scheduler.poke();
    await scheduler.idle();
    expect(timers).toHaveLength(1);

    time.now += MINUTE;
    time.fire();
    await scheduler.idle();
    expect(triggers).toEqual(["population:first", "population:growth"]);
    expect(most).toBe(1);

    // The periodic schedule goes through the same loop: nothing changed, no fit; a new sample and a later tick, a fit.
    scheduler.scheduleEvery(24 * 60 * MINUTE);
    time.now += 24 * 60 * MINUTE;
    time.fire();
    await scheduler.idle();
    expect(triggers).toHaveLength(2);
    expect(timers).toHaveLength(1);
    await s.client.ingestTrainingData({ samples: samplesOf(0, 1, 900) });
    scheduler.poke();
    await scheduler.idle();
    expect(triggers).toHaveLength(2);
    time.now += 24 * 60 * MINUTE;
    time.fire();
    await scheduler.idle();
    expect(triggers).toEqual(["population:first", "population:growth", "schedule"]);
    expect(await populationTriggers(s)).toEqual(["population:first", "population:growth", "schedule"]);

    await scheduler.close();
    expect(timers).toEqual([]);
    scheduler.poke();
    await scheduler.idle();
    expect(triggers).toHaveLength(3);
  });

  it("takes at most each user's newest samples for the population, and the newest overall", async () => {
    // member-0 now has PER_USER + 1 samples, members 1-4 PER_USER each.
    const cap = PER_USER - 5;
    const capped = await populationSamples(s.db.pool, 1_000, cap);
    const byUser = new Map<string, bigint[]>();
    for (const row of capped) byUser.set(row.user_id, [...(byUser.get(row.user_id) ?? []), row.seq]);
    expect([...byUser.keys()].sort()).toEqual(["member-0", "member-1", "member-2", "member-3", "member-4"]);
    for (const [userId, seqs] of byUser) {
      const newest = await trainingSamplesFor(s.db.pool, userId, "energy_prediction", cap);
      expect(seqs).toEqual(newest.map((r) => r.seq));
    }
    const seqs = capped.map((r) => r.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => (a < b ? -1 : 1)));

    expect(seqs).toHaveLength(5 * cap);
    const total = await populationSamples(s.db.pool, 2 * cap, cap);
    expect(total.map((r) => r.seq)).toEqual(seqs.slice(-2 * cap));

    // Without a per-user bound, the newest rows overall: the last two users' and member-0's one.
    const uncapped = await populationSamples(s.db.pool, 2 * cap);
    expect(new Set(uncapped.map((r) => r.user_id))).toEqual(new Set(["member-0", "member-4", "member-3"]));
  });
});

describe("the scheduler's interval after a slow fit", () => {
  const service = serviceWithThreeUsers();

  it("waits at least FIT_COST_FACTOR times the last fit's duration before the next growth fit", async () => {
    const s = service();
    const time = fakeTime(1_000 * MINUTE);
    const { timers, setTimer } = time;
    const triggers: string[] = [];
    const trainer: Pick<Trainer, "train"> = {
      async train(userId, modelType, trigger) {
        triggers.push(trigger ?? "?");
        const outcome = await s.app.trainer.train(userId, modelType, trigger);
        time.now += 10_000; // a fit of 10 s on the scheduler's clock
        return outcome;
      },
    };
    const settings = { ...TEST_SETTINGS, populationAutoTrain: true, populationMinIntervalMs: 1_000, populationFitCostFactor: FIT_COST_FACTOR };
    const scheduler = createPopulationScheduler({ db: s.db.pool, trainer, settings, clock: () => time.now, log: silentLogger, setTimer });
    scheduler.poke();
    await scheduler.idle();
    expect(triggers).toEqual(["population:first"]);
    await s.client.ingestTrainingData({ samples: [...samplesOf(3), ...samplesOf(4)] });
    time.now += 5_000;
    scheduler.poke();
    await scheduler.idle();
    // Growth, but the interval is 10 x 10 s from the fit's end, not the configured 1 s.
    expect(triggers).toHaveLength(1);
    expect(timers.map((t) => t.at)).toEqual([time.now - 5_000 + FIT_COST_FACTOR * 10_000]);
    time.now = timers[0]!.at;
    timers.shift()!.run();
    await scheduler.idle();
    expect(triggers).toEqual(["population:first", "population:growth"]);
    await scheduler.close();
  });
});
