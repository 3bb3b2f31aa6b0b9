import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";
import { MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { silentLogger } from "../src/logger.ts";
import { startService, type Service } from "../src/start.ts";
import { freshDatabase, testServerUrl, type TestDatabase } from "./support/database.ts";

/** The started service in-process: one port for gRPC, gRPC-Web and Connect, HTTP/2 and HTTP/1.1. */
let service: Service;
let database: TestDatabase | undefined;
let dataDir: string | undefined;

beforeAll(async () => {
  let env: Record<string, string>;
  if (testServerUrl !== undefined) {
    database = await freshDatabase({ migrate: false });
    env = { DATABASE_URL: database.url, PORT: "0", TRAIN_THREADS: "1" };
  } else {
    dataDir = mkdtempSync(join(tmpdir(), "ml-start-"));
    env = { DATA_DIR: dataDir, PORT: "0", TRAIN_THREADS: "1" };
  }
  service = await startService(readConfig(env), silentLogger);
});

afterAll(async () => {
  await service?.stop();
  if (database !== undefined) await database.close();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

describe("startService", () => {
  it("serves every protocol on one port", async () => {
    const baseUrl = `http://127.0.0.1:${service.port}`;
    const transports = [
      createGrpcTransport({ baseUrl }),
      createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
      createConnectTransport({ baseUrl, httpVersion: "2" }),
      createConnectTransport({ baseUrl, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
      createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
    ];
    for (const transport of transports) {
      const client = createClient(MlService, transport);
      expect((await client.listModels({ userId: "nobody", modelType: ModelType.ENERGY_PREDICTION })).models).toEqual([]);
      const err = await client.train({ userId: "nobody", modelType: ModelType.ENERGY_PREDICTION }).catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    }
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    expect((await health.check({ service: "ml.v1.MlService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("stops cleanly, once, however often it is asked", async () => {
    const extraDir = mkdtempSync(join(tmpdir(), "ml-start-"));
    const extra = await startService(
      readConfig(testServerUrl !== undefined ? { DATABASE_URL: database!.url, PORT: "0" } : { DATA_DIR: extraDir, PORT: "0" }),
      silentLogger,
    );
    await Promise.all([extra.stop(), extra.stop()]);
    rmSync(extraDir, { recursive: true, force: true });
    await expect(fetch(`http://127.0.0.1:${extra.port}/`)).rejects.toThrow();
  });
});
