import type { ServiceProcess } from "../../test/support/process.ts";
import type { LoadOptions } from "./cli.ts";
import type { MlClient } from "./client.ts";
import type { BenchDatabase } from "./database.ts";
import type { ResultRow } from "./report.ts";

/** What the scenarios share: options, the running service and its database, prepared users, results so far. */
export interface RunContext {
  readonly options: LoadOptions;
  /** A temp folder for body and log files, removed at the end. */
  readonly tmp: string;
  /** Makes user ids unique per run, so a reused database does not mix runs. */
  readonly tag: string;
  /** The service's database; null when only baselines run. */
  readonly db: BenchDatabase | null;
  service: ServiceProcess | null;
  client: MlClient | null;
  /** Warm users with a trained model and tasks. */
  warmUsers: string[];
  /** calls/s of the raw node:http2 baseline, the ceiling every row is compared with. */
  rawCallsPerS: number | null;
  /** Best Predict calls/s measured against the service (for the soak rate). */
  maxPredictPerS: number | null;
  readonly rows: ResultRow[];
  readonly details: Record<string, unknown>;
}

/** The running service, or an error naming the scenario that needed it. */
export function requireService(ctx: RunContext, scenario: string): { service: ServiceProcess; client: MlClient; db: BenchDatabase; pid: number } {
  if (ctx.service === null || ctx.client === null || ctx.db === null) throw new Error(`${scenario}: the service is not running`);
  if (!serviceAlive(ctx.service)) throw new Error(`${scenario}: ${serviceExit(ctx.service)}`);
  return { service: ctx.service, client: ctx.client, db: ctx.db, pid: ctx.service.child.pid! };
}

/** Whether the service process is still running. */
export function serviceAlive(service: ServiceProcess): boolean {
  return service.child.exitCode === null && service.child.signalCode === null;
}

/** Aborted when the service process exits, so a load against a dead service stops at once. */
export function exitSignal(service: ServiceProcess): AbortSignal {
  let signal = exitSignals.get(service);
  if (signal === undefined) {
    const controller = new AbortController();
    if (!serviceAlive(service)) controller.abort();
    else service.child.once("exit", () => controller.abort());
    signal = controller.signal;
    exitSignals.set(service, signal);
  }
  return signal;
}

const exitSignals = new WeakMap<ServiceProcess, AbortSignal>();

/** How the service process ended, with its last log lines (for a crash report). */
export function serviceExit(service: ServiceProcess, lines = 15): string {
  const how = service.child.signalCode ?? `code ${service.child.exitCode}`;
  return `the service exited (${how}); its last log lines:\n${service.logs.slice(-lines).join("\n")}`;
}

/** Progress on stderr, so stdout carries only the markdown results. */
export function progress(message: string): void {
  process.stderr.write(`[load ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
