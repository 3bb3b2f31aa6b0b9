import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabasePool } from "slonik";
import { freshServerDatabase, type BenchDatabase } from "../load/database.ts";
import { processRssMiB } from "../load/proc.ts";
import { startServiceProcess, type ServiceProcess } from "../../test/support/process.ts";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.ts";
import { progress } from "./report.ts";

/**
 * What every scenario runs on: a fresh database on a real PostgreSQL, a TCP
 * proxy in front of it (the service's only way to the database, so an outage
 * is a cut of the proxy), a spill folder that outlives restarts, and the
 * service as a child process that can be started, killed and restarted on them.
 */
export interface FaultRig {
  /** The harness's own pool, straight to PostgreSQL (never through the proxy). */
  readonly pool: DatabasePool;
  readonly proxy: TcpProxy;
  readonly spillDir: string;
  /** The running service; null between a stop and the next start. */
  readonly service: ServiceProcess | null;
  readonly pid: number;
  /** Starts the service (env on top of the defaults) unless it is running. */
  ensure(env?: Record<string, string>): Promise<ServiceProcess>;
  /** kill -9 and wait for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM and wait; the exit code and how long the shutdown took. */
  terminate(): Promise<{ code: number | null; seconds: number }>;
  /** Log lines of every service process this rig started that say a call failed as Internal or Unknown. */
  bugLogs(): string[];
  close(): Promise<void>;
}

/** Log lines of these service processes that say a call failed as Internal or Unknown, or an error escaped. */
export function bugLogLines(processes: readonly ServiceProcess[]): string[] {
  return processes.flatMap((s) => s.logs.filter((line) => /"code":"(Internal|Unknown)"|uncaught|unhandled/i.test(line)));
}

/** Defaults that keep fits short on a 2-core machine and stop background population fits from muddying counts. */
const SERVICE_ENV = {
  TRAIN_THREADS: "1",
  N_ESTIMATORS: "30",
  POPULATION_AUTO_TRAIN: "0",
  POPULATION_RETRAIN_HOURS: "0",
  REBLEND_MAX_USERS: "0",
};

/** Creates the database, the proxy and the spill folder (the service starts on ensure()). */
export async function createFaultRig(pgServer: string): Promise<FaultRig> {
  const db: BenchDatabase = await freshServerDatabase(pgServer);
  progress(`database: ${db.description}`);
  const direct = new URL(db.serviceEnv["DATABASE_URL"]!);
  const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
  const viaProxy = new URL(direct);
  viaProxy.port = String(proxy.port);
  const dir = mkdtempSync(join(tmpdir(), "ml-faults-"));
  const spillDir = join(dir, "spill");
  let service: ServiceProcess | null = null;
  const started: ServiceProcess[] = [];
  const alive = (s: ServiceProcess | null): s is ServiceProcess => s !== null && s.child.exitCode === null && s.child.signalCode === null;
  return {
    pool: db.pool!,
    proxy,
    spillDir,
    get service() {
      return service;
    },
    get pid() {
      if (!alive(service)) throw new Error("the service is not running");
      return service.child.pid!;
    },
    async ensure(env = {}) {
      if (alive(service)) return service;
      service = await startServiceProcess({ ...SERVICE_ENV, DATABASE_URL: viaProxy.toString(), PREDICTION_SPILL_DIR: spillDir, ...env });
      started.push(service);
      progress(`service started (pid ${service.child.pid}, port ${service.port}, RSS ${processRssMiB(service.child.pid!)?.toFixed(0)} MiB)`);
      return service;
    },
    async kill9() {
      if (!alive(service)) return;
      const exited = once(service.child, "exit");
      service.child.kill("SIGKILL");
      await exited;
      service = null;
    },
    async terminate() {
      if (!alive(service)) return { code: null, seconds: 0 };
      const started = performance.now();
      const code = await service.stop();
      service = null;
      return { code, seconds: (performance.now() - started) / 1000 };
    },
    bugLogs: () => bugLogLines(started),
    async close() {
      if (alive(service)) {
        const exited = once(service.child, "exit");
        service.child.kill("SIGTERM");
        const timer = setTimeout(() => service?.child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await proxy.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
