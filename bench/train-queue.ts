/**
 * Train through the job queue against Train in process, on one PostgreSQL:
 * two started replicas per mode, sequential Train calls for one user
 * (alternating replicas), p50 / p90 of the call, and for the queue the
 * enqueue-to-pickup time read from pg-boss's table (created_on to started_on).
 * Run: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --import tsx bench/train-queue.ts
 */
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createPool, sql } from "slonik";
import { z } from "zod";
import { MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { readConfig } from "../src/config.ts";
import { silentLogger } from "../src/logger.ts";
import { TRAINING_QUEUE } from "../src/service/training-queue.ts";
import { startService } from "../src/start.ts";
import { clearPatternMessages } from "../test/support/fixtures.ts";

const admin = process.env["BENCH_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres";
const RUNS = Number(process.env["RUNS"] ?? 20);
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function measure(queue: boolean): Promise<{ train: number[]; pickup: number[]; runs: number[] }> {
  const name = `ml_bench_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const pool = await createPool(admin, { maximumPoolSize: 1 });
  await pool.query(sql.unsafe`CREATE DATABASE ${sql.identifier([name])}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const env = {
    DATABASE_URL: url.toString(),
    PORT: "0",
    TRAIN_THREADS: "1",
    N_ESTIMATORS: "20",
    POPULATION_AUTO_TRAIN: "0",
    TRAINING_QUEUE: queue ? "1" : "0",
  };
  const replicas = [await startService(readConfig(env), silentLogger), await startService(readConfig(env), silentLogger)];
  const clients = replicas.map((r) => createClient(MlService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${r.port}` })));
  await clients[0]!.ingestTrainingData({ samples: clearPatternMessages("bench", 40) });
  const train: number[] = [];
  for (let i = 0; i < RUNS + 2; i++) {
    const started = performance.now();
    await clients[i % 2]!.train({ userId: "bench", modelType: ModelType.ENERGY_PREDICTION });
    if (i >= 2) train.push(performance.now() - started);
  }
  let pickup: number[] = [];
  let runs: number[] = [];
  if (queue) {
    const db = await createPool(url.toString(), { maximumPoolSize: 1 });
    const rows = await db.any(
      sql.type(
        z.object({ ms: z.number(), run: z.number() }),
      )`SELECT (extract(epoch FROM started_on - created_on) * 1000)::float8 AS ms, (extract(epoch FROM completed_on - started_on) * 1000)::float8 AS run FROM pgboss.job WHERE name = ${TRAINING_QUEUE} ORDER BY created_on`,
    );
    pickup = rows.slice(2).map((r) => r.ms);
    runs = rows.slice(2).map((r) => r.run);
    await db.end();
  }
  await Promise.all(replicas.map((r) => r.stop()));
  await pool.query(sql.unsafe`DROP DATABASE ${sql.identifier([name])} WITH (FORCE)`);
  await pool.end();
  return { train, pickup, runs };
}

const f = (ms: number) => `${ms.toFixed(1)} ms`;
for (const queue of [false, true, false, true]) {
  const { train, pickup, runs } = await measure(queue);
  const line = `${queue ? "queue     " : "in process"}  Train p50 ${f(quantile(train, 0.5))}  p90 ${f(quantile(train, 0.9))}`;
  console.log(
    pickup.length === 0 ? line : `${line}  pickup p50 ${f(quantile(pickup, 0.5))}  p90 ${f(quantile(pickup, 0.9))}  job run p50 ${f(quantile(runs, 0.5))}`,
  );
}
