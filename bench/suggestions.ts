/**
 * Suggestions bench: SuggestTasks latency (median, p99 of 1,000 sequential
 * calls over gRPC) and the service's CPU per Feedback with a chosen task
 * (the refit of the user's ranker included), measured from /proc on the
 * service process. With DATABASE_URL the database runs in its own process,
 * so the CPU is the service's alone; with the embedded default it includes
 * PGlite's. Run: npm run bench:suggestions
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnergyLevel, MlService, TaskStatus } from "../gen/ml/v1/ml_pb.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
import { grpcJsClient } from "../test/support/grpc-client.ts";
import { startServiceProcess } from "../test/support/process.ts";
import { printKeyValueTable } from "./key-value-table.ts";

const dataDir = mkdtempSync(join(tmpdir(), "ml-bench-suggest-"));
const env: Record<string, string> = process.env["DATABASE_URL"] ? { DATABASE_URL: process.env["DATABASE_URL"] } : { DATA_DIR: dataDir };
const service = await startServiceProcess(env);
const grpc = grpcJsClient(MlService, `127.0.0.1:${service.port}`);
const m = MlService.method;
const random = seededRandom(14);
const hex = () =>
  Math.floor(random() * 0x10000)
    .toString(16)
    .padStart(4, "0");
const uuid = () => `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-8${hex().slice(1)}-${hex()}${hex()}${hex()}`;
const LEVELS = [EnergyLevel.LOW, EnergyLevel.MEDIUM, EnergyLevel.HIGH] as const;

/** utime + stime of the service process, in ms (clock ticks of 10 ms). */
const cpuMs = () => {
  const fields = readFileSync(`/proc/${service.child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

const userId = `bench-picker-${Date.now()}`;
const tasks = Array.from({ length: 16 }, (_, i) => ({
  taskId: uuid(),
  title: `task ${i}`,
  category: ["writing", "email", "coding", "admin", "errands"][i % 5]!,
  energyRequired: LEVELS[i % 3]!,
  estimatedMinutes: [10, 20, 30, 45, 60, 90][i % 6]!,
  priority: 1 + (i % 4),
  status: TaskStatus.OPEN,
}));
await grpc.call(m.upsertTasks, { userId, tasks });
const rows: [string, string][] = [];
for (const phase of ["before any pick (rules prior)", "after 300 picks (own ranker)"] as const) {
  const times: number[] = [];
  const ids: string[] = [];
  for (let i = 0; i < 1100; i++) {
    const start = performance.now();
    const r = await grpc.call(m.suggestTasks, { userId, currentEnergy: LEVELS[i % 3]!, limit: 5 });
    if (i >= 100) times.push(performance.now() - start);
    ids.push(r.suggestionId);
  }
  rows.push([`SuggestTasks, ${phase}`, `median ${quantile(times, 0.5).toFixed(2)} ms, p99 ${quantile(times, 0.99).toFixed(2)} ms`]);
  // SUGGEST_ONLY=1 measures SuggestTasks alone (to compare with a version whose Feedback takes only shown tasks).
  if (process.env["SUGGEST_ONLY"] === "1") break;
  if (phase === "before any pick (rules prior)") {
    // The user picks by priority among a random half of the tasks: 300 picks, any of the open tasks.
    const fb: number[] = [];
    const before = cpuMs();
    for (let i = 0; i < 300; i++) {
      const chosen = tasks.filter(() => random() < 0.5).sort((a, b) => a.priority - b.priority)[0] ?? tasks[0]!;
      const start = performance.now();
      await grpc.call(m.feedback, { predictionId: ids[i]!, wasCorrect: true, chosenTaskId: chosen.taskId });
      fb.push(performance.now() - start);
    }
    const cpu = (cpuMs() - before) / 300;
    rows.push([
      "Feedback with a chosen task (refit of the user's ranker), 300 calls",
      `median ${quantile(fb, 0.5).toFixed(2)} ms, p99 ${quantile(fb, 0.99).toFixed(2)} ms`,
    ]);
    rows.push([`service CPU per Feedback${process.env["DATABASE_URL"] ? "" : " (embedded database included)"}`, `${cpu.toFixed(2)} ms`]);
  }
}
grpc.close();
await service.stop();
rmSync(dataDir, { recursive: true, force: true });

printKeyValueTable(rows);
