import { setTimeout as sleep } from "node:timers/promises";
import type { BenchDatabase } from "./database.ts";
import { postgresPids, startCpuMeter } from "./proc.ts";

/** CPU the service and its database backends used during a measured window. */
export interface WindowCpu {
  /** null when the process exited before the window ended. */
  readonly serviceCpuS: number | null;
  /** null for the embedded database (its CPU is inside the service process). */
  readonly dbCpuS: number | null;
  /** Every postgres process on the host (background writers too, and other databases' backends); null for embedded. */
  readonly pgServerCpuS: number | null;
}

/**
 * Runs a load (h2load or the generator) and measures CPU of the server
 * process `pid` (or of several replicas) and of the database backends (when
 * `db` is given) from the end of its warm-up to its end, the same window the
 * load tool measures calls in.
 */
export async function measureWindow<T>(
  pid: number | readonly number[],
  db: BenchDatabase | null,
  warmupS: number,
  load: () => Promise<T>,
): Promise<{ result: T } & WindowCpu> {
  const running = load();
  let finished = false;
  running.then(
    () => (finished = true),
    () => (finished = true),
  );
  await Promise.race([sleep(warmupS * 1000), running]);
  const service = startCpuMeter(typeof pid === "number" ? [pid] : pid);
  const server = db?.pool == null ? null : startCpuMeter(postgresPids());
  const database = startCpuMeter(finished || db === null ? [] : await db.backendPids());
  const result = await running;
  const serviceCpuS = service.stop();
  const dbCpuS = db === null || db.pool === null ? null : database.stop(await db.backendPids());
  const pgServerCpuS = server === null ? null : server.stop(postgresPids());
  return { result, serviceCpuS, dbCpuS, pgServerCpuS };
}

/** Rows in model_predictions once pending writes have landed (stable for 500 ms, at most 10 s). */
export async function settledPredictionCount(db: BenchDatabase, serviceRunning: boolean): Promise<number | null> {
  let last = await db.countPredictions(serviceRunning);
  if (last === null || !serviceRunning) return last;
  for (let i = 0; i < 20; i++) {
    await sleep(500);
    const now = await db.countPredictions(serviceRunning);
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** µs of CPU per call, or null when there were no calls. */
export function perCallUs(cpuS: number | null, calls: number): number | null {
  return cpuS === null || calls === 0 ? null : (cpuS * 1e6) / calls;
}

/** A row note with PostgreSQL CPU per call two ways: this database's backends, and every postgres process on the host (other databases' load included). */
export function pgCpuNote(run: WindowCpu, calls: number): string {
  const fmt = (s: number | null) => perCallUs(s, calls)?.toFixed(1) ?? "n/a";
  return `PostgreSQL CPU per call: ${fmt(run.dbCpuS)} µs in this database's backends, ${fmt(run.pgServerCpuS)} µs over every postgres process on the host (WAL writer, checkpointer and other databases' backends included: an upper bound on a shared host)`;
}
