import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { BackendTerminatedError, BackendTerminatedUnexpectedlyError, StatementTimeoutError } from "slonik";
import { describe, expect, it } from "vitest";
import { readConfig } from "../src/config.ts";
import { InvalidInput, ModelLoadFailed, NotEnoughTrainingData, NotFound, PreconditionFailed } from "../src/errors.ts";
import { createJsonLogger } from "../src/logger.ts";
import { createErrorInterceptor, toConnectError } from "../src/server/errors.ts";
import { createKeyedLock } from "../src/service/keyed-lock.ts";

describe("toConnectError", () => {
  it("maps each domain error to its code and hides internals", () => {
    expect(toConnectError(new InvalidInput("user_id", "is required")).code).toBe(Code.InvalidArgument);
    expect(toConnectError(new NotFound("x")).code).toBe(Code.NotFound);
    expect(toConnectError(new NotEnoughTrainingData("u", "energy_prediction", 1, 20)).code).toBe(Code.FailedPrecondition);
    expect(toConnectError(new PreconditionFailed("x")).code).toBe(Code.FailedPrecondition);
    expect(toConnectError(new ModelLoadFailed("m-1", "bad")).rawMessage).toContain("m-1");
    expect(toConnectError(new ModelLoadFailed("m-1", "bad")).code).toBe(Code.DataLoss);
    expect(toConnectError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })).code).toBe(Code.Unavailable);
    expect(toConnectError(new BackendTerminatedError(new Error("x"))).code).toBe(Code.Unavailable);
    // What a connection cut mid-transaction throws (seen by npm run faults during a database outage).
    expect(toConnectError(new BackendTerminatedUnexpectedlyError(new Error("Connection terminated unexpectedly"))).code).toBe(Code.Unavailable);
    // What pg-pool throws into pg-boss's own queries (a Feedback scheduling a retrain) when the connection drops.
    expect(toConnectError(new Error("Connection terminated unexpectedly")).code).toBe(Code.Unavailable);
    expect(toConnectError(new Error("Connection terminated due to connection timeout")).code).toBe(Code.Unavailable);
    expect(toConnectError(new Error("Connection terminated by the user")).code).toBe(Code.Internal);
    expect(toConnectError(new StatementTimeoutError(new Error("x"))).code).toBe(Code.DeadlineExceeded);
    expect(toConnectError(new DOMException("aborted", "AbortError")).code).toBe(Code.Canceled);
    const internal = toConnectError(new Error("SELECT secret FROM table"));
    expect(internal.code).toBe(Code.Internal);
    expect(internal.rawMessage).not.toContain("SELECT");
    const passthrough = new ConnectError("x", Code.ResourceExhausted);
    expect(toConnectError(passthrough)).toBe(passthrough);
  });

  it("logs only what callers must not see", async () => {
    const lines: string[] = [];
    const interceptor = createErrorInterceptor(createJsonLogger({ write: (l) => lines.push(l) }));
    const call = (err: unknown) =>
      interceptor(() => Promise.reject(err))({
        method: { name: "Predict" },
        service: { typeName: "ml.v1.MlService" },
        contextValues: createContextValues(),
      } as never).catch((e: unknown) => e);
    expect(((await call(new InvalidInput("f", "bad"))) as ConnectError).code).toBe(Code.InvalidArgument);
    expect(lines).toHaveLength(0);
    expect(((await call(new Error("boom", { cause: new Error("deep") }))) as ConnectError).code).toBe(Code.Internal);
    expect(lines[0]).toContain("boom");
    expect(lines[0]).toContain("deep");
  });
});

describe("readConfig", () => {
  it("has defaults and reads the environment", () => {
    const c = readConfig({});
    expect(c.port).toBe(50051);
    expect(c.databaseUrl).toBeNull();
    expect(c.trainer.retrainAfter).toBe(20);
    expect(c.trainer.ranker.explorationRate).toBe(0.2);
    expect(readConfig({ EXPLORATION_PERCENT: "0" }).trainer.ranker.explorationRate).toBe(0);
    const d = readConfig({ PORT: "6000", DATABASE_URL: "postgres://x/y", TRAIN_THREADS: "2", RETRAIN_AFTER_SAMPLES: "5", N_ESTIMATORS: "50" });
    expect([d.port, d.databaseUrl, d.trainThreads, d.trainer.retrainAfter, d.trainer.nEstimators]).toEqual([6000, "postgres://x/y", 2, 5, 50]);
  });

  it("names a bad variable", () => {
    expect(() => readConfig({ PORT: "http" })).toThrow(/PORT=http/);
    expect(() => readConfig({ MIN_TRAINING_SAMPLES: "1" })).toThrow(RangeError);
    expect(() => readConfig({ EXPLORATION_PERCENT: "101" })).toThrow(/EXPLORATION_PERCENT/);
  });
});

describe("keyed lock", () => {
  it("serialises tasks per key and lets other keys run", async () => {
    const lock = createKeyedLock();
    const events: string[] = [];
    const task = (name: string, ms: number) => async () => {
      events.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      events.push(`end ${name}`);
      return name;
    };
    const a = lock.run("k", task("a", 30));
    const b = lock.run("k", task("b", 1));
    const c = lock.run("other", task("c", 1));
    const failing = lock.run("k", () => Promise.reject(new Error("x")));
    const d = lock.run("k", task("d", 1));
    expect(lock.busy("k")).toBe(true);
    expect(await Promise.all([a, b, c, d])).toEqual(["a", "b", "c", "d"]);
    await expect(failing).rejects.toThrow("x");
    expect(events.indexOf("end a")).toBeLessThan(events.indexOf("start b"));
    expect(events.indexOf("start c")).toBeLessThan(events.indexOf("end a"));
    await new Promise((r) => setTimeout(r, 0));
    expect(lock.busy("k")).toBe(false);
  });
});
