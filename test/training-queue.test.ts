import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { z } from "zod";
import { MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { silentLogger } from "../src/logger.ts";
import { startService, type Service } from "../src/start.ts";
import { PgBoss } from "pg-boss";
import { Code } from "@connectrpc/connect";
import { NotEnoughTrainingData, TrainingJobFailed } from "../src/errors.ts";
import { toConnectError } from "../src/server/errors.ts";
import { createKeyedLock } from "../src/service/keyed-lock.ts";
import { createInProcessRuns, type TrainRequest } from "../src/service/training-runs.ts";
import {
  DEFAULT_TRAINING_QUEUE_SETTINGS,
  POPULATION_SCHEDULE_QUEUE,
  populationCron,
  startTrainingQueue,
  TRAINING_QUEUE,
  type TrainingQueue,
} from "../src/service/training-queue.ts";
import { startTestService } from "./support/service.ts";
import { freshDatabase, testServerUrl, type TestDatabase } from "./support/database.ts";
import { clearPatternMessages } from "./support/fixtures.ts";
import { startServiceProcess, type ServiceProcess } from "./support/process.ts";

const E = ModelType.ENERGY_PREDICTION;
const client = (port: number) => createClient(MlService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));

const JobRow = z.object({
  id: z.string(),
  state: z.string(),
  retry_count: z.number(),
  started_on: z.number().nullable(),
  completed_on: z.number().nullable(),
  output: z.unknown(),
});

/** The training jobs of one key, straight from pg-boss's table (what ListTrainingJobs reads through pg-boss). */
async function jobsOf(db: TestDatabase, key: string) {
  return db.pool.any(sql.type(JobRow)`
    SELECT id::text, state::text, retry_count,
           (extract(epoch FROM started_on) * 1000)::float8 AS started_on,
           (extract(epoch FROM completed_on) * 1000)::float8 AS completed_on, output
    FROM pgboss.job WHERE name = ${TRAINING_QUEUE} AND singleton_key = ${key} ORDER BY created_on`);
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("training runs, the parts every database shares", () => {
  it("turns POPULATION_RETRAIN_HOURS into a UTC cron", () => {
    expect(populationCron(1)).toBe("0 */1 * * *");
    expect(populationCron(6)).toBe("0 */6 * * *");
    expect(populationCron(24)).toBe("0 0 * * *");
    expect(populationCron(72)).toBe("0 0 */3 * *");
  });

  it("runs in process one at a time per key, in order, reporting background failures", async () => {
    const order: string[] = [];
    const failures: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const runs = createInProcessRuns({
      lock: createKeyedLock(),
      execute: async (request) => {
        order.push(`start ${request.userId}`);
        if (request.userId === "first") await gate;
        if (request.userId === "broken") throw new Error("worker died");
        order.push(`end ${request.userId}`);
        return null;
      },
      onBackgroundError: (err, userId) => failures.push(`${userId}: ${(err as Error).message}`),
    });
    const req = (userId: string): TrainRequest => ({ userId, modelType: "energy_prediction", trigger: "retrain:new-samples" });
    expect(await runs.submit([req("first"), req("broken"), req("third")])).toBe(3);
    expect(runs.busy("first", "energy_prediction")).toBe(true);
    const waited = runs.run(req("first"));
    release();
    await runs.idle();
    await waited;
    // Runs of one key never overlap; background runs go one after another.
    expect(order.filter((o) => o.endsWith("first"))).toEqual(["start first", "end first", "start first", "end first"]);
    expect(order.indexOf("start broken")).toBeGreaterThan(order.indexOf("end first"));
    expect(order.indexOf("start third")).toBeGreaterThan(order.indexOf("start broken"));
    expect(order).toContain("end third");
    expect(failures).toEqual(["broken: worker died"]);
    expect(runs.busy("first", "energy_prediction")).toBe(false);
  });

  it("maps a training job that failed on every attempt to UNAVAILABLE", () => {
    expect(toConnectError(new TrainingJobFailed("boom")).code).toBe(Code.Unavailable);
  });

  it("answers ListTrainingJobs without a queue with an empty list, and checks the request", async () => {
    const s = await startTestService();
    try {
      expect((await s.client.listTrainingJobs({ userId: "u", modelType: E })).jobs).toEqual([]);
      await expect(s.client.listTrainingJobs({ userId: "u", modelType: E, limit: 501 })).rejects.toMatchObject({ code: Code.InvalidArgument });
      await expect(s.client.listTrainingJobs({ userId: "", modelType: E })).rejects.toMatchObject({ code: Code.InvalidArgument });
    } finally {
      await s.close();
    }
  });
});

/**
 * Training jobs on the PostgreSQL queue, across replicas. The embedded PGlite
 * serves one process over one connection and trains in process (no queue),
 * so these run on the real server only.
 */
describe.skipIf(testServerUrl === undefined)("training jobs across three replicas", () => {
  let database: TestDatabase;
  let replicas: Service[] = [];

  beforeAll(async () => {
    database = await freshDatabase({ migrate: false });
    const env = {
      DATABASE_URL: database.url,
      PORT: "0",
      TRAIN_THREADS: "1",
      N_ESTIMATORS: "10",
      POPULATION_AUTO_TRAIN: "0",
      RETRAIN_AFTER_SAMPLES: "1",
    };
    // One after another: the first start installs pg-boss's schema.
    for (let i = 0; i < 3; i++) replicas.push(await startService(readConfig(env), silentLogger));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    replicas = [];
    await database?.close();
  });

  it("100 Train calls and 100 retrain triggers for one user: one job at a time, versions without gaps, one active, all logged", async () => {
    const user = "crowd";
    const [a] = replicas.map((r) => client(r.port));
    await a!.ingestTrainingData({ samples: clearPatternMessages(user, 40) });
    // A first version, so that Predict answers from the user's model and Feedback counts for it.
    await a!.train({ userId: user, modelType: E });
    const predictions = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        client(replicas[i % 3]!.port).predict({
          userId: user,
          targetTime: timestampFromMs(Date.UTC(2026, 10, 26, i % 24)),
          recentActivity: { avgEnergyLast7Days: 2 },
        }),
      ),
    );
    const calls = [
      ...Array.from({ length: 100 }, (_, i) => client(replicas[i % 3]!.port).train({ userId: user, modelType: E })),
      // Each answer is a new sample: with RETRAIN_AFTER_SAMPLES=1 each is a retrain trigger.
      ...predictions.map((p, i) => client(replicas[(i + 1) % 3]!.port).feedback({ predictionId: p.predictionId, wasCorrect: true })),
    ];
    const settled = await Promise.allSettled(calls);
    const failures = settled.filter((s) => s.status === "rejected").map((s) => String((s as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    const key = `energy_prediction:${user}`;
    // Background retrains may still be queued.
    await until(async () => (await jobsOf(database, key)).every((j) => ["completed", "failed", "cancelled"].includes(j.state)), 120_000, "the queue to drain");

    const jobs = await jobsOf(database, key);
    expect(jobs.filter((j) => j.state !== "completed")).toEqual([]);
    // At most one job ran at a time for the key: each started after the previous one completed.
    const runs = jobs.map((j) => ({ start: j.started_on!, end: j.completed_on! })).sort((x, y) => x.start - y.start);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.start).toBeGreaterThanOrEqual(runs[i - 1]!.end);
    // Far fewer jobs than triggers: the waiting job absorbed the rest.
    expect(jobs.length).toBeLessThan(201);

    const models = (await a!.listModels({ userId: user, modelType: E })).models;
    const numbers = models.map((m) => Number(m.version.slice(1))).sort((x, y) => x - y);
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    expect(models.filter((m) => m.isActive)).toHaveLength(1);
    // Each version came from exactly one job (no job stored twice), and each is in the activation log.
    const stored = jobs.map((j) => (j.output as { version?: string } | null)?.version).filter((v) => v !== undefined);
    expect(stored.sort()).toEqual(models.map((m) => m.version).sort());
    const log = (await a!.listActivations({ userId: user, modelType: E, limit: 500 })).activations;
    expect(new Set(log.map((l) => l.version))).toEqual(new Set(models.map((m) => m.version)));

    // The history is queryable through the service too.
    const history = (await a!.listTrainingJobs({ userId: user, modelType: E, limit: 500 })).jobs;
    expect(history).toHaveLength(jobs.length);
    expect(
      history
        .filter((j) => j.version !== "")
        .map((j) => j.version)
        .sort(),
    ).toEqual(models.map((m) => m.version).sort());
  }, 240_000);

  it("re-blends, as queued jobs, the users who trained before a population model activated", async () => {
    const clients = replicas.map((r) => client(r.port));
    const users = ["early-0", "early-1", "early-2"];
    for (const [i, user] of users.entries()) {
      await clients[i]!.ingestTrainingData({ samples: clearPatternMessages(user, 40, 20 + i) });
      await clients[i]!.train({ userId: user, modelType: E });
    }
    const population = await clients[0]!.train({ population: true, modelType: E });
    expect(population.activated).toBe(true);
    const reblended = async (user: string) =>
      (await clients[1]!.listTrainingJobs({ userId: user, modelType: E })).jobs.some((j) => j.trigger === "population:reblend" && j.state === "completed");
    await until(async () => (await Promise.all(users.map(reblended))).every(Boolean), 60_000, "the re-blend jobs");
    for (const user of users) {
      const log = (await clients[2]!.listActivations({ userId: user, modelType: E })).activations;
      expect(log.filter((l) => l.trigger === "population:reblend")).toHaveLength(1);
    }
  }, 90_000);

  it("stores the population schedule once and runs its occurrence on one replica", async () => {
    const schedules = await database.pool.anyFirst(sql.type(z.object({ name: z.string() }))`SELECT name FROM pgboss.schedule`);
    expect(schedules).toEqual([POPULATION_SCHEDULE_QUEUE]);
    // An occurrence, as the cron would send it.
    const boss = new PgBoss({ connectionString: database.url, supervise: false, schedule: false, registerInstance: false, max: 1 });
    await boss.start();
    try {
      const id = (await boss.send(POPULATION_SCHEDULE_QUEUE, {}))!;
      await until(async () => (await boss.findJobs(POPULATION_SCHEDULE_QUEUE, { id }))[0]?.state === "completed", 30_000, "the scheduled check");
    } finally {
      await boss.stop({ graceful: false });
    }
  }, 60_000);

  it("answers failed_precondition through the queue when the user has too little data", async () => {
    const [a] = replicas.map((r) => client(r.port));
    await expect(a!.train({ userId: "nobody", modelType: E })).rejects.toMatchObject({ code: 9 });
  }, 30_000);
});

describe.skipIf(testServerUrl === undefined)("the training queue with a stand-in for the fit", () => {
  let database: TestDatabase;
  let queue: TrainingQueue;
  const gates = new Map<string, Promise<void>>();
  const calls: string[] = [];
  const failOnce = new Set<string>(["flaky"]);
  // Re-blends, because a re-blend may end with "no longer needed" (null), which the stand-in answers.
  const req = (userId: string): TrainRequest => ({ userId, modelType: "energy_prediction", trigger: "population:reblend", reblendOf: "p" });

  beforeAll(async () => {
    database = await freshDatabase();
    queue = await startTrainingQueue({
      url: database.url,
      db: database.pool,
      log: silentLogger,
      settings: { ...DEFAULT_TRAINING_QUEUE_SETTINGS, retryLimit: 1, retryDelaySeconds: 0, localConcurrency: 2 },
    });
  });
  afterAll(async () => {
    await queue?.stop();
    await database?.close();
  });

  it("lets a caller leave without cancelling the job another caller waits for, retries a failed attempt, reports a job that always fails, and re-sends a Train whose joined job was skipped", async () => {
    let release!: () => void;
    gates.set("shared", new Promise<void>((r) => (release = r)));
    const runs = queue.runsFor(async (request) => {
      calls.push(request.userId);
      const gate = gates.get(request.userId);
      gates.delete(request.userId);
      await gate;
      if (failOnce.delete(request.userId) || request.userId === "doomed") throw new Error("worker died");
      // A Train of the stand-in always lacks data: a domain error, kept in the job's output and never retried.
      if (request.reblendOf === undefined) throw new NotEnoughTrainingData(request.userId, request.modelType, 3, 10);
      return null;
    });
    await queue.ready();
    // The first job runs and waits at its gate; the next two callers share the one job queued behind it.
    const first = runs.run(req("shared"));
    await until(async () => (await jobsOf(database, "energy_prediction:shared")).some((j) => j.state === "active"), 10_000, "the first job");
    const leaving = new AbortController();
    const left = runs.run(req("shared"), leaving.signal);
    const staying = runs.run(req("shared"));
    await until(async () => (await jobsOf(database, "energy_prediction:shared")).length === 2, 10_000, "the queued job");
    leaving.abort(new Error("caller went away"));
    await expect(left).rejects.toThrow("caller went away");
    release();
    await expect(first).resolves.toBeNull();
    await expect(staying).resolves.toBeNull();
    const shared = await jobsOf(database, "energy_prediction:shared");
    expect(shared.map((j) => j.state)).toEqual(["completed", "completed"]);
    expect(calls.filter((c) => c === "shared")).toHaveLength(2);

    // A failed attempt is retried (here at once), and the caller gets the second attempt's outcome.
    await expect(runs.run(req("flaky"))).resolves.toBeNull();
    expect((await jobsOf(database, "energy_prediction:flaky"))[0]).toMatchObject({ state: "completed", retry_count: 1 });
    // Every attempt fails: the caller hears so (UNAVAILABLE), the job stays in the history as failed.
    await expect(runs.run(req("doomed"))).rejects.toBeInstanceOf(TrainingJobFailed);
    const history = await queue.listJobs("doomed", "energy_prediction", 10);
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ state: "failed", retries: 1, trigger: "population:reblend", version: null });
    expect(history[0]!.outcome).toContain("worker died");
    // A Train that joined a re-blend which turned out unneeded sends its own job (here: too little data).
    let open!: () => void;
    gates.set("join", new Promise<void>((r) => (open = r)));
    const blocking = runs.run(req("join"));
    await until(async () => (await jobsOf(database, "energy_prediction:join")).some((j) => j.state === "active"), 10_000, "the blocking job");
    expect(await runs.submit([req("join")])).toBe(1);
    const train = runs.run({ userId: "join", modelType: "energy_prediction", trigger: "train" });
    await until(async () => (await jobsOf(database, "energy_prediction:join")).length === 2, 10_000, "the queued re-blend");
    // Expected before anything else is awaited, so its rejection is never unhandled.
    const trainFails = expect(train).rejects.toBeInstanceOf(NotEnoughTrainingData);
    open();
    await expect(blocking).resolves.toBeNull();
    await trainFails;
    expect(calls.filter((c) => c === "join")).toHaveLength(3);
    const joined = await queue.listJobs("join", "energy_prediction", 10);
    expect(joined.map((j) => j.trigger)).toEqual(["train", "population:reblend", "population:reblend"]);
    expect(joined[0]).toMatchObject({ state: "completed", version: null });
    expect(joined[0]!.outcome).toContain("at least 10 are needed");
    // Background runs are absorbed by a job already waiting for the key (the first one is held at its gate).
    let go!: () => void;
    gates.set("bg", new Promise<void>((r) => (go = r)));
    const taken = await runs.submit([req("bg"), req("bg"), req("bg")]);
    go();
    expect(taken).toBeGreaterThanOrEqual(1);
    expect(taken).toBeLessThanOrEqual(2);
    await until(async () => (await jobsOf(database, "energy_prediction:bg")).every((j) => j.state === "completed"), 10_000, "background jobs");
    expect((await jobsOf(database, "energy_prediction:bg")).length).toBeLessThanOrEqual(2);
    await runs.idle();
  }, 60_000);
});

describe.skipIf(testServerUrl === undefined)("a replica killed mid-job", () => {
  let database: TestDatabase;
  let doomed: ServiceProcess | null = null;
  let survivor: Service | null = null;

  beforeAll(async () => {
    database = await freshDatabase({ migrate: false });
  });
  afterAll(async () => {
    if (doomed !== null && doomed.child.exitCode === null) doomed.child.kill("SIGKILL");
    await survivor?.stop();
    await database?.close();
  });

  it("leaves its job to another replica, which finishes it once", async () => {
    const user = "orphan";
    const shared = {
      DATABASE_URL: database.url,
      TRAIN_THREADS: "1",
      POPULATION_AUTO_TRAIN: "0",
      TRAIN_JOB_HEARTBEAT_SECONDS: "10",
      QUEUE_SUPERVISE_SECONDS: "1",
    };
    // A slow fit (many trees at 2% of a core) so that the kill lands mid-job.
    doomed = await startServiceProcess({ ...shared, N_ESTIMATORS: "2000", TRAIN_CPU_PERCENT: "2" });
    const onDoomed = client(doomed.port);
    await onDoomed.ingestTrainingData({ samples: clearPatternMessages(user, 200) });
    const call = onDoomed.train({ userId: user, modelType: E }).catch((err: unknown) => err);
    const key = `energy_prediction:${user}`;
    await until(async () => (await jobsOf(database, key)).some((j) => j.state === "active"), 30_000, "the job to start");
    doomed.child.kill("SIGKILL");
    const killedAt = Date.now();
    await call;
    const [orphaned] = await jobsOf(database, key);
    expect(orphaned!.state).toBe("active");

    survivor = await startService(readConfig({ ...shared, PORT: "0", N_ESTIMATORS: "10", TRAIN_JOB_RETRY_DELAY_SECONDS: "0" }), silentLogger);
    // The dead replica's heartbeat stops; the supervisor retries the job and the survivor takes it.
    await until(async () => (await jobsOf(database, key))[0]!.state === "completed", 60_000, "the orphaned job to complete");
    // The heartbeat (10 s) goes stale, the supervisor (every second) retries the job, the survivor fits it.
    const recoveredMs = Date.now() - killedAt;
    expect(recoveredMs).toBeLessThan(40_000);
    if (process.env["SHOW_TIMINGS"] === "1") console.log(`orphaned job completed ${recoveredMs} ms after the kill`);
    const jobs = await jobsOf(database, key);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.retry_count).toBeGreaterThanOrEqual(1);
    const models = (await client(survivor.port).listModels({ userId: user, modelType: E })).models;
    expect(models.map((m) => m.version)).toEqual(["v1"]);
    expect(models[0]!.isActive).toBe(true);
    const log = (await client(survivor.port).listActivations({ userId: user, modelType: E })).activations;
    expect(log.map((l) => l.version)).toEqual(["v1"]);
  }, 120_000);
});
