import { setTimeout as sleep } from "node:timers/promises";
import { ModelType, PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { progress, requireService, type RunContext } from "../context.ts";
import { latenciesBetween, runH2loadParallel } from "../h2load.ts";
import { h2loadLayout } from "../h2load-layout.ts";
import { h2loadRow } from "../h2load-row.ts";
import { measureWindow, settledPredictionCount } from "../measure.ts";
import { encodeBody, methodPath, predictRequest } from "../messages.ts";
import { percentiles } from "../stats.ts";
import { ingestForUsers } from "../users.ts";

/**
 * predict-during-train: the same Predict load (h2load, gRPC, warm users)
 * first idle, then again with a Train of `--train-rows` rows for another
 * user started when the warm-up ends. The "training" latencies are the
 * requests that started and ended while Train ran (from h2load's log), so a
 * Train shorter than the window is not diluted. A Train still running when
 * the window ends is aborted (the client cancels, the service aborts the fit),
 * so the run stays bounded and later scenarios are not disturbed.
 */
export async function runPredictDuringTrain(ctx: RunContext): Promise<void> {
  const { service, client, db, pid } = requireService(ctx, "predict-during-train");
  const { duration, warmup, connections, trainRows } = ctx.options;
  const trainUser = `load-${ctx.tag}-train-big`;
  progress(`predict-during-train: ingesting ${trainRows} rows for ${trainUser}`);
  const ingestStarted = performance.now();
  await ingestForUsers(client, [trainUser], trainRows);
  const ingestS = (performance.now() - ingestStarted) / 1000;
  const users = Array.from({ length: connections }, (_, i) => ctx.warmUsers[i % ctx.warmUsers.length]!);
  const bodies = users.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  const timing = { durationS: duration, warmupS: warmup };
  const delta = (a: number | null, b: number | null) => (a === null || b === null ? null : b - a);

  let before = await settledPredictionCount(db, true);
  const idle = await measureWindow(pid, db, warmup, () =>
    runH2loadParallel(h2loadLayout(ctx, "during-train-idle", service.port, methodPath("Predict"), "grpc", bodies, timing)),
  );
  let after = await settledPredictionCount(db, true);
  const idleRow = h2loadRow("predict-during-train (idle)", "h2load, gRPC", idle, ctx.rawCallsPerS, {
    successes: idle.result.status2xx,
    exact: false,
    rowsDelta: delta(before, after),
  });

  const abort = new AbortController();
  let trainStartMs = 0;
  let trainEndMs: number | null = null;
  let trainOutcome = "";
  let training: Promise<void> = Promise.resolve();
  before = after;
  const busy = await measureWindow(pid, db, warmup, async () => {
    const load = runH2loadParallel(h2loadLayout(ctx, "during-train-busy", service.port, methodPath("Predict"), "grpc", bodies, timing));
    await sleep(warmup * 1000);
    progress(`predict-during-train: Train of ${trainRows} rows started under load`);
    trainStartMs = Date.now();
    training = client.train({ userId: trainUser, modelType: ModelType.ENERGY_PREDICTION }, { signal: abort.signal }).then(
      (r) => {
        trainEndMs = Date.now();
        trainOutcome = `finished after ${((trainEndMs - trainStartMs) / 1000).toFixed(1)} s (held-out accuracy ${(r.model!.trainingAccuracy * 100).toFixed(1)}%)`;
      },
      (err: unknown) => {
        trainEndMs = Date.now();
        const s = ((trainEndMs - trainStartMs) / 1000).toFixed(1);
        trainOutcome = abort.signal.aborted ? `still fitting when the window ended: aborted after ${s} s` : `failed after ${s} s: ${String(err)}`;
      },
    );
    return load;
  });
  const windowEndMs = Date.now();
  if (trainEndMs === null) abort.abort();
  await training;
  after = await settledPredictionCount(db, true);

  const overlapEndMs = Math.min(trainEndMs ?? windowEndMs, windowEndMs);
  const overlapS = Math.max(0.001, (overlapEndMs - trainStartMs) / 1000);
  const during = percentiles(latenciesBetween(busy.result, trainStartMs, overlapEndMs));
  const ratio = during.p99 / idleRow.p99Ms;
  const whole = h2loadRow("predict-during-train (training)", "h2load, gRPC", busy, ctx.rawCallsPerS, {
    successes: busy.result.status2xx,
    exact: false,
    rowsDelta: delta(before, after),
  });
  const callsPerS = during.count / overlapS;
  ctx.rows.push(idleRow, {
    ...whole,
    calls: during.count,
    callsPerS,
    p50Ms: during.p50,
    p95Ms: during.p95,
    p99Ms: during.p99,
    shareOfRaw: ctx.rawCallsPerS === null ? null : callsPerS / ctx.rawCallsPerS,
    notes: [
      `p99 idle ${idleRow.p99Ms.toFixed(2)} ms → while Train ran ${during.p99.toFixed(2)} ms: ${ratio.toFixed(2)}×`,
      `Train of ${trainRows} rows (ingested in ${ingestS.toFixed(1)} s) ${trainOutcome}; calls/s and latencies cover the ${overlapS.toFixed(1)} s ` +
        `it overlapped the load (${during.count} calls; whole window: p99 ${whole.p99Ms.toFixed(2)} ms)`,
      "server CPU per call is over the whole window and includes the Train worker thread (same process)",
      ...whole.notes,
    ],
  });
  ctx.details["predictDuringTrain"] = { trainRows, idleP99Ms: idleRow.p99Ms, trainingP99Ms: during.p99, p99Ratio: ratio, overlapS, train: trainOutcome };
}
