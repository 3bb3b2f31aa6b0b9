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
    env = { DATABASE_URL: database.url, PORT: "0", TRAIN_THREADS: "1", METRICS_PORT: "0", PREDICTION_SPILL_DIR: join(tmpdir(), `ml-spill-${process.pid}`) };
  } else {
    dataDir = mkdtempSync(join(tmpdir(), "ml-start-"));
    env = { DATA_DIR: dataDir, PORT: "0", TRAIN_THREADS: "1", METRICS_PORT: "0", PREDICTION_SPILL_DIR: join(dataDir, "spill") };
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

  it("serves Prometheus metrics on METRICS_PORT: calls by RPC, protocol and code, queues, caches, pool, event loop", async () => {
    expect(service.metricsPort).toBeGreaterThan(0);
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      return res.text();
    };
    const value = (text: string, series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const text = await scrape();
    // The previous test's calls, on both paths: gRPC over HTTP/2 (the lean path), gRPC-Web and Connect (both).
    expect(value(text, 'ml_rpc_duration_seconds_count{method="ListModels",protocol="grpc",code="ok"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'ml_rpc_duration_seconds_count{method="ListModels",protocol="connect",code="ok"}')).toBeGreaterThanOrEqual(3);
    expect(value(text, 'ml_rpc_duration_seconds_count{method="ListModels",protocol="grpc-web",code="ok"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'ml_rpc_duration_seconds_count{method="Train",protocol="connect",code="failed_precondition"}')).toBeGreaterThanOrEqual(3);
    expect(value(text, 'ml_rpc_duration_seconds_count{method="Train",protocol="grpc",code="failed_precondition"}')).toBeGreaterThanOrEqual(1);
    for (const series of [
      'ml_training_jobs{state="waiting"}',
      'ml_training_jobs{state="running"}',
      "ml_prediction_log_pending_rows",
      "ml_model_cache_entries",
      "ml_model_cache_bytes",
      'ml_model_cache_lookups_total{result="hit"}',
      'ml_active_version_cache_lookups_total{result="miss"}',
      'ml_db_pool_connections{state="idle"}',
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(value(text, series), series).toBeGreaterThanOrEqual(0);
    }
    expect((await fetch(`http://127.0.0.1:${service.metricsPort}/other`)).status).toBe(404);
  });

  it("stops cleanly, once, however often it is asked", async () => {
    const extraDir = mkdtempSync(join(tmpdir(), "ml-start-"));
    const extra = await startService(
      readConfig(
        testServerUrl !== undefined
          ? { DATABASE_URL: database!.url, PORT: "0", PREDICTION_SPILL_DIR: join(extraDir, "spill") }
          : { DATA_DIR: extraDir, PORT: "0", PREDICTION_SPILL_DIR: join(extraDir, "spill") },
      ),
      silentLogger,
    );
    await Promise.all([extra.stop(), extra.stop()]);
    rmSync(extraDir, { recursive: true, force: true });
    await expect(fetch(`http://127.0.0.1:${extra.port}/`)).rejects.toThrow();
  });
});
