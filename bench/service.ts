/**
 * Service bench: cold start of the service (first start on an empty data
 * folder, then a restart), Train time at 50 / 200 / 1,000 samples (against a
 * population model the service trained by itself from 24 other users), and
 * Predict latency over gRPC (median and p99 of 1,000 sequential calls).
 * Prints one table. Run: npm run bench
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { MlService, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { sampleMessages } from "../test/support/fixtures.ts";
import { grpcJsClient } from "../test/support/grpc-client.ts";
import { startServiceProcess } from "../test/support/process.ts";
import { printKeyValueTable } from "./key-value-table.ts";

const dataDir = mkdtempSync(join(tmpdir(), "ml-bench-"));
const env: Record<string, string> = process.env["DATABASE_URL"] ? { DATABASE_URL: process.env["DATABASE_URL"] } : { DATA_DIR: dataDir };
const rows: [string, string][] = [];

let t = performance.now();
let service = await startServiceProcess(env);
rows.push(["cold start, first (empty data folder)", `${((performance.now() - t) / 1000).toFixed(2)} s`]);
await service.stop();
t = performance.now();
service = await startServiceProcess(env);
rows.push(["cold start, second (existing data)", `${((performance.now() - t) / 1000).toFixed(2)} s`]);

const grpc = grpcJsClient(MlService, `127.0.0.1:${service.port}`);
const m = MlService.method;
// Other users first: the service trains its population model by itself, and users' Train calls then blend with it.
for (const [i, u] of syntheticUsers(24, 77).entries()) {
  await grpc.call(m.ingestTrainingData, { samples: sampleMessages(`bench-bg-${i}`, syntheticSamples(u, 200, 300 + i)) });
}
t = performance.now();
let populations = 0;
while (performance.now() - t < 300_000) {
  const listed = await grpc.call(m.listModels, { population: true, modelType: ModelType.ENERGY_PREDICTION });
  populations = listed.models.length;
  // 3, then 20% more users: the self-trained fits of 24 users arriving at once are done when two versions exist.
  if (populations >= 2) break;
  await new Promise((r) => setTimeout(r, 500));
}
rows.push([
  "population model, trained by the service itself from 24 users x 200 samples",
  `${populations} versions after ${((performance.now() - t) / 1000).toFixed(1)} s`,
]);
const [user] = syntheticUsers(1, 21);
const fifty: number[] = [];
for (let k = 0; k < 5; k++) {
  const userId = `bench-50x-${k}-${Date.now()}`;
  await grpc.call(m.ingestTrainingData, { samples: sampleMessages(userId, syntheticSamples(user!, 50, 50 + k)) });
  const start = performance.now();
  await grpc.call(m.train, { userId, modelType: ModelType.ENERGY_PREDICTION });
  fifty.push((performance.now() - start) / 1000);
}
fifty.sort((a, b) => a - b);
rows.push(["Train, 50 samples, five users", `median ${fifty[2]!.toFixed(2)} s, range ${fifty[0]!.toFixed(2)}-${fifty[4]!.toFixed(2)} s`]);
for (const n of [50, 200, 1000]) {
  const userId = `bench-${n}-${Date.now()}`;
  const samples = sampleMessages(userId, syntheticSamples(user!, n, n));
  await grpc.call(m.ingestTrainingData, { samples });
  t = performance.now();
  const r = await grpc.call(m.train, { userId, modelType: ModelType.ENERGY_PREDICTION });
  rows.push([
    `Train, ${n} samples (100 trees, ${r.model?.evaluation})`,
    `${((performance.now() - t) / 1000).toFixed(2)} s, held-out accuracy ${(r.model!.trainingAccuracy * 100).toFixed(1)}%`,
  ]);
  if (n === 200) {
    const times: number[] = [];
    for (let i = 0; i < 1100; i++) {
      const start = performance.now();
      await grpc.call(m.predict, {
        userId,
        targetTime: timestampFromMs(Date.UTC(2026, 10, 26) + i * 600_000),
        timeZone: "Europe/Berlin",
        recentActivity: { tasksCompletedToday: i % 6, avgEnergyLast7Days: 2 },
      });
      if (i >= 100) times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    rows.push(["Predict over gRPC (grpc-js client), median of 1,000", `${times[500]!.toFixed(2)} ms (p99 ${times[990]!.toFixed(2)} ms)`]);
  }
}
grpc.close();
await service.stop();
rmSync(dataDir, { recursive: true, force: true });

printKeyValueTable(rows);
