import { startServiceProcess } from "../../test/support/process.ts";
import { mlClient } from "./client.ts";
import { progress, type RunContext } from "./context.ts";
import { processRssMiB } from "./proc.ts";

/** Starts the real service (`node --import tsx src/main.ts`, PORT=0) on the run's database, with `env` on top, and a client for it. */
export async function startService(ctx: RunContext, env: Record<string, string> = {}): Promise<void> {
  if (ctx.db === null) throw new Error("no database for the service");
  progress(`starting the service on ${ctx.db.description}`);
  const started = performance.now();
  const service = await startServiceProcess({ ...ctx.db.serviceEnv, ...env });
  ctx.service = service;
  ctx.client = mlClient(service.port);
  ctx.details["service"] ??= {
    startS: (performance.now() - started) / 1000,
    pid: service.child.pid,
    rssMiBAtStart: processRssMiB(service.child.pid!),
  };
}
