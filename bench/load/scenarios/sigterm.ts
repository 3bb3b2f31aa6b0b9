import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { PredictRequestSchema, SuggestTasksRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { progress, requireService, serviceAlive, type RunContext } from "../context.ts";
import { generateLoad, total, type LoadRequest } from "../generator.ts";
import { generatorRow, PREDICTION_KINDS } from "../generator-row.ts";
import { measureWindow, settledPredictionCount } from "../measure.ts";
import { encodeBody, methodPath, predictRequest, suggestRequest } from "../messages.ts";
import { startService } from "../service.ts";

const EXIT_LIMIT_MS = 60_000;

/**
 * sigterm: Predict (90%) and SuggestTasks (10%) load, SIGTERM to the service
 * halfway, wait for it to exit, then compare rows in model_predictions with
 * the successful responses the generator received. Stops the service, so it
 * runs last.
 */
export async function runSigterm(ctx: RunContext): Promise<void> {
  let embeddedBefore: number | null = null;
  if (requireService(ctx, "sigterm").db.pool === null) {
    // The embedded database can only be read while the service is stopped: count, then start it again.
    await ctx.service!.stop();
    ctx.service = null;
    embeddedBefore = await ctx.db!.countPredictions(false);
    await startService(ctx);
  }
  const { service, db, pid } = requireService(ctx, "sigterm");
  const { duration, connections, streams } = ctx.options;
  const users = ctx.warmUsers;
  const predicts = users.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  const suggests = users.map((u, i) => encodeBody(SuggestTasksRequestSchema, suggestRequest(u, i), "grpc"));
  const next = (n: number): LoadRequest =>
    n % 10 === 9
      ? { kind: "SuggestTasks", path: methodPath("SuggestTasks"), body: suggests[n % suggests.length]! }
      : { kind: "Predict", path: methodPath("Predict"), body: predicts[n % predicts.length]! };
  const before = db.pool === null ? embeddedBefore : await settledPredictionCount(db, true);
  const exited = new AbortController();
  const killAfterS = Math.max(1, duration / 2);
  let exitCode: number | null = null;
  let exitSignal: string | null = null;
  let exitMs = 0;
  let sigtermSent = false;
  const split = { before: { ok: 0, errors: 0 }, after: { ok: 0, errors: 0 } };
  const stopper = (async () => {
    await sleep(killAfterS * 1000);
    progress(`sigterm: sending SIGTERM to the service (pid ${pid}) under load`);
    const exit = serviceAlive(service)
      ? (once(service.child, "exit") as Promise<[number | null, string | null]>)
      : Promise.resolve([service.child.exitCode, service.child.signalCode] as [number | null, string | null]);
    const sent = performance.now();
    service.child.kill("SIGTERM");
    sigtermSent = true;
    const killer = setTimeout(() => service.child.kill("SIGKILL"), EXIT_LIMIT_MS);
    [exitCode, exitSignal] = await exit;
    clearTimeout(killer);
    exitMs = performance.now() - sent;
    exited.abort();
  })();
  const run = await measureWindow(pid, null, 0, () =>
    generateLoad({
      port: service.port,
      protocol: "grpc",
      connections,
      streams,
      warmupS: 0,
      durationS: killAfterS + EXIT_LIMIT_MS / 1000 + 5,
      next,
      signal: exited.signal,
      observe: (_kind, error) => {
        const side = sigtermSent ? split.after : split.before;
        if (error === null) side.ok++;
        else side.errors++;
      },
    }),
  );
  await stopper;
  ctx.service = null;
  ctx.client = null;
  const after = await settledPredictionCount(db, false);
  const successes = total(run.result, "ok", PREDICTION_KINDS);
  const rowsDelta = before === null || after === null ? null : after - before;
  const extra = rowsDelta === null ? null : Math.max(0, rowsDelta - successes);
  ctx.rows.push(
    generatorRow("sigterm", `node:http2 generator ${connections} conn × ${streams} streams, gRPC`, run, null, { before, after }, [
      `SIGTERM after ${killAfterS} s of load; the service exited with ${exitSignal ?? exitCode} after ${(exitMs / 1000).toFixed(2)} s`,
      `calls before SIGTERM: ${split.before.ok} ok, ${split.before.errors} errors; after: ${split.after.ok} ok (in flight, finished during shutdown), ` +
        `${split.after.errors} errors (refused or cut off; the generator retries a refused connection every 100 ms per stream)`,
      `rows written but not acknowledged (the caller saw an error or no answer): ${extra ?? "n/a"}`,
      "calls/s and latency cover the load until the exit; errors after SIGTERM are expected, what matters is that every acknowledged prediction is stored",
    ]),
  );
  ctx.details["sigterm"] = { exitCode, exitSignal, exitS: exitMs / 1000, successes, rowsDelta, calls: split };
}
