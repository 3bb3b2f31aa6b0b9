import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnergyLevel, MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { createApp } from "../src/app.ts";
import { readConfig } from "../src/config.ts";
import { createJsonLogger } from "../src/logger.ts";
import { createAccessLogInterceptor } from "../src/server/access-log.ts";
import { createErrorInterceptor } from "../src/server/errors.ts";
import { createInterceptorChain } from "../src/server/interceptors.ts";
import { listen, type RunningServer } from "../src/server/listen.ts";
import { createRequestIdInterceptor, requestIdKey } from "../src/server/request-id.ts";
import { createTrainPool, type TrainPool } from "../src/service/train-pool.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";
import { clearPatternMessages } from "./support/fixtures.ts";
import { TEST_SETTINGS } from "./support/service.ts";

type Line = Record<string, unknown>;

let db: TestDatabase;
let pool: TrainPool;
let app: ReturnType<typeof createApp>;
let server: RunningServer;
const raw: string[] = [];
const lines = (): Line[] => raw.map((l) => JSON.parse(l) as Line);

beforeAll(async () => {
  db = await freshDatabase();
  pool = createTrainPool(1);
  const log = createJsonLogger({ write: (l) => raw.push(l) });
  app = createApp({ db: db.pool, runJob: (job, signal) => pool.run(job, signal), log, settings: TEST_SETTINGS });
  const config = readConfig({});
  server = await listen({
    routes: app.routes,
    interceptors: createInterceptorChain({ log, accessLog: { ...config.accessLog, sampleRate: 1 } }),
    limits: config.limits,
    port: 0,
    fastPath: app.unaryHandlers,
  });
});
afterAll(async () => {
  await server?.close();
  await app?.close();
  await pool?.close();
  await db?.close();
});

describe("structured logs", () => {
  it("follows one request id from the access line into the training job's lines, every line JSON", async () => {
    const client = createClient(MlService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    await client.ingestTrainingData({ samples: clearPatternMessages("logged", 40) });
    let answered: string | null = null;
    await client.train(
      { userId: "logged", modelType: ModelType.ENERGY_PREDICTION },
      { headers: { "x-request-id": "trace-me-42" }, onHeader: (h) => (answered = h.get("x-request-id")) },
    );
    expect(answered).toBe("trace-me-42");
    await app.trainer.idle();
    // Every line parses, with a time, a level name and a message.
    for (const line of lines()) {
      expect(line).toMatchObject({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), level: expect.any(String), message: expect.any(String) });
    }
    const traced = lines().filter((l) => l["requestId"] === "trace-me-42");
    const access = traced.find((l) => l["message"] === "call");
    expect(access).toMatchObject({ level: "info", method: "ml.v1.MlService/Train", code: "ok", userId: "logged" });
    expect(access!["durationMs"]).toBeGreaterThan(0);
    const job = traced.filter((l) => String(l["message"]).startsWith("training job") || l["message"] === "model version stored");
    expect(job.map((l) => l["message"])).toEqual(["training job started", "training job finished", "model version stored"]);
    expect(job[0]).toMatchObject({ job: "energy-user", userId: "logged", modelType: "energy_prediction", trigger: "train", samples: 40 });
    expect(job[2]).toMatchObject({ activated: true, version: "v1" });
    // The ingest call had an id of its own, generated.
    const ingest = lines().find((l) => l["message"] === "call" && l["method"] === "ml.v1.MlService/IngestTrainingData");
    expect(ingest!["requestId"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("carries a Feedback's request id into the retrain it schedules", async () => {
    const client = createClient(MlService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    await client.ingestTrainingData({ samples: clearPatternMessages("logged-feedback", 40) });
    await client.train({ userId: "logged-feedback", modelType: ModelType.ENERGY_PREDICTION });
    // One sample short of a retrain (TEST_SETTINGS.retrainAfter is 20); the Feedback's own sample makes it due.
    await client.ingestTrainingData({ samples: clearPatternMessages("logged-feedback", 59).slice(40) });
    const predicted = await client.predict({ userId: "logged-feedback", targetTime: timestampNow(), recentActivity: { avgEnergyLast7Days: 2 } });
    const answer = await client.feedback(
      { predictionId: predicted.predictionId, wasCorrect: false, actualEnergy: EnergyLevel.HIGH },
      { headers: { "x-request-id": "feedback-77" } },
    );
    expect(answer.retrainScheduled).toBe(true);
    await app.trainer.idle();
    const job = lines().filter((l) => l["requestId"] === "feedback-77" && String(l["message"]).startsWith("training job"));
    expect(job.map((l) => l["message"])).toEqual(["training job started", "training job finished"]);
    expect(job[0]).toMatchObject({ userId: "logged-feedback", trigger: "retrain:new-samples" });
  });

  it("writes failed calls with their code, and model source on Predict", async () => {
    const client = createClient(MlService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    await expect(client.listModels({ userId: "" })).rejects.toThrow();
    await client.predict({ userId: "logged", targetTime: timestampNow(), recentActivity: { avgEnergyLast7Days: 2 } });
    const calls = lines().filter((l) => l["message"] === "call");
    expect(calls.find((l) => l["method"] === "ml.v1.MlService/ListModels")).toMatchObject({ code: "invalid_argument" });
    expect(calls.find((l) => l["method"] === "ml.v1.MlService/Predict" && l["userId"] === "logged")).toMatchObject({ code: "ok", modelSource: "user" });
  });
});

describe("the chain's interceptors", () => {
  const request = (header: Record<string, string> = {}) => {
    const values = new Map<unknown, unknown>();
    return {
      stream: false,
      message: { userId: "u" },
      method: { name: "Predict" },
      service: { typeName: "ml.v1.MlService" },
      header: new Headers(header),
      contextValues: {
        get: (k: { defaultValue: unknown }) => (values.has(k) ? values.get(k) : k.defaultValue),
        set: (k: unknown, v: unknown) => values.set(k, v),
        delete: () => undefined,
      },
    } as never;
  };
  const ok = async () => ({ message: { modelSource: 2 }, header: new Headers(), trailer: new Headers() }) as never;

  it("logs errors with their cause chain and the request id", async () => {
    const out: string[] = [];
    const log = createJsonLogger({ write: (l) => out.push(l) });
    const chain = [createRequestIdInterceptor(() => "fixed-id"), createErrorInterceptor(log)];
    let failing = (async () => {
      throw new Error("boom", { cause: Object.assign(new Error("deep"), { code: "XX000" }) });
    }) as unknown as (r: never) => Promise<unknown>;
    for (const i of [...chain].reverse()) failing = i(failing as never) as unknown as (r: never) => Promise<unknown>;
    const err = await failing(request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Internal);
    expect((err as ConnectError).metadata.get("x-request-id")).toBe("fixed-id");
    const line = JSON.parse(out[0]!) as { requestId: string; code: string; error: { message: string; cause: { message: string; code: string } } };
    expect(line).toMatchObject({ requestId: "fixed-id", code: "internal", error: { message: "boom", cause: { message: "deep", code: "XX000" } } });
  });

  it("keeps an acceptable caller id and replaces one that could break a line", async () => {
    const seen: string[] = [];
    const interceptor = createRequestIdInterceptor(() => "generated");
    const capture = (async (req: { contextValues: { get(k: unknown): string } }) => {
      seen.push(req.contextValues.get(requestIdKey));
      return { header: new Headers(), trailer: new Headers() };
    }) as never;
    await interceptor(capture)(request({ "x-request-id": "abc-123" }));
    await interceptor(capture)(request({ "x-request-id": "bad id with spaces" }));
    await interceptor(capture)(request({ "x-request-id": "x".repeat(200) }));
    expect(seen).toEqual(["abc-123", "generated", "generated"]);
  });

  it("samples successful calls, writes every failed one, and stays silent below the log level", async () => {
    const out: string[] = [];
    const log = createJsonLogger({ write: (l) => out.push(l) });
    let r = 0;
    const randoms = [0.5, 0.05, 0.2];
    const sampled = createAccessLogInterceptor(log, { level: "info", sampleRate: 0.1 }, () => randoms[r++ % randoms.length]!);
    for (let i = 0; i < 3; i++) await sampled(ok)(request());
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0]!)).toMatchObject({ code: "ok", modelSource: "population", userId: "u" });
    await sampled((async () => {
      throw new ConnectError("nope", Code.NotFound);
    }) as never)(request()).catch(() => undefined);
    expect(JSON.parse(out[1]!)).toMatchObject({ code: "not_found" });
    const quiet = createAccessLogInterceptor(log, { level: "debug", sampleRate: 1 });
    await quiet(ok)(request());
    expect(out).toHaveLength(2);
  });
});
