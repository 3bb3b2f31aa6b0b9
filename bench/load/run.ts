import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import type { LoadOptions, ScenarioName } from "./cli.ts";
import { progress, serviceAlive, serviceExit, type RunContext } from "./context.ts";
import { embeddedDatabase, existingDatabase, freshServerDatabase, type BenchDatabase } from "./database.ts";
import { h2loadCommands } from "./h2load.ts";
import { processRssMiB } from "./proc.ts";
import { lost, markdown, type LoadReport } from "./report.ts";
import { runBaselines } from "./scenarios/baselines.ts";
import { runManyUsers } from "./scenarios/many-users.ts";
import { runMix } from "./scenarios/mix.ts";
import { runPredict } from "./scenarios/predict.ts";
import { runPredictAuth } from "./scenarios/predict-auth.ts";
import { runPredictDuringTrain } from "./scenarios/predict-during-train.ts";
import { runReplicas } from "./scenarios/replicas.ts";
import { runRetention } from "./scenarios/retention.ts";
import { runSigterm } from "./scenarios/sigterm.ts";
import { runSoak } from "./scenarios/soak.ts";
import { startService } from "./service.ts";
import { prepareWarmUsers } from "./users.ts";

const SCENARIO_RUNNERS: Record<Exclude<ScenarioName, "baselines">, (ctx: RunContext) => Promise<void>> = {
  "predict-grpc": (ctx) => runPredict(ctx, "grpc"),
  "predict-connect": (ctx) => runPredict(ctx, "connect"),
  "predict-auth": runPredictAuth,
  mix: runMix,
  "predict-during-train": runPredictDuringTrain,
  soak: runSoak,
  "many-users": runManyUsers,
  retention: runRetention,
  replicas: runReplicas,
  sigterm: runSigterm,
};

/** Service crashes tolerated per run before the remaining scenarios are skipped. */
const MAX_RESTARTS = 2;

async function openDatabase(options: LoadOptions): Promise<BenchDatabase> {
  if (options.embedded) return embeddedDatabase();
  if (options.databaseUrl !== null) return existingDatabase(options.databaseUrl);
  return freshServerDatabase(options.pgServer);
}

/**
 * One load run: baselines, then the service (started as `npm start` runs it,
 * on a fresh database) with warm users, then each chosen scenario. A failing
 * scenario is reported and the run goes on; returns the report and whether
 * every scenario ran.
 */
export async function runLoad(options: LoadOptions, h2loadVersion: string): Promise<{ report: LoadReport; ok: boolean }> {
  const startedAt = new Date().toISOString();
  const needsService = options.scenarios.some((s) => s !== "baselines");
  const db = needsService ? await openDatabase(options) : null;
  const tmp = mkdtempSync(join(tmpdir(), "ml-load-"));
  const ctx: RunContext = {
    options,
    tmp,
    tag: randomUUID().slice(0, 6),
    db,
    service: null,
    client: null,
    warmUsers: [],
    rawCallsPerS: null,
    maxPredictPerS: null,
    rows: [],
    details: {},
  };
  const failures: string[] = [];
  const attempt = async (name: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      if (cleaningUp !== null) await cleaningUp;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      progress(`${name} FAILED: ${message}`);
      const errors = ctx.service?.logs.filter((line) => line.includes('"level":"error"')).slice(-5) ?? [];
      if (errors.length > 0) progress(`last service errors:\n${errors.join("\n")}`);
      failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  // Ctrl-C: stop the service, drop the fresh database and the temp folder, then exit; the run waits for it.
  let cleaningUp: Promise<never> | null = null;
  const interrupted = () => {
    progress("interrupted: cleaning up");
    cleaningUp = (async () => {
      rmSync(tmp, { recursive: true, force: true });
      await ctx.service?.stop().catch(() => null);
      await db?.close().catch(() => null);
      process.exit(130);
    })();
  };
  process.once("SIGINT", interrupted);
  try {
    if (options.scenarios.includes("baselines")) await attempt("baselines", () => runBaselines(ctx));
    if (db !== null) {
      await attempt("service start", () => startService(ctx));
      if (ctx.service !== null)
        await attempt("warm users", async () => {
          ctx.warmUsers = await prepareWarmUsers(ctx);
        });
      let restarts = 0;
      for (const name of options.scenarios) {
        if (name === "baselines" || ctx.warmUsers.length === 0) continue;
        if (ctx.service !== null && !serviceAlive(ctx.service)) {
          // A crash is a finding: report it with the service's last words, then go on with a fresh process.
          const crash = `service died before ${name}: ${serviceExit(ctx.service)}`;
          progress(crash);
          failures.push(crash);
          ctx.service = null;
          if (restarts++ >= MAX_RESTARTS) break;
          await attempt("service restart", () => startService(ctx));
          if (ctx.service === null) break;
        }
        progress(`scenario ${name}`);
        await attempt(name, () => SCENARIO_RUNNERS[name](ctx));
      }
    }
  } finally {
    if (cleaningUp !== null) await cleaningUp;
    if (ctx.service !== null && serviceAlive(ctx.service)) {
      (ctx.details["service"] as Record<string, unknown>)["rssMiBAtEnd"] = processRssMiB(ctx.service.child.pid!);
      await ctx.service.stop();
    }
    process.removeListener("SIGINT", interrupted);
    await db?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
  if (needsService && ctx.warmUsers.length === 0) failures.push("no warm users: service scenarios skipped");
  const checks = ctx.rows.flatMap((r) => (r.predictions === null ? [] : [lost(r.predictions)])).filter((n) => n !== null);
  const report: LoadReport = {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version, h2load: h2loadVersion },
    database: db?.description ?? "none (baselines only)",
    options,
    rows: ctx.rows,
    details: { ...ctx.details, ...(failures.length > 0 ? { failures } : {}) },
    lostPredictions: checks.length === 0 ? null : checks.reduce((a, b) => a + b, 0),
    h2loadCommands: [...h2loadCommands],
  };
  return { report, ok: failures.length === 0 };
}

/** The installed h2load's version line, for the report. */
export function h2loadVersion(): string {
  try {
    return execFileSync("h2load", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

/** The markdown printed at the end of a run. */
export function printable(report: LoadReport): string {
  return [markdown(report), "", "h2load command lines:", "```", ...report.h2loadCommands, "```"].join("\n");
}
