import { PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { mlClient } from "../client.ts";
import { progress, requireService, type RunContext } from "../context.ts";
import { runH2loadParallel, type H2loadResult } from "../h2load.ts";
import { h2loadLayout } from "../h2load-layout.ts";
import { h2loadRow } from "../h2load-row.ts";
import { measureWindow, settledPredictionCount } from "../measure.ts";
import { encodeBody, methodPath, predictRequest } from "../messages.ts";
import { processRssMiB } from "../proc.ts";
import { describeSample, sampleCalls } from "../verify.ts";
import { runPredict } from "./predict.ts";

const SAMPLE_EVERY_MS = 5_000;

/**
 * soak: Predict over gRPC at half the measured maximum calls/s (h2load
 * --rps) for --soak-seconds, sampling the service's RSS every 5 s; reports
 * RSS after the warm-up against the end, and errors.
 */
export async function runSoak(ctx: RunContext): Promise<void> {
  if (ctx.maxPredictPerS === null) {
    progress("soak: no Predict maximum measured yet, running predict-grpc first");
    await runPredict(ctx, "grpc");
  }
  const { service, db, pid } = requireService(ctx, "soak");
  const { soakSeconds, warmup, connections, streams } = ctx.options;
  const rate = Math.max(connections, Math.round(ctx.maxPredictPerS! / 2));
  progress(`soak: ${soakSeconds} s at ${rate} calls/s`);
  const users = Array.from({ length: connections }, (_, i) => ctx.warmUsers[i % ctx.warmUsers.length]!);
  const bodies = users.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  const specs = h2loadLayout(ctx, "soak", service.port, methodPath("Predict"), "grpc", bodies, {
    durationS: soakSeconds,
    warmupS: warmup,
    totalRate: rate,
  });
  const samples: { s: number; rssMiB: number }[] = [];
  const started = performance.now();
  const sample = () => {
    const rss = processRssMiB(pid);
    if (rss !== null) samples.push({ s: (performance.now() - started) / 1000, rssMiB: rss });
  };
  sample();
  const timer = setInterval(sample, SAMPLE_EVERY_MS);
  const before = await settledPredictionCount(db, true);
  let run: Awaited<ReturnType<typeof measureWindow<H2loadResult>>>;
  try {
    run = await measureWindow(pid, db, warmup, () => runH2loadParallel(specs));
  } finally {
    clearInterval(timer);
  }
  sample();
  const client = mlClient(service.port);
  const check = await sampleCalls(100, (i) => client.predict(predictRequest(users[i % users.length]!, i)));
  const after = await settledPredictionCount(db, true);
  if (samples.length === 0) throw new Error("soak: the service's RSS could not be read (did it exit?)");
  const afterWarmup = samples.find((x) => x.s >= warmup) ?? samples[0]!;
  const end = samples.at(-1)!;
  const change = ((end.rssMiB - afterWarmup.rssMiB) / afterWarmup.rssMiB) * 100;
  const peak = Math.max(...samples.map((x) => x.rssMiB));
  ctx.rows.push(
    h2loadRow(
      "soak",
      `h2load ${connections}×(1 conn × ${streams} streams) --rps, gRPC`,
      run,
      ctx.rawCallsPerS,
      {
        successes: run.result.status2xx + check.ok,
        exact: false,
        rowsDelta: before === null || after === null ? null : after - before,
      },
      [
        `${soakSeconds} s at a target of ${rate} calls/s (half of the best Predict rate, ${ctx.maxPredictPerS!.toFixed(0)} calls/s)`,
        `service RSS after warm-up ${afterWarmup.rssMiB.toFixed(1)} MiB (t=${afterWarmup.s.toFixed(0)} s) → end ${end.rssMiB.toFixed(1)} MiB: ` +
          `${change >= 0 ? "+" : ""}${change.toFixed(1)}% (peak ${peak.toFixed(1)} MiB, ${samples.length} samples every 5 s)`,
        `status check with a connect-es gRPC client after the run: ${describeSample(check, 100)}`,
      ],
    ),
  );
  ctx.details["soak"] = { seconds: soakSeconds, targetRate: rate, rssChangePercent: change, rssSamples: samples };
}
